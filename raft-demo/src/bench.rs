//! Replicated writes per second and their latency on a local 3-node cluster, for the Walden
//! log and for the in-memory log (the upper bound: no durability at all).

use core::time::Duration;
use std::path::Path;
use std::time::Instant;

use crate::client::{self, Client};
use crate::cluster::Cluster;
use crate::node::StoreKind;
use crate::proto::{Call, Reply};

/// One measurement.
#[derive(Clone, Debug)]
pub struct Row {
    /// Which raft log the three nodes kept.
    pub store: StoreKind,
    /// Concurrent clients, each waiting for its write before sending the next.
    pub clients: usize,
    /// Acknowledged writes.
    pub writes: u64,
    /// Writes per second.
    pub per_sec: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
}

/// The most concurrent clients one measurement runs (each holds a connection).
pub const MAX_CLIENTS: usize = 1024;

/// The longest measurement, in seconds.
pub const MAX_SECONDS: f64 = 3600.0;

/// Refuses a client count outside `1..=MAX_CLIENTS` and a duration that is not a number of
/// seconds in `(0, MAX_SECONDS]`.
pub fn check(clients: &[usize], seconds: f64) -> Result<(), String> {
    if let Some(n) = clients.iter().find(|n| !(1..=MAX_CLIENTS).contains(*n)) {
        return Err(format!("--clients: {n} is not in 1..={MAX_CLIENTS}"));
    }
    if !(seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(format!(
            "--seconds: {seconds} is not a duration in (0, {MAX_SECONDS}]"
        ));
    }
    Ok(())
}

/// Starts a 3-node cluster of `exe` per store, and measures each client count for `seconds`.
/// Refuses, before starting anything, what [`check`] refuses.
pub async fn run(
    exe: &Path,
    stores: &[StoreKind],
    clients: &[usize],
    seconds: f64,
) -> Result<Vec<Row>, String> {
    check(clients, seconds)?;
    let mut rows = Vec::new();
    for &store in stores {
        let base = std::env::temp_dir().join(format!(
            "walden-raft-bench-{}-{}",
            std::process::id(),
            store.name()
        ));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).map_err(|e| e.to_string())?;
        let result = run_store(exe, &base, store, clients, seconds).await;
        let _ = std::fs::remove_dir_all(&base);
        rows.extend(result?);
    }
    Ok(rows)
}

async fn run_store(
    exe: &Path,
    base: &Path,
    store: StoreKind,
    clients: &[usize],
    seconds: f64,
) -> Result<Vec<Row>, String> {
    let cluster = Cluster::start(exe, base, 3, store)?;
    let first = cluster.addr(1).ok_or("no node 1")?.to_string();
    match client::call(&first, &Call::Init(cluster.members())).await? {
        Reply::Done => {}
        other => return Err(format!("init: {other:?}")),
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (_, leader) = client::wait_for_leader(&cluster.addrs(), deadline).await?;
    // Warm up: connections, allocations, the first segment's pages.
    let mut warm = Client::new(vec![leader.clone()]);
    for i in 0..200 {
        warm.write(&format!("warm-{i}"), "x", deadline).await?;
    }
    let mut rows = Vec::new();
    for &n in clients {
        let end = Instant::now() + Duration::from_secs_f64(seconds);
        let tasks: Vec<_> = (0..n)
            .map(|t| {
                let leader = leader.clone();
                tokio::spawn(async move {
                    let mut c = Client::new(vec![leader]);
                    let mut lat = Vec::new();
                    let value = "v".repeat(64);
                    let mut i = 0u64;
                    while Instant::now() < end {
                        let started = Instant::now();
                        c.write(
                            &format!("c{n}-t{t}-{i}"),
                            &value,
                            end + Duration::from_secs(30),
                        )
                        .await?;
                        lat.push(started.elapsed().as_micros() as u64);
                        i += 1;
                    }
                    Ok::<_, String>(lat)
                })
            })
            .collect();
        let started = Instant::now();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(|e| e.to_string())??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        rows.push(Row {
            store,
            clients: n,
            writes: lat.len() as u64,
            per_sec: lat.len() as f64 / elapsed,
            p50_us: pct(0.50),
            p99_us: pct(0.99),
        });
    }
    Ok(rows)
}

/// The rows as a Markdown table, with the Walden ÷ memory ratio where both were measured.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| log store | clients | writes/s | p50 | p99 | writes/s ÷ in-memory |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let ratio = rows
            .iter()
            .find(|m| m.store == StoreKind::Memory && m.clients == r.clients)
            .map_or(String::from("–"), |m| {
                format!("{:.2}", r.per_sec / m.per_sec)
            });
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {} |\n",
            r.store.name(),
            r.clients,
            r.per_sec,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            ratio
        ));
    }
    out
}
