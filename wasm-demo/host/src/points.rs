//! Crash points: the places where the host cuts the power, besides a fuel trap.
//!
//! A fuel trap lands on an arbitrary instruction, which is almost never where durability is
//! decided. The host sees every call that decides it (it shadows them, see `hooks.rs`), so it
//! can cut the power right there: just before a file's sync, when the whole unsynced change is
//! at stake; just after it; right after a file is created, removed or truncated, while the
//! directory (or the file's size) is not yet durable; just before and after a directory sync.
//! Every shadowed call passes its point to a [`Cutter`], which counts the points of each
//! [`Phase`] and raises [`PowerCut`] at the one the crash loop chose.

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

/// A place in a shadowed WASI call where the power can be cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Point {
    /// In `sync-data`/`sync` of a file, before it is synced: its whole unsynced change is lost,
    /// kept, cut, zeroed or torn.
    BeforeSync,
    /// In `sync-data`/`sync` of a file, just after it is synced.
    AfterSync,
    /// Right after `open-at` created a file, or `create-directory-at` a directory: the new
    /// name is not durable yet.
    AfterCreate,
    /// Right after `unlink-file-at`: the file may come back.
    AfterRemove,
    /// Right after `set-size`: the truncate may be undone.
    AfterTruncate,
    /// In `sync` of the directory, before it is synced.
    BeforeDirSync,
    /// In `sync` of the directory, just after it is synced.
    AfterDirSync,
}

impl Point {
    /// Every point, in a fixed order (indexes [`Events`]).
    pub(crate) const ALL: [Self; 7] = [
        Self::BeforeSync,
        Self::AfterSync,
        Self::AfterCreate,
        Self::AfterRemove,
        Self::AfterTruncate,
        Self::BeforeDirSync,
        Self::AfterDirSync,
    ];

    /// Its name in reports.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::BeforeSync => "before a file sync",
            Self::AfterSync => "after a file sync",
            Self::AfterCreate => "after a create",
            Self::AfterRemove => "after a remove",
            Self::AfterTruncate => "after a truncate",
            Self::BeforeDirSync => "before a directory sync",
            Self::AfterDirSync => "after a directory sync",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// Which part of a run the guest is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Phase {
    /// Opening the log: recovery, with its own repairs (cutting a torn tail, rewriting a
    /// header, the final syncs). It ends when the guest prints its first line.
    Recovery,
    /// The key-value workload after recovery.
    Workload,
}

impl Phase {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Recovery => "recovery",
            Self::Workload => "workload",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// How many times each point was passed in each phase of one run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Events([[u64; Point::ALL.len()]; 2]);

impl Events {
    pub(crate) fn get(&self, phase: Phase, point: Point) -> u64 {
        self.0[phase.index()][point.index()]
    }

    /// Points of any kind passed in `phase`.
    pub(crate) fn in_phase(&self, phase: Phase) -> u64 {
        self.0[phase.index()].iter().sum()
    }

    /// Each count the larger of the two.
    pub(crate) fn max(&self, other: &Self) -> Self {
        let mut out = *self;
        for (row, other) in out.0.iter_mut().zip(&other.0) {
            for (n, m) in row.iter_mut().zip(other) {
                *n = (*n).max(*m);
            }
        }
        out
    }

    fn bump(&mut self, phase: Phase, point: Point) {
        self.0[phase.index()][point.index()] += 1;
    }
}

/// Where a run's power is to be cut: the `index`-th passage (from 0) of `point` in `phase`,
/// or of any point if `point` is `None`. A recovery target that recovery ends before reaching
/// is hit at the first point after recovery instead, so such a run still crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) phase: Phase,
    pub(crate) point: Option<Point>,
    pub(crate) index: u64,
}

/// Where the power was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cut {
    pub(crate) phase: Phase,
    pub(crate) point: Point,
    /// Passages of this point in this phase before this one.
    pub(crate) index: u64,
    /// The file the call was about (empty for a directory sync).
    pub(crate) file: String,
}

impl core::fmt::Display for Cut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} #{} in {}",
            self.point.name(),
            self.index + 1,
            self.phase.name()
        )?;
        if !self.file.is_empty() {
            write!(f, " ({})", self.file)?;
        }
        Ok(())
    }
}

/// The error a shadowed call returns to trap the guest: the simulated power cut.
#[derive(Debug)]
pub(crate) struct PowerCut;

impl core::fmt::Display for PowerCut {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("power cut by the host at a crash point")
    }
}

impl core::error::Error for PowerCut {}

