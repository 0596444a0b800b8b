//! The `walden` binary against real log directories.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use walden_core::Config;
use walden_std::{Options, Wal};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Every test here holds the lock of a log at some point and runs `walden`, which must find it
/// free once the test's `Wal` is dropped. A child spawned by a test on another thread holds
/// copies of all this process's descriptors between its fork and its exec (close-on-exec only
/// closes them at the exec), a `walden.lock` among them, so tests running in parallel could
/// see a dropped log's lock still held. They take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn walden(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_walden"))
        .args(args)
        .output()
        .expect("run walden");
    Out {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn json(args: &[&str]) -> (i32, Value) {
    let out = walden(args);
    let v = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}\n{}", out.stdout, out.stderr));
    (out.code, v)
}

/// A log of `n` records in 400-byte segments (several segments), closed.
fn make_log(dir: &Path, n: u64) {
    let config = Config::default().with_segment_size(400);
    let mut options = Options::from(config);
    // No background spare-file preparation: the test compares directory listings.
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).expect("open");
    for i in 1..=n {
        wal.append(format!("record {i:03}").as_bytes())
            .expect("append");
    }
}

/// Every file in the directory with its bytes.
fn listing(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = fs::read(e.path()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect()
}

fn segments(dir: &Path) -> Vec<String> {
    listing(dir)
        .into_keys()
        .filter(|n| n.ends_with(".wal"))
        .collect()
}

fn p(dir: &Path) -> &str {
    dir.to_str().unwrap()
}

#[test]
fn clean_log_verifies_inspects_and_dumps_without_changing_anything() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let before = listing(dir);
    assert!(segments(dir).len() >= 3, "several segments");

    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("verified 20 records"), "{}", v.stdout);

    let (code, ins) = json(&["inspect", "--json", p(dir)]);
    assert_eq!(code, 0);
    assert_eq!(ins["status"], "clean");
    assert_eq!(ins["records"], 20);
    assert_eq!(ins["reopen"]["would"], "open");
    let segs = ins["segments"].as_array().unwrap();
    assert_eq!(
        segs[0]["header"]["version"],
        walden_core::raw::FORMAT_VERSION
    );
    assert_eq!(segs[0]["header"]["checksum"], "CRC-32C");
    assert_eq!(segs[0]["first_lsn"], 1);

    let text = walden(&["inspect", p(dir)]);
    assert!(
        text.stdout
            .contains("reopen (TolerateTornTail): would open as is")
    );

    let d = walden(&["dump", "--json", p(dir)]);
    assert_eq!(d.code, 0);
    let lines: Vec<Value> = d
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    assert_eq!(lines[4]["lsn"], 5);
    assert_eq!(lines[4]["payload"]["utf8"], "record 005");

    let d = walden(&[
        "dump",
        "--from",
        "3",
        "--to",
        "5",
        "--format",
        "utf8",
        p(dir),
    ]);
    assert_eq!(d.stdout.lines().count(), 3, "{}", d.stdout);
    assert!(
        d.stdout
            .lines()
            .next()
            .unwrap()
            .starts_with("3\tsingle\t10\trecord 003")
    );

    let r = walden(&["repair", p(dir)]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("nothing to repair"));
    assert_eq!(
        listing(dir),
        before,
        "read-only commands and a no-op repair change nothing"
    );
}

#[test]
fn torn_tail_exits_1_and_repair_cuts_it_keeping_a_broken_copy() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let newest = segments(dir).pop().unwrap();
    let path = dir.join(&newest);
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3); // the last record loses its last bytes
    fs::write(&path, &bytes).unwrap();
    let before = listing(dir);

    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("TornTail"), "{}", v.stdout);
    let (code, vj) = json(&["verify", "--json", p(dir)]);
    assert_eq!((code, &vj["status"]), (1, &Value::from("torn")));
    assert_eq!(vj["problems"][0]["case"], "TornTail");
    assert_eq!(vj["problems"][0]["lsn"], 20);
    assert_eq!(listing(dir), before, "verify changed nothing");

    let (code, rj) = json(&["repair", "--json", p(dir)]);
    assert_eq!(code, 0, "{rj}");
    assert_eq!(rj["report"]["cut"]["first_lsn"], 20);
    let backup = format!("{newest}.broken");
    assert_eq!(rj["backups"][0]["backup"], p(&dir.join(&backup)));
    let after = listing(dir);
    assert_eq!(
        after[&backup], bytes,
        "the .broken copy holds the torn bytes"
    );
    assert!(after[&newest].len() < bytes.len());

    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 0, "{}", v.stdout);
    let (_, ins) = json(&["inspect", "--json", p(dir)]);
    assert_eq!(ins["valid_through"], 19);
    assert_eq!(
        ins["foreign"][0],
        p(&dir.join(&backup)),
        "the copy is a foreign file"
    );
}

#[test]
fn mid_log_corruption_exits_2_repair_refuses_and_salvage_names_the_lost_lsns() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let first = dir.join(segments(dir).remove(0));
    let mut bytes = fs::read(&first).unwrap();
    bytes[64 + 32 + 42 + 3] ^= 0x40; // record 2's payload, in a sealed segment
    fs::write(&first, &bytes).unwrap();
    let before = listing(dir);

    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 2, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("CORRUPTION"), "{}", v.stdout);
    assert!(v.stdout.contains("SealedSegmentDamaged"), "{}", v.stdout);
    assert!(v.stdout.contains("at offset 106"), "{}", v.stdout);

    let r = walden(&["repair", p(dir)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("refusing"), "{}", r.stderr);
    assert!(r.stderr.contains("give up LSN 2 onward"), "{}", r.stderr);
    assert_eq!(listing(dir), before, "a refused repair changes nothing");

    let (code, rj) = json(&["repair", "--salvage", "--json", p(dir)]);
    assert_eq!(code, 0, "{rj}");
    assert_eq!(rj["lost"]["first"], 2);
    assert_eq!(rj["lost"]["last_known"], 20);
    assert_eq!(rj["lost"]["message"], "LSNs 2..=20 were lost");
    let after = listing(dir);
    for name in before.keys().filter(|n| n.ends_with(".wal")) {
        assert_eq!(
            after[&format!("{name}.broken")],
            before[name],
            "every changed or removed segment was copied first"
        );
    }
    let (code, ins) = json(&["inspect", "--json", p(dir)]);
    assert_eq!((code, &ins["valid_through"]), (0, &Value::from(1)));
}

