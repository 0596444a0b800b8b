//! The client against addresses that are not raft-demo nodes: it must fail at once with a
//! message that says which case it is, not retry until its deadline. Every wait is bounded.

use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use walden_raft_demo::client::{self, Client};

/// A deadline far beyond the bound each test puts on the call: a client that retries until
/// its deadline fails the test at the bound instead.
fn far_deadline() -> Instant {
    Instant::now() + Duration::from_secs(600)
}

/// How long a call that must fail at once may take (a generous bound, never reached).
const BOUND: Duration = Duration::from_secs(60);

/// An address on which nothing listens: a port that was free a moment ago.
fn nothing_listens() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

/// `put` to a port nothing listens on retried for 30 s (the CLI's deadline) before it failed.
#[test]
fn a_write_to_an_address_nothing_listens_on_fails_at_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (a, b) = (nothing_listens(), nothing_listens());
    rt.block_on(async {
        let mut c = Client::new(vec![a.clone(), b]);
        let err = tokio::time::timeout(BOUND, c.write("k", "v", far_deadline()))
            .await
            .expect("the write retried against addresses that refuse connections")
            .unwrap_err();
        assert!(err.contains("connection refused"), "{err}");
        let err = client::status(&a).await.unwrap_err();
        assert!(err.contains(&format!("nothing listens at {a}")), "{err}");
    });
}

/// Another TCP service (here one that answers like an HTTP server): every retry got the same
/// garbage, until the deadline. It must fail after one attempt, saying it is not a node.
#[test]
fn a_write_to_a_service_that_is_not_a_node_fails_after_one_attempt() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    {
        let accepted = Arc::clone(&accepted);
        std::thread::spawn(move || {
            for sock in listener.incoming() {
                let Ok(mut sock) = sock else { return };
                accepted.fetch_add(1, Ordering::SeqCst);
                let _ = sock.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::new(vec![addr.clone()]);
        let err = tokio::time::timeout(BOUND, c.write("k", "v", far_deadline()))
            .await
            .expect("the write retried against a service that is not a node")
            .unwrap_err();
        assert!(err.contains("not a raft-demo reply"), "{err}");
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "{err}");
        let err = client::read(&addr, "k").await.unwrap_err();
        assert!(err.contains("is it a raft-demo node?"), "{err}");
    });
}

/// A `--addr` that is not an address (or names a host that does not resolve) was retried
/// until the deadline.
#[test]
fn a_write_to_something_that_is_not_an_address_fails_at_once() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for bad in ["", "127.0.0.1", "no-such-host.invalid:7001"] {
            let mut c = Client::new(vec![bad.to_string()]);
            let err = tokio::time::timeout(BOUND, c.write("k", "v", far_deadline()))
                .await
                .expect("the write retried an address that does not resolve")
                .unwrap_err();
            assert!(err.contains("HOST:PORT"), "{bad:?}: {err}");
        }
    });
}
