//! Durability without a thread per waiter: futures and callbacks that resolve when a record is
//! durable, for async code on any executor.
//!
//! A blocking durability waiter parks its thread in the group-commit protocol (`group.rs`) and
//! may be made leader. An async waiter cannot do either: parking would block its executor and
//! an `fsync` has no async form. So an async waiter is a [`Watcher`] registered with the same
//! protocol (under the commit lock, beside the parked threads), and a per-log **syncer thread**
//! stands in for it: it takes part in group commit like any blocking waiter, for the highest
//! LSN any watcher asked for. Whoever publishes a durable LSN, a poison or a rewind resolves
//! the watchers it answers once the commit lock is released: it wakes the future's `Waker` or
//! runs the callback.
//!
//! Nothing here depends on an async runtime: a [`DurableFuture`] is a plain
//! [`Future`] woken through the `Waker` it was last polled with, so it
//! works under tokio, smol, `futures::executor` or a hand-written executor, and a log shared by
//! two runtimes needs nothing from either (the syncer is an ordinary thread).
//!
//! Appending and waiting are separate: [`crate::SharedWal::append_durable`] appends before it
//! returns the future, so dropping the future (a cancelled task, a `select!` that took another
//! branch) never loses a record and awaiting it twice never writes one twice.

use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};

use walden_core::{Lsn, Poisoned};

use crate::gate::{Gate, Handle};
use crate::group::GroupSync;
use crate::shared::Inner;

/// Why a durability future or callback did not see its record become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DurableError {
    /// A write or sync failed: the log is poisoned and nothing more becomes durable until it is
    /// reopened. The record may or may not survive a crash.
    Poisoned(Poisoned),
    /// A `truncate_back` removed the awaited LSN before it became durable.
    Truncated {
        /// The LSN that was awaited.
        lsn: Lsn,
        /// The last LSN kept by the truncation (everything after it was removed).
        kept: Lsn,
    },
    /// Every handle of the log was dropped (or turned back into a core log) before the record
    /// became durable. Use [`crate::SharedWal::close`], which syncs first, to avoid this.
    Closed,
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Poisoned(p) => write!(f, "the log is poisoned: {p}"),
            Self::Truncated { lsn, kept } => {
                write!(f, "LSN {} was truncated (kept up to {})", lsn.0, kept.0)
            }
            Self::Closed => write!(f, "the log was closed before the record was durable"),
        }
    }
}

impl core::error::Error for DurableError {}

/// What a watcher is told: the durable LSN (at least the one it waited for), or why not.
pub(crate) type Outcome = Result<Lsn, DurableError>;

/// A callback run once when its LSN is durable or cannot become durable.
pub(crate) type Callback = Box<dyn FnOnce(Outcome) + Send>;

/// An async durability waiter, registered with the group-commit state. Answered exactly
/// once: by [`Watcher::fire`], or else [`DurableError::Closed`] when dropped, so that one
/// dropped on any path (a batch abandoned by a panic, the state dropped at close) leaves no
/// future pending forever.
pub(crate) struct Watcher(Option<WatcherKind>);

enum WatcherKind {
    Future(Arc<Completion>),
    Callback(Callback),
}

impl Watcher {
    /// Resolves the future behind `c`.
    pub(crate) fn future(c: Arc<Completion>) -> Self {
        Self(Some(WatcherKind::Future(c)))
    }

    /// Runs `f`.
    pub(crate) fn callback(f: impl FnOnce(Outcome) + Send + 'static) -> Self {
        Self(Some(WatcherKind::Callback(Box::new(f))))
    }

    /// Delivers the outcome. Called without any log lock held: a callback may use the log.
    /// It never panics: a callback or a future's `Waker` that panics is caught and logged, as
    /// it runs on whichever thread published the outcome (the syncer, a group-commit leader),
    /// which must go on to answer the watchers after it (and, for the syncer, every later one).
    pub(crate) fn fire(mut self, outcome: Outcome) {
        if let Some(kind) = self.0.take() {
            kind.fire(outcome);
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(kind) = self.0.take() {
            kind.fire(Err(DurableError::Closed));
        }
    }
}

impl WatcherKind {
    fn fire(self, outcome: Outcome) {
        match self {
            Self::Future(c) => c.complete(outcome),
            Self::Callback(f) => {
                let run = core::panic::AssertUnwindSafe(move || f(outcome));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("a durability callback panicked (the panic is dropped)");
                }
            }
        }
    }
}