#[test]
fn a_running_log_is_never_touched() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (_wal, _) = Wal::open(dir, Options::default()).unwrap();
    for cmd in ["inspect", "verify", "dump", "repair"] {
        let out = walden(&[cmd, p(dir)]);
        assert_eq!(out.code, 3, "{cmd}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("in use"), "{cmd}: {}", out.stderr);
    }
}

#[test]
fn bad_directories_and_usage_are_errors() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain");
    fs::write(&file, b"x").unwrap();
    let out = walden(&["verify", p(&file)]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("not a directory"), "{}", out.stderr);
    let out = walden(&["verify", p(&tmp.path().join("missing"))]);
    assert_eq!(out.code, 3);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert_eq!(walden(&["verify"]).code, 64);
    assert_eq!(walden(&["frobnicate"]).code, 64);
    let help = walden(&["--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("Exit status"));
}

/// A directory without a segment file is no log (a mistyped path, or segments deleted): every
/// command says so with status 3 (it was reported clean, status 0), and creates nothing.
#[test]
fn a_directory_without_segments_is_not_a_log() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("notes.txt"), b"not a log").unwrap();
    fs::write(other.join("00000000000000000001.wal.broken"), b"x").unwrap();
    // What is left of a log whose segments were deleted by hand.
    let deleted = tmp.path().join("deleted");
    make_log(&deleted, 20);
    for name in segments(&deleted) {
        fs::remove_file(deleted.join(name)).unwrap();
    }
    for dir in [&empty, &other, &deleted] {
        let before = listing(dir);
        for args in [
            &["inspect"][..],
            &["verify"],
            &["dump"],
            &["repair"],
            &["repair", "--salvage"],
        ] {
            let args = [args, &[p(dir)]].concat();
            let out = walden(&args);
            assert_eq!(out.code, 3, "{args:?}: {}{}", out.stdout, out.stderr);
            assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
            assert!(
                out.stderr.contains("holds no Walden segment files"),
                "{args:?}: {}",
                out.stderr
            );
            let (code, v) = json(&[&args[..], &["--json"]].concat());
            assert_eq!(
                (code, &v["exit_code"]),
                (3, &Value::from(3)),
                "{args:?}: {v}"
            );
            assert!(v["error"].as_str().unwrap().contains("no log in"), "{v}");
        }
        assert_eq!(
            listing(dir),
            before,
            "nothing created or changed in {dir:?}"
        );
    }
}

#[test]
fn a_symlinked_segment_is_not_followed() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, 20);
    let outside = tmp.path().join("outside.wal");
    let last = segments(&dir).pop().unwrap();
    fs::rename(dir.join(&last), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(&last)).unwrap();
    let before = listing(&dir);
    let out = walden(&["verify", p(&dir)]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("symlink"), "{}", out.stdout);
    // The prediction is what an open does: it fails on the symlink.
    let out = walden(&["inspect", p(&dir)]);
    assert!(out.stdout.contains("would FAIL to open"), "{}", out.stdout);
    assert!(matches!(
        Wal::open(&dir, Options::default()),
        Err(walden_std::Error::Open { .. })
    ));
    let out = walden(&["repair", "--salvage", p(&dir)]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert_eq!(listing(&dir), before);
    assert!(outside.exists());
}

#[test]
fn removed_segments_are_found_and_dump_says_where_its_output_stops() {
    let _serial = serial();
    // The newest segment removed by hand: its predecessor's seal names it.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let newest = segments(dir).pop().unwrap();
    fs::remove_file(dir.join(&newest)).unwrap();
    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 2, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("MissingNewestSegment"), "{}", v.stdout);
    let d = walden(&["dump", "--format", "utf8", p(dir)]);
    assert_eq!(d.code, 2, "{}{}", d.stdout, d.stderr);
    assert!(d.stderr.contains("output stops at"), "{}", d.stderr);
    assert!(d.stderr.contains("MissingNewestSegment"), "{}", d.stderr);
    assert!(d.stdout.lines().count() < 20);

    // The oldest segment removed by hand: the headers record where the log starts.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let oldest = segments(dir).remove(0);
    fs::remove_file(dir.join(&oldest)).unwrap();
    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 2, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains("first segment is missing"),
        "{}",
        v.stdout
    );
    let d = walden(&["dump", p(dir)]);
    assert_eq!(d.code, 2, "{}{}", d.stdout, d.stderr);
    assert!(d.stderr.contains("missing from the front"), "{}", d.stderr);
}

#[test]
fn a_cut_is_never_called_never_acknowledged() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let path = dir.join(segments(dir).pop().unwrap());
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3);
    fs::write(&path, &bytes).unwrap();
    for cmd in ["verify", "inspect"] {
        let out = walden(&[cmd, p(dir)]);
        assert_eq!(out.code, 1, "{cmd}: {}{}", out.stdout, out.stderr);
        assert!(!out.stdout.contains("never acknowledged"), "{}", out.stdout);
        assert!(
            out.stdout.contains("no record proves it was acknowledged"),
            "{cmd}: {}",
            out.stdout
        );
    }
    let d = walden(&["dump", p(dir)]);
    assert_eq!(d.code, 1, "{}", d.stderr);
    assert!(d.stderr.contains("output stops at"), "{}", d.stderr);
    assert_eq!(d.stdout.lines().count(), 19);
}

#[test]
fn a_record_longer_than_max_record_size_is_reported_not_cut() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut options = Options::from(Config::default().with_segment_size(8192));
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).unwrap();
    wal.append(&[b'x'; 3000]).unwrap();
    drop(wal);
    let before = listing(dir);
    let v = walden(&["verify", "--max-record-size", "1000", p(dir)]);
    assert_eq!(v.code, 2, "{}{}", v.stdout, v.stderr);
    assert!(v.stdout.contains("max_record_size"), "{}", v.stdout);
    assert!(v.stdout.contains("3000"), "{}", v.stdout);
    let r = walden(&["repair", "--salvage", "--max-record-size", "1000", p(dir)]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert_eq!(listing(dir), before, "nothing cut");
    // Without the option the CLI reads records of any length a writer can make.
    assert_eq!(walden(&["verify", p(dir)]).code, 0);
}

