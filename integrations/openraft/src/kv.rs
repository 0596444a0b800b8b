//! A small in-memory key-value state machine, the kind openraft's own examples use: for
//! running openraft's storage suite against [`crate::LogStore`] and for the replicated demo
//! (`raft-demo/`). Its state lives in memory (snapshots too), so a restarted node rebuilds
//! it by re-applying the log: keep log purging off (`SnapshotPolicy::Never`) when you use it.
//!
//! **Each client write applied once.** A client that does not hear back (a leader that died
//! after committing, a reply lost) must send its write again, and raft then commits it
//! twice. A write sent as a [`Tracked`] carries its client's id and a serial number that
//! grows with each new write of that client (a retry keeps it): the state machine keeps, per
//! client, the last serial it applied and its answer, applies a write only if its serial is
//! newer, and answers a retry with the first answer ([`Applied::Before`]). A retry that comes
//! after a newer write of the same client is not applied at all ([`Applied::Superseded`]):
//! applied then, it would undo a later write. The table is part of the state (every replica
//! builds the same one, snapshots carry it) and keeps the [`MAX_SESSIONS`] clients that wrote
//! last; a retry from a client dropped from it is applied again, as an untracked write is.
//!
//! **Snapshots** are bytes in memory ([`SnapshotBuffer`], openraft's `SnapshotData` here):
//!
//! ```text
//! byte 0       format version (SNAPSHOT_FORMAT, 1)
//! bytes 1..5   CRC-32C of the body, little-endian
//! bytes 5..    the body, postcard: the last log id the snapshot covers, the key-value map,
//!              the clients' last writes
//! ```
//!
//! The checksum covers the snapshot's last log id, so a snapshot is bound to the entry it was
//! built at. A snapshot is checked before it is installed: its version, its checksum, that it
//! decodes with nothing after it, and its table of clients' last writes (at most
//! [`MAX_SESSIONS`] clients, no two at one position, none after its last log id: a table that
//! breaks these lets a retried write be applied twice). In openraft 0.9 every error of
//! `install_snapshot` is fatal: the node stops. So the checks run first where openraft can
//! still refuse without stopping, when the last chunk of a snapshot sent over the network has
//! arrived (openraft then shuts the [`SnapshotBuffer`] down, and an error there goes back to
//! the sender, which tries again later); a chunk that would place bytes past
//! [`MAX_SNAPSHOT_BYTES`] is refused the same way, when it arrives. What is still fatal, found
//! in `install_snapshot` itself: a snapshot handed to `Raft::install_full_snapshot` directly
//! (not through chunks) that fails any check, and one whose bytes pass every check but
//! name another last log id than the snapshot meta sent with them (only a broken or hostile
//! sender can send that). Such a node stops rather than install state that is not the log's.

use core::pin::Pin;
use core::task::{Context, Poll};
use std::collections::BTreeMap;
use std::io::{self, Cursor, SeekFrom};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncSeek, AsyncWrite, ReadBuf};

/// A write to the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Set `key` to `value`.
    Set {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Several sets in one raft entry, applied in order (how a node batches the writes of
    /// concurrent clients into one replicated, flushed entry).
    Batch(Vec<(String, String)>),
    /// Client writes, each applied at most once however often it is committed (see the
    /// module's documentation), in order.
    Tracked(Vec<Tracked>),
}

/// A set of `key` to `value` by a client that may send it more than once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    /// The client's id, random per client: two clients must not share one.
    pub client: u64,
    /// Grows with each new write of the client; a retry of a write keeps its serial.
    pub serial: u64,
    /// The key.
    pub key: String,
    /// The new value.
    pub value: String,
}

impl Tracked {
    /// The bytes of its key and value (what bounds a write and a batch of them).
    pub fn bytes(&self) -> usize {
        self.key.len() + self.value.len()
    }
}

/// What became of a [`Tracked`] write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Applied by this entry.
    Now,
    /// A repeat of the write applied at this log index: not applied again; its answer
    /// (`Response::previous`) is the first one's.
    Before(u64),
    /// The client has written something newer since: not applied (it would undo that).
    Superseded,
}

/// The answer to a [`Request`] once applied.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// For each key set, in order, the value it had before, if any.
    pub previous: Vec<Option<String>>,
    /// For each write of a [`Request::Tracked`], in order, what became of it (empty for the
    /// other requests).
    pub applied: Vec<Applied>,
}

