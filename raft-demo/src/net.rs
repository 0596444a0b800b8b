//! Connections to nodes: openraft's network traits over [`Conn`], and the same connection for
//! clients.

use std::io;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, Entry, EntryPayload};
use tokio::net::TcpStream;
use walden_openraft::kv::{NodeId, Request, Tracked, TypeConfig};

use crate::proto::{Call, FrameError, MAX_BATCH_BYTES, Reply, read_frame, write_frame};

/// One connection to a node, opened on first use and again after a failure. One call at a
/// time.
pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
}

impl Conn {
    /// A connection to `addr` (not opened yet).
    pub fn new(addr: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            stream: None,
        }
    }

    /// The node's address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `call` and waits for the reply. After any failure the connection is dropped, so
    /// the next call reconnects.
    ///
    /// A node closes a connection idle for its idle timeout: a call on a kept connection that
    /// fails on the connection (the node closed it without reading the call) is tried once
    /// more on a new one. Raft RPCs and writes of a key to a value may be delivered twice.
    pub async fn call(&mut self, call: &Call) -> Result<Reply, FrameError> {
        let kept = self.stream.is_some();
        let mut result = self.call_once(call).await;
        if result.is_err() {
            self.stream = None;
            if kept && matches!(result, Err(FrameError::Io(_))) {
                result = self.call_once(call).await;
                if result.is_err() {
                    self.stream = None;
                }
            }
        }
        result
    }

    async fn call_once(&mut self, call: &Call) -> Result<Reply, FrameError> {
        if self.stream.is_none() {
            let addrs: Vec<_> = tokio::net::lookup_host(&self.addr)
                .await
                .map_err(FrameError::Address)?
                .collect();
            if addrs.is_empty() {
                return Err(FrameError::Address(io::ErrorKind::InvalidInput.into()));
            }
            let s = TcpStream::connect(&*addrs)
                .await
                .map_err(FrameError::Connect)?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let Some(s) = self.stream.as_mut() else {
            return Err(FrameError::Io(io::ErrorKind::NotConnected.into()));
        };
        write_frame(s, call).await?;
        match read_frame(s).await? {
            Some(reply) => Ok(reply),
            None => Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into())),
        }
    }
}

/// Makes a [`Peer`] per target node.
pub struct Network;

/// Raft RPCs to one node.
pub struct Peer {
    conn: Conn,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, _target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            conn: Conn::new(node.addr.clone()),
        }
    }
}

type RpcResult<T, E = openraft::error::Infallible> =
    Result<T, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>;

impl Peer {
    async fn rpc<E: core::error::Error>(
        &mut self,
        call: Call,
        option: &RPCOption,
    ) -> Result<Reply, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>> {
        match tokio::time::timeout(option.hard_ttl(), self.conn.call(&call)).await {
            Ok(Ok(Reply::Failed(msg))) => {
                Err(RPCError::Network(NetworkError::new(&AnyError::error(msg))))
            }
            Ok(Ok(reply)) => Ok(reply),
            // Refused or reset: openraft backs off before trying an unreachable node again.
            Ok(Err(FrameError::Io(e) | FrameError::Connect(e) | FrameError::Address(e))) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(elapsed) => {
                self.conn.stream = None;
                Err(RPCError::Network(NetworkError::new(&elapsed)))
            }
        }
    }
}

/// The most key and value bytes one append carries when it has more than one entry.
pub const MAX_APPEND_BYTES: usize = MAX_BATCH_BYTES;

/// The key and value bytes an entry carries (what its encoding's size is made of).
fn payload_bytes(entry: &Entry<TypeConfig>) -> usize {
    match &entry.payload {
        EntryPayload::Normal(Request::Set { key, value }) => key.len() + value.len(),
        EntryPayload::Normal(Request::Batch(pairs)) => {
            pairs.iter().map(|(k, v)| k.len() + v.len()).sum()
        }
        EntryPayload::Normal(Request::Tracked(writes)) => writes.iter().map(Tracked::bytes).sum(),
        EntryPayload::Blank | EntryPayload::Membership(_) => 0,
    }
}

fn unexpected<E: core::error::Error>(
    reply: Reply,
) -> RPCError<NodeId, BasicNode, RaftError<NodeId, E>> {
    RPCError::Network(NetworkError::new(&AnyError::error(format!(
        "unexpected reply {reply:?}"
    ))))
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        // A lagging follower's backlog (up to `max_payload_entries` entries) may not fit in a
        // frame, nor cross in the heartbeat interval openraft allows an append: openraft
        // retries at once with the number of entries hinted. One entry alone always goes (it
        // holds at most `MAX_BATCH_BYTES`, or one write of at most `MAX_WRITE`).
        let bytes: usize = rpc.entries.iter().map(payload_bytes).sum();
        if rpc.entries.len() > 1 && bytes > MAX_APPEND_BYTES {
            let fit = rpc.entries.len() * MAX_APPEND_BYTES / bytes;
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fit.max(1) as u64),
            ));
        }
        match self.rpc(Call::Append(rpc), &option).await? {
            Reply::Append(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        match self.rpc(Call::Snapshot(rpc), &option).await? {
            Reply::Snapshot(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        match self.rpc(Call::Vote(rpc), &option).await? {
            Reply::Vote(r) => Ok(r),
            other => Err(unexpected(other)),
        }
    }
}