#[test]
fn a_log_of_more_segments_than_the_old_table_is_inspected_verified_and_dumped() {
    let _serial = serial();
    // Fewer descriptors than segments, for this process and the `walden` it runs: a command
    // that kept every segment file open would fail part of the way (it did: `inspect` called
    // the segments past the limit unusable).
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(512),
            maximum: limit.maximum,
        },
    )
    .expect("lower the open-file limit");
    // On tmpfs where there is one: a thousand rotations are a thousand fsyncs on a disk.
    let tmp = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let dir = tmp.path();
    let mut options = Options::from(Config::default().with_segment_size(256));
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).expect("open");
    let mut n = 0u64;
    // walden-std's segment table held 1,024 segments until it became growable.
    while wal.segments().len() <= 1_100 {
        n += 1;
        wal.append(format!("record {n:05} ").repeat(6).as_bytes())
            .expect("append");
    }
    let segments = wal.segments().len();
    drop(wal);

    let (code, ins) = json(&["inspect", "--json", p(dir)]);
    assert_eq!(code, 0, "{ins}");
    assert_eq!(ins["status"], "clean");
    assert_eq!(ins["records"], n);
    assert_eq!(ins["segments"].as_array().unwrap().len(), segments);
    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.contains(&format!("verified {n} records")),
        "{}",
        v.stdout
    );
    let d = walden(&["dump", "--format", "utf8", p(dir)]);
    assert_eq!(d.code, 0, "{}", d.stderr);
    assert_eq!(d.stdout.lines().count() as u64, n);
    let r = walden(&["repair", p(dir)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("nothing to repair"));
}

/// A log of `n` records ("secret 001", ...) in 400-byte segments, encrypted with the keys of
/// `key_file`, closed.
fn encrypted_log(dir: &Path, key_file: &Path, n: u64) {
    let ring = walden_std::load_key_file(key_file).unwrap();
    let mut options = Options::from(Config::default().with_segment_size(400))
        .with_keys(Box::leak(Box::new(ring)));
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).expect("open");
    for i in 1..=n {
        let _ = wal.append(format!("secret {i:03}").as_bytes()).unwrap();
    }
}

/// A log written partly with a key and partly without (a reopen without keys writes a
/// plaintext segment): `verify --key-file` says the plaintext records are not authenticated
/// and exits 3 (incomplete), never counting them as authenticated.
#[test]
fn verify_with_a_key_file_does_not_call_plaintext_records_authenticated() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("walden.keys");
    fs::write(&key_file, format!("{}\n", "5a".repeat(32))).unwrap();
    encrypted_log(dir.path(), &key_file, 3);
    {
        let mut options = Options::from(Config::default().with_segment_size(400));
        options.preallocate = false;
        let (mut wal, _) = Wal::open(dir.path(), options).expect("open without keys");
        for i in 1..=4 {
            let _ = wal.append(format!("plain {i}").as_bytes()).unwrap();
        }
    }
    let k = key_file.to_str().unwrap();
    let out = walden(&["verify", p(dir.path()), "--key-file", k]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("authenticated 3 records"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("NOT AUTHENTICATED: 4 records are stored in plaintext"),
        "{}",
        out.stdout
    );
    let out = walden(&["verify", p(dir.path()), "--key-file", k, "--json"]);
    assert!(out.stdout.contains("\"authenticated\":3"), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"plaintext_records\":4"),
        "{}",
        out.stdout
    );
    // Without the key file the log is clean: nothing was asked that could not be checked.
    assert_eq!(walden(&["verify", p(dir.path())]).code, 0);
}

