//! How a durability waiter waits: poll (yielding the CPU) for a while, or sleep at once.
//!
//! Polling pays only where sleeping costs a noticeable share of the wait. Measured: on the
//! 2-core VM this was built on (fdatasync ≈ 90 µs), 16 writers that sleep at once run at about
//! half the rate of writers that poll, because a released thread has to wake a halted virtual
//! CPU and then queue for one. On a quiet 16-core VM the same 16 writers ran at 125.8 k rec/s
//! polling for up to 500 µs and at 124.3 k rec/s sleeping at once, but polling used 14.05
//! CPU-seconds per second against 1.32: with a core per thread, a woken waiter runs at once and
//! polling buys nothing. So the adaptive wait ([`Spin::Adaptive`]) polls only when all of these
//! hold, and sleeps at once otherwise:
//!
//! 1. **The disk is fast**: the last group sync took at most [`ADAPTIVE_SPIN`]. On a disk whose
//!    syncs take milliseconds a sleep costs little next to the wait.
//! 2. **Threads outnumber cores**: the parked waiters plus the leader exceed the CPUs available
//!    to the process. Otherwise every released thread gets its own CPU at once.
//! 3. **Polling occupies at most [`POLL_CPUS`] CPUs**: fewer than [`max_spinners`] waiters are
//!    polling already. A poller yields the CPU on every turn, so pollers together can never
//!    occupy more CPUs than the machine has: on a machine of at most [`POLL_CPUS`] CPUs every
//!    waiter may poll, on a larger one at most [`POLL_CPUS`] do. Polling therefore costs at
//!    most that many CPU-seconds per second on any machine (issue 13's budget: 2 at 16
//!    writers). One poller per 8 CPUs (the rule before) was one poller on 2 CPUs: too few to
//!    pay there (16 writers: 81 k rec/s, the same as sleeping, against 106-136 k with every
//!    waiter polling; `examples/bench.rs many`).
//! 4. **Polling makes group commit faster, measured**: a poller still takes a CPU the leader
//!    and the appenders may need (on a 2-core VM shared with other work, 16 writers ran at less
//!    than half the rate with one poller than with none). So the committer runs trials
//!    ([`Trial`]): three epochs of [`EPOCH_SYNCS`] group commits, the current verdict in the
//!    first and the last and the other way of waiting in the middle, comparing the records
//!    made durable per second. Polling wins only if its epochs were at least [`SPIN_MARGIN`]
//!    faster than sleeping's (where it buys nothing, it is not worth its CPU). A verdict is
//!    kept for [`KEEP_EPOCHS`] epochs, twice as long each time the next trial reaches it again
//!    (up to [`MAX_KEEP_EPOCHS`]). Where polling pays, a trial thus sleeps through one epoch,
//!    not two: trials that slept, polled and slept again, after two epochs of sleeping, slept
//!    through 6 of the first 58 epochs of a load where polling pays, these through 4 (on the
//!    2-core VM, 16 writers sleeping ran at about 0.65 of the polling rate). A log starts
//!    with "sleep", and its first trial at once. (A score of pollers answered within their
//!    window, kept beside the trial before, was dropped: with many pollers a few slow answers
//!    turned polling off where the trial measured it 40% faster. The trial is the one
//!    measurement that decides.)
//!
//! Every rule is a pure function of measurements ([`adaptive`], [`Trial`]), tested
//! deterministically below; the committer feeds them its atomics and clock.

use core::time::Duration;

/// How a durability waiter waits for its group's sync ([`crate::GroupWindow::spin`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Spin {
    /// Poll only while it pays (the default): while syncs are fast, threads outnumber cores,
    /// and a running trial shows that polling makes group commit at least 10% faster than
    /// sleeping; with pollers occupying at most [`POLL_CPUS`] CPUs (see the `group` module
    /// docs). At most [`ADAPTIVE_SPIN`] per wait.
    #[default]
    Adaptive,
    /// Always poll up to this long before sleeping, while the last group sync took no longer
    /// than this (the only behaviour before the adaptive wait, with 500 µs). Spends up to one CPU
    /// per waiting writer: for a dedicated machine where latency matters more than CPU.
    Fixed(Duration),
    /// Sleep at once: the least CPU.
    Off,
}

/// The longest an adaptive waiter polls, and the slowest sync it polls for.
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(500);

/// The most CPUs adaptive polling may occupy: on a machine with at most this many CPUs every
/// waiter may poll (pollers yield, so together they cannot occupy more CPUs than there are),
/// on a larger one at most this many waiters poll at once.
pub const POLL_CPUS: u32 = 2;

