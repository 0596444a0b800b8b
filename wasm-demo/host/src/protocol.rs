//! The guest's stdout protocol: one line per fact, parsed into [`Line`]s.
//!
//! ```text
//! RECOVERY <key>=<value> ...        what Wal::open reported (records, torn tail cut, ...)
//! OPENFAILED case=<case> segment=<id> offset=<o> lsn=<n>   Wal::open refused the log
//! REC <lsn> put <key> <hash>        one recovered record, in log order
//! REC <lsn> del <key>
//! STATE <keys> <digest>             the rebuilt key-value state; the dump is complete
//! INTENT <lsn> <op>                 about to append this record (it may or may not survive)
//! ACK <lsn> <op>                    this record is durable: it must survive every crash
//! RETAIN <lsn>                      about to truncate_front(lsn): segments below may go
//! RETAINED <lsn> removed=<n> first=<first>   done: the log now starts at <first>
//! DONE <key>=<value> ...            the workload finished
//! BENCH <key>=<value> ...           a benchmark result
//! ```
//!
//! `<hash>` is the FNV-1a 64 hash of the value in hex; `<digest>` is [`state_digest`].

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};

/// One log record as the host sees it: the operation and, for puts, the value's hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Put { key: String, hash: u64 },
    Del { key: String },
}

impl core::fmt::Display for Op {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Put { key, hash } => write!(f, "put {key} {hash:016x}"),
            Self::Del { key } => write!(f, "del {key}"),
        }
    }
}

/// One parsed stdout line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    Recovery(Vec<(String, String)>),
    OpenFailed(Vec<(String, String)>),
    Rec(u64, Op),
    State { keys: u64, digest: u64 },
    Intent(u64, Op),
    Ack(u64, Op),
    Retain(u64),
    Retained { lsn: u64, first: u64 },
    Done(Vec<(String, String)>),
    Bench(Vec<(String, String)>),
}

/// Parses the guest's complete stdout. A last line without a newline was cut by the crash and
/// is ignored; any other malformed line is an error.
pub(crate) fn parse(stdout: &str) -> Result<Vec<Line>> {
    let complete = match stdout.rfind('\n') {
        Some(end) => &stdout[..=end],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .map(|(i, line)| {
            parse_line(line).with_context(|| format!("guest stdout line {}: {line:?}", i + 1))
        })
        .collect()
}

fn parse_line(line: &str) -> Result<Line> {
    let mut words = line.split_ascii_whitespace();
    let tag = words.next().context("empty line")?;
    let rest: Vec<&str> = words.collect();
    Ok(match tag {
        "RECOVERY" => Line::Recovery(pairs(&rest)?),
        "OPENFAILED" => Line::OpenFailed(pairs(&rest)?),
        "DONE" => Line::Done(pairs(&rest)?),
        "BENCH" => Line::Bench(pairs(&rest)?),
        "STATE" => match rest.as_slice() {
            [keys, digest] => Line::State {
                keys: keys.parse()?,
                digest: u64::from_str_radix(digest, 16)?,
            },
            _ => bail!("STATE takes two fields"),
        },
        "RETAIN" => match rest.as_slice() {
            [lsn] => Line::Retain(lsn.parse().context("bad LSN")?),
            _ => bail!("RETAIN takes one field"),
        },
        "RETAINED" => {
            let (lsn, rest) = rest.split_first().context("missing LSN")?;
            let pairs = pairs(rest)?;
            Line::Retained {
                lsn: lsn.parse().context("bad LSN")?,
                first: field(&pairs, "first")
                    .context("missing first=")?
                    .parse()
                    .context("bad first LSN")?,
            }
        }
        "REC" | "INTENT" | "ACK" => {
            let (lsn, op) = rest.split_first().context("missing LSN")?;
            let lsn: u64 = lsn.parse().context("bad LSN")?;
            let op = parse_op(op)?;
            match tag {
                "REC" => Line::Rec(lsn, op),
                "INTENT" => Line::Intent(lsn, op),
                _ => Line::Ack(lsn, op),
            }
        }
        _ => bail!("unknown tag {tag}"),
    })
}

fn parse_op(words: &[&str]) -> Result<Op> {
    Ok(match words {
        ["put", key, hash] => Op::Put {
            key: (*key).to_owned(),
            hash: u64::from_str_radix(hash, 16)?,
        },
        ["del", key] => Op::Del {
            key: (*key).to_owned(),
        },
        _ => bail!("bad operation {words:?}"),
    })
}

fn pairs(words: &[&str]) -> Result<Vec<(String, String)>> {
    words
        .iter()
        .map(|w| {
            let (k, v) = w.split_once('=').context("expected key=value")?;
            Ok((k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// Looks up `key` in `key=value` pairs.
pub(crate) fn field<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// FNV-1a 64, the hash the guest prints for values; the guest has its own copy of this code.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Digest of a key-value state: FNV-1a over `key '=' hash(16 hex) '\n'` in key order.
pub(crate) fn state_digest(state: &BTreeMap<String, u64>) -> u64 {
    let mut text = String::new();
    for (key, hash) in state {
        text.push_str(&format!("{key}={hash:016x}\n"));
    }
    fnv1a(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_tag() {
        let out = "RECOVERY records=2 torn_tail=0\nREC 1 put k1 00000000000000ff\nREC 2 del k1\n\
                   STATE 0 cbf29ce484222325\nINTENT 3 put k2 0a\nACK 3 put k2 0a\nDONE ops=1\n\
                   RETAIN 3\nRETAINED 3 removed=2 first=3\nACK 4 pu";
        let lines = parse(out).unwrap();
        assert_eq!(lines.len(), 9, "the cut last line is ignored");
        assert_eq!(lines[7], Line::Retain(3));
        assert_eq!(lines[8], Line::Retained { lsn: 3, first: 3 });
        assert_eq!(
            lines[1],
            Line::Rec(
                1,
                Op::Put {
                    key: "k1".into(),
                    hash: 0xff
                }
            )
        );
        assert_eq!(lines[2], Line::Rec(2, Op::Del { key: "k1".into() }));
        assert_eq!(
            lines[5],
            Line::Ack(
                3,
                Op::Put {
                    key: "k2".into(),
                    hash: 10
                }
            )
        );
        assert_eq!(
            lines[3],
            Line::State {
                keys: 0,
                digest: state_digest(&BTreeMap::new())
            }
        );
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("ACK x put k 1\n").is_err());
        assert!(parse("HELLO\n").is_err());
        assert!(parse("RETAINED 5 removed=1\n").is_err());
    }
}