#[test]
fn dump_decrypts_with_a_key_file_and_names_the_key_without_one() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("walden.keys");
    fs::write(&key_file, format!("# one key\n{}\n", "5a".repeat(32))).unwrap();
    encrypted_log(dir.path(), &key_file, 12);
    for (name, bytes) in listing(dir.path()) {
        assert!(!bytes.windows(6).any(|w| w == b"secret"), "{name}");
    }
    let before = listing(dir.path());
    let k = key_file.to_str().unwrap();
    let out = walden(&["dump", p(dir.path()), "--format", "utf8", "--key-file", k]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("secret 001") && out.stdout.contains("secret 012"));
    // Without the key: a clear error naming the key, and nothing printed in the clear.
    let out = walden(&["dump", p(dir.path()), "--format", "utf8"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("encrypted with key"), "{}", out.stderr);
    assert!(!out.stdout.contains("secret"));
    // verify and repair need no key and change nothing.
    assert_eq!(walden(&["verify", p(dir.path())]).code, 0);
    let out = walden(&["verify", p(dir.path()), "--key-file", k]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("authenticated 12 records"),
        "{}",
        out.stdout
    );
    assert_eq!(listing(dir.path()), before);

    // A ciphertext altered with both checksums recomputed: checksums alone find nothing,
    // the key file does.
    use walden_core::raw::{RECORD_HEADER_LEN, RecordHeader, SEGMENT_HEADER_LEN, SegmentHeader};
    let seg = dir.path().join("00000000000000000001.wal");
    let mut f = fs::read(&seg).unwrap();
    let h = SegmentHeader::decode(&f).unwrap();
    let mut r = RecordHeader::decode(&f[SEGMENT_HEADER_LEN..], h.checksum, h.salt).unwrap();
    let at = SEGMENT_HEADER_LEN + RECORD_HEADER_LEN;
    f[at] ^= 0x20;
    r.payload_crc = h.checksum.of_salted(h.salt, &f[at..at + r.length as usize]);
    f[SEGMENT_HEADER_LEN..at].copy_from_slice(&r.encode(h.checksum, h.salt));
    fs::write(&seg, &f).unwrap();
    assert_eq!(walden(&["verify", p(dir.path())]).code, 0);
    let out = walden(&["verify", p(dir.path()), "--key-file", k]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("fails authentication"),
        "{}",
        out.stdout
    );
    // dump stops at it as at any damage, with the same status (not "could not run").
    let out = walden(&["dump", p(dir.path()), "--format", "utf8", "--key-file", k]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("output stops at"), "{}", out.stderr);
    assert!(
        out.stderr.contains("fails authentication"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("changed while being read"),
        "{}",
        out.stderr
    );
}

#[test]
fn verify_without_the_logs_key_is_incomplete_not_corrupt() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("walden.keys");
    fs::write(&key_file, format!("{}\n", "5a".repeat(32))).unwrap();
    encrypted_log(dir.path(), &key_file, 5);
    let other = keys.path().join("other.keys");
    fs::write(&other, format!("{}\n", "a7".repeat(32))).unwrap();
    let o = other.to_str().unwrap();
    let out = walden(&["verify", p(dir.path()), "--key-file", o]);
    assert_eq!(out.code, 3, "{}", out.stdout);
    assert!(
        out.stdout.contains("NOT AUTHENTICATED: segment"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("CORRUPTION"), "{}", out.stdout);
    let (code, v) = json(&["verify", "--json", p(dir.path()), "--key-file", o]);
    assert_eq!(code, 3);
    assert_eq!(v["status"], "incomplete", "{v}");
    assert_eq!(v["authentication_problems"], serde_json::json!([]), "{v}");
    assert_eq!(v["keys_missing"].as_array().map(Vec::len), Some(1), "{v}");
}

/// A log written with early rotation, synced once after its last record, then "crashed" (no
/// clean-close marker), with one bit of LSN 12's payload (segment 1) flipped afterwards: every
/// record was acknowledged, but nothing written after the sync proves it, so recovery reads
/// the damage as a torn tail of segment 1 and removes the early successors (segments 2..=4)
/// with it (docs/FORMAT.md, "What is still ambiguous").
fn early_log_damaged_after_its_only_sync(dir: &Path) {
    let config = Config::default()
        .with_segment_size(400)
        .with_early_rotation(true);
    let mut options = Options::from(config).with_sync_policy(walden_std::SyncPolicy::Manual);
    options.preallocate = false;
    {
        let (mut wal, _) = Wal::open(dir, options).expect("open");
        for i in 1..=40 {
            wal.append(format!("record {i:03}").as_bytes())
                .expect("append");
        }
        assert_eq!(wal.sync().expect("sync"), walden_core::Lsn(40));
    }
    fs::remove_file(dir.join("walden.clean")).expect("a clean close left the marker");
    let first = dir.join("00000000000000000001.wal");
    let mut bytes = fs::read(&first).unwrap();
    // Segment header 64 bytes, then 42 bytes per record: a byte of LSN 12's payload.
    bytes[225] ^= 1;
    fs::write(&first, &bytes).unwrap();
}

#[test]
fn repair_keeps_a_copy_of_every_segment_a_torn_tail_cut_removes() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    early_log_damaged_after_its_only_sync(dir);
    let before = listing(dir);
    let later: Vec<&String> = before
        .keys()
        .filter(|n| n.ends_with(".wal") && n.as_str() > "00000000000000000001.wal")
        .collect();
    assert_eq!(later.len(), 3, "{:?}", before.keys());

    // What verify and inspect predict names the segments the cut removes with it.
    for cmd in ["verify", "inspect"] {
        let out = walden(&[cmd, p(dir)]);
        assert_eq!(out.code, 1, "{cmd}: {}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("and remove segments 2..=4"),
            "{cmd}: {}",
            out.stdout
        );
        assert!(!out.stdout.contains("never acknowledged"), "{}", out.stdout);
    }
    let (_, v) = json(&["verify", "--json", p(dir)]);
    assert_eq!(
        v["reopen"]["removes_segments"],
        serde_json::json!([2, 3, 4]),
        "{v}"
    );
    assert_eq!(listing(dir), before, "verify and inspect change nothing");

    let out = walden(&["repair", p(dir)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("never acknowledged"), "{}", out.stdout);
    for (name, bytes) in &before {
        if !name.ends_with(".wal") {
            continue;
        }
        let kept = fs::read(dir.join(name)).ok();
        let copy = fs::read(dir.join(format!("{name}.broken"))).ok();
        assert!(
            kept.as_ref() == Some(bytes) || copy.as_ref() == Some(bytes),
            "{name} changed or removed without a copy of its bytes:\n{}",
            out.stdout
        );
    }
    for name in later {
        assert!(!dir.join(name).exists(), "{name} was removed by the cut");
    }
}

#[test]
fn salvage_records_a_missing_front_and_inspect_predicts_it() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let oldest = segments(dir).remove(0);
    fs::remove_file(dir.join(&oldest)).unwrap();
    let before = listing(dir);

    let out = walden(&["inspect", "--policy", "salvage", p(dir)]);
    assert!(
        out.stdout
            .contains("would salvage: segments 0..1 are missing from the front"),
        "{}",
        out.stdout
    );
    let (_, v) = json(&["inspect", "--json", "--policy", "salvage", p(dir)]);
    assert_eq!(v["reopen"]["would"], "salvage", "{v}");
    assert_eq!(v["reopen"]["missing_front"]["found"], 1, "{v}");

    // Plain repair refuses, changes nothing, and says what --salvage would do.
    let out = walden(&["repair", p(dir)]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("`walden repair --salvage` would"),
        "{}",
        out.stderr
    );
    assert_eq!(listing(dir), before);

    let out = walden(&["repair", "--salvage", p(dir)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("missing from the front"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("LOST:"), "{}", out.stdout);
    // Recorded durably: every ordinary open (and verify) now finds the log starting there.
    let v = walden(&["verify", p(dir)]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);
    for (name, bytes) in &before {
        assert_eq!(
            fs::read(dir.join(name)).ok().as_ref(),
            Some(bytes),
            "{name}"
        );
    }
}

#[test]
fn bad_limits_and_backwards_ranges_are_usage_errors() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 5);
    for bad in ["0", "2147483648"] {
        let out = walden(&["verify", "--max-record-size", bad, p(dir)]);
        assert_eq!(out.code, 64, "{bad}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("--max-record-size"), "{}", out.stderr);
    }
    let out = walden(&["dump", "--from", "4", "--to", "2", p(dir)]);
    assert_eq!(out.code, 64, "{}{}", out.stdout, out.stderr);
    // A range that selects nothing the log holds is said, not silent.
    let out = walden(&["dump", "--from", "100", p(dir)]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.is_empty());
    assert!(out.stderr.contains("holds LSNs 1..=5"), "{}", out.stderr);
}

/// A key file that is not one (a bad line, no key, not text) is a bad command line (64), found
/// before the log is looked at; one that cannot be read is a failure to run (3).
#[test]
fn a_malformed_key_file_is_a_usage_error_found_before_the_scan() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    make_log(&dir, 5);
    let missing = tmp.path().join("missing");
    let files = [
        ("short.keys", b"5a5a\n".to_vec(), "line 1: not a key"),
        ("empty.keys", b"# no key yet\n".to_vec(), "holds no key"),
        ("binary.keys", vec![0xff, 0xfe, 0x00, 0x01], "key file"),
    ];
    for (name, bytes, says) in files {
        let file = tmp.path().join(name);
        fs::write(&file, bytes).unwrap();
        // `inspect` and `repair` need no key, but a key file given to them is checked too.
        for cmd in ["verify", "dump", "inspect", "repair"] {
            // A directory that does not exist: the key file is refused first.
            for d in [&dir, &missing] {
                let out = walden(&[cmd, p(d), "--key-file", p(&file)]);
                assert_eq!(out.code, 64, "{cmd} {name}: {}{}", out.stdout, out.stderr);
                assert!(out.stderr.contains(says), "{cmd} {name}: {}", out.stderr);
                assert!(out.stdout.is_empty(), "{cmd} {name}: {}", out.stdout);
            }
            let (code, v) = json(&[cmd, "--json", p(&dir), "--key-file", p(&file)]);
            assert_eq!((code, &v["exit_code"]), (64, &Value::from(64)), "{v}");
        }
    }
    for cmd in ["verify", "dump", "inspect", "repair"] {
        let gone = tmp.path().join("gone.keys");
        let out = walden(&[cmd, p(&dir), "--key-file", p(&gone)]);
        assert_eq!(out.code, 3, "{cmd}: {}{}", out.stdout, out.stderr);
        assert!(out.stderr.contains("gone.keys"), "{cmd}: {}", out.stderr);
    }
}

