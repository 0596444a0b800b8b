//! Durability futures and a tailing reader under tokio (walden-std itself depends on no
//! runtime). Run: `cargo run -p walden-std --example tokio_durable`.

use futures::StreamExt;
use walden_std::{Lsn, Options, SharedWal, SyncPolicy, TailEvent};

#[tokio::main]
async fn main() -> Result<(), Box<dyn core::error::Error>> {
    let dir = tempfile::tempdir()?;
    // SyncPolicy::Manual: appends return at once; the futures decide when to wait.
    let options = Options::default().with_sync_policy(SyncPolicy::Manual);
    let (wal, _) = SharedWal::open(dir.path(), options)?;

    // A follower task: prints every record as it is appended, across segment rotations.
    let mut tail = wal.tail(Lsn(1));
    let follower = tokio::spawn(async move {
        let mut seen = 0;
        while let Some(event) = tail.next().await {
            if let TailEvent::Record { lsn, payload } = event? {
                println!("tail: {} {}", lsn.0, String::from_utf8_lossy(&payload));
                seen += 1;
                if seen == 40 {
                    return Ok::<_, walden_std::ReadError<walden_std::FileError>>(());
                }
            }
        }
        Ok(())
    });

    // 8 writer tasks: append, then await durability (one fsync covers many tasks).
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let wal = wal.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    let payload = format!("task {t} record {i}");
                    let (appended, durable) = wal.append_durable(&[payload.as_bytes()])?;
                    let now_durable = durable.await?;
                    assert!(now_durable >= appended.last);
                }
                Ok::<_, Box<dyn core::error::Error + Send + Sync>>(())
            })
        })
        .collect();
    for w in writers {
        w.await?.map_err(|e| e.to_string())?;
    }
    follower.await??;

    // A callback instead of a future (what a raft log store hands to its engine).
    let (tx, rx) = tokio::sync::oneshot::channel();
    let _ = wal.append_then(&[b"last"], move |outcome| {
        let _ = tx.send(outcome);
    })?;
    println!("callback: durable up to {:?}", rx.await??);
    println!("metrics: {} group commits", wal.metrics().group_commits);
    Ok(())
}
