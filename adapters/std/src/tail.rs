//! [`Tail`]: a reader that follows the log as it grows, for replication and change feeds.
//!
//! A [`crate::SharedReader`] stops at the end of the log, fails once `truncate_front`
//! removes its segment and reports a `truncate_back` below what it returned as an error
//! ([`ReadError::Rewound`]). A tail instead waits for the next record, and turns both
//! truncations into events the consumer can act on:
//!
//! * **Rotation** is invisible: the reader moves to the next segment by itself.
//! * **`truncate_front`** removing records the tail has not read yet: it reports
//!   [`TailEvent::Missed`] with the range it can no longer deliver, and goes on from the new
//!   first record (a replica would fetch a snapshot).
//! * **`truncate_back`** removing records it has delivered: it reports
//!   [`TailEvent::Rewound`] with the last LSN kept, and goes on from the next one (or from
//!   where it started, if that is later), which may hold a different record than before. A
//!   record delivered just before the truncation ran may be reported and then rewound: the
//!   consumer discards what it got after `to`. A truncation that removed nothing it delivered
//!   (a tail started past the end, or one behind the cut) is no event.
//! * **Poison**: once the log is poisoned and the tail has delivered every record it holds, it
//!   reports [`TailEvent::Poisoned`] (at every call: no record can follow until a reopen)
//!   instead of waiting forever; a tail waiting when the poison is published is woken.
//! * **Close**: a tail does not keep the log open. Once every other handle is dropped and the
//!   tail has delivered every record, it reports [`TailEvent::Closed`] (at every call); a tail
//!   waiting then is woken. The log is released when the last tail is dropped.
//!
//! Waiting uses a [`Bell`] rung by every append and truncation, by the poison and by the close: a blocking tail parks its
//! thread, an async one registers its `Waker` (no runtime needed). To avoid a lost wake-up,
//! a tail registers first and then looks again before it sleeps; appends ring after their
//! records are visible.

use core::pin::Pin;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};
use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::thread::Thread;

use walden_core::{Lsn, Poisoned, ReadError};

use crate::group::GroupSync;
use crate::reader::SharedReader;
use crate::shared::SharedWal;

/// What a [`Tail`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TailEvent {
    /// The next record.
    Record {
        /// Its LSN.
        lsn: Lsn,
        /// Its payload.
        payload: Vec<u8>,
    },
    /// `truncate_front` removed these records before the tail read them; it goes on at
    /// `last + 1`.
    Missed {
        /// The first record missed.
        first: Lsn,
        /// The last record missed.
        last: Lsn,
    },
    /// `truncate_back` removed records the tail had already delivered: everything after
    /// `to` is gone (and may be replaced by new records at the same LSNs); it goes on at
    /// `to + 1`, or at the LSN it was started from if that is later.
    Rewound {
        /// The last LSN kept.
        to: Lsn,
    },
    /// The log is poisoned (a write or sync failed) and the tail has delivered every record it
    /// holds: none can follow until the log is reopened. Every later call reports it again,
    /// without waiting; stop tailing this handle.
    Poisoned(Poisoned),
    /// Every handle of the log but tails has been dropped and the tail has delivered every
    /// record the log holds: none can follow. Every later call reports it again, without
    /// waiting; drop the tail, which releases the log (and its directory lock) once no tail
    /// is left. The blocking iterator and the `Stream` end here.
    Closed,
}

/// Follows a [`SharedWal`]: blocking ([`Tail::next_event`], [`Tail::blocking_iter`]) and
/// async ([`Tail::next_async`], [`Tail::poll_event`], and `futures_core::Stream`). Created by
/// [`SharedWal::tail`]. Sees records as soon as they are appended, durable or not (pair it with
/// [`SharedWal::durable`] to ship only durable records).
///
/// A tail does not keep the log open for others: when every other handle of the log is dropped,
/// a waiting tail wakes and, once it has delivered every record, reports [`TailEvent::Closed`].
/// The log (and its directory lock) is released when the last tail is dropped too.
pub struct Tail<S: GroupSync> {
    wal: SharedWal<S>,
    next: Lsn,
    /// The LSN it was asked to start at (never before LSN 1).
    start: Lsn,
    /// The highest LSN it has delivered, if any: only a cut below it is a rewind for this
    /// tail.
    delivered: Option<Lsn>,
    /// The rewind generation seen last.
    generation: u64,
    reader: Option<SharedReader<S>>,
    /// This tail's key in the bell.
    id: u64,
}

static TAIL_IDS: AtomicU64 = AtomicU64::new(1);