/// How many clients' last writes the state machine remembers (the ones that wrote last).
pub const MAX_SESSIONS: usize = 4096;

/// A client's last applied write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Session {
    serial: u64,
    /// Where it was applied: the entry's log index and its place in the entry.
    at: (u64, u32),
    previous: Option<String>,
}

/// The most bytes a snapshot may hold. A [`SnapshotBuffer`] refuses, with an I/O error, to
/// seek or write past it: openraft seeks to the offset a snapshot chunk gives and writes the
/// chunk there, and a plain `Cursor<Vec<u8>>` grows to that offset (a chunk at offset 2^64 - 2
/// panicked on a capacity overflow, one at 1 TiB aborted the process on a failed allocation).
/// A node builds a larger snapshot if its state is larger, but no node accepts it.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;

/// The version of the snapshot format, its first byte (see the module's documentation).
pub const SNAPSHOT_FORMAT: u8 = 1;

/// The format version and the CRC-32C in front of a snapshot's body.
const SNAPSHOT_HEADER: usize = 5;

/// What a snapshot holds (its body).
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    /// The last log id the snapshot covers; must equal its meta's.
    last_log_id: Option<LogId<NodeId>>,
    data: BTreeMap<String, String>,
    sessions: BTreeMap<u64, Session>,
}

/// The clients of `sessions` by the position of their last write.
type ByAge = BTreeMap<(u64, u32), u64>;

/// A snapshot's bytes: format version, checksum, body.
fn encode_snapshot(body: &SnapshotBody) -> Result<Vec<u8>, postcard::Error> {
    let mut out = postcard::to_extend(body, vec![SNAPSHOT_FORMAT, 0, 0, 0, 0])?;
    let crc = walden_crc32c::checksum(&out[SNAPSHOT_HEADER..]);
    out[1..SNAPSHOT_HEADER].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks a snapshot's bytes (everything but its agreement with the snapshot meta) and decodes
/// them; the clients of its session table by position come with it.
fn decode_snapshot(bytes: &[u8]) -> Result<(SnapshotBody, ByAge), String> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Err("the snapshot is empty".into());
    };
    if version != SNAPSHOT_FORMAT {
        return Err(format!(
            "snapshot format version {version}, expected {SNAPSHOT_FORMAT}: damaged, or not a \
             snapshot of this state machine"
        ));
    }
    let Some((crc, body)) = rest.split_first_chunk::<4>() else {
        return Err("the snapshot is shorter than its header".into());
    };
    let (stored, computed) = (u32::from_le_bytes(*crc), walden_crc32c::checksum(body));
    if stored != computed {
        return Err(format!(
            "the snapshot is damaged: its checksum is {stored:#010x}, its bytes give {computed:#010x}"
        ));
    }
    let body: SnapshotBody = match postcard::take_from_bytes(body) {
        Ok((body, [])) => body,
        Ok(_) => return Err("the snapshot has bytes after its data".into()),
        Err(e) => return Err(format!("the snapshot does not decode: {e}")),
    };
    let by_age = check_sessions(&body)?;
    Ok((body, by_age))
}

/// The table of clients' last writes must be one that applying entries builds: at most
/// [`MAX_SESSIONS`] clients, each at its own position, none after the snapshot's last entry.
/// Otherwise a client's write just applied could be forgotten at once (the table evicts the
/// oldest position first, and a position from the future is never the oldest), and its retry
/// applied a second time.
fn check_sessions(body: &SnapshotBody) -> Result<ByAge, String> {
    let n = body.sessions.len();
    if n > MAX_SESSIONS {
        return Err(format!(
            "the snapshot holds {n} client sessions, more than MAX_SESSIONS ({MAX_SESSIONS})"
        ));
    }
    let by_age: ByAge = (body.sessions.iter()).map(|(&c, s)| (s.at, c)).collect();
    if by_age.len() != n {
        return Err("two client sessions of the snapshot are at the same position".into());
    }
    if let Some((&(index, _), &client)) = by_age.last_key_value() {
        match &body.last_log_id {
            Some(last) if index <= last.index => {}
            Some(last) => {
                return Err(format!(
                    "client {client}'s session is at log index {index}, after the snapshot's \
                     last entry {}",
                    last.index
                ));
            }
            None => {
                return Err(format!(
                    "client {client}'s session is at log index {index}, but the snapshot covers \
                     no entry"
                ));
            }
        }
    }
    Ok(by_age)
}

