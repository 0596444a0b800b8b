//! Replays one `recover_image` artifact outside libFuzzer and prints both recoveries:
//! `cargo run --example repro -- artifacts/recover_image/<file>`.
fn main() {
    let path = std::env::args().nth(1).expect("artifact");
    let data = std::fs::read(path).unwrap();
    let (mem, config) = walden_fuzz::decode_image(&data);
    println!(
        "policy {:?} max_record {}",
        config.recovery, config.max_record_size
    );
    for (id, f) in &mem.files {
        println!("segment {id}: {} bytes", f.len());
    }
    let mut scratch = vec![0u8; 512];
    let r = walden_core::Wal::<walden_fuzz::Mem, walden_core::Fixed<32>>::open(
        mem.clone(),
        config,
        &mut scratch,
    );
    match r {
        Ok((wal, report)) => {
            println!("first: {report}");
            for (id, f) in &wal.storage().files {
                println!("after: segment {id}: {} bytes", f.len());
            }
            let r2 = walden_core::Wal::<walden_fuzz::Mem, walden_core::Fixed<32>>::open(
                wal.into_storage(),
                config,
                &mut scratch,
            );
            match r2 {
                Ok((_, r)) => println!("second: {r}"),
                Err(e) => println!("second err {e:?}"),
            }
        }
        Err(e) => println!("first err {e:?}"),
    }
}
