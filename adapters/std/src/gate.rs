//! Where a shared log is released.
//!
//! The syncer and the interval flusher reach the log through a weak reference and upgrade it
//! while they work, so that they never keep it open. Without more care, a user who drops the
//! last handle while one of them holds its upgrade leaves the final release (the storage's
//! buffers, the files, the directory lock) to that background thread, at the end of its sync,
//! and an immediate reopen on the user's thread fails with `Error::Locked`.
//!
//! The gate counts the user's handles and the background threads' visits. The thread that
//! drops the last handle closes the gate (no visit starts after that) and waits for the
//! running visits to end, so the log is released on that thread, before its `drop` returns.
//! One exception: a handle dropped on a thread that is itself visiting *this* log (a
//! durability callback runs on the syncer) cannot wait for its own visit; the log is then
//! released when that visit ends, on that thread. Visits are counted per gate: a thread
//! visiting another log (a callback of log A dropping the last handle of log B) waits for
//! B's visits as any thread does. (So two logs whose callbacks drop each other's last handle
//! at the same moment would wait for each other, as two threads that each join the other.)
//!
//! A tail ([`crate::Tail`]) holds a *follower* handle: it keeps the log alive while it is
//! used, but it does not keep it open for the user. When the last handle that is not a
//! follower is dropped, the gate marks the log *orphaned* and calls the handle's `on_orphan`
//! (which wakes waiting tails, so that they report the log closed instead of waiting forever
//! for a record that no handle can append); the log is released when the followers go too.

use core::cell::RefCell;
use core::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};

thread_local! {
    /// The gates this thread has a visit open on, by address, once per visit (see the module
    /// docs' exception). An address is only compared while its visit, which borrows the gate,
    /// is open, so it cannot belong to another gate meanwhile.
    static VISITING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<State>,
    cv: Condvar,
    /// Test-only broken variant: the last handle does not wait for running visits.
    #[cfg(test)]
    broken_no_wait: bool,
}

#[derive(Default)]
struct State {
    handles: usize,
    /// Of `handles`, the followers (see the module docs).
    followers: usize,
    /// Every handle that is not a follower has been dropped.
    orphaned: bool,
    visits: usize,
    closed: bool,
}

impl Gate {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Closes the gate and waits for the running visits (unless this thread is one of them).
    fn close<'g>(&'g self, mut st: MutexGuard<'g, State>) {
        st.closed = true;
        #[cfg(test)]
        if self.broken_no_wait {
            return;
        }
        if VISITING.with(|v| v.borrow().contains(&self.addr())) {
            return;
        }
        while st.visits > 0 {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn addr(&self) -> usize {
        core::ptr::from_ref(self) as usize
    }

    /// Upgrades `weak` for a background thread, unless the last handle is gone or going.
    pub(crate) fn visit<'g, T>(&'g self, weak: &Weak<T>) -> Option<Visit<'g, T>> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        let arc = weak.upgrade()?;
        st.visits += 1;
        VISITING.with(|v| v.borrow_mut().push(self.addr()));
        Some(Visit {
            gate: self,
            arc: Some(arc),
        })
    }
}

/// A background thread's strong reference, counted by the gate.
pub(crate) struct Visit<'g, T> {
    gate: &'g Gate,
    arc: Option<Arc<T>>,
}

impl<T> Deref for Visit<'_, T> {
    type Target = Arc<T>;

    fn deref(&self) -> &Arc<T> {
        self.arc
            .as_ref()
            .expect("a visit holds its reference until dropped")
    }
}

impl<T> Drop for Visit<'_, T> {
    fn drop(&mut self) {
        // Released before the count goes down (and outside the gate's lock: it may be the
        // last reference, see the module docs' exception, and run arbitrary drops).
        drop(self.arc.take());
        let addr = self.gate.addr();
        VISITING.with(|v| {
            let mut v = v.borrow_mut();
            if let Some(k) = v.iter().rposition(|&a| a == addr) {
                v.swap_remove(k);
            }
        });
        let mut st = self.gate.lock();
        st.visits -= 1;
        if st.visits == 0 {
            self.gate.cv.notify_all();
        }
    }
}