/// A `walden.lock` that is a FIFO (or anything else but a regular file) is refused at once
/// with exit status 3: the read-only commands opened it for reading to take the shared lock,
/// and opening a FIFO for reading waits for a writer, so every command hung.
#[test]
fn a_lock_file_that_is_not_a_regular_file_is_refused_not_waited_on() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 5);
    fs::remove_file(dir.join("walden.lock")).unwrap();
    let made = Command::new("mkfifo")
        .arg(dir.join("walden.lock"))
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    // Names only: reading every file (as `listing` does) would itself wait on the FIFO.
    let names = || {
        let mut v: Vec<_> = (fs::read_dir(dir).unwrap())
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = names();
    for cmd in ["verify", "inspect", "dump", "repair"] {
        // `timeout` turns a hang into exit status 124 instead of a test that never ends.
        let out = Command::new("timeout")
            .args(["60", env!("CARGO_BIN_EXE_walden"), cmd, p(dir)])
            .output()
            .expect("run walden under timeout");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{cmd}: {stderr}");
    }
    assert_eq!(names(), before);
}

#[test]
fn records_of_a_segment_that_is_not_this_logs_are_counted_apart() {
    let _serial = serial();
    // The newest segment replaced by the same-numbered segment of another log: its 8 records
    // verify against their own header, but they are not this log's.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    make_log(a.path(), 20);
    make_log(b.path(), 40);
    let newest = segments(a.path()).pop().unwrap();
    fs::copy(b.path().join(&newest), a.path().join(&newest)).unwrap();
    let v = walden(&["verify", p(a.path())]);
    assert_eq!(v.code, 2, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stdout.starts_with(
            "verified 24 records in 3 segments (1344 bytes) (8 of them in segments that do not \
             belong to this log)"
        ),
        "{}",
        v.stdout
    );
    assert!(v.stdout.contains("ForeignSegment"), "{}", v.stdout);
    let i = walden(&["inspect", p(a.path())]);
    assert!(
        i.stdout
            .contains("24 valid records (8 of them in segments that do not belong to this log)"),
        "{}",
        i.stdout
    );
    for cmd in ["verify", "inspect"] {
        let (_, j) = json(&[cmd, "--json", p(a.path())]);
        assert_eq!(j["records"], 24, "{cmd}: {j}");
        assert_eq!(j["records_in_foreign_segments"], 8, "{cmd}: {j}");
    }
    // A log of its own has none.
    let (_, j) = json(&["verify", "--json", p(b.path())]);
    assert_eq!(j["records_in_foreign_segments"], 0, "{j}");
    let v = walden(&["verify", p(b.path())]);
    assert!(!v.stdout.contains("do not belong"), "{}", v.stdout);
}

/// Runs `walden` with stdout and stderr on a pipe whose reader is gone before it starts (as in
/// `walden verify DIR 2>&1 | head -1` once `head` has its line): every write fails with `EPIPE`.
fn walden_unread(args: &[&str]) -> i32 {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let status = Command::new(env!("CARGO_BIN_EXE_walden"))
        .args(args)
        .stdout(writer.try_clone().expect("pipe"))
        .stderr(writer)
        .status()
        .expect("run walden");
    status.code().expect("exit code")
}

#[test]
fn a_reader_that_stops_early_changes_no_exit_status() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    early_log_damaged_after_its_only_sync(dir);
    for args in [
        &["inspect"][..],
        &["inspect", "--json"],
        &["verify"],
        &["verify", "--json"],
        &["dump"],
        &["dump", "--json"],
    ] {
        let args = [args, &[p(dir)]].concat();
        let read = walden(&args);
        assert_eq!(read.code, 1, "{args:?}: {}", read.stderr);
        assert!(!read.stdout.is_empty(), "{args:?}");
        assert_eq!(walden_unread(&args), 1, "{args:?}");
    }
    // Said on stderr: a refused repair (records longer than the limit given), and a command
    // that could not run.
    assert_eq!(
        walden_unread(&["repair", "--max-record-size", "8", p(dir)]),
        2
    );
    assert_eq!(walden_unread(&["verify", p(&dir.join("missing"))]), 3);

    // The repair is on disk before its report is written: a reader gone by then does not
    // make it a failure.
    let before = listing(dir);
    assert_eq!(walden_unread(&["repair", p(dir)]), 0);
    assert!(listing(dir).len() > before.len(), "the .broken copies");
    assert_eq!(walden(&["verify", p(dir)]).code, 0, "repaired");
}