/// Group commits per trial epoch.
pub(crate) const EPOCH_SYNCS: u32 = 256;
/// Epochs a verdict is kept before the next trial, the first time it is reached. A trial
/// spends two of its three epochs sleeping, so where polling pays, a short keep throws much of
/// the gain away (6 epochs: 10-20% of it on the 2-core VM).
pub(crate) const KEEP_EPOCHS: u32 = 16;
/// ... doubled each time the next trial reaches the same verdict, up to this many, so a
/// steady load pays for its trials less and less often (16 writers on the 2-core VM ran at
/// about 0.9 of the polling rate with every verdict kept 16 epochs).
pub(crate) const MAX_KEEP_EPOCHS: u32 = 64;
/// Polling must make group commit at least this much faster (records per second) to be kept.
pub(crate) const SPIN_MARGIN: f64 = 1.10;

/// The running trial of polling against sleeping at once (rule 4): three epochs, the current
/// verdict (the incumbent) in the first and the last, the other way of waiting in the middle;
/// polling wins if its rate beat sleeping's by [`SPIN_MARGIN`], the incumbent's rate being
/// the mean of its two epochs (the mean cancels a steady drift of the load, such as a log
/// warming up). Fed by the leader after each group commit (leaders are one at a time), read by
/// waiters through a mirror. The incumbent starts as "sleep", so a log's first epoch never
/// polls, and its first trial starts at once.
#[derive(Debug)]
pub(crate) struct Trial {
    phase: Phase,
    /// Group commits, records and the start time (caller's clock) of the current epoch.
    syncs: u32,
    records: u64,
    started: Duration,
    /// Records per second of the trial's first epoch (the incumbent) and of its middle one.
    first: f64,
    middle: f64,
    /// The current verdict (whether waiters may poll) and how many epochs it was last kept
    /// (`0` before the first trial ended).
    spin: bool,
    kept: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Measuring the incumbent, before the middle epoch.
    First,
    /// Measuring the other way of waiting.
    Middle,
    /// Measuring the incumbent again.
    Last,
    /// Keeping the verdict for this many more epochs.
    Keep { epochs: u32 },
}

impl Trial {
    /// A trial clock starting at `now`, its first trial starting with "sleep".
    pub(crate) fn new(now: Duration) -> Self {
        Self {
            phase: Phase::First,
            syncs: 0,
            records: 0,
            started: now,
            first: 0.0,
            middle: 0.0,
            spin: false,
            kept: 0,
        }
    }

    /// Whether waiters may poll now.
    pub(crate) fn allows_spin(&self) -> bool {
        match self.phase {
            Phase::Middle => !self.spin,
            Phase::First | Phase::Last | Phase::Keep { .. } => self.spin,
        }
    }

    /// A group commit made `records` durable; `now` is the caller's monotonic clock.
    pub(crate) fn on_sync(&mut self, records: u64, now: Duration) {
        self.syncs += 1;
        self.records = self.records.saturating_add(records);
        if self.syncs < EPOCH_SYNCS {
            return;
        }
        let secs = now.saturating_sub(self.started).as_secs_f64();
        let rate = if secs > 0.0 {
            self.records as f64 / secs
        } else {
            f64::MAX
        };
        self.phase = match self.phase {
            Phase::First => {
                self.first = rate;
                Phase::Middle
            }
            Phase::Middle => {
                self.middle = rate;
                Phase::Last
            }
            Phase::Last => {
                let incumbent = (self.first + rate) / 2.0;
                let (polling, sleeping) = if self.spin {
                    (incumbent, self.middle)
                } else {
                    (self.middle, incumbent)
                };
                let spin = polling >= sleeping * SPIN_MARGIN;
                let epochs = if spin == self.spin && self.kept > 0 {
                    (self.kept * 2).min(MAX_KEEP_EPOCHS)
                } else {
                    KEEP_EPOCHS
                };
                (self.spin, self.kept) = (spin, epochs);
                Phase::Keep { epochs }
            }
            Phase::Keep { epochs: 0 } => Phase::First,
            Phase::Keep { epochs } => Phase::Keep { epochs: epochs - 1 },
        };
        self.syncs = 0;
        self.records = 0;
        self.started = now;
    }
}

/// What the adaptive decision looks at, measured by the committer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Conditions {
    /// Duration of the last group sync.
    pub(crate) last_sync: Duration,
    /// Waiters: those registered, the deciding one included, or as many as the last group
    /// commit released if that was more. Writers arrive one at a time, so the first to
    /// register after a release sees few waiters however many writers there are: with 4
    /// writers on 2 CPUs, counting only those registered, the first waiter of each group
    /// slept and polling bought nothing (27-29 k rec/s polling or not, against 32-39 k with
    /// every waiter polling).
    pub(crate) waiters: usize,
    /// Waiters polling right now (not counting the deciding one).
    pub(crate) spinners: u32,
    /// CPUs available to the process.
    pub(crate) cores: u32,
    /// The running [`Trial`] allows polling.
    pub(crate) trial: bool,
}