/// The cell a [`DurableFuture`] and its watcher share.
#[derive(Default)]
pub(crate) struct Completion {
    inner: Mutex<CompletionState>,
}

#[derive(Default)]
struct CompletionState {
    outcome: Option<Outcome>,
    waker: Option<Waker>,
}

impl Completion {
    fn complete(&self, outcome: Outcome) {
        let waker = {
            let mut st = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if st.outcome.is_some() {
                return;
            }
            st.outcome = Some(outcome);
            st.waker.take()
        };
        if let Some(w) = waker {
            // A `Waker` is the executor's code and may panic (a buggy or torn-down executor):
            // caught like a callback's panic (`Watcher::fire`), so that the publishing thread
            // goes on to answer the other watchers and the syncer thread survives.
            let wake = core::panic::AssertUnwindSafe(move || w.wake());
            if std::panic::catch_unwind(wake).is_err() {
                tracing::error!("a durability future's waker panicked (the panic is dropped)");
            }
        }
    }
}

/// Resolves once a record is durable: `Ok(durable LSN)`, at least the LSN it waits for.
///
/// Created by [`crate::SharedWal::append_durable`] and [`crate::SharedWal::durable`]. It does
/// nothing itself (the log's syncer thread makes the record durable whether or not the future
/// is polled) and may be dropped at any time without effect on the log.
#[must_use = "a DurableFuture does nothing unless awaited; the record is appended either way"]
pub struct DurableFuture {
    state: FutureState,
}

enum FutureState {
    Ready(Option<Outcome>),
    Waiting(Arc<Completion>),
}

impl DurableFuture {
    pub(crate) fn waiting() -> (Self, Arc<Completion>) {
        let c = Arc::new(Completion::default());
        let f = Self {
            state: FutureState::Waiting(Arc::clone(&c)),
        };
        (f, c)
    }
}

impl fmt::Debug for DurableFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            FutureState::Ready(_) => "ready",
            FutureState::Waiting(_) => "waiting",
        };
        f.debug_struct("DurableFuture")
            .field("state", &state)
            .finish()
    }
}

impl Future for DurableFuture {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        match &mut this.state {
            FutureState::Ready(o) => match o.take() {
                Some(o) => Poll::Ready(o),
                None => panic!("DurableFuture polled after it returned Ready"),
            },
            FutureState::Waiting(c) => {
                let mut st = c.inner.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(o) = st.outcome.take() {
                    drop(st);
                    this.state = FutureState::Ready(None);
                    return Poll::Ready(o);
                }
                // Only the waker of the latest poll is woken (the task may have moved).
                match &mut st.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// The syncer: a thread that leads or joins group commits on behalf of registered watchers.
/// Started with the first watcher; it holds the log only weakly and stops with the last
/// handle, or once the log is poisoned (every watcher has been answered then).
#[derive(Default)]
pub(crate) struct Syncer {
    state: Mutex<SyncerState>,
    cv: Condvar,
}

#[derive(Default)]
struct SyncerState {
    /// The highest LSN a watcher waits for.
    requested: Lsn,
    /// Bumped by every request: the thread serves until it has seen the latest (an LSN
    /// alone would not do: after a truncation a new watcher may ask for a lower LSN).
    requests: u64,
    started: bool,
    stopped: bool,
}

impl Syncer {
    /// Asks for `lsn` to be made durable, starting the thread if needed. Called after a
    /// watcher for `lsn` was registered: the protocol's progress argument needs every
    /// registered watcher to be covered by a request.
    pub(crate) fn request<S: GroupSync + Send + 'static>(
        &self,
        inner: &Handle<Inner<S>>,
        lsn: Lsn,
    ) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.requested = st.requested.max(lsn);
        st.requests += 1;
        if !st.started {
            st.started = true;
            drop(st);
            spawn_syncer(inner.downgrade(), Arc::clone(&inner.gate));
            return;
        }
        drop(st);
        self.cv.notify_one();
    }