/// A command line that is refused still gives a script that asked for `--json` the one JSON
/// object it reads (exit status 64 in it); `--help` prints help, not an error object.
#[test]
fn a_refused_command_line_gives_json_when_json_was_asked_for() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 3);
    let cases: [(&[&str], &str); 5] = [
        (&["inspect", "--json", "--bogus", p(dir)], "--bogus"),
        (&["verify", "--json"], "DIR"),
        (&["dump", "--json", "--from", "x", p(dir)], "--from"),
        (
            &["dump", "--json", "--from", "9", "--to", "2", p(dir)],
            "--from 9",
        ),
        (
            &["repair", "--json", "--max-record-size", "0", p(dir)],
            "--max-record-size",
        ),
    ];
    for (args, says) in cases {
        let (code, v) = json(args);
        assert_eq!(
            (code, &v["exit_code"]),
            (64, &Value::from(64)),
            "{args:?}: {v}"
        );
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{args:?}: {v}");
    }
    // Without --json, nothing on stdout; with --help, help and status 0.
    let out = walden(&["inspect", "--bogus", p(dir)]);
    assert_eq!(out.code, 64);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let out = walden(&["inspect", "--json", "--help"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("Usage"), "{}", out.stdout);
    // After `--`, `--json` is a directory name, not the option.
    let out = walden(&["inspect", "--bogus", "--", "--json"]);
    assert_eq!(out.code, 64);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

/// A log of 56 records in 400-byte segments (8 records each), its front truncated twice
/// (`truncate_front` at LSN 10, then 20), so that both start slots exist; closed. Segments
/// 2..=6 are left: segment 2 holds LSNs 17..=24, segment 3 LSNs 25..=32, ..., segment 6 LSNs
/// 49..=56.
fn log_with_both_start_slots(dir: &Path) {
    let mut options = Options::from(Config::default().with_segment_size(400));
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).expect("open");
    for i in 1..=56 {
        wal.append(format!("record {i:03}").as_bytes())
            .expect("append");
    }
    wal.sync().expect("sync");
    wal.truncate_front(walden_core::Lsn(10)).expect("truncate");
    wal.truncate_front(walden_core::Lsn(20)).expect("truncate");
    drop(wal);
    for slot in SLOTS {
        assert!(dir.join(slot).is_file(), "{slot}: {:?}", segments(dir));
    }
}

const SLOTS: [&str; 2] = ["18446744073709551614.wal", "18446744073709551615.wal"];

/// Flips a byte of the first record's payload in segment file `name` (64-byte segment header,
/// 32-byte record header).
fn damage_first_record(dir: &Path, name: &str) {
    let path = dir.join(name);
    let mut bytes = fs::read(&path).unwrap();
    bytes[64 + 32 + 3] ^= 0x40;
    fs::write(&path, &bytes).unwrap();
}

/// Runs `walden repair --json` with `args`, expects it to succeed, and checks the promise of
/// docs/OPERATIONS.md: every file of the log it changed or removed (`before`: the directory
/// beforehand) was first copied to the `.broken` file named in `backups`, and the text report
/// of the same repair says so. Returns the JSON report.
fn repair_copying_every_change(
    dir: &Path,
    args: &[&str],
    before: &BTreeMap<String, Vec<u8>>,
) -> Value {
    let copy = tempfile::tempdir().unwrap();
    for (name, bytes) in before {
        fs::write(copy.path().join(name), bytes).unwrap();
    }
    let (code, rj) = json(&[&["repair", "--json"][..], args, &[p(dir)]].concat());
    assert_eq!(code, 0, "{rj}");
    let backups: BTreeMap<String, String> = rj["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let name = |k: &str| {
                let path = Path::new(b[k].as_str().unwrap());
                path.file_name().unwrap().to_string_lossy().into_owned()
            };
            (name("file"), name("backup"))
        })
        .collect();
    let after = listing(dir);
    for (name, bytes) in before.iter().filter(|(n, _)| n.ends_with(".wal")) {
        if after.get(name) == Some(bytes) {
            continue;
        }
        let backup = backups
            .get(name)
            .unwrap_or_else(|| panic!("{name} was changed or removed without a backup: {rj}"));
        assert_eq!(backup, &format!("{name}.broken"), "{rj}");
        assert_eq!(
            after.get(backup),
            Some(bytes),
            "{backup} holds {name}'s bytes"
        );
    }
    // The text report of the same repair (of the same damage, in a copy) names the same copies.
    let out = walden(&[&["repair"][..], args, &[p(copy.path())]].concat());
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for name in backups.keys() {
        assert!(
            out.stdout.contains(&format!("{name}.broken")),
            "{name}: {}",
            out.stdout
        );
    }
    rj
}

/// `repair --salvage` of a log missing its front records the new start in a start slot,
/// rewriting an existing one: it copies both slots first, with mid-log damage to salvage
/// (which copied only the segments from the damaged one on) and with a torn tail to cut.
#[test]
fn salvage_copies_the_start_slots_it_rewrites() {
    let _serial = serial();
    // Missing front and mid-log damage (segment 3 is sealed).
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    log_with_both_start_slots(dir);
    fs::remove_file(dir.join("00000000000000000002.wal")).unwrap();
    damage_first_record(dir, "00000000000000000004.wal");
    let before = listing(dir);
    let rj = repair_copying_every_change(dir, &["--salvage"], &before);
    assert_eq!(rj["lost"]["first"], 33, "{rj}");
    assert_eq!(rj["report"]["missing_front"]["first_segment"], 3, "{rj}");
    let changed: Vec<&str> = SLOTS
        .into_iter()
        .filter(|s| fs::read(dir.join(s)).ok().as_ref() != before.get(*s))
        .collect();
    assert_eq!(changed.len(), 1, "one start slot was rewritten");
    assert_eq!(walden(&["verify", p(dir)]).code, 0);

    // Missing front and a torn tail in the newest segment.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    log_with_both_start_slots(dir);
    fs::remove_file(dir.join("00000000000000000002.wal")).unwrap();
    let newest = dir.join(
        segments(dir)
            .into_iter()
            .rfind(|n| !SLOTS.contains(&n.as_str()))
            .unwrap(),
    );
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() - 3]).unwrap();
    let before = listing(dir);
    let rj = repair_copying_every_change(dir, &["--salvage"], &before);
    assert_eq!(rj["report"]["cut"]["first_lsn"], 56, "{rj}");
    assert_eq!(rj["report"]["missing_front"]["first_segment"], 3, "{rj}");
    assert_eq!(walden(&["verify", p(dir)]).code, 0);
}

/// Salvage that drops a segment whose header is damaged leaves the segment before it as the
/// newest, cut at its last record (its seal goes): that segment is copied first too.
#[test]
fn salvage_copies_the_segment_it_cuts_before_a_dropped_one() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 40);
    let path = dir.join("00000000000000000003.wal");
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0xff; // in the segment header
    fs::write(&path, &bytes).unwrap();
    let before = listing(dir);
    let v = walden(&["inspect", "--policy", "salvage", p(dir)]);
    assert!(
        v.stdout.contains("drop this segment and every later one"),
        "{}",
        v.stdout
    );
    let rj = repair_copying_every_change(dir, &["--salvage"], &before);
    assert_eq!(rj["lost"]["first"], 25, "{rj}");
    let kept = "00000000000000000002.wal";
    assert!(
        fs::read(dir.join(kept)).unwrap().len() < before[kept].len(),
        "segment 2 lost its seal"
    );
    assert_eq!(walden(&["verify", p(dir)]).code, 0);
}

