//! The decision core of group commit: who leads, which waiters are answered, what is
//! published. Pure state, no locks, no threads, no clocks: the committer keeps one [`Core`]
//! under its commit lock and acts on what it returns (mark and unpark slots), and the model
//! check (`model.rs`, under `shuttle`) drives the very same code with its own threads and a
//! fake sync. Every rule of the argument in the parent module that is a decision, rather than
//! an ordering of locks, lives here.

use std::collections::VecDeque;

use walden_core::{Lsn, Poisoned};

/// The commit state's decisions, generic over the handle `W` of a parked thread.
pub(crate) struct Core<W> {
    /// The published durable LSN: every record up to it was covered by a successful sync.
    durable: Lsn,
    /// A leader is at work (or has been chosen and is being woken).
    leader: bool,
    /// Set once, never cleared: every later answer is this failure.
    poisoned: Option<Poisoned>,
    /// Parked durability waiters. Invariant: non-empty only while `leader` is set.
    waiters: Vec<(Lsn, W)>,
    /// Parked exclusive callers (`truncate_back`) waiting for the role; served before waiters.
    exclusive: VecDeque<W>,
}

/// What a durability waiter arriving for an LSN must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// The log is poisoned: fail with this.
    Failed(Poisoned),
    /// Already durable up to this LSN: return it.
    Durable(Lsn),
    /// Nobody leads: the caller now holds the role and must lead.
    Lead,
    /// A leader is at work: the caller's slot was registered; park on it. `waiters` counts the
    /// registered waiters, the caller included.
    Wait { waiters: usize },
}

impl<W> Core<W> {
    pub(crate) fn new(durable: Lsn, poisoned: Option<Poisoned>) -> Self {
        Self {
            durable,
            leader: false,
            poisoned,
            waiters: Vec::new(),
            exclusive: VecDeque::new(),
        }
    }

    pub(crate) fn durable(&self) -> Lsn {
        self.durable
    }

    pub(crate) fn poisoned(&self) -> Option<Poisoned> {
        self.poisoned
    }

    /// Parked waiters (for the log line of a poison).
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Whether a leader holds the role (for checks).
    #[cfg(test)]
    pub(crate) fn leading(&self) -> bool {
        self.leader
    }

    /// A durability waiter for `lsn` arrives. Poison is checked before durability (point 3),
    /// and a waiter registers only while a leader is at work (point 4), so the registered
    /// slot will be answered or handed the role by that leader's hand-off.
    pub(crate) fn arrive(&mut self, lsn: Lsn, slot: impl FnOnce() -> W) -> Arrival {
        if let Some(p) = self.poisoned {
            return Arrival::Failed(p);
        }
        if self.durable >= lsn {
            return Arrival::Durable(self.durable);
        }
        if self.leader {
            self.waiters.push((lsn, slot()));
            Arrival::Wait {
                waiters: self.waiters.len(),
            }
        } else {
            self.leader = true;
            Arrival::Lead
        }
    }

    /// An exclusive caller arrives: `true` if it holds the role now, else its slot was queued
    /// (it will only ever be handed the role, never released).
    pub(crate) fn arrive_exclusive(&mut self, slot: impl FnOnce() -> W) -> bool {
        if self.leader {
            self.exclusive.push_back(slot());
            false
        } else {
            self.leader = true;
            true
        }
    }

    /// A leader publishes the outcome of its turn: a durable LSN (raised only, and never once
    /// poisoned: point 2), or a failure (the first reason wins, and sticks). Returns `true` if
    /// this newly poisoned the log.
    pub(crate) fn publish(&mut self, outcome: Result<Lsn, Poisoned>) -> bool {
        match outcome {
            Ok(d) => {
                if d > self.durable && self.poisoned.is_none() {
                    self.durable = d;
                }
                false
            }
            Err(p) => self.poison(p),
        }
    }

