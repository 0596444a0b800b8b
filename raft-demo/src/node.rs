//! One node: an openraft `Raft` over a Walden (or in-memory) log and the in-memory key-value
//! state machine, serving raft RPCs and client calls on one TCP port.

use core::time::Duration;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use openraft::{BasicNode, Config, Raft, SnapshotPolicy};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use walden_openraft::kv::{
    Applied, MAX_SNAPSHOT_BYTES, NodeId, Request, StateMachine, Tracked, TypeConfig,
};

use crate::mem_store::MemLogStore;
use crate::net::Network;
pub use crate::node_dir::{LOG_CREATED_FILE, NODE_ID_FILE};
use crate::node_dir::{claim_dir, open_log};
use crate::proto::{Call, MAX_BATCH_BYTES, MAX_WRITE, Reply, Status, read_frame, write_frame};

/// Which raft log a node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// `walden-openraft` in the node's directory: durable.
    Walden,
    /// In memory: lost when the process exits (the benchmark's upper bound).
    Memory,
}

impl StoreKind {
    /// `walden` or `memory`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "walden" => Some(Self::Walden),
            "memory" => Some(Self::Memory),
            _ => None,
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Walden => "walden",
            Self::Memory => "memory",
        }
    }
}

/// How to run a node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Its raft id.
    pub id: NodeId,
    /// Where to listen (`127.0.0.1:0` picks a free port; the node prints the one it got).
    pub listen: String,
    /// Its directory (the raft log lives in `<dir>/raft`; see [`NODE_ID_FILE`] and
    /// [`LOG_CREATED_FILE`]).
    pub dir: PathBuf,
    /// Which log.
    pub store: StoreKind,
    /// How long a connection may take to deliver a complete frame (counted from when the node
    /// starts waiting for it) and to take its reply: a connection idle or stalled mid-frame
    /// for longer is closed, so idle connections cannot pile up.
    pub idle_timeout: Duration,
    /// How many connections it serves at once; one more is closed as soon as it is accepted
    /// (a flood of connections used up the process's descriptors, and with them the raft
    /// peers' connections). Peers keep their connections, so they keep their places.
    pub max_connections: usize,
}

/// The default [`NodeOptions::max_connections`]: far above a cluster's peers and the
/// benchmark's 64 clients, far below the usual descriptor limit of 1024.
pub const MAX_CONNECTIONS: usize = 512;

/// The default [`NodeOptions::idle_timeout`]. Peers send a heartbeat every 100 ms, and a
/// client whose connection was closed reconnects once (see [`crate::net::Conn::call`]).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (out of file descriptors, say) before the next.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// openraft's timing for a cluster on one machine: fast heartbeats so a dead leader is
/// replaced within about a second. Log purging is off: the state machine lives in memory and
/// is rebuilt from the log at restart.
pub fn raft_config() -> Result<Arc<Config>, String> {
    let config = Config {
        cluster_name: "walden-raft-demo".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: SnapshotPolicy::Never,
        ..Config::default()
    };
    config.validate().map(Arc::new).map_err(|e| e.to_string())
}