/// A snapshot's bytes in memory: openraft's `SnapshotData` of [`TypeConfig`]. It reads, seeks
/// and writes as the `Cursor<Vec<u8>>` it wraps, except that:
///
/// - seeking or writing past [`MAX_SNAPSHOT_BYTES`] (or before the start) is an
///   [`io::ErrorKind::InvalidInput`] error, and nothing changes;
/// - shutting it down checks the snapshot it holds (see the module's documentation) and fails
///   with [`io::ErrorKind::InvalidData`] if it would be refused. openraft shuts it down when
///   the last chunk of a snapshot has arrived, before the snapshot goes to the state machine:
///   an error there is reported to the sender, and the node goes on.
#[derive(Clone, Default)]
pub struct SnapshotBuffer {
    cursor: Cursor<Vec<u8>>,
}

impl SnapshotBuffer {
    /// A snapshot of these bytes, positioned at the start.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            cursor: Cursor::new(bytes),
        }
    }

    /// The bytes.
    pub fn into_inner(self) -> Vec<u8> {
        self.cursor.into_inner()
    }

    /// The bytes.
    pub fn get_ref(&self) -> &[u8] {
        self.cursor.get_ref()
    }

    /// Where the next read or write starts.
    pub fn position(&self) -> u64 {
        self.cursor.position()
    }

    /// Checks the snapshot it holds, as shutting it down does.
    pub fn check(&self) -> io::Result<()> {
        decode_snapshot(self.get_ref())
            .map(drop)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

impl From<Vec<u8>> for SnapshotBuffer {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl core::fmt::Debug for SnapshotBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SnapshotBuffer")
            .field("len", &self.get_ref().len())
            .field("position", &self.position())
            .finish()
    }
}

/// The error of a seek or write past [`MAX_SNAPSHOT_BYTES`].
fn past_the_cap(what: &str, end: Option<u64>) -> io::Error {
    let end = end.map_or_else(|| "beyond 2^64".to_string(), |e| e.to_string());
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("snapshot {what} to byte {end}, past MAX_SNAPSHOT_BYTES ({MAX_SNAPSHOT_BYTES})"),
    )
}

impl AsyncRead for SnapshotBuffer {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().cursor).poll_read(cx, buf)
    }
}

impl AsyncSeek for SnapshotBuffer {
    fn start_seek(self: Pin<&mut Self>, pos: SeekFrom) -> io::Result<()> {
        let cursor = &mut self.get_mut().cursor;
        let to = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => (cursor.get_ref().len() as u64).checked_add_signed(d),
            SeekFrom::Current(d) => cursor.position().checked_add_signed(d),
        };
        match to {
            Some(to) if to <= MAX_SNAPSHOT_BYTES => {
                cursor.set_position(to);
                Ok(())
            }
            None if matches!(pos, SeekFrom::End(d) | SeekFrom::Current(d) if d < 0) => Err(
                io::Error::new(io::ErrorKind::InvalidInput, "snapshot seek before byte 0"),
            ),
            to => Err(past_the_cap("seek", to)),
        }
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position()))
    }
}

impl AsyncWrite for SnapshotBuffer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let end = this.cursor.position().checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > MAX_SNAPSHOT_BYTES) {
            return Poll::Ready(Err(past_the_cap("write", end)));
        }
        Pin::new(&mut this.cursor).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Checks the snapshot (see [`SnapshotBuffer`]).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.check())
    }
}

openraft::declare_raft_types!(
    /// openraft types for the key-value store: `u64` node ids, nodes addressed by
    /// [`BasicNode`], snapshots as checked bytes in memory ([`SnapshotBuffer`]), the tokio
    /// runtime.
    pub TypeConfig:
        D = Request,
        R = Response,
        SnapshotData = SnapshotBuffer,
);

/// The node id of [`TypeConfig`].
pub type NodeId = u64;

#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    data: BTreeMap<String, String>,
    /// Per client, its last applied [`Tracked`] write.
    sessions: BTreeMap<u64, Session>,
    /// The same clients by where their last write was applied, oldest first (which to forget).
    by_age: BTreeMap<(u64, u32), u64>,
    snapshot: Option<StoredSnapshot>,
    snapshots_built: u64,
}