    pub(crate) fn stop(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stopped = true;
        self.cv.notify_all();
    }

    /// Waits for a request after the `served`th; returns the highest LSN requested and the
    /// number of requests it answers, or `None` once stopped.
    fn next(&self, served: u64) -> Option<(Lsn, u64)> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if st.stopped {
                return None;
            }
            if st.requests > served {
                return Some((st.requested, st.requests));
            }
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn spawn_syncer<S: GroupSync + Send + 'static>(inner: Weak<Inner<S>>, gate: Arc<Gate>) {
    let spawned = std::thread::Builder::new()
        .name("walden-syncer".into())
        .spawn(move || {
            let mut served = 0;
            loop {
                // Read the syncer through a short-lived strong reference, so that waiting for
                // a request never keeps the log open.
                let syncer = match gate.visit(&inner) {
                    Some(i) => Arc::clone(&i.syncer),
                    None => return,
                };
                let Some((target, requests)) = syncer.next(served) else {
                    return;
                };
                let Some(inner) = gate.visit(&inner) else {
                    return;
                };
                let c = &inner.c;
                // A truncation may have lowered the log below the request: the watchers above
                // it were answered by the truncation, so the current end is enough.
                let last = c.lock_log().wal.last_lsn();
                if let Err(e) = c.wait_durable(target.min(last), std::time::Instant::now()) {
                    tracing::debug!(error = ?e, "syncer stops: the log is poisoned");
                    return;
                }
                served = requests;
            }
        });
    if let Err(e) = spawned {
        // Without a syncer nobody leads for the watchers: poison would be wrong (nothing
        // failed on disk), so they are answered by the next sync any thread runs.
        tracing::error!(error = %e, "could not start the durability syncer thread");
    }
}

/// Keeps a syncer stopped when the last handle goes.
pub(crate) struct StopSyncer(pub(crate) Arc<Syncer>);

impl Drop for StopSyncer {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_now(f: &mut DurableFuture) -> Poll<Outcome> {
        Pin::new(f).poll(&mut Context::from_waker(Waker::noop()))
    }

    /// A watcher dropped without being answered (a batch abandoned on any path) answers its
    /// future `Closed`, and its callback too, instead of leaving them pending forever.
    #[test]
    fn a_watcher_dropped_unanswered_answers_closed() {
        let (mut f, c) = DurableFuture::waiting();
        assert!(poll_now(&mut f).is_pending());
        drop(Watcher::future(c));
        assert_eq!(poll_now(&mut f), Poll::Ready(Err(DurableError::Closed)));

        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        drop(Watcher::callback(move |o| s.lock().unwrap().push(o)));
        assert_eq!(*seen.lock().unwrap(), vec![Err(DurableError::Closed)]);
    }

    /// A fired watcher is answered once: its drop adds nothing.
    #[test]
    fn a_fired_watcher_is_answered_once() {
        let (mut f, c) = DurableFuture::waiting();
        Watcher::future(c).fire(Ok(Lsn(3)));
        assert_eq!(poll_now(&mut f), Poll::Ready(Ok(Lsn(3))));
    }

    struct PanickingWaker;

    impl std::task::Wake for PanickingWaker {
        fn wake(self: Arc<Self>) {
            panic!("waker panicked");
        }
    }

    /// A `Waker` that panics does not unwind out of `fire` (the publisher goes on answering
    /// the others), and the future still gets its outcome.
    #[test]
    fn a_panicking_waker_is_caught() {
        let (mut f, c) = DurableFuture::waiting();
        let bad = Waker::from(Arc::new(PanickingWaker));
        assert!(
            Pin::new(&mut f)
                .poll(&mut Context::from_waker(&bad))
                .is_pending()
        );
        Watcher::future(c).fire(Ok(Lsn(1)));
        assert_eq!(poll_now(&mut f), Poll::Ready(Ok(Lsn(1))));
    }
}