/// A user's strong reference, counted by the gate.
pub(crate) struct Handle<T> {
    arc: Option<Arc<T>>,
    gate: Arc<Gate>,
    /// A follower's handle (see the module docs); its clones are followers too.
    follower: bool,
    /// Called (on the dropping thread, with the log still alive) when the last handle that is
    /// not a follower is dropped while followers remain.
    on_orphan: fn(&T),
}

impl<T> Handle<T> {
    /// The first handle of `value`, and its gate.
    pub(crate) fn new(value: T, gate: Arc<Gate>, on_orphan: fn(&T)) -> Self {
        gate.lock().handles += 1;
        Self {
            arc: Some(Arc::new(value)),
            gate,
            follower: false,
            on_orphan,
        }
    }

    /// A follower's handle of the same value (see the module docs).
    pub(crate) fn follower(&self) -> Self {
        let mut st = self.gate.lock();
        st.handles += 1;
        st.followers += 1;
        drop(st);
        Self {
            arc: Some(Arc::clone(self.arc())),
            gate: Arc::clone(&self.gate),
            follower: true,
            on_orphan: self.on_orphan,
        }
    }

    /// Whether every handle that is not a follower has been dropped: nothing but followers
    /// can reach the log any more.
    pub(crate) fn orphaned(&self) -> bool {
        self.gate.lock().orphaned
    }

    fn arc(&self) -> &Arc<T> {
        self.arc
            .as_ref()
            .expect("a handle holds its reference until dropped")
    }

    /// A weak reference for a background thread (which must visit through the gate).
    pub(crate) fn downgrade(&self) -> Weak<T> {
        Arc::downgrade(self.arc())
    }

    /// The value, if this is the last handle: the gate is closed and the running visits are
    /// waited for first, so a background thread's visit never makes this fail. Otherwise the
    /// handle back, unchanged.
    pub(crate) fn into_inner(mut self) -> Result<T, Self> {
        let st = self.gate.lock();
        if st.handles != 1 {
            drop(st);
            return Err(self);
        }
        self.gate.close(st);
        let arc = self
            .arc
            .take()
            .expect("a handle holds its reference until dropped");
        match Arc::try_unwrap(arc) {
            Ok(value) => {
                // Nothing to release in `drop` any more.
                self.gate.lock().handles = 0;
                Ok(value)
            }
            // A visit on this very thread (see the module docs): reopen the gate.
            Err(arc) => {
                self.gate.lock().closed = false;
                self.arc = Some(arc);
                Err(self)
            }
        }
    }
}

impl<T> Deref for Handle<T> {
    type Target = T;

    fn deref(&self) -> &T {
        self.arc()
    }
}

