//! The wire protocol: one request, one response, each a frame of a 4-byte little-endian length
//! and a postcard-encoded message. Raft RPCs and client calls share it.

use std::collections::BTreeMap;

use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use walden_openraft::kv::{NodeId, TypeConfig};

/// Frames above this are refused (a garbage length must not allocate gigabytes).
pub const MAX_FRAME: usize = 64 << 20;

/// The most bytes (key and value together) one client write may carry. The batcher groups
/// writes into entries of at most [`MAX_BATCH_BYTES`], so an entry stays far below Walden's
/// record limit (16 MiB by default, beyond which the leader's log refuses it and raft stops)
/// and below [`MAX_FRAME`].
pub const MAX_WRITE: usize = 1 << 20;

/// The most key and value bytes one raft entry (a batch of client writes) carries, beyond a
/// single write of at most [`MAX_WRITE`].
pub const MAX_BATCH_BYTES: usize = 4 << 20;

/// A request to a node.
#[derive(Debug, Serialize, Deserialize)]
pub enum Call {
    /// Raft: replicate entries (or a heartbeat).
    Append(AppendEntriesRequest<TypeConfig>),
    /// Raft: ask for a vote.
    Vote(VoteRequest<NodeId>),
    /// Raft: a snapshot chunk.
    Snapshot(InstallSnapshotRequest<TypeConfig>),
    /// Client: set a key, answered once committed and applied on the leader. Applied at
    /// most once per `(client, serial)`, however often it is sent (`walden_openraft::kv`).
    Write {
        /// The client's id, random per client.
        client: u64,
        /// Grows with each new write of the client; a retry keeps it.
        serial: u64,
        /// The key.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Client: a local (possibly stale) read of a key.
    Read(String),
    /// Client: the node's view of the cluster.
    Status,
    /// Admin: initialize a new cluster with these members (id → address).
    Init(BTreeMap<NodeId, String>),
}

/// A node's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum Reply {
    /// Raft replies.
    Append(AppendEntriesResponse<NodeId>),
    /// Raft replies.
    Vote(VoteResponse<NodeId>),
    /// Raft replies.
    Snapshot(InstallSnapshotResponse<NodeId>),
    /// The write is committed and applied; the key's previous value. For a write sent again,
    /// the first answer: where it was applied, and what it replaced then.
    Written {
        /// The log index of the write.
        index: u64,
        /// The value the key had before.
        previous: Option<String>,
    },
    /// This node is not the leader; here is the one it knows of, if any.
    NotLeader {
        /// The leader's id and address.
        leader: Option<(NodeId, String)>,
    },
    /// The value of a key.
    Value(Option<String>),
    /// The node's view.
    Status(Status),
    /// Done (for `Init`).
    Done,
    /// The call failed on the node.
    Failed(String),
    /// The call can succeed on no node (a write larger than [`MAX_WRITE`]): do not retry it.
    Refused(String),
}

/// What `Status` returns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// `Leader`, `Follower`, `Candidate` or `Learner`.
    pub state: String,
    /// The current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Index of its last log entry.
    pub last_log: Option<u64>,
    /// Index of the last entry applied to its state machine.
    pub applied: Option<u64>,
    /// Members: id → address.
    pub members: BTreeMap<NodeId, String>,
    /// Keys in its state machine.
    pub keys: usize,
}

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The connection failed or closed.
    Io(std::io::Error),
    /// No connection could be opened (nothing listens there, or the host is unreachable).
    Connect(std::io::Error),
    /// The address does not resolve to a socket address (`HOST:PORT` or `IP:PORT`).
    Address(std::io::Error),
    /// The message to send encodes to more than [`MAX_FRAME`] bytes.
    TooLarge(usize),
    /// The bytes do not decode, or the length is out of bounds.
    Malformed(&'static str),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "connection: {e}"),
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Address(e) => write!(f, "not a HOST:PORT address that resolves: {e}"),
            Self::TooLarge(len) => write!(f, "message of {len} bytes exceeds {MAX_FRAME}"),
            Self::Malformed(m) => write!(f, "malformed frame: {m}"),
        }
    }
}

impl core::error::Error for FrameError {}

impl From<std::io::Error> for FrameError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// Writes one message as a frame.
pub async fn write_frame<T: Serialize>(
    w: &mut (impl AsyncWriteExt + Unpin),
    msg: &T,
) -> Result<(), FrameError> {
    let body = postcard::to_allocvec(msg).map_err(|_| FrameError::Malformed("encode"))?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame).await?;
    Ok(())
}

/// How much of a frame's body [`read_frame`] reads (and allocates) at a time.
const READ_STEP: usize = 64 << 10;

/// Reads one frame; `Ok(None)` at a clean end of the stream.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    r: &mut (impl AsyncReadExt + Unpin),
) -> Result<Option<T>, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::Malformed("length out of bounds"));
    }
    // Grown as the bytes arrive, not allocated at the declared length: a connection that
    // declares 64 MiB and sends nothing more holds a small buffer, not 64 MiB.
    let mut body = Vec::with_capacity(len.min(READ_STEP));
    while body.len() < len {
        let want = (len - body.len()).min(READ_STEP);
        let start = body.len();
        body.resize(start + want, 0);
        r.read_exact(&mut body[start..]).await?;
    }
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|_| FrameError::Malformed("decode"))
}
