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
//! B's visits as any thread does, unless waiting would close a cycle: two logs whose
//! callbacks drop each other's last handle at the same moment (or any longer ring of them)
//! would each wait for a visit held by a thread that waits for its own. A thread that waits
//! while it visits registers in [`WAITING`]; one whose wait would reach a gate it visits
//! itself, through threads registered there, does not wait, and that log is released when
//! the visits end, on the visiting thread (as in the exception above).
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

/// The threads waiting in [`Gate::close`] while they visit other gates (see the module docs).
/// Lock order: a gate's state, then this.
static WAITING: Mutex<Vec<Waiting>> = Mutex::new(Vec::new());

/// A thread in [`WAITING`]: the gates it visits (which it cannot leave while it waits) and the
/// gate whose visits it waits for.
struct Waiting {
    thread: std::thread::ThreadId,
    visits: Vec<usize>,
    on: usize,
}

/// Whether a thread visiting `mine` that waits for the visits of gate `on` would wait
/// forever: some thread visiting `on` waits for a gate that one visiting ... visits `mine`.
fn closes_a_cycle(waiting: &[Waiting], mine: &[usize], on: usize) -> bool {
    let mut todo = vec![on];
    let mut seen = Vec::new();
    while let Some(gate) = todo.pop() {
        if mine.contains(&gate) {
            return true;
        }
        if seen.contains(&gate) {
            continue;
        }
        seen.push(gate);
        todo.extend(
            waiting
                .iter()
                .filter(|w| w.visits.contains(&gate))
                .map(|w| w.on),
        );
    }
    false
}

fn waiting() -> MutexGuard<'static, Vec<Waiting>> {
    WAITING.lock().unwrap_or_else(PoisonError::into_inner)
}

/// See the module docs.
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<State>,
    cv: Condvar,
    /// Test-only broken variant: the last handle does not wait for running visits.
    #[cfg(test)]
    broken_no_wait: bool,
    /// Test-only broken variant: a visiting thread waits without looking for a cycle.
    #[cfg(test)]
    broken_no_cycle_check: bool,
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
        let mine = VISITING.with(|v| v.borrow().clone());
        let on = self.addr();
        if mine.contains(&on) || st.visits == 0 {
            return;
        }
        let registered = !mine.is_empty();
        if registered {
            let mut w = waiting();
            #[cfg(test)]
            let check = !self.broken_no_cycle_check;
            #[cfg(not(test))]
            let check = true;
            if check && closes_a_cycle(&w, &mine, on) {
                return;
            }
            w.push(Waiting {
                thread: std::thread::current().id(),
                visits: mine,
                on,
            });
        }
        while st.visits > 0 {
            st = self.cv.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        if registered {
            let me = std::thread::current().id();
            waiting().retain(|w| w.thread != me);
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

    fn registered(id: ThreadId) -> bool {
        waiting().iter().any(|w| w.thread == id)
    }

    /// Two threads each visit one log (as a durability callback runs on its log's syncer)
    /// and drop the other log's last handle, the first while the second's visit is open.
    /// Returns the first thread and the threads that released A and B if both returned, or
    /// `None` once the second is seen waiting too: a deadlock (its threads are leaked).
    fn drop_each_other(a: Gate) -> Option<(ThreadId, ThreadId, ThreadId)> {
        let (a, b) = (Arc::new(a), Arc::new(Gate::default()));
        let (a_tx, a_released) = mpsc::channel();
        let (b_tx, b_released) = mpsc::channel();
        let handle_a = Handle::new(Log(a_tx), Arc::clone(&a), |_| {});
        let handle_b = Handle::new(Log(b_tx), Arc::clone(&b), |_| {});
        let (weak_a, weak_b) = (handle_a.downgrade(), handle_b.downgrade());
        let (entered_tx, entered) = mpsc::channel();
        let (go_tx, go) = mpsc::channel::<()>();
        let (go_first_tx, go_first) = mpsc::channel::<()>();
        let first = {
            let (a, entered_tx) = (Arc::clone(&a), entered_tx.clone());
            thread::spawn(move || {
                let visit = a.visit(&weak_a).expect("open");
                entered_tx.send(()).unwrap();
                go_first.recv().unwrap();
                drop(handle_b); // waits for the second's visit of B
                drop(visit);
            })
        };
        entered.recv().unwrap();
        let second = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                let visit = b.visit(&weak_b).expect("open");
                entered_tx.send(()).unwrap();
                go.recv().unwrap();
                drop(handle_a);
                drop(visit);
            })
        };
        entered.recv().unwrap();
        go_first_tx.send(()).unwrap();
        // The first waits for B (a state, not a time), then the second drops A's handle.
        while !registered(first.thread().id()) {
            thread::yield_now();
        }
        go_tx.send(()).unwrap();
        loop {
            if second.is_finished() {
                break;
            }
            if registered(second.thread().id()) {
                return None;
            }
            thread::yield_now();
        }
        let first_id = first.thread().id();
        second.join().unwrap();
        first.join().unwrap();
        Some((
            first_id,
            a_released.recv().unwrap(),
            b_released.recv().unwrap(),
        ))
    }

    /// Neither waits forever: the second does not wait (that would close the cycle); A is
    /// released when the first's visit of it ends, and B by the first, once the second's
    /// visit of B has ended.
    #[test]
    fn two_logs_dropping_each_other_in_callbacks_do_not_deadlock() {
        let (first, a, b) = drop_each_other(Gate::default()).expect("no deadlock");
        assert_eq!((a, b), (first, first));
        let me = thread::current().id();
        assert!(!registered(me));
    }

    #[test]
    fn the_gate_without_its_cycle_check_is_caught() {
        let broken = Gate {
            broken_no_cycle_check: true,
            ..Gate::default()
        };
        assert!(drop_each_other(broken).is_none(), "both wait: a deadlock");
    }

    #[test]
    fn a_cycle_is_found_through_a_chain_of_waiters() {
        let w = |thread, visits: &[usize], on| Waiting {
            thread,
            visits: visits.to_vec(),
            on,
        };
        let t = thread::current().id();
        // Thread 1 visits gate 1 and waits for 2; thread 2 visits 2 and waits for 3.
        let chain = [w(t, &[1], 2), w(t, &[2, 9], 3)];
        assert!(closes_a_cycle(&chain, &[3], 1), "3 waits for 1 -> 2 -> 3");
        assert!(closes_a_cycle(&chain, &[4, 3], 2));
        assert!(!closes_a_cycle(&chain, &[4], 1), "nobody waits for 4");
        assert!(!closes_a_cycle(&chain, &[1], 3), "nobody visiting 3 waits");
        assert!(!closes_a_cycle(&[], &[1], 2));
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
