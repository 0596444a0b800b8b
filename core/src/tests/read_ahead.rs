//! `replay_segment_ahead`: the replay's window takes its refills from chunks read ahead (by
//! another thread in walden-std) and hands over and reports exactly what `replay_segment`
//! does, whatever the chunks' sizes, and whether they come in order, late, twice or not at all.

use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

use super::*;
use crate::Lsn;
use crate::format::SEGMENT_HEADER_LEN;
use crate::raw::{Chunk, ReadAhead, SegmentSummary, replay_segment, replay_segment_ahead};
use crate::storage::Storage;

type Records = Vec<(Lsn, Vec<u8>)>;

/// What goes wrong with the chunks.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    /// Chunk `n` never comes (the others do).
    Missing(usize),
    /// Chunk `n` comes twice.
    Twice(usize),
    /// Nothing after chunk `n` (a read that failed).
    StopAfter(usize),
    /// Chunk `n` says it holds more bytes than its buffer does.
    Short(usize),
    /// Chunk `n` says the segment ends with it, and none follows.
    EndsEarly(usize),
}

/// Chunks of `size` bytes with `room` before them, read from `mem` up front, of which the
/// window may hold `hold` at once.
struct Chunks {
    queue: VecDeque<Chunk>,
    out: usize,
    back: usize,
    hold: usize,
}

impl Chunks {
    fn new(mem: &Mem, id: u64, size: usize, room: usize, fault: Fault) -> Self {
        let len = mem.len(id).unwrap();
        let mut queue = VecDeque::new();
        let mut offset = 0u64;
        let mut n = 0;
        while offset < len {
            let take = (len - offset).min(size as u64) as usize;
            let mut buf = vec![0u8; room + size];
            mem.read(id, offset, &mut buf[room..room + take]).unwrap();
            let chunk = |buf| Chunk {
                buf,
                base: room,
                offset,
                len: take,
                end: offset + take as u64 == len,
            };
            match fault {
                Fault::Missing(k) if k == n => {}
                Fault::Twice(k) if k == n => {
                    queue.push_back(chunk(buf.clone()));
                    queue.push_back(chunk(buf));
                }
                Fault::Short(k) if k == n => {
                    let mut c = chunk(buf);
                    c.len = c.buf.len() - c.base + 1;
                    queue.push_back(c);
                }
                Fault::StopAfter(k) if n > k => {}
                Fault::EndsEarly(k) if n == k => {
                    let mut c = chunk(buf);
                    c.end = true;
                    queue.push_back(c);
                }
                Fault::EndsEarly(k) if n > k => {}
                _ => queue.push_back(chunk(buf)),
            }
            offset += take as u64;
            n += 1;
        }
        Self {
            queue,
            out: 0,
            back: 0,
            hold: 2,
        }
    }

    /// The same, the window holding at most `hold` chunks.
    fn holding(mut self, hold: usize) -> Self {
        self.hold = hold;
        self
    }
}

impl ReadAhead for Chunks {
    fn next(&mut self) -> Option<Chunk> {
        // The window asks for another only while it holds no more than it may (a source
        // with a fixed number of buffers, as walden-std's, would otherwise wait forever).
        assert!(
            self.out - self.back <= self.hold,
            "{} chunks held, at most {} allowed",
            self.out - self.back,
            self.hold
        );
        let c = self.queue.pop_front()?;
        self.out += 1;
        Some(c)
    }

    fn recycle(&mut self, _buf: Vec<u8>) {
        self.back += 1;
    }

    fn max_held(&self) -> usize {
        self.hold
    }
}

/// A source that leaves [`ReadAhead::max_held`] to its default.
struct Defaults<'a>(&'a mut Chunks);

impl ReadAhead for Defaults<'_> {
    fn next(&mut self) -> Option<Chunk> {
        self.0.next()
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        self.0.recycle(buf);
    }
}

/// Singles, batches of three and batches of twelve, over segments of 4 KiB.
fn filled() -> Mem {
    let cfg = small().with_segment_size(4096);
    let (mut wal, _) = open(Mem::default(), cfg);
    for i in 0..60u64 {
        let n = match i % 5 {
            1 => 3,
            3 => 12,
            _ => 1,
        };
        let batch: Vec<Vec<u8>> = (0..n).map(|k| payload(i * 100 + k)).collect();
        let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
        wal.append_batch(&refs).unwrap();
    }
    wal.into_storage()
}

fn replayed(
    mem: &Mem,
    id: u64,
    scratch: usize,
    ahead: Option<&mut dyn ReadAhead>,
) -> (Option<SegmentSummary>, Records) {
    let cfg = small().with_segment_size(4096);
    let mut got = Vec::new();
    let each = |_: &_, at: &crate::raw::Located, bytes: &[u8]| {
        got.push((at.header.lsn, bytes.to_vec()));
        true
    };
    let mut scratch = vec![0u8; scratch];
    let out = match ahead {
        Some(a) => replay_segment_ahead(mem, id, &cfg, &mut scratch, a, |_| true, each),
        None => replay_segment(mem, id, &cfg, &mut scratch, |_| true, each),
    };
    (out.unwrap().map(|(s, _)| s), got)
}