impl Inner {
    /// Applies `w`, the `pos`th write of the entry at log index `index`.
    fn apply_tracked(&mut self, w: Tracked, index: u64, pos: u32) -> (Option<String>, Applied) {
        if let Some(s) = self.sessions.get(&w.client) {
            if w.serial == s.serial {
                return (s.previous.clone(), Applied::Before(s.at.0));
            }
            if w.serial < s.serial {
                return (None, Applied::Superseded);
            }
            self.by_age.remove(&s.at);
        }
        let previous = self.data.insert(w.key, w.value);
        let at = (index, pos);
        self.by_age.insert(at, w.client);
        self.sessions.insert(
            w.client,
            Session {
                serial: w.serial,
                at,
                previous: previous.clone(),
            },
        );
        while self.sessions.len() > MAX_SESSIONS {
            match self.by_age.pop_first() {
                Some((_, client)) => self.sessions.remove(&client),
                None => break,
            };
        }
        (previous, Applied::Now)
    }
}

/// The in-memory state machine. Clones share the state, so the node that gave one to
/// openraft can still read it ([`StateMachine::get`]).
#[derive(Clone, Default)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
}

impl StateMachine {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value of `key` as of the last applied entry (a local, possibly stale read).
    pub fn get(&self, key: &str) -> Option<String> {
        self.lock().data.get(key).cloned()
    }

