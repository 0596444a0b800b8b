//! A client that finds the leader by itself: it follows `NotLeader` redirects and, when a
//! node is down or knows no leader, tries the next one, until a deadline.

use core::time::Duration;
use std::io;
use std::time::Instant;

use crate::net::Conn;
use crate::proto::{Call, FrameError, Reply, Status};

/// How long one call may take before the client gives up on that node.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Pause between attempts while no leader answers (an election takes about a second).
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Writes through whichever node leads. Each write is applied at most once, however often
/// it is sent again (to the same node or another): it carries this client's id and a serial
/// number that only a new write advances (`walden_openraft::kv`, "Each client write applied
/// once").
pub struct Client {
    addrs: Vec<String>,
    next: usize,
    conn: Conn,
    /// Random per client.
    id: u64,
    /// The last write's serial.
    serial: u64,
}

impl Client {
    /// A client for a cluster whose nodes listen on `addrs` (it starts with the first).
    pub fn new(addrs: Vec<String>) -> Self {
        let conn = Conn::new(addrs.first().cloned().unwrap_or_default());
        Self {
            addrs,
            next: 1,
            conn,
            id: walden_std::random_seed(),
            serial: 0,
        }
    }

    /// The node it sends to now.
    pub fn addr(&self) -> &str {
        self.conn.addr()
    }

    fn rotate(&mut self) {
        if self.addrs.is_empty() {
            return;
        }
        let addr = self.addrs[self.next % self.addrs.len()].clone();
        self.next += 1;
        self.conn = Conn::new(addr);
    }

    /// Sets `key` to `value` and returns the log index it was committed at, retrying on other
    /// nodes until `deadline`. `Ok` means the leader applied it: it is acknowledged. An `Err`
    /// leaves it unknown whether the write was applied (an attempt may have been committed
    /// with its answer lost); it is then never applied after this client's next write.
    pub async fn write(
        &mut self,
        key: &str,
        value: &str,
        deadline: Instant,
    ) -> Result<u64, String> {
        self.serial += 1;
        let call = Call::Write {
            client: self.id,
            serial: self.serial,
            key: key.into(),
            value: value.into(),
        };
        let mut last_error = String::from("no attempt");
        // Nodes in a row that refused the connection: when every one did, nothing that could
        // ever answer listens there (a node accepts connections before its raft starts).
        let mut refused = 0;
        while Instant::now() < deadline {
            let result = tokio::time::timeout(CALL_TIMEOUT, self.conn.call(&call)).await;
            match &result {
                Ok(Err(FrameError::Connect(e))) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused += 1;
                }
                _ => refused = 0,
            }
            match result {
                Ok(Err(e @ (FrameError::Address(_) | FrameError::Malformed(_)))) => {
                    return Err(describe(self.conn.addr(), &e));
                }
                Ok(Err(e @ FrameError::Connect(_))) if refused >= self.addrs.len() => {
                    return Err(describe(self.conn.addr(), &e));
                }
                Ok(Ok(Reply::Written { index, .. })) => return Ok(index),
                Ok(Ok(Reply::Refused(why))) => return Err(format!("write refused: {why}")),
                // Too large to send: no node can take it either.
                Ok(Err(e @ FrameError::TooLarge(_))) => return Err(format!("write refused: {e}")),
                Ok(Ok(Reply::NotLeader {
                    leader: Some((_, addr)),
                })) if addr != self.conn.addr() => {
                    self.conn = Conn::new(addr);
                    continue;
                }
                Ok(Ok(other)) => last_error = format!("{other:?}"),
                Ok(Err(e)) => last_error = describe(self.conn.addr(), &e),
                Err(_) => {
                    last_error = format!("{}: no reply within {CALL_TIMEOUT:?}", self.conn.addr())
                }
            }
            self.rotate();
            tokio::time::sleep(RETRY_PAUSE).await;
        }
        Err(format!(
            "write of {key} not acknowledged by the deadline: {last_error}"
        ))
    }
}

/// What a failed call to `addr` says to a user: which of "nothing listens there", "not an
/// address" and "not a raft-demo node" it is.
fn describe(addr: &str, e: &FrameError) -> String {
    match e {
        FrameError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            format!("nothing listens at {addr} (connection refused): is the node running?")
        }
        FrameError::Address(e) => {
            format!("{addr} is not a HOST:PORT (or IP:PORT) address that resolves: {e}")
        }
        FrameError::Malformed(m) => format!(
            "{addr} answered with something that is not a raft-demo reply (malformed frame: \
             {m}): is it a raft-demo node?"
        ),
        e => format!("{addr}: {e}"),
    }
}

/// One call to one node, bounded by a timeout (5 s).
pub async fn call(addr: &str, call: &Call) -> Result<Reply, String> {
    let mut conn = Conn::new(addr);
    match tokio::time::timeout(CALL_TIMEOUT, conn.call(call)).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(e)) => Err(describe(addr, &e)),
        Err(_) => Err(format!("{addr}: no reply within {CALL_TIMEOUT:?}")),
    }
}

/// A node's status.
pub async fn status(addr: &str) -> Result<Status, String> {
    match call(addr, &Call::Status).await? {
        Reply::Status(s) => Ok(s),
        other => Err(format!("{addr}: unexpected reply {other:?}")),
    }
}

/// A local read of `key` on the node at `addr`.
pub async fn read(addr: &str, key: &str) -> Result<Option<String>, String> {
    match call(addr, &Call::Read(key.into())).await? {
        Reply::Value(v) => Ok(v),
        other => Err(format!("{addr}: unexpected reply {other:?}")),
    }
}

/// Polls the nodes at `addrs` until every one of them names the same leader, which is one of
/// them, and returns its id and address.
pub async fn wait_for_leader(addrs: &[String], deadline: Instant) -> Result<(u64, String), String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut leaders = Vec::new();
        for a in addrs {
            match status(a).await {
                Ok(s) => leaders.push((s.leader, s.members)),
                Err(e) => last = e,
            }
        }
        if leaders.len() == addrs.len() {
            if let Some((Some(id), members)) = leaders.first().cloned()
                && leaders.iter().all(|(l, _)| *l == Some(id))
                && let Some(addr) = members.get(&id)
            {
                return Ok((id, addr.clone()));
            }
            last = format!(
                "no agreed leader yet: {:?}",
                leaders.iter().map(|l| l.0).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("no leader by the deadline: {last}"))
}

/// Polls `addr` until it has applied at least `index`.
pub async fn wait_applied(addr: &str, index: u64, deadline: Instant) -> Result<Status, String> {
    let mut last = String::new();
    while Instant::now() < deadline {
        match status(addr).await {
            Ok(s) if s.applied.is_some_and(|a| a >= index) => return Ok(s),
            Ok(s) => last = format!("applied {:?}", s.applied),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!(
        "{addr} did not apply {index} by the deadline: {last}"
    ))
}
