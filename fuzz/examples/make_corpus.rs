//! Writes seed corpora for the fuzz targets from real logs: `cargo run --example make_corpus`
//! (from `fuzz/`) fills `corpus/<target>/`.

use std::fs;
use std::path::Path;

use walden_core::{Config, SyncPolicy, Wal};
use walden_fuzz::{Mem, encode_image};

fn log(n: u64, config: Config, batch: bool) -> Mem {
    let mut scratch = [0u8; 4096];
    let (mut wal, _) =
        Wal::<Mem, walden_core::Fixed<32>>::open(Mem::default(), config, &mut scratch)
            .expect("open");
    for i in 1..=n {
        let p = format!("payload {i}").into_bytes();
        if batch && i % 3 == 0 {
            wal.append_batch(&[&p, b"second", b"third"]).expect("batch");
        } else {
            wal.append(&p).expect("append");
        }
    }
    wal.into_storage()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).expect("corpus dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let small = Config::default().with_segment_size(300);
    let manual = small.with_sync_policy(SyncPolicy::EveryRecords(3));
    let mut images = vec![
        ("empty", Mem::default()),
        ("one", log(1, small, false)),
        ("rotated", log(20, small, false)),
        ("batches", log(12, manual, true)),
    ];
    let mut torn = log(10, small, false);
    if let Some(f) = torn.files.values_mut().last() {
        f.truncate(f.len().saturating_sub(5));
    }
    images.push(("torn", torn));
    let mut flipped = log(10, Config::default(), false);
    if let Some(f) = flipped.files.get_mut(&0) {
        f[64 + 32 + 3] ^= 1;
    }
    images.push(("flipped", flipped));
    let mut gap = log(20, small, false);
    gap.files.remove(&1);
    images.push(("gap", gap));

    for (name, mem) in &images {
        for policy in 0..3u8 {
            write(
                &root.join("recover_image"),
                &format!("{name}-{policy}"),
                &encode_image(mem, policy, 4096),
            );
        }
        for (id, bytes) in &mem.files {
            write(
                &root.join("decode_record"),
                &format!("{name}-seg{id}"),
                bytes,
            );
            if bytes.len() > 64 {
                let mut rec = bytes[40..48].to_vec(); // the salt, then a record header
                rec.extend_from_slice(&bytes[64..bytes.len().min(96)]);
                write(
                    &root.join("decode_record"),
                    &format!("{name}-rec{id}"),
                    &rec,
                );
            }
        }
    }
    // Stored payloads: a limit byte, then bytes (text, zeros, a small frame).
    for (name, bytes) in [
        ("text", b"\x10hello hello hello hello hello".to_vec()),
        ("zeros", vec![0u8; 300]),
        (
            "frame",
            vec![
                4, 20, 0, 0, 0, 0x1f, 0x61, 1, 0, 0x50, 0x61, 0x61, 0x61, 0x61, 0x61,
            ],
        ),
    ] {
        write(&root.join("decode_payload"), name, &bytes);
    }
    // Operation sequences: a few byte patterns the `Arbitrary` decoder turns into varied ops.
    for (i, seed) in [
        &[0u8, 5, 9, 2, 2, 3, 0, 40, 1][..],
        &[7; 64],
        &[3, 1, 4, 1, 5, 9, 2, 6],
    ]
    .iter()
    .enumerate()
    {
        write(&root.join("ops_model"), &format!("seed-{i}"), seed);
    }
    println!("wrote seed corpora under {}", root.display());
}