/// A backup copy that cannot be completed (the disk full, here a file size limit; or the
/// process killed part of the way) never leaves a file with a backup's name: the copy is
/// written under `<name>.repair-partial` and renamed only once complete and synced. A partial
/// copy a kill left is reported as such, not as a backup, and the next repair removes it and
/// writes `<name>.broken` (not `.broken.1` beside a truncated `.broken`).
#[test]
fn a_backup_that_fails_part_of_the_way_leaves_no_broken_file() {
    use std::os::unix::process::ExitStatusExt as _;
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut options = Options::from(Config::default().with_segment_size(1 << 20));
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).expect("open");
    for i in 1..=900 {
        wal.append(format!("record {i:03}").as_bytes())
            .expect("append");
    }
    drop(wal);
    let segment = "00000000000000000000.wal";
    let torn = {
        let bytes = fs::read(dir.join(segment)).unwrap();
        bytes[..bytes.len() - 5].to_vec()
    };
    assert!(torn.len() > 8192, "larger than the file size limit below");
    fs::write(dir.join(segment), &torn).unwrap();
    let names = || listing(dir).into_keys().collect::<Vec<_>>();
    let backups = || {
        names()
            .into_iter()
            .filter(|n| n.contains(".broken"))
            .collect::<Vec<_>>()
    };
    // `walden repair` with files limited to one block (512 bytes, or 1,024): the copy's write
    // past it fails with EFBIG when SIGXFSZ is ignored, and the signal kills the process when
    // it is not. (The `walden` exec'd keeps both the limit and the ignored signal.)
    let limited = |ignore_signal: bool| {
        let script = format!(
            "{}ulimit -c 0; ulimit -f 1; exec \"$@\"",
            if ignore_signal { "trap '' XFSZ; " } else { "" }
        );
        Command::new("sh")
            .args([
                "-c",
                &script,
                "sh",
                env!("CARGO_BIN_EXE_walden"),
                "repair",
                p(dir),
            ])
            .output()
            .expect("run walden under sh")
    };

    let out = limited(true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("backup: cannot copy"), "{stderr}");
    assert_eq!(
        backups(),
        Vec::<String>::new(),
        "no partial copy named as a backup"
    );
    assert!(
        !names().iter().any(|n| n.contains("partial")),
        "the partial copy is removed: {:?}",
        names()
    );
    assert_eq!(
        fs::read(dir.join(segment)).unwrap(),
        torn,
        "nothing changed"
    );

    let out = limited(false);
    assert_eq!(out.status.signal(), Some(libc::SIGXFSZ), "killed mid-copy");
    assert_eq!(
        backups(),
        Vec::<String>::new(),
        "no partial copy named as a backup"
    );
    let partial = format!("{segment}.repair-partial");
    assert!(names().contains(&partial), "{:?}", names());
    let (code, ins) = json(&["inspect", "--json", p(dir)]);
    assert_eq!(code, 1, "still a torn tail, nothing worse: {ins}");
    assert_eq!(
        ins["unfinished_backups"],
        serde_json::json!([p(&dir.join(&partial))]),
        "{ins}"
    );
    assert_eq!(ins["foreign"], serde_json::json!([]), "{ins}");
    let text = walden(&["verify", p(dir)]);
    assert!(
        text.stdout.contains("unfinished backup copies"),
        "{}",
        text.stdout
    );

    let (code, rj) = json(&["repair", "--json", p(dir)]);
    assert_eq!(code, 0, "{rj}");
    assert_eq!(
        rj["backups"][0]["backup"],
        p(&dir.join(format!("{segment}.broken")))
    );
    assert_eq!(backups(), vec![format!("{segment}.broken")]);
    assert_eq!(
        fs::read(dir.join(format!("{segment}.broken"))).unwrap(),
        torn
    );
    assert!(
        !names().contains(&partial),
        "the leftover is gone: {:?}",
        names()
    );
    assert_eq!(walden(&["verify", p(dir)]).code, 0);
}