impl<S: GroupSync> Tail<S> {
    pub(crate) fn new(wal: SharedWal<S>, from: Lsn) -> Self {
        let generation = wal.inner.rewinds().generation;
        // LSN 0 names no record ("before the first"): a tail from it starts at the first
        // LSN any log can have, so it reports nothing as missed that never existed.
        let start = from.max(Lsn(1));
        Self {
            wal,
            next: start,
            start,
            delivered: None,
            generation,
            reader: None,
            id: TAIL_IDS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The LSN of the next record it will deliver.
    pub fn position(&self) -> Lsn {
        self.next
    }

    /// The next event if there is one now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<TailEvent>, ReadError<S::Error>> {
        let (generation, cut) = self.wal.inner.rewinds().lowest_since(self.generation);
        if generation != self.generation {
            self.generation = generation;
            // The reader may hold copies of removed records.
            self.reader = None;
            // A rewind only if it removed a record this tail delivered: a tail that started
            // past the end, or has delivered nothing above the cut, goes on where it was
            // (the reader, dropped above, finds the records appended at those LSNs since).
            if let Some(to) = cut
                && self.delivered.is_some_and(|d| d > to)
            {
                self.next = to.next().max(self.start);
                self.delivered = (to >= self.start).then_some(to);
                return Ok(Some(TailEvent::Rewound { to }));
            }
        }
        loop {
            let reader = match &mut self.reader {
                Some(r) => r,
                None => match self.wal.reader(self.next) {
                    Ok(r) => self.reader.insert(r),
                    Err(ReadError::OutOfRange { first, .. }) if self.next < first => {
                        let missed = TailEvent::Missed {
                            first: self.next,
                            last: first.prev(),
                        };
                        self.next = first;
                        return Ok(Some(missed));
                    }
                    // Beyond the end: a truncation the next call reports, or nothing yet.
                    Err(ReadError::OutOfRange { .. }) => return Ok(self.at_end()),
                    Err(e) => return Err(e),
                },
            };
            match reader.read_next() {
                Ok(Some(r)) => {
                    let event = TailEvent::Record {
                        lsn: r.lsn,
                        payload: r.payload.to_vec(),
                    };
                    self.next = r.lsn.next();
                    self.delivered = Some(r.lsn);
                    return Ok(Some(event));
                }
                Ok(None) => return Ok(self.at_end()),
                // Its segment was removed by `truncate_front`: start again, which reports
                // what was missed.
                Err(ReadError::OutOfRange { .. }) => self.reader = None,
                // A cut since the look above removed records it delivered: looking again
                // reports it, as the tail's own event.
                Err(ReadError::Rewound { .. }) => return self.try_next(),
                Err(e) => return Err(e),
            }
        }
    }

    /// What to report with nothing to deliver: the poison if the log has one (no record can
    /// follow), else nothing yet. Read after registering with the bell, it cannot miss a
    /// poison that rings nobody (see `Committer::poisoned_for_tail`).
    fn at_end(&self) -> Option<TailEvent> {
        let poisoned = self.wal.inner.c.poisoned_for_tail();
        // After the tail registered with the bell: the handle dropped last marks the log
        // orphaned before it rings (`gate::Handle`'s drop), so a tail that reads no mark here
        // is woken by that ring.
        poisoned
            .map(TailEvent::Poisoned)
            .or_else(|| self.wal.inner.orphaned().then_some(TailEvent::Closed))
    }

    /// The next event, waiting (parking the thread) for one.
    pub fn next_event(&mut self) -> Result<TailEvent, ReadError<S::Error>> {
        loop {
            if let Some(e) = self.try_next()? {
                return Ok(e);
            }
            self.wal
                .inner
                .c
                .bell
                .register(self.id, Wake::Thread(std::thread::current()));
            // Look again after registering: an append that ran in between rang nobody.
            if let Some(e) = self.try_next()? {
                return Ok(e);
            }
            std::thread::park();
        }
    }

    /// Polls for the next event: `Ready` with one, or `Pending` with the task's waker
    /// registered for the next append or truncation.
    pub fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<TailEvent, ReadError<S::Error>>> {
        match self.try_next() {
            Ok(Some(e)) => return Poll::Ready(Ok(e)),
            Ok(None) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
        self.wal
            .inner
            .c
            .bell
            .register(self.id, Wake::Task(cx.waker().clone()));
        match self.try_next() {
            Ok(Some(e)) => Poll::Ready(Ok(e)),
            Ok(None) => Poll::Pending,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    /// A blocking iterator over the events (it waits for each; it ends when the log is closed,
    /// [`TailEvent::Closed`]).
    pub fn blocking_iter(&mut self) -> BlockingTail<'_, S> {
        BlockingTail(self)
    }

    /// The next event, as a future (for `async` code without `Stream` combinators).
    pub async fn next_async(&mut self) -> Result<TailEvent, ReadError<S::Error>> {
        core::future::poll_fn(|cx| self.poll_event(cx)).await
    }
}

/// A [`Tail`] as a blocking iterator, from [`Tail::blocking_iter`]: `next` waits for the next
/// event, and the iterator ends when the log is closed ([`TailEvent::Closed`]). (A separate type, so that `next` on the tail itself is not
/// ambiguous between `Iterator` and `StreamExt`.)
pub struct BlockingTail<'t, S: GroupSync>(&'t mut Tail<S>);

impl<S: GroupSync> Iterator for BlockingTail<'_, S> {
    type Item = Result<TailEvent, ReadError<S::Error>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.0.next_event() {
            Ok(TailEvent::Closed) => None,
            other => Some(other),
        }
    }
}