impl<T> Clone for Handle<T> {
    fn clone(&self) -> Self {
        if self.follower {
            return self.follower();
        }
        self.gate.lock().handles += 1;
        Self {
            arc: Some(Arc::clone(self.arc())),
            gate: Arc::clone(&self.gate),
            follower: false,
            on_orphan: self.on_orphan,
        }
    }
}

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        let Some(arc) = self.arc.take() else {
            return; // given away by `into_inner`
        };
        let mut st = self.gate.lock();
        st.handles -= 1;
        if self.follower {
            st.followers -= 1;
        }
        if st.handles == 0 {
            self.gate.close(st);
        } else if !self.follower && st.handles == st.followers && !st.orphaned {
            st.orphaned = true;
            drop(st);
            // After the mark, which a woken follower reads.
            (self.on_orphan)(&arc);
        } else {
            drop(st);
        }
        drop(arc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread::{self, ThreadId};

    /// Records the thread that releases it.
    struct Log(mpsc::Sender<ThreadId>);

    impl Drop for Log {
        fn drop(&mut self) {
            let _ = self.0.send(thread::current().id());
        }
    }

    /// A background thread visits; another thread drops the last handle during the visit
    /// (while it visits another gate itself, if `dropper_visits_another`). Returns whether the
    /// log was released on the dropping thread.
    fn released_by_dropper(gate: Gate, dropper_visits_another: bool) -> bool {
        let gate = Arc::new(gate);
        let (released_tx, released) = mpsc::channel();
        let handle = Handle::new(Log(released_tx), Arc::clone(&gate), |_| {});
        let weak = handle.downgrade();
        let (entered_tx, entered) = mpsc::channel();
        let (leave_tx, leave) = mpsc::channel::<()>();
        let visitor = {
            let gate = Arc::clone(&gate);
            thread::spawn(move || {
                let visit = gate.visit(&weak).expect("the gate is open");
                entered_tx.send(()).unwrap();
                leave.recv().unwrap();
                drop(visit);
            })
        };
        entered.recv().unwrap();
        let dropper = thread::spawn(move || {
            // Another log, as a durability callback of it runs on its syncer.
            let (tx, _rx) = mpsc::channel();
            let other = Handle::new(Log(tx), Arc::new(Gate::default()), |_| {});
            let weak = other.downgrade();
            let visit = dropper_visits_another.then(|| other.gate.visit(&weak).expect("open"));
            drop(handle);
            drop(visit);
        });
        let dropper_id = dropper.thread().id();
        // The dropper has closed the gate before it waits (a state, not a time).
        while !gate.lock().closed {
            thread::yield_now();
        }
        assert!(gate.visit(&Weak::<Log>::new()).is_none(), "closed gate");
        leave_tx.send(()).unwrap();
        visitor.join().unwrap();
        dropper.join().unwrap();
        released.recv().unwrap() == dropper_id
    }

    #[test]
    fn the_last_handle_waits_for_a_running_visit() {
        assert!(released_by_dropper(Gate::default(), false));
    }

    /// Visits are counted per gate: a thread visiting another log is not exempt.
    #[test]
    fn a_thread_visiting_another_log_waits_too() {
        assert!(released_by_dropper(Gate::default(), true));
    }

    /// A thread visiting the log itself cannot wait for its own visit: the log is released
    /// when that visit ends, on that thread, and `into_inner` gives the handle back.
    #[test]
    fn a_thread_visiting_the_log_itself_does_not_wait() {
        let gate = Arc::new(Gate::default());
        let (tx, released) = mpsc::channel();
        let handle = Handle::new(Log(tx), Arc::clone(&gate), |_| {});
        let weak = handle.downgrade();
        let visit = gate.visit(&weak).expect("the gate is open");
        let handle = handle
            .into_inner()
            .err()
            .expect("visited by this very thread");
        drop(handle); // returns: waiting would wait for itself
        assert!(released.try_recv().is_err(), "the visit still holds it");
        drop(visit);
        assert_eq!(released.try_recv().unwrap(), thread::current().id());
    }

    #[test]
    fn the_broken_gate_is_caught() {
        let broken = Gate {
            broken_no_wait: true,
            ..Gate::default()
        };
        assert!(!released_by_dropper(broken, false));
    }

    #[test]
    fn into_inner_needs_the_last_handle() {
        let gate = Arc::new(Gate::default());
        let (tx, _rx) = mpsc::channel();
        let a = Handle::new(Log(tx), Arc::clone(&gate), |_| {});
        let b = a.clone();
        let a = a.into_inner().err().expect("two handles");
        drop(b);
        assert!(a.into_inner().is_ok());
        assert_eq!(gate.lock().handles, 0);
    }

    static ORPHANED: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    /// Followers keep the value alive but not open: dropping the last other handle marks it
    /// orphaned and calls `on_orphan` once (clones of a follower are followers); the value is
    /// released when the followers go.
    #[test]
    fn followers_do_not_keep_the_log_open() {
        use core::sync::atomic::Ordering::SeqCst;
        let gate = Arc::new(Gate::default());
        let (tx, released) = mpsc::channel();
        let a = Handle::new(Log(tx), Arc::clone(&gate), |_| {
            ORPHANED.fetch_add(1, SeqCst);
        });
        let b = a.clone();
        let f = a.follower();
        let g = f.clone();
        drop(a);
        assert!(!f.orphaned(), "a handle is left");
        drop(b);
        assert!(f.orphaned() && g.orphaned());
        assert_eq!(ORPHANED.load(SeqCst), 1);
        drop(g);
        assert_eq!(ORPHANED.load(SeqCst), 1, "once");
        assert!(released.try_recv().is_err(), "a follower still holds it");
        drop(f);
        assert!(released.try_recv().is_ok());
        assert_eq!(gate.lock().handles, 0);
    }
}