/// Runs a node until the process is killed. Prints `LISTENING <addr> pid <pid>` once it
/// accepts connections.
pub async fn run(opts: NodeOptions) -> Result<(), String> {
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", opts.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let sm = StateMachine::default();
    let config = raft_config()?;
    let raft = match opts.store {
        StoreKind::Walden => {
            claim_dir(&opts.dir, opts.id)?;
            let store = open_log(&opts.dir, opts.id)?;
            Raft::new(opts.id, config, Network, store, sm.clone()).await
        }
        StoreKind::Memory => {
            Raft::new(opts.id, config, Network, MemLogStore::default(), sm.clone()).await
        }
    }
    .map_err(|e| format!("raft: {e}"))?;
    if let Err(e) = check_listen_addr(&raft, opts.id, addr).await {
        let _ = raft.shutdown().await;
        return Err(e);
    }
    let writes = Batcher::start(raft.clone());
    let places = Arc::new(tokio::sync::Semaphore::new(opts.max_connections));
    let mut turned_away = 0u64;
    println!("LISTENING {addr} pid {}", std::process::id());
    let _ = std::io::stdout().flush();
    loop {
        // A failed accept (EMFILE when idle connections use up the descriptors) used to end
        // the node: it is reported and the node goes on once connections close.
        let sock = match listener.accept().await {
            Ok((sock, _)) => sock,
            Err(e) => {
                eprintln!(
                    "raft-demo node {}: cannot accept a connection: {e}",
                    opts.id
                );
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
            // Closed at once (dropped): a client retries, elsewhere or later.
            turned_away += 1;
            if turned_away.is_power_of_two() {
                eprintln!(
                    "raft-demo node {}: {} connections open, the most it serves \
                     (--max-connections); closed {turned_away} new ones so far",
                    opts.id, opts.max_connections
                );
            }
            continue;
        };
        let _ = sock.set_nodelay(true);
        let served = serve(
            sock,
            Me { id: opts.id, addr },
            raft.clone(),
            sm.clone(),
            writes.clone(),
            opts.idle_timeout,
        );
        tokio::spawn(async move {
            served.await;
            drop(place);
        });
    }
}

/// Refuses to run a node whose cluster membership lists it at another address than the one
/// it listens on (`addr`): its peers dial the membership's address, so it would run
/// unreachable (membership changes are not exposed). A membership address that does not
/// resolve now is only reported.
async fn check_listen_addr(
    raft: &Raft<TypeConfig>,
    id: NodeId,
    addr: core::net::SocketAddr,
) -> Result<(), String> {
    let listed = raft
        .with_raft_state(move |st| {
            st.membership_state
                .effective()
                .membership()
                .get_node(&id)
                .map(|n| n.addr.clone())
        })
        .await
        .map_err(|e| format!("raft: {e}"))?;
    let Some(listed) = listed else {
        return Ok(());
    };
    let resolved: Vec<_> = match tokio::net::lookup_host(&listed).await {
        Ok(a) => a.collect(),
        Err(e) => {
            eprintln!(
                "raft-demo node {id}: warning: the cluster lists this node at {listed}, which \
                 does not resolve ({e}); peers cannot reach it until it does"
            );
            return Ok(());
        }
    };
    if resolved.iter().any(|a| reaches(a, addr)) {
        return Ok(());
    }
    Err(format!(
        "the cluster lists node {id} at {listed}, but it listens on {addr}: its peers dial \
         {listed}, so it would be unreachable (membership changes are not supported); start it \
         with --listen {listed}"
    ))
}

/// Whether a peer dialling `a` (a member's address, resolved) reaches a node listening on
/// `addr`.
fn reaches(a: &core::net::SocketAddr, addr: core::net::SocketAddr) -> bool {
    a.port() == addr.port() && (addr.ip().is_unspecified() || a.ip() == addr.ip())
}

/// Most client writes one raft entry carries.
const MAX_BATCH: usize = 1024;

type Pending = (Tracked, oneshot::Sender<Reply>);

/// Turns the writes of concurrent clients into one raft entry per round: openraft 0.9 flushes
/// the log once per `client_write` before it takes the next, so writes that arrive while one
/// round is being committed go together in the next (group commit at the application level,
/// like Walden's own for appends). Both raft logs of the benchmark run behind it.
#[derive(Clone)]
struct Batcher {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    fn start(raft: Raft<TypeConfig>) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            let mut carry = None;
            loop {
                let first = match carry.take() {
                    Some(p) => p,
                    None => match rx.recv().await {
                        Some(p) => p,
                        None => return,
                    },
                };
                let batch = take_batch(first, &mut rx, &mut carry);
                commit(&raft, batch).await;
            }
        });
        Self { tx }
    }

    async fn write(&self, w: Tracked) -> Reply {
        let len = w.bytes();
        if len > MAX_WRITE {
            return Reply::Refused(format!(
                "a write of {len} bytes (key and value) exceeds {MAX_WRITE}"
            ));
        }
        let (tx, rx) = oneshot::channel();
        if self.tx.send((w, tx)).is_err() {
            return Reply::Failed("the node is shutting down".into());
        }
        rx.await
            .unwrap_or_else(|_| Reply::Failed("the write was dropped".into()))
    }
}