/// A refused repair says everything `--salvage` would give up: with segments missing from the
/// front and damage later on, both (it named only the damage's LSNs); with a missing front
/// and a torn tail, both (it named nothing).
#[test]
fn a_refused_repair_names_every_loss_salvage_would_cause() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    log_with_both_start_slots(dir);
    fs::remove_file(dir.join("00000000000000000002.wal")).unwrap();
    damage_first_record(dir, "00000000000000000004.wal");
    let before = listing(dir);
    let out = walden(&["repair", p(dir)]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "`walden repair --salvage` would give up records at both ends of the log: the \
             records of segments 2..3, missing from the front of the log (up to LSN 24), \
             recording that it now starts at segment 3; and LSN 33 onward, keeping LSNs 25..=32"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(listing(dir), before, "a refused repair changes nothing");
    // `inspect --policy salvage` predicts both too.
    let i = walden(&["inspect", "--policy", "salvage", p(dir)]);
    assert!(
        i.stdout
            .contains("give up LSN 33 onward; segments 2..3 are missing from the front"),
        "{}",
        i.stdout
    );
    let (_, v) = json(&["inspect", "--json", "--policy", "salvage", p(dir)]);
    assert_eq!(
        v["reopen"]["missing_front"],
        serde_json::json!({ "expected": 2, "found": 3, "lost_through": 24 }),
        "{v}"
    );
    // And that is what it does.
    let (code, rj) = json(&["repair", "--salvage", "--json", p(dir)]);
    assert_eq!(code, 0, "{rj}");
    assert_eq!(
        (&rj["report"]["first_lsn"], &rj["report"]["last_lsn"]),
        (&Value::from(25), &Value::from(32)),
        "{rj}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    log_with_both_start_slots(dir);
    fs::remove_file(dir.join("00000000000000000002.wal")).unwrap();
    let newest = dir.join(
        segments(dir)
            .into_iter()
            .rfind(|n| !SLOTS.contains(&n.as_str()))
            .unwrap(),
    );
    let bytes = fs::read(&newest).unwrap();
    fs::write(&newest, &bytes[..bytes.len() - 3]).unwrap();
    let out = walden(&["repair", p(dir)]);
    assert_eq!(out.code, 2, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains(
            "`walden repair --salvage` would record that the log now starts at segment 3 and \
             give up the records of segments 2..3, missing from the front of the log (up to LSN \
             24); and it would cut the torn tail of segment 6 from LSN 56"
        ),
        "{}",
        out.stderr
    );
}

/// A segment the caller may not read (here: root's, mode 0600, with `walden` run as nobody)
/// is a failure to run (exit status 3) naming the file and the OS error, not corruption (it
/// exited 2 calling the segment unusable, and `repair` asked for it to be moved away). Needs
/// root and `setpriv`; skipped with a message otherwise.
#[test]
fn a_segment_that_cannot_be_read_is_a_failure_to_run_not_corruption() {
    use std::os::unix::fs::PermissionsExt as _;
    let _serial = serial();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (to run walden as another user)");
        return;
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(setpriv) = setpriv else {
        eprintln!("skipped: no setpriv");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    fs::create_dir(&dir).unwrap();
    make_log(&dir, 20);
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(&dir).unwrap() {
        std::os::unix::fs::chown(e.unwrap().path(), Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let segment = dir.join("00000000000000000000.wal");
    std::os::unix::fs::chown(&segment, Some(0), Some(0)).unwrap();
    fs::set_permissions(&segment, fs::Permissions::from_mode(0o600)).unwrap();
    let as_nobody = |args: &[&str]| {
        let out = Command::new(setpriv)
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                env!("CARGO_BIN_EXE_walden"),
            ])
            .args(args)
            .output()
            .expect("run walden under setpriv");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let before = listing(&dir);
    for command in ["verify", "inspect", "repair", "dump"] {
        let (code, stdout, stderr) = as_nobody(&[command, "--json", p(&dir)]);
        assert_eq!(code, Some(3), "{command}: {stdout}{stderr}");
        let v: Value = serde_json::from_str(&stdout).unwrap();
        let error = v["error"].as_str().unwrap();
        assert!(error.contains(p(&segment)), "{command}: {error}");
        assert!(error.contains("Permission denied"), "{command}: {error}");
        assert!(!stderr.contains("move it away"), "{command}: {stderr}");
    }
    assert_eq!(listing(&dir), before, "nothing changed");
    // Root reads it: a clean log.
    assert_eq!(walden(&["verify", p(&dir)]).code, 0);
}

/// `repair` gives a segment whose torn header it rewrites the log's checksum algorithm (that
/// of its newest valid segment), not the default: a CRC-64 log got a CRC-32C segment.
#[test]
fn repair_keeps_the_logs_checksum_algorithm() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut options =
        Options::from(Config::default().with_checksum(walden_core::ChecksumAlgorithm::Crc64));
    options.preallocate = false;
    let (mut wal, _) = Wal::open(dir, options).expect("open");
    for i in 1..=3 {
        wal.append(format!("record {i:03}").as_bytes())
            .expect("append");
    }
    drop(wal);
    // A zero-length newest segment: a torn creation, whose header repair rewrites.
    fs::write(dir.join("00000000000000000001.wal"), b"").unwrap();
    let (code, rj) = json(&["repair", "--json", p(dir)]);
    assert_eq!(code, 0, "{rj}");
    assert_eq!(rj["report"]["rewritten_header"], 1, "{rj}");
    let (code, ins) = json(&["inspect", "--json", p(dir)]);
    assert_eq!(code, 0, "{ins}");
    let checksums: Vec<&Value> = ins["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["header"]["checksum"])
        .collect();
    let crc64 = Value::from(walden_core::ChecksumAlgorithm::Crc64.name());
    assert_eq!(checksums, [&crc64, &crc64], "{ins}");
}

/// After a salvage killed part of the way (it removed the newest segment, then stopped), a
/// second salvage cannot know how far the log went: the seal of the newest segment left
/// names a successor that is gone. Its `LOST:` line says "at least", as the recovery report
/// does, instead of a definite range.
#[test]
fn a_salvage_after_a_killed_one_says_at_least() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let names = segments(dir);
    assert!(names.len() >= 3, "{names:?}");
    let first = dir.join(&names[0]);
    let mut bytes = fs::read(&first).unwrap();
    bytes[64 + 32 + 42 + 3] ^= 0x40; // record 2's payload, in a sealed segment
    fs::write(&first, &bytes).unwrap();
    // What a salvage killed part of the way leaves: the newest segment removed.
    fs::remove_file(dir.join(names.last().unwrap())).unwrap();
    let (code, rj) = json(&["repair", "--salvage", "--json", p(dir)]);
    assert_eq!(code, 0, "{rj}");
    assert_eq!(rj["lost"]["first"], 2, "{rj}");
    let message = rj["lost"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("LSN 2 onward was lost (at least up to "),
        "{message}"
    );
    assert!(
        rj["report"]["salvage"]["last_known"].is_number(),
        "recovery knows a lower bound: {rj}"
    );
}

/// `repair` run as another user than the log directory's owner (root on a service's log)
/// warns before changing anything, naming the owner and the `chown` that gives the files
/// back; the backups it makes keep their segment's owner and mode. Needs root; skipped
/// otherwise.
#[test]
fn repair_as_another_user_warns_and_backups_keep_their_owner() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let _serial = serial();
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root (to repair a log another user owns)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_log(dir, 20);
    let newest = segments(dir).pop().unwrap();
    let path = dir.join(&newest);
    let mut bytes = fs::read(&path).unwrap();
    bytes.truncate(bytes.len() - 3);
    fs::write(&path, &bytes).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap().path();
        std::os::unix::fs::chown(&e, Some(65534), Some(65534)).unwrap();
        fs::set_permissions(&e, fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::os::unix::fs::chown(dir, Some(65534), Some(65534)).unwrap();
    let r = walden(&["repair", p(dir)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("warning: repairing as user 0") && r.stderr.contains("chown -R 65534:"),
        "{}",
        r.stderr
    );
    let m = fs::metadata(dir.join(format!("{newest}.broken"))).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (65534, 65534, 0o600));
    // The owner running it: no warning.
    fs::write(&path, &fs::read(&path).unwrap()[..bytes.len() - 60]).unwrap();
    std::os::unix::fs::chown(dir, Some(0), Some(0)).unwrap();
    let r = walden(&["repair", p(dir)]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
}