    /// The last applied log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.lock().last_applied
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn build_err(e: impl core::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let mut st = self.lock();
        let data = encode_snapshot(&SnapshotBody {
            last_log_id: st.last_applied,
            data: st.data.clone(),
            sessions: st.sessions.clone(),
        })
        .map_err(build_err)?;
        st.snapshots_built += 1;
        let snapshot_id = match &st.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id, l.index, st.snapshots_built),
            None => format!("--{}", st.snapshots_built),
        };
        let meta = SnapshotMeta {
            last_log_id: st.last_applied,
            last_membership: st.membership.clone(),
            snapshot_id,
        };
        st.snapshot = Some(StoredSnapshot {
            meta: meta.clone(),
            data: data.clone(),
        });
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotBuffer::new(data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let st = self.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut st = self.lock();
        let mut out = Vec::new();
        for entry in entries {
            st.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => out.push(Response::default()),
                EntryPayload::Normal(Request::Set { key, value }) => {
                    let previous = vec![st.data.insert(key, value)];
                    out.push(Response {
                        previous,
                        applied: Vec::new(),
                    });
                }
                EntryPayload::Normal(Request::Batch(pairs)) => {
                    let previous = pairs
                        .into_iter()
                        .map(|(key, value)| st.data.insert(key, value))
                        .collect();
                    out.push(Response {
                        previous,
                        applied: Vec::new(),
                    });
                }
                EntryPayload::Normal(Request::Tracked(writes)) => {
                    let index = entry.log_id.index;
                    let (previous, applied) = (writes.into_iter().zip(0u32..))
                        .map(|(w, pos)| st.apply_tracked(w, index, pos))
                        .unzip();
                    out.push(Response { previous, applied });
                }
                EntryPayload::Membership(m) => {
                    st.membership = StoredMembership::new(Some(entry.log_id), m);
                    out.push(Response::default());
                }
            }
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotBuffer>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    /// Refuses (the snapshot's error; the state machine is left unchanged) a snapshot that
    /// fails a check (see the module's documentation), or whose bytes name another last log
    /// id than `meta`. openraft 0.9 stops the node on it: a snapshot received in chunks is
    /// checked before, when it is shut down.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<SnapshotBuffer>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let snap_err = |e: &str| -> StorageError<NodeId> {
            StorageIOError::read_snapshot(Some(meta.signature()), AnyError::error(e)).into()
        };
        let (snap, by_age) = decode_snapshot(&bytes).map_err(|e| snap_err(&e))?;
        if snap.last_log_id != meta.last_log_id {
            return Err(snap_err(&format!(
                "the snapshot's data is of last log id {:?}, its meta of {:?}",
                snap.last_log_id, meta.last_log_id
            )));
        }
        let mut st = self.lock();
        st.data = snap.data;
        st.by_age = by_age;
        st.sessions = snap.sessions;
        st.last_applied = meta.last_log_id;
        st.membership = meta.last_membership.clone();
        st.snapshot = Some(StoredSnapshot {
            meta: meta.clone(),
            data: bytes,
        });
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        Ok(self.lock().snapshot.clone().map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(SnapshotBuffer::new(s.data)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SnapshotMeta<NodeId, BasicNode> {
        SnapshotMeta {
            last_log_id: Some(LogId::new(openraft::CommittedLeaderId::new(1, 0), 9)),
            last_membership: StoredMembership::default(),
            snapshot_id: "s".into(),
        }
    }

    fn tracked(client: u64, serial: u64, key: &str, value: &str) -> Tracked {
        Tracked {
            client,
            serial,
            key: key.into(),
            value: value.into(),
        }
    }

    /// Applies `writes` as the entry at `index`.
    async fn apply(sm: &mut StateMachine, index: u64, writes: Vec<Tracked>) -> Response {
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(1, 0), index),
            payload: EntryPayload::Normal(Request::Tracked(writes)),
        };
        sm.apply([entry]).await.unwrap().remove(0)
    }

    #[tokio::test]
    async fn a_retried_write_is_applied_once_and_answered_as_the_first_time() {
        let mut sm = StateMachine::default();
        let first = apply(&mut sm, 5, vec![tracked(1, 1, "k", "a")]).await;
        assert_eq!(first.applied, [Applied::Now]);
        assert_eq!(first.previous, [None]);
        // Another client's write comes in between; then client 1's retry of its write (its
        // reply was lost) is committed again, in a batch with client 3's first write.
        apply(&mut sm, 6, vec![tracked(2, 1, "k", "b")]).await;
        let retry = apply(
            &mut sm,
            7,
            vec![tracked(1, 1, "k", "a"), tracked(3, 1, "j", "c")],
        )
        .await;
        assert_eq!(retry.applied, [Applied::Before(5), Applied::Now]);
        assert_eq!(retry.previous, [None, None]);
        assert_eq!(
            sm.get("k").as_deref(),
            Some("b"),
            "the retry undid a later write"
        );
        assert_eq!(sm.get("j").as_deref(), Some("c"));
        // Client 1's next write is applied; its old write, arriving late, is not.
        let next = apply(&mut sm, 8, vec![tracked(1, 2, "k", "d")]).await;
        assert_eq!(
            (next.applied, next.previous),
            (vec![Applied::Now], vec![Some("b".into())])
        );
        let late = apply(&mut sm, 9, vec![tracked(1, 1, "k", "a")]).await;
        assert_eq!(late.applied, [Applied::Superseded]);
        assert_eq!(sm.get("k").as_deref(), Some("d"));
        // The same write twice in one entry: applied once.
        let twice = apply(
            &mut sm,
            10,
            vec![tracked(4, 1, "m", "x"), tracked(4, 1, "m", "x")],
        )
        .await;
        assert_eq!(twice.applied, [Applied::Now, Applied::Before(10)]);
    }

    #[tokio::test]
    async fn a_snapshot_carries_the_clients_last_writes() {
        let mut sm = StateMachine::default();
        apply(&mut sm, 3, vec![tracked(1, 7, "k", "a")]).await;
        let snap = sm.build_snapshot().await.unwrap();
        let mut other = StateMachine::default();
        other
            .install_snapshot(&snap.meta, snap.snapshot)
            .await
            .unwrap();
        let retry = apply(&mut other, 4, vec![tracked(1, 7, "k", "a")]).await;
        assert_eq!(retry.applied, [Applied::Before(3)]);
        apply(&mut other, 5, vec![tracked(2, 1, "k", "b")]).await;
        assert_eq!(
            apply(&mut other, 6, vec![tracked(1, 6, "k", "z")])
                .await
                .applied,
            [Applied::Superseded]
        );
        assert_eq!(other.get("k").as_deref(), Some("b"));
    }

    #[tokio::test]
    async fn the_clients_that_wrote_least_recently_are_forgotten_first() {
        let mut sm = StateMachine::default();
        let n = MAX_SESSIONS as u64;
        // Client 0 writes first, then every other client; client 0 writes again before
        // client 1's write would be forgotten, so client 1 is the one that goes.
        apply(&mut sm, 1, vec![tracked(0, 1, "k", "0")]).await;
        apply(
            &mut sm,
            2,
            (1..n).map(|c| tracked(c, 1, "k", "x")).collect(),
        )
        .await;
        apply(&mut sm, 3, vec![tracked(0, 2, "k", "0")]).await;
        apply(&mut sm, 4, vec![tracked(n, 1, "k", "n")]).await;
        assert_eq!(sm.lock().sessions.len(), MAX_SESSIONS);
        let again = apply(
            &mut sm,
            5,
            vec![tracked(1, 1, "k", "x"), tracked(0, 2, "k", "0")],
        )
        .await;
        assert_eq!(again.applied, [Applied::Now, Applied::Before(3)]);
        assert_eq!(sm.lock().sessions.len(), MAX_SESSIONS);
    }

    /// A snapshot of `data` and `sessions` at `meta()`'s last log id, well formed (its
    /// version and checksum right) whatever its session table.
    fn snapshot_of(data: &[(&str, &str)], sessions: BTreeMap<u64, Session>) -> Vec<u8> {
        encode_snapshot(&SnapshotBody {
            last_log_id: meta().last_log_id,
            data: (data.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            sessions,
        })
        .unwrap()
    }

    fn session(serial: u64, at: (u64, u32)) -> Session {
        Session {
            serial,
            at,
            previous: None,
        }
    }

    /// `install_snapshot` refuses `bytes` with a snapshot error naming `why`, the state
    /// machine unchanged (empty); shutting the bytes down as openraft does refuses them too.
    async fn refused(bytes: Vec<u8>, why: &str) {
        let mut sm = StateMachine::default();
        let e = sm
            .install_snapshot(&meta(), Box::new(SnapshotBuffer::new(bytes.clone())))
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("Snapshot("), "not a snapshot error: {e}");
        assert!(e.contains(why), "{e} does not say {why:?}");
        assert_eq!(sm.last_applied(), None);
        assert!(sm.is_empty());
        assert!(sm.lock().sessions.is_empty() && sm.lock().snapshot.is_none());
        let shut = tokio::io::AsyncWriteExt::shutdown(&mut SnapshotBuffer::new(bytes)).await;
        let e = shut.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains(why), "{e} does not say {why:?}");
    }

    #[tokio::test]
    async fn a_bad_snapshot_is_a_snapshot_error_and_changes_nothing() {
        let good = snapshot_of(&[("k", "v")], BTreeMap::new());
        let mut trailing = good.clone();
        trailing.push(0);
        let crc = walden_crc32c::checksum(&trailing[SNAPSHOT_HEADER..]);
        trailing[1..SNAPSHOT_HEADER].copy_from_slice(&crc.to_le_bytes());
        refused(trailing, "bytes after its data").await;
        refused(vec![SNAPSHOT_FORMAT, 0xFF, 0xFF], "shorter than its header").await;
        refused(Vec::new(), "empty").await;
        let mut sm = StateMachine::default();
        sm.install_snapshot(&meta(), Box::new(SnapshotBuffer::new(good)))
            .await
            .unwrap();
        assert_eq!(sm.get("k").as_deref(), Some("v"));
    }

    /// Before the checksum, any byte of a value could change and the snapshot installed: the
    /// replica then served a value no other one held.
    #[tokio::test]
    async fn a_damaged_or_foreign_snapshot_is_refused_by_its_checksum_or_version() {
        let good = snapshot_of(&[("k", "good")], BTreeMap::new());
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            let why = if at == 0 { "format version" } else { "damaged" };
            refused(bad, why).await;
        }
        // The bytes of an older build (no version, no checksum: a bare postcard body).
        let mut old = postcard::to_allocvec(&(BTreeMap::from([("k", "v")]), 0u8)).unwrap();
        old.insert(0, 2);
        refused(old, "format version").await;
    }

    #[tokio::test]
    async fn a_snapshot_bound_to_another_log_id_is_refused() {
        let mut sm = StateMachine::default();
        apply(&mut sm, 3, vec![tracked(1, 7, "k", "a")]).await;
        let snap = sm.build_snapshot().await.unwrap();
        let mut other = StateMachine::default();
        let e = other
            .install_snapshot(&meta(), snap.snapshot)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("its meta of"), "{e}");
        assert!(other.is_empty() && other.last_applied().is_none());
    }

    /// More than MAX_SESSIONS sessions, every one at the same position: installed, the table
    /// then forgot the session of a write as soon as it was applied, and its retry was
    /// applied a second time (undoing another client's later write).
    #[tokio::test]
    async fn a_snapshot_with_too_many_sessions_or_two_at_one_position_is_refused() {
        let clients = 1000..1000 + MAX_SESSIONS as u64 + 1;
        let at_one_place = clients.map(|c| (c, session(1, (5, 0)))).collect();
        refused(snapshot_of(&[], at_one_place), "more than MAX_SESSIONS").await;
        let too_many = (0..MAX_SESSIONS as u64 + 1)
            .map(|c| (c, session(1, (5, c as u32))))
            .collect();
        refused(snapshot_of(&[], too_many), "more than MAX_SESSIONS").await;
        let two_at_one = BTreeMap::from([(1, session(1, (5, 0))), (2, session(4, (5, 0)))]);
        refused(snapshot_of(&[], two_at_one), "same position").await;
        // The limits themselves are fine: MAX_SESSIONS sessions, each at its own place.
        let full: BTreeMap<_, _> = (0..MAX_SESSIONS as u64)
            .map(|c| (c, session(1, (9, c as u32))))
            .collect();
        let mut sm = StateMachine::default();
        let bytes = snapshot_of(&[], full);
        sm.install_snapshot(&meta(), Box::new(SnapshotBuffer::new(bytes)))
            .await
            .unwrap();
        assert_eq!(sm.lock().sessions.len(), MAX_SESSIONS);
        assert_eq!(sm.lock().by_age.len(), MAX_SESSIONS);
        // And the table then works: a write applied, a retry of it answered as before.
        apply(&mut sm, 10, vec![tracked(1 << 40, 1, "k", "a")]).await;
        apply(&mut sm, 11, vec![tracked(2 << 40, 1, "k", "b")]).await;
        let retry = apply(&mut sm, 12, vec![tracked(1 << 40, 1, "k", "a")]).await;
        assert_eq!(retry.applied, [Applied::Before(10)]);
        assert_eq!(sm.get("k").as_deref(), Some("b"));
    }

    /// Sessions positioned after the snapshot's last entry (at most index 9 here) were
    /// installed; once the table was full, every new client's session was the newest and
    /// the first evicted, so no new client's retry was recognised.
    #[tokio::test]
    async fn a_snapshot_with_a_session_after_its_last_entry_is_refused() {
        let future = BTreeMap::from([(1, session(1, (9, 0))), (2, session(1, (10, 0)))]);
        refused(snapshot_of(&[], future), "after the snapshot's last entry").await;
        let far = BTreeMap::from([(1, session(1, (u64::MAX, 3)))]);
        refused(snapshot_of(&[], far), "after the snapshot's last entry").await;
        // A snapshot of no entry holds no session.
        let none = encode_snapshot(&SnapshotBody {
            last_log_id: None,
            data: BTreeMap::new(),
            sessions: BTreeMap::from([(1, session(1, (0, 0)))]),
        })
        .unwrap();
        let mut sm = StateMachine::default();
        let no_entry = SnapshotMeta {
            last_log_id: None,
            ..meta()
        };
        let e = sm
            .install_snapshot(&no_entry, Box::new(SnapshotBuffer::new(none)))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("covers no entry"), "{e}");
    }

    /// A chunk at offset 2^64 - 2 grew a `Cursor<Vec<u8>>` to it (a capacity overflow panic);
    /// at 1 TiB the allocation failed and the process aborted.
    #[tokio::test]
    async fn the_snapshot_buffer_refuses_to_seek_or_write_past_its_cap() {
        use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
        let mut b = SnapshotBuffer::default();
        for to in [u64::MAX - 1, 1 << 40, MAX_SNAPSHOT_BYTES + 1] {
            let e = b.seek(SeekFrom::Start(to)).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
            assert_eq!(b.position(), 0);
        }
        assert!(b.seek(SeekFrom::Current(-1)).await.is_err());
        assert!(b.seek(SeekFrom::End(i64::MAX)).await.is_err());
        // Up to the cap is allowed, and a write that would end past it is refused whole.
        let last = MAX_SNAPSHOT_BYTES - 2;
        assert_eq!(b.seek(SeekFrom::Start(last)).await.unwrap(), last);
        let e = b.write_all(&[1, 2, 3]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        assert!(b.get_ref().is_empty(), "a refused write grew the buffer");
        // Writes and reads within it behave as a cursor's.
        b.seek(SeekFrom::Start(2)).await.unwrap();
        b.write_all(b"ab").await.unwrap();
        assert_eq!(b.get_ref(), b"\0\0ab");
        b.seek(SeekFrom::End(-3)).await.unwrap();
        let mut out = Vec::new();
        b.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"\0ab");
    }
}
