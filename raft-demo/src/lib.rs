//! A replicated key-value store on openraft and `walden-openraft`: one process per node,
//! talking over TCP on 127.0.0.1. See `raft-demo/README.md` for running a cluster by hand.
//!
//! * [`node`]: a node (raft + log + in-memory state machine + TCP server).
//! * [`proto`]: the wire protocol (length-prefixed postcard frames).
//! * [`net`]: openraft's network traits over that protocol.
//! * [`client`]: a leader-seeking client.
//! * [`cluster`]: node processes for tests and the benchmark, killed by pid on drop.
//! * [`mod@bench`]: replicated writes per second, Walden log against an in-memory log.
//! * [`mem_store`]: the in-memory raft log.

pub mod bench;
pub mod client;
pub mod cluster;
pub mod mem_store;
pub mod net;
pub mod node;
mod node_dir;
pub mod proto;