impl<S: GroupSync> futures_core::Stream for Tail<S> {
    type Item = Result<TailEvent, ReadError<S::Error>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx).map(|e| match e {
            Ok(TailEvent::Closed) => None,
            other => Some(other),
        })
    }
}

impl<S: GroupSync> Drop for Tail<S> {
    fn drop(&mut self) {
        self.wal.inner.c.bell.forget(self.id);
    }
}

/// How to wake a waiting tail.
pub(crate) enum Wake {
    Thread(Thread),
    Task(Waker),
}

/// Tails waiting for the log to change. Appends check one atomic counter when nobody waits.
#[derive(Default)]
pub(crate) struct Bell {
    waiting: AtomicUsize,
    list: Mutex<Vec<(u64, Wake)>>,
}

impl Bell {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Wake)>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers (or replaces) the wake of tail `id` for the next ring.
    fn register(&self, id: u64, wake: Wake) {
        let mut list = self.lock();
        match list.iter_mut().find(|(i, _)| *i == id) {
            Some(slot) => slot.1 = wake,
            None => list.push((id, wake)),
        }
        self.waiting.store(list.len(), Ordering::SeqCst);
    }

    /// How many tails are registered (for tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    fn forget(&self, id: u64) {
        let mut list = self.lock();
        list.retain(|(i, _)| *i != id);
        self.waiting.store(list.len(), Ordering::SeqCst);
    }

    /// Wakes every registered tail. Called after the change is visible (the log lock
    /// released), so a tail that registered before this call sees it when it looks again.
    pub(crate) fn ring(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let woken = {
            let mut list = self.lock();
            self.waiting.store(0, Ordering::SeqCst);
            core::mem::take(&mut *list)
        };
        for (_, w) in woken {
            match w {
                Wake::Thread(t) => t.unpark(),
                Wake::Task(w) => w.wake(),
            }
        }
    }
}

/// The most cuts a [`RewindLog`] keeps apart; older ones are merged into one conservative
/// floor (a tail that old may be told about a rewind lower than the real one, never higher).
const REWINDS_KEPT: usize = 1024;

/// The `truncate_back` cuts since open, so a tail can ask "what is the lowest cut since I last
/// looked?" in `O(log n)`. Kept as a stack whose cuts increase from bottom to top: a new cut
/// pops every older cut that is not lower, since any tail that would see those sees the new
/// one as well.
#[derive(Debug, Default)]
pub(crate) struct RewindLog {
    /// One more per `truncate_back`.
    pub(crate) generation: u64,
    /// `(generation, last LSN kept)`, generations and cuts both increasing.
    cuts: VecDeque<(u64, Lsn)>,
    /// The newest generation and lowest cut merged away when the stack grew too long.
    floor: Option<(u64, Lsn)>,
}

impl RewindLog {
    /// Records a `truncate_back` that kept everything up to `kept`.
    pub(crate) fn record(&mut self, kept: Lsn) {
        self.generation += 1;
        while self.cuts.back().is_some_and(|&(_, c)| c >= kept) {
            self.cuts.pop_back();
        }
        self.cuts.push_back((self.generation, kept));
        if self.cuts.len() > REWINDS_KEPT
            && let Some((g, c)) = self.cuts.pop_front()
        {
            let low = self.floor.map_or(c, |(_, f)| f.min(c));
            self.floor = Some((g, low));
        }
    }

    /// The current generation, and the lowest cut made after generation `seen`.
    pub(crate) fn lowest_since(&self, seen: u64) -> (u64, Option<Lsn>) {
        if seen >= self.generation {
            return (self.generation, None);
        }
        let i = self.cuts.partition_point(|&(g, _)| g <= seen);
        let mut low = self.cuts.get(i).map(|&(_, c)| c);
        if let Some((g, f)) = self.floor
            && g > seen
        {
            low = Some(low.map_or(f, |l| l.min(f)));
        }
        (self.generation, low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack answers like a plain scan of every cut.
    #[test]
    fn rewind_log_matches_a_scan() {
        let mut log = RewindLog::default();
        let mut all = Vec::new();
        let mut x = 0x9e37_79b9_u64;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let cut = Lsn(x % 500);
            log.record(cut);
            all.push(cut);
            for seen in [0, all.len() as u64 / 2, all.len() as u64 - 1] {
                let want = all[seen as usize..].iter().min().copied();
                let (g, got) = log.lowest_since(seen);
                assert_eq!(g, all.len() as u64);
                let got = got.expect("a cut since");
                // Exact while nothing was merged away; never above the truth after.
                assert!(got <= want.unwrap());
                if all.len() <= REWINDS_KEPT {
                    assert_eq!(Some(got), want);
                }
            }
        }
        assert_eq!(log.lowest_since(3000), (3000, None));
    }
}