/// Counts the points a run passes and cuts the power at its target.
pub(crate) struct Cutter {
    target: Option<Target>,
    events: Events,
    cut: Option<Cut>,
    /// Set once the guest printed anything: recovery is over.
    recovered: bool,
    stdout: MemoryOutputPipe,
}

impl Cutter {
    /// A cutter for one run whose stdout is `stdout`.
    pub(crate) fn new(target: Option<Target>, stdout: MemoryOutputPipe) -> Self {
        Self {
            target,
            events: Events::default(),
            cut: None,
            recovered: false,
            stdout,
        }
    }

    /// The phase the guest is in. The guest prints nothing before `Wal::open` returns, so an
    /// empty stdout means recovery (a copy of an empty buffer costs nothing; once non-empty it
    /// is never looked at again).
    fn phase(&mut self) -> Phase {
        if !self.recovered {
            self.recovered = !self.stdout.contents().is_empty();
        }
        if self.recovered {
            Phase::Workload
        } else {
            Phase::Recovery
        }
    }

    /// Called by a shadowed call at `point` (about `file`): counts it, and returns
    /// [`PowerCut`] if the power goes here.
    pub(crate) fn pass(&mut self, point: Point, file: &str) -> wasmtime::Result<()> {
        let phase = self.phase();
        let index = self.events.get(phase, point);
        if let Some(target) = self.target {
            let matching = match target.point {
                Some(p) => (p == point).then_some(index),
                None => Some(self.events.in_phase(phase)),
            };
            let here = target.phase == phase && matching == Some(target.index);
            let recovery_ended = target.phase == Phase::Recovery && phase == Phase::Workload;
            if here || recovery_ended {
                self.events.bump(phase, point);
                self.target = None;
                self.cut = Some(Cut {
                    phase,
                    point,
                    index,
                    file: file.to_owned(),
                });
                return Err(PowerCut.into());
            }
        }
        self.events.bump(phase, point);
        Ok(())
    }

    /// The points passed, and where the power was cut if it was.
    pub(crate) fn finish(self) -> (Events, Option<Cut>) {
        (self.events, self.cut)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Cutter {
        /// As if the guest had printed its first line.
        fn end_recovery(&mut self) {
            self.recovered = true;
        }
    }

    fn cutter(target: Target) -> Cutter {
        Cutter::new(Some(target), MemoryOutputPipe::new(64))
    }

    /// The power goes at the chosen passage of the chosen point, in the chosen phase only.
    #[test]
    fn cuts_at_the_chosen_passage() {
        let mut c = cutter(Target {
            phase: Phase::Workload,
            point: Some(Point::BeforeSync),
            index: 1,
        });
        assert!(c.pass(Point::BeforeSync, "a").is_ok(), "recovery's sync");
        c.end_recovery();
        assert!(c.pass(Point::BeforeSync, "a").is_ok());
        assert!(c.pass(Point::AfterSync, "a").is_ok());
        let cut = c.pass(Point::BeforeSync, "b").unwrap_err();
        assert!(cut.downcast_ref::<PowerCut>().is_some());
        assert!(c.pass(Point::BeforeSync, "b").is_ok(), "only once");
        let (events, cut) = c.finish();
        let cut = cut.expect("a cut");
        assert_eq!(
            (cut.phase, cut.point, cut.index, cut.file.as_str()),
            (Phase::Workload, Point::BeforeSync, 1, "b")
        );
        assert_eq!(events.get(Phase::Recovery, Point::BeforeSync), 1);
        assert_eq!(events.get(Phase::Workload, Point::BeforeSync), 3);
        assert_eq!(events.in_phase(Phase::Workload), 4);
    }

    /// A recovery target beyond recovery's last point cuts at the first point after it.
    #[test]
    fn a_recovery_target_past_its_end_cuts_right_after_it() {
        let mut c = cutter(Target {
            phase: Phase::Recovery,
            point: None,
            index: 5,
        });
        assert!(c.pass(Point::AfterTruncate, "a").is_ok());
        assert!(c.pass(Point::BeforeSync, "a").is_ok());
        c.end_recovery();
        assert!(c.pass(Point::AfterCreate, "b").is_err());
        let cut = c.finish().1.expect("a cut");
        assert_eq!(
            (cut.phase, cut.point),
            (Phase::Workload, Point::AfterCreate)
        );
    }

    /// Without a target nothing is cut, and every passage is counted.
    #[test]
    fn no_target_no_cut() {
        let mut c = Cutter::new(None, MemoryOutputPipe::new(64));
        for point in Point::ALL {
            assert!(c.pass(point, "").is_ok());
        }
        let (events, cut) = c.finish();
        assert!(cut.is_none());
        assert_eq!(events.in_phase(Phase::Recovery), Point::ALL.len() as u64);
    }
}