/// The most waiters that poll at once on `cores` CPUs: any number where the machine has at
/// most [`POLL_CPUS`] CPUs (yielding pollers cannot occupy more CPUs than there are), else
/// [`POLL_CPUS`].
pub(crate) fn max_spinners(cores: u32) -> u32 {
    if cores <= POLL_CPUS {
        u32::MAX
    } else {
        POLL_CPUS
    }
}

/// How long a waiter polls under [`Spin::Adaptive`] (zero: sleep at once).
pub(crate) fn adaptive(c: Conditions) -> Duration {
    let fast_disk = c.last_sync <= ADAPTIVE_SPIN;
    let oversubscribed = c.waiters.saturating_add(1) > c.cores as usize;
    let room = c.spinners < max_spinners(c.cores);
    if fast_disk && oversubscribed && room && c.trial {
        ADAPTIVE_SPIN
    } else {
        Duration::ZERO
    }
}

/// How long to poll under a [`Spin::Fixed`] window: the window, unless the last sync took
/// longer (then a waiter would burn CPU for nothing, and a sleep costs little next to it).
pub(crate) fn fixed(configured: Duration, last_sync: Duration) -> Duration {
    if last_sync > configured {
        Duration::ZERO
    } else {
        configured
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: fn(u64) -> Duration = Duration::from_micros;

    /// 16 writers on the 2-core VM, fast fsync, nobody polling, good score.
    fn busy_small_vm() -> Conditions {
        Conditions {
            last_sync: US(90),
            waiters: 15,
            spinners: 0,
            cores: 2,
            trial: true,
        }
    }

    #[test]
    fn polls_where_threads_outnumber_cores_and_syncs_are_fast() {
        assert_eq!(adaptive(busy_small_vm()), ADAPTIVE_SPIN);
        // 4 writers on 2 cores: 3 waiters + the leader.
        let c = Conditions {
            waiters: 3,
            ..busy_small_vm()
        };
        assert_eq!(adaptive(c), ADAPTIVE_SPIN);
    }

    #[test]
    fn sleeps_when_every_thread_has_a_core() {
        // 16 writers on 16 cores: 15 waiters + the leader fit.
        let c = Conditions {
            cores: 16,
            ..busy_small_vm()
        };
        assert_eq!(adaptive(c), Duration::ZERO);
        // 2 writers on 2 cores.
        let c = Conditions {
            waiters: 1,
            ..busy_small_vm()
        };
        assert_eq!(adaptive(c), Duration::ZERO);
    }

    #[test]
    fn sleeps_when_syncs_are_slow() {
        let c = Conditions {
            last_sync: US(4000),
            ..busy_small_vm()
        };
        assert_eq!(adaptive(c), Duration::ZERO);
    }

    #[test]
    fn bounds_polling_to_two_cpus() {
        // On 1 or 2 CPUs every waiter may poll: yielding pollers cannot occupy more than that.
        assert_eq!(max_spinners(1), u32::MAX);
        assert_eq!(max_spinners(2), u32::MAX);
        assert_eq!(max_spinners(3), 2);
        assert_eq!(max_spinners(16), 2);
        assert_eq!(max_spinners(64), 2);
        let c = Conditions {
            spinners: 14,
            ..busy_small_vm()
        };
        assert_eq!(adaptive(c), ADAPTIVE_SPIN);
        // 64 writers on 16 cores: two may poll, not three.
        let many = Conditions {
            waiters: 63,
            cores: 16,
            spinners: 1,
            ..busy_small_vm()
        };
        assert_eq!(adaptive(many), ADAPTIVE_SPIN);
        let full = Conditions {
            spinners: 2,
            ..many
        };
        assert_eq!(adaptive(full), Duration::ZERO);
    }

    #[test]
    fn sleeps_while_the_trial_says_polling_does_not_make_commits_faster() {
        let c = Conditions {
            trial: false,
            ..busy_small_vm()
        };
        assert_eq!(adaptive(c), Duration::ZERO);
    }

    /// Runs one epoch of `EPOCH_SYNCS` commits of `per_sync` records each over `len`.
    fn epoch(t: &mut Trial, now: &mut Duration, per_sync: u64, len: Duration) {
        for _ in 0..EPOCH_SYNCS {
            *now += len / EPOCH_SYNCS;
            t.on_sync(per_sync, *now);
        }
    }

    /// Runs the epochs until the next trial starts (polling off, first epoch).
    fn until_trial(t: &mut Trial, now: &mut Duration) -> u32 {
        let mut kept = 0;
        while let Phase::Keep { .. } = t.phase {
            epoch(t, now, 16, Duration::from_millis(20));
            kept += 1;
        }
        kept
    }

    /// One trial, its epochs this long when sleeping and when polling (16 records per
    /// sync): the current verdict in the first and the last epoch, the other way in between.
    fn trial(t: &mut Trial, now: &mut Duration, sleeping: Duration, polling: Duration) {
        let incumbent = t.allows_spin();
        let len = |spin: bool| if spin { polling } else { sleeping };
        epoch(t, now, 16, len(incumbent));
        assert_eq!(t.allows_spin(), !incumbent);
        epoch(t, now, 16, len(!incumbent));
        assert_eq!(t.allows_spin(), incumbent);
        epoch(t, now, 16, len(incumbent));
    }

    #[test]
    fn the_trial_keeps_polling_only_where_it_makes_commits_faster() {
        let ms = Duration::from_millis;
        let mut now = Duration::ZERO;
        let mut t = Trial::new(now);
        // A log starts out sleeping, in its first trial.
        assert!(!t.allows_spin());
        assert_eq!(until_trial(&mut t, &mut now), 0);
        // Polling 20% faster: kept for a few epochs, then tried again.
        trial(&mut t, &mut now, ms(20), ms(16));
        assert!(t.allows_spin());
        assert_eq!(until_trial(&mut t, &mut now), KEEP_EPOCHS + 1);
        // The same verdict again: kept twice as long each time, up to a bound.
        for keep in [
            2 * KEEP_EPOCHS,
            4 * KEEP_EPOCHS,
            MAX_KEEP_EPOCHS,
            MAX_KEEP_EPOCHS,
        ] {
            trial(&mut t, &mut now, ms(20), ms(16));
            assert!(t.allows_spin());
            assert_eq!(until_trial(&mut t, &mut now), keep + 1);
        }
        // Only 5% faster: not worth its CPU. A new verdict starts from the shortest keep.
        trial(&mut t, &mut now, ms(20), ms(19));
        assert!(!t.allows_spin());
        assert_eq!(until_trial(&mut t, &mut now), KEEP_EPOCHS + 1);
        // Slower (it steals the leader's CPU): loses, and is kept twice as long.
        trial(&mut t, &mut now, ms(20), ms(45));
        assert!(!t.allows_spin());
        assert_eq!(until_trial(&mut t, &mut now), 2 * KEEP_EPOCHS + 1);
        // A load that speeds up by itself (a log warming up) credits neither way: the middle
        // epoch is compared with the mean of the two around it. Sleeping (the incumbent) at
        // 30 then 15 ms, polling at 20 ms in between: no gain, sleeping stays.
        let at = |t: &mut Trial, now: &mut Duration, lens: [u64; 3]| {
            for len in lens {
                epoch(t, now, 16, ms(len));
            }
        };
        at(&mut t, &mut now, [30, 20, 15]);
        assert!(!t.allows_spin());
        // Polling (the incumbent) at 30 then 15 ms, sleeping at 20 ms in between: polling
        // does not beat sleeping by the margin, so the log sleeps.
        until_trial(&mut t, &mut now);
        trial(&mut t, &mut now, ms(20), ms(16));
        assert!(t.allows_spin());
        until_trial(&mut t, &mut now);
        at(&mut t, &mut now, [30, 20, 15]);
        assert!(!t.allows_spin());
    }

    #[test]
    fn where_polling_pays_a_trial_sleeps_through_one_epoch() {
        // A steady load whose group commits are 1.5x as fast with polling: of its first 58
        // epochs, two sleep in the first trial (the incumbent, sleeping, around the polling
        // epoch) and one in each trial after (the polling incumbent around a sleeping epoch).
        // Trials that always slept around polling, after two epochs of sleeping first, slept
        // through 6 of them.
        let mut now = Duration::ZERO;
        let mut t = Trial::new(now);
        let mut slept = 0;
        for _ in 0..58 {
            let spin = t.allows_spin();
            slept += u32::from(!spin);
            let len = Duration::from_millis(if spin { 16 } else { 24 });
            epoch(&mut t, &mut now, 16, len);
        }
        assert_eq!(slept, 4);
        assert!(t.allows_spin());
    }

    #[test]
    fn a_fixed_window_polls_only_while_syncs_fit_in_it() {
        assert_eq!(fixed(US(200), US(90)), US(200));
        assert_eq!(fixed(US(200), Duration::ZERO), US(200));
        assert_eq!(fixed(US(200), US(4000)), Duration::ZERO);
        assert_eq!(fixed(Duration::ZERO, US(90)), Duration::ZERO);
    }
}