#[test]
fn the_same_records_and_scan_whatever_the_chunks() {
    let mut mem = filled();
    // The newest segment with its last unit torn: a scan that stops early.
    let newest = *mem.files.keys().max().unwrap();
    let file = mem.files.get_mut(&newest).unwrap();
    let cut = file.iter().rposition(|&b| b != 0).unwrap() - 5;
    file[cut] ^= 0x40;
    let ids: Vec<u64> = mem.files.keys().copied().collect();
    assert!(ids.len() >= 3, "{} segments", ids.len());
    let faults = [
        Fault::None,
        Fault::Missing(1),
        Fault::Missing(0),
        Fault::Twice(2),
        Fault::StopAfter(1),
        Fault::Short(1),
        Fault::EndsEarly(1),
        Fault::EndsEarly(0),
    ];
    let sizes: &[usize] = if cfg!(miri) {
        &[300, 1000]
    } else {
        &[16, 24, 64, 100, 300, 512, 1000, 4096]
    };
    for &id in &ids {
        let expected = replayed(&mem, id, 600, None);
        assert!(!expected.1.is_empty());
        for &size in sizes {
            for room in [0, size / 2, size] {
                for fault in faults {
                    for hold in [1, 2, 5, 64] {
                        let mut chunks = Chunks::new(&mem, id, size, room, fault).holding(hold);
                        let got = replayed(&mem, id, 600, Some(&mut chunks));
                        assert_eq!(
                            got, expected,
                            "segment {id}, chunks {size}+{room}, {fault:?}, holding {hold}"
                        );
                        assert_eq!(chunks.out, chunks.back, "every chunk taken is given back");
                    }
                }
            }
        }
    }
}

#[test]
fn chunks_that_hold_every_unit_leave_nothing_to_read() {
    let mem = filled();
    for (&id, file) in &mem.files {
        let len = file.len();
        // Held two at a time, `ReadAhead::max_held`'s default: a unit across two chunks is
        // handed over from both.
        let mut chunks = Chunks::new(&mem, id, 1024, 0, Fault::None);
        mem.bytes_read.set(0);
        let (summary, got) = replayed(&mem, id, 600, Some(&mut Defaults(&mut chunks)));
        // The segment header (read by the scan's setup, before the window) and nothing else.
        assert_eq!(
            mem.bytes_read.get(),
            SEGMENT_HEADER_LEN as u64,
            "segment {id} of {len}"
        );
        assert!(summary.is_some() && !got.is_empty());
        assert_eq!(
            (chunks.out, chunks.back),
            (len.div_ceil(1024), len.div_ceil(1024))
        );
    }
}

#[test]
fn small_chunks_held_together_leave_nothing_to_read() {
    // Chunks far shorter than a batch of twelve, and shorter than a record: a window that
    // may hold enough of them hands every batch over from them, and reads nothing but the
    // segment header; one that may hold two must read the batches again.
    let mem = filled();
    for (&id, file) in &mem.files {
        let expected = replayed(&mem, id, 600, None);
        // 16-byte chunks: every record (a 32-byte header and its payload) runs across
        // several, each taken in turn and put together.
        for (size, hold, reads) in [(64, 64, false), (16, 64, false), (64, 2, true)] {
            let mut chunks = Chunks::new(&mem, id, size, 0, Fault::None).holding(hold);
            mem.bytes_read.set(0);
            let got = replayed(&mem, id, 600, Some(&mut chunks));
            assert_eq!(got, expected, "segment {id}, chunks {size}, holding {hold}");
            assert_eq!(
                mem.bytes_read.get() > SEGMENT_HEADER_LEN as u64,
                reads,
                "segment {id} of {}, chunks {size}, holding {hold}: {} bytes read",
                file.len(),
                mem.bytes_read.get()
            );
            assert_eq!(chunks.out, chunks.back);
        }
    }
}

#[test]
fn a_unit_longer_than_the_scratch_is_read_again_where_no_chunk_holds_it() {
    // With a scratch window shorter than a batch of twelve the scan does not keep the
    // batch's start, so the chunks the window holds may begin after it: the hand-over must
    // read that start again (as `replay_segment` does with the same scratch), never take it
    // from chunks that do not hold it.
    let mem = filled();
    for &id in mem.files.keys() {
        for scratch in [crate::MIN_SCRATCH, 300] {
            let expected = replayed(&mem, id, scratch, None);
            assert!(!expected.1.is_empty());
            for size in [64, 100, 300] {
                for hold in [2, 5, 64] {
                    let mut chunks = Chunks::new(&mem, id, size, 0, Fault::None).holding(hold);
                    let got = replayed(&mem, id, scratch, Some(&mut chunks));
                    assert_eq!(
                        got, expected,
                        "segment {id}, scratch {scratch}, chunks {size}, holding {hold}"
                    );
                    assert_eq!(chunks.out, chunks.back);
                }
            }
        }
    }
}