fn pending_len(p: &Pending) -> usize {
    p.0.bytes()
}

/// `first` and the writes already waiting behind it, up to [`MAX_BATCH`] writes and
/// [`MAX_BATCH_BYTES`]: the write that would pass the byte bound is left in `carry` for the
/// next round, so no write is lost or reordered and no entry outgrows a log record or a frame.
fn take_batch(
    first: Pending,
    rx: &mut mpsc::UnboundedReceiver<Pending>,
    carry: &mut Option<Pending>,
) -> Vec<Pending> {
    let mut bytes = pending_len(&first);
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(p) if bytes + pending_len(&p) > MAX_BATCH_BYTES => {
                *carry = Some(p);
                break;
            }
            Ok(p) => {
                bytes += pending_len(&p);
                batch.push(p);
            }
            Err(_) => break,
        }
    }
    batch
}

/// Commits one batch and answers each of its writers.
async fn commit(raft: &Raft<TypeConfig>, batch: Vec<Pending>) {
    let (writes, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
    match raft.client_write(Request::Tracked(writes)).await {
        Ok(r) => {
            let mut previous = r.data.previous.into_iter();
            let mut applied = r.data.applied.into_iter();
            for tx in replies {
                let previous = previous.next().flatten();
                let _ = tx.send(match applied.next() {
                    Some(Applied::Now) | None => Reply::Written {
                        index: r.log_id.index,
                        previous,
                    },
                    // Sent again (its first answer was lost): the first answer.
                    Some(Applied::Before(index)) => Reply::Written { index, previous },
                    Some(Applied::Superseded) => Reply::Refused(
                        "not applied: the client's later write was applied first (this one \
                         arrived late, after the client had given up on it)"
                            .into(),
                    ),
                });
            }
        }
        Err(e) => {
            let reply = || match e.forward_to_leader::<BasicNode>() {
                Some(f) => Reply::NotLeader {
                    leader: f
                        .leader_id
                        .zip(f.leader_node.as_ref().map(|n| n.addr.clone())),
                },
                None => Reply::Failed(e.to_string()),
            };
            for tx in replies {
                let _ = tx.send(reply());
            }
        }
    }
}

/// Serves one connection: a frame must arrive, and its reply leave, within `idle` each, or
/// the connection is closed (it held a task and a descriptor forever).
async fn serve(
    mut sock: TcpStream,
    me: Me,
    raft: Raft<TypeConfig>,
    sm: StateMachine,
    writes: Batcher,
    idle: Duration,
) {
    loop {
        let call = match tokio::time::timeout(idle, read_frame::<Call>(&mut sock)).await {
            Ok(Ok(Some(call))) => call,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                let reply = Reply::Failed(e.to_string());
                let _ = tokio::time::timeout(idle, write_frame(&mut sock, &reply)).await;
                return;
            }
        };
        let reply = handle(call, me, &raft, &sm, &writes).await;
        match tokio::time::timeout(idle, write_frame(&mut sock, &reply)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// The node a connection is served by: its id and the address it listens on.
#[derive(Clone, Copy)]
struct Me {
    id: NodeId,
    addr: core::net::SocketAddr,
}

async fn handle(
    call: Call,
    me: Me,
    raft: &Raft<TypeConfig>,
    sm: &StateMachine,
    writes: &Batcher,
) -> Reply {
    match call {
        Call::Append(rpc) => match raft.append_entries(rpc).await {
            Ok(r) => Reply::Append(r),
            Err(e) => Reply::Failed(e.to_string()),
        },
        Call::Vote(rpc) => match raft.vote(rpc).await {
            Ok(r) => Reply::Vote(r),
            Err(e) => Reply::Failed(e.to_string()),
        },
        Call::Snapshot(rpc) => {
            // Refused before openraft sees it: a chunk placing bytes past the largest snapshot
            // the state machine takes (its buffer would refuse it too, as an I/O error).
            let end = rpc.offset.checked_add(rpc.data.len() as u64);
            if end.is_none_or(|end| end > MAX_SNAPSHOT_BYTES) {
                return Reply::Failed(format!(
                    "snapshot chunk at offset {} of {} bytes ends past kv::MAX_SNAPSHOT_BYTES ({})",
                    rpc.offset,
                    rpc.data.len(),
                    MAX_SNAPSHOT_BYTES
                ));
            }
            match raft.install_snapshot(rpc).await {
                Ok(r) => Reply::Snapshot(r),
                Err(e) => Reply::Failed(e.to_string()),
            }
        }
        Call::Write {
            client,
            serial,
            key,
            value,
        } => {
            let w = Tracked {
                client,
                serial,
                key,
                value,
            };
            writes.write(w).await
        }
        Call::Read(key) => Reply::Value(sm.get(&key)),
        Call::Status => Reply::Status(status(raft, sm)),
        Call::Init(members) => {
            // Initializing is for good (membership changes are not exposed): a member no one
            // can connect to would leave a cluster that never elects a leader. A host name is
            // taken as every other command takes it: resolved (now, and at every connection).
            // The node asked must be a member, at an address that reaches it: its peers dial
            // the membership's address, and a restart refuses to run a node listed elsewhere
            // (`check_listen_addr`), so such an init would leave it unreachable for good.
            if !members.contains_key(&me.id) {
                return Reply::Refused(format!(
                    "this node is node {}, which the members do not list: send init to a \
                     member, or list this node",
                    me.id
                ));
            }
            for (id, addr) in &members {
                let resolved: Vec<_> = match tokio::net::lookup_host(addr.as_str()).await {
                    Ok(a) => a.collect(),
                    Err(_) => Vec::new(),
                };
                if resolved.is_empty() || resolved.iter().any(|a| a.port() == 0) {
                    return Reply::Refused(format!(
                        "member {id}: {addr:?} is not an address (HOST:PORT or IP:PORT that \
                         resolves, port not 0)"
                    ));
                }
                if *id == me.id && !resolved.iter().any(|a| reaches(a, me.addr)) {
                    return Reply::Refused(format!(
                        "member {id} (this node) is listed at {addr}, but it listens on {}: its \
                         peers would dial {addr} and never reach it",
                        me.addr
                    ));
                }
            }
            let nodes: BTreeMap<NodeId, BasicNode> = members
                .into_iter()
                .map(|(id, addr)| (id, BasicNode { addr }))
                .collect();
            match raft.initialize(nodes).await {
                Ok(()) => Reply::Done,
                Err(e) => Reply::Failed(e.to_string()),
            }
        }
    }
}

fn status(raft: &Raft<TypeConfig>, sm: &StateMachine) -> Status {
    let m = raft.metrics().borrow().clone();
    let members = m
        .membership_config
        .membership()
        .nodes()
        .map(|(id, n)| (*id, n.addr.clone()))
        .collect();
    Status {
        id: m.id,
        state: format!("{:?}", m.state),
        term: m.current_term,
        leader: m.current_leader,
        last_log: m.last_log_index,
        applied: m.last_applied.map(|l| l.index),
        members,
        keys: sm.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes of 1 MiB queued faster than they commit: every entry stays within
    /// `MAX_BATCH_BYTES`, and every write comes out once, in order.
    #[test]
    fn a_batch_stays_within_its_byte_bound_and_keeps_every_write() {
        let (tx, mut rx) = mpsc::unbounded_channel::<Pending>();
        let value = "v".repeat(MAX_WRITE - 8);
        for i in 0..24 {
            let (reply, _) = oneshot::channel();
            let w = Tracked {
                client: 1,
                serial: i,
                key: format!("key-{i:04}"),
                value: value.clone(),
            };
            tx.send((w, reply)).unwrap();
        }
        drop(tx);
        let (mut seen, mut carry) = (Vec::new(), None);
        while let Some(first) = carry.take().or_else(|| rx.try_recv().ok()) {
            let batch = take_batch(first, &mut rx, &mut carry);
            let bytes: usize = batch.iter().map(pending_len).sum();
            assert!(bytes <= MAX_BATCH_BYTES, "a batch of {bytes} bytes");
            seen.extend(batch.into_iter().map(|p| p.0.key));
        }
        let want: Vec<_> = (0..24).map(|i| format!("key-{i:04}")).collect();
        assert_eq!(seen, want);
    }
}