    /// An exclusive leader publishes the durable LSN of a truncation (which may lower it: the
    /// records above were removed). Not once poisoned. Returns whether it was applied.
    pub(crate) fn publish_truncation(&mut self, kept: Lsn) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        self.durable = kept;
        true
    }

    /// Poisons the log (first reason wins). Returns `true` if this newly poisoned it.
    pub(crate) fn poison(&mut self, p: Poisoned) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        self.poisoned = Some(p);
        true
    }

    /// Registered waiters the published durable LSN covers (a group's size, for metrics).
    pub(crate) fn covered(&self) -> usize {
        self.waiters
            .iter()
            .filter(|(lsn, _)| *lsn <= self.durable)
            .count()
    }

    /// Moves every waiter the published state answers into `released`: all of them once
    /// poisoned, else those whose LSN is durable (point 1: only published state answers).
    pub(crate) fn release(&mut self, released: &mut Vec<W>) {
        let all = self.poisoned.is_some();
        let durable = self.durable;
        let mut i = 0;
        while i < self.waiters.len() {
            if all || self.waiters[i].0 <= durable {
                released.push(self.waiters.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
    }

    /// Ends a turn after [`Core::release`]: the role goes to a queued exclusive caller, else
    /// to the uncovered waiter with the lowest LSN (both returned: mark and wake it; `leader`
    /// stays set for it), else the role is cleared. Called by the holder of the role only.
    pub(crate) fn next_leader(&mut self) -> Option<W> {
        let next = self.exclusive.pop_front().or_else(|| {
            let i = (0..self.waiters.len()).min_by_key(|&i| self.waiters[i].0)?;
            Some(self.waiters.swap_remove(i).1)
        });
        if next.is_none() {
            self.leader = false;
        }
        next
    }

    /// [`Core::release`] then [`Core::next_leader`]: a whole hand-off.
    #[cfg(test)]
    pub(crate) fn hand_off(&mut self, released: &mut Vec<W>) -> Option<W> {
        self.release(released);
        self.next_leader()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use walden_core::{Op, StorageErrorKind};

    const P: Poisoned = Poisoned {
        op: Op::Sync,
        segment: None,
        kind: StorageErrorKind::Io,
    };

    #[test]
    fn the_first_arrival_leads_and_the_others_wait_for_it() {
        let mut c: Core<u32> = Core::new(Lsn(0), None);
        assert_eq!(c.arrive(Lsn(1), || 1), Arrival::Lead);
        assert_eq!(c.arrive(Lsn(2), || 2), Arrival::Wait { waiters: 1 });
        assert_eq!(c.arrive(Lsn(3), || 3), Arrival::Wait { waiters: 2 });
        assert!(!c.publish(Ok(Lsn(2))));
        let mut released = Vec::new();
        // Waiter 2 is covered; waiter 3 is not and gets the role.
        assert_eq!(c.hand_off(&mut released), Some(3));
        assert_eq!(released, vec![2]);
        assert!(c.leading());
        assert_eq!(c.arrive(Lsn(2), || 9), Arrival::Durable(Lsn(2)));
        c.publish(Ok(Lsn(3)));
        assert_eq!(c.hand_off(&mut released), None);
        assert!(!c.leading());
    }

    #[test]
    fn poison_sticks_and_answers_everyone() {
        let mut c: Core<u32> = Core::new(Lsn(0), None);
        assert_eq!(c.arrive(Lsn(1), || 1), Arrival::Lead);
        assert_eq!(c.arrive(Lsn(5), || 5), Arrival::Wait { waiters: 1 });
        assert!(c.publish(Err(P)));
        assert!(!c.publish(Err(P)), "the first reason wins");
        // A later success is never published.
        c.publish(Ok(Lsn(9)));
        assert!(!c.publish_truncation(Lsn(1)));
        assert_eq!(c.durable(), Lsn(0));
        let mut released = Vec::new();
        assert_eq!(c.hand_off(&mut released), None);
        assert_eq!(released, vec![5]);
        assert_eq!(c.arrive(Lsn(0), || 0), Arrival::Failed(P));
    }

    #[test]
    fn exclusive_callers_are_served_before_waiters() {
        let mut c: Core<u32> = Core::new(Lsn(0), None);
        assert!(c.arrive_exclusive(|| 0));
        assert_eq!(c.arrive(Lsn(4), || 4), Arrival::Wait { waiters: 1 });
        assert!(!c.arrive_exclusive(|| 7));
        assert!(c.publish_truncation(Lsn(2)));
        let mut released = Vec::new();
        assert_eq!(c.hand_off(&mut released), Some(7));
        assert!(released.is_empty());
        assert_eq!(c.hand_off(&mut released), Some(4));
        assert_eq!(c.hand_off(&mut released), None);
    }
}
