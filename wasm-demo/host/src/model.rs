//! The reference model: which records the guest promised, and the checks every recovery must
//! pass (durability, dense prefix, no phantoms, retention, a state that matches the history).

use std::collections::BTreeMap;

use crate::protocol::{Line, Op, field, state_digest};

/// A record known to be in the log.
#[derive(Clone, Debug)]
struct Known {
    op: Op,
    /// The run whose `ACK` covered it (`None`: an unacknowledged append a recovery showed).
    acked_in: Option<u64>,
}

/// What the host knows about the log across runs.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Every record known to have been in the log, `log[i]` at LSN `i + 1`: everything
    /// acknowledged plus everything a recovery has shown (once recovered, a record is part of
    /// the log). Records below the log's first LSN stay here: the state is checked against the
    /// whole history.
    log: Vec<Known>,
    /// Highest acknowledged LSN.
    acked: u64,
    /// Appends started but not acknowledged: each may or may not survive the crash.
    in_flight: BTreeMap<u64, Op>,
    /// The lowest LSN the log may start at: segments below it were removed for good.
    first_min: u64,
    /// The highest LSN the log may start at: a `truncate_front` in progress may have removed
    /// the segments below it.
    first_max: u64,
    /// The key-value state after the first `.0` records of `log`.
    state: (usize, BTreeMap<String, u64>),
}

/// What one run's output showed.
#[derive(Debug, Default)]
pub(crate) struct RunCheck {
    pub(crate) violations: Vec<String>,
    /// Records in this run's recovered dump.
    pub(crate) recovered: u64,
    /// Whether the dump ran to its `STATE` line.
    pub(crate) dump_complete: bool,
    /// Records acknowledged in this run.
    pub(crate) acked: u64,
}

impl Model {
    /// Records known to be in the log's history.
    pub(crate) fn len(&self) -> u64 {
        self.log.len() as u64
    }

    /// Highest acknowledged LSN.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Checks the output of run `run`: first its recovered dump against the model, then what
    /// it appended, acknowledged and retained, which the model adopts.
    pub(crate) fn check_run(&mut self, run: u64, lines: &[Line]) -> RunCheck {
        let mut check = RunCheck::default();
        let split = lines
            .iter()
            .position(|l| matches!(l, Line::State { .. }))
            .map_or(lines.len(), |i| i + 1);
        let (dump, work) = lines.split_at(split);
        self.check_dump(dump, &mut check);
        self.absorb_work(run, work, &mut check);
        check
    }

    /// `LSN n `op`` with where it was acknowledged, for messages.
    fn describe(&self, lsn: u64) -> String {
        match self.log.get(lsn.saturating_sub(1) as usize) {
            Some(Known {
                op,
                acked_in: Some(run),
            }) => format!("LSN {lsn} `{op}` (acknowledged in run {run})"),
            Some(Known { op, acked_in: None }) => {
                format!("LSN {lsn} `{op}` (recovered in an earlier run)")
            }
            None => format!("LSN {lsn}"),
        }
    }

    fn check_dump(&mut self, dump: &[Line], check: &mut RunCheck) {
        let mut recovered = Vec::new();
        let reported_first = dump.iter().find_map(|l| match l {
            Line::Recovery(pairs) => field(pairs, "first_lsn").and_then(|v| v.parse().ok()),
            _ => None,
        });
        let first_rec = dump.iter().find_map(|l| match l {
            Line::Rec(lsn, _) => Some(*lsn),
            _ => None,
        });
        let start = first_rec.or(reported_first).unwrap_or(1).max(1);
        if let (Some(rec), Some(reported)) = (first_rec, reported_first)
            && rec != reported
        {
            check.violations.push(format!(
                "the first record read back is LSN {rec} but recovery reported the log starts \
                 at LSN {reported}"
            ));
        }
        let mut next = start;
        for line in dump {
            match line {
                Line::OpenFailed(pairs) => {
                    let get = |key| field(pairs, key).unwrap_or("?");
                    let at = match field(pairs, "lsn").and_then(|v| v.parse::<u64>().ok()) {
                        Some(lsn) if lsn > 0 => format!(", at {}", self.describe(lsn)),
                        _ => String::new(),
                    };
                    check.violations.push(format!(
                        "recovery failed: {} in segment {} at offset {}{at}; the log holds {} \
                         acknowledged records, the last is {}",
                        get("case"),
                        get("segment"),
                        get("offset"),
                        self.acked,
                        self.describe(self.acked)
                    ));
                }
                Line::Rec(lsn, op) => {
                    check.recovered += 1;
                    if *lsn != next {
                        check.violations.push(format!(
                            "recovered LSN {lsn} where {next} was due (gap or reorder)"
                        ));
                        return;
                    }
                    next += 1;
                    recovered.push(op.clone());
                    let index = usize::try_from(lsn - 1).unwrap_or(usize::MAX);
                    if let Some(known) = self.log.get(index) {
                        if known.op != *op {
                            check
                                .violations
                                .push(format!("recovered `{op}` at {}", self.describe(*lsn)));
                        }
                    } else if self.in_flight.get(lsn) == Some(op) {
                        // An unacknowledged append that survived: it joins the log.
                        self.log.push(Known {
                            op: op.clone(),
                            acked_in: None,
                        });
                    } else {
                        check.violations.push(format!(
                            "LSN {lsn}: phantom record `{op}` that was never appended"
                        ));
                    }
                }
                Line::State { keys, digest } => {
                    check.dump_complete = true;
                    self.check_ends(start, next - 1, check);
                    let expected = self.state_at(next - 1);
                    if *keys != expected.len() as u64 || *digest != state_digest(expected) {
                        check.violations.push(format!(
                            "rebuilt state ({keys} keys, digest {digest:016x}) does not match \
                             the history up to LSN {} ({} keys, digest {:016x})",
                            next - 1,
                            expected.len(),
                            state_digest(expected)
                        ));
                    }
                }
                _ => {}
            }
        }
        if check.dump_complete {
            // Whatever did not come back is gone for good; its LSN will be reused.
            self.in_flight.clear();
            self.first_min = start;
            self.first_max = start;
            if !check.violations.is_empty() {
                // Report each failure once: from here on, check against what is really there.
                self.log.truncate(start as usize - 1);
                self.log
                    .extend(recovered.into_iter().map(|op| Known { op, acked_in: None }));
                self.acked = self.acked.min(self.len());
                self.state = (0, BTreeMap::new());
            }
        }
    }

    /// Checks where the recovered log starts and ends (`last` is `start - 1` if empty).
    fn check_ends(&self, start: u64, last: u64, check: &mut RunCheck) {
        let (first_min, first_max) = (self.first_min.max(1), self.first_max.max(1));
        if start < first_min {
            check.violations.push(format!(
                "the log starts at LSN {start}, but retention had removed everything below \
                 LSN {first_min} for good: a removed segment came back"
            ));
        }
        if start > first_max {
            check.violations.push(format!(
                "the log starts at LSN {start}, but nothing from LSN {first_max} on was \
                 retired: lost records from {}",
                self.describe(first_max)
            ));
        }
        if last < self.len() {
            check.violations.push(format!(
                "lost records: the log ends at LSN {last}, {} known ({} acknowledged); the \
                 first lost is {}",
                self.len(),
                self.acked,
                self.describe(last + 1)
            ));
        }
    }

    /// The key-value state after the records up to `lsn` (cached: the log mostly grows).
    fn state_at(&mut self, lsn: u64) -> &BTreeMap<String, u64> {
        let upto = (lsn as usize).min(self.log.len());
        if upto < self.state.0 {
            self.state = (0, BTreeMap::new());
        }
        let (done, state) = &mut self.state;
        for known in &self.log[*done..upto] {
            match &known.op {
                Op::Put { key, hash } => {
                    state.insert(key.clone(), *hash);
                }
                Op::Del { key } => {
                    state.remove(key);
                }
            }
        }
        *done = upto;
        &self.state.1
    }

    fn absorb_work(&mut self, run: u64, work: &[Line], check: &mut RunCheck) {
        for line in work {
            match line {
                Line::Intent(lsn, op) => {
                    let due = self.len() + self.in_flight.len() as u64 + 1;
                    if *lsn != due {
                        check
                            .violations
                            .push(format!("append got LSN {lsn} where {due} was due"));
                    }
                    self.in_flight.insert(*lsn, op.clone());
                }
                Line::Ack(lsn, op) => {
                    if self.in_flight.get(lsn) != Some(op) {
                        check.violations.push(format!(
                            "acknowledged LSN {lsn} `{op}` that was not appended"
                        ));
                        continue;
                    }
                    // A durable LSN makes every earlier record durable too.
                    let later = self.in_flight.split_off(&(lsn + 1));
                    for (_, op) in core::mem::replace(&mut self.in_flight, later) {
                        self.log.push(Known {
                            op,
                            acked_in: Some(run),
                        });
                        check.acked += 1;
                    }
                    self.acked = self.acked.max(*lsn);
                }
                Line::Retain(lsn) => self.first_max = self.first_max.max(*lsn),
                Line::Retained { lsn, first } => {
                    if first > lsn || *first < self.first_min {
                        check.violations.push(format!(
                            "truncate_front({lsn}) left the log starting at LSN {first}"
                        ));
                    }
                    self.first_min = *first;
                    self.first_max = *first;
                }
                Line::Rec(..) | Line::State { .. } | Line::Recovery(_) | Line::OpenFailed(_) => {
                    check
                        .violations
                        .push(format!("recovery output after the dump: {line:?}"));
                }
                Line::Done(_) | Line::Bench(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::parse;

    fn run(model: &mut Model, out: &str) -> Vec<String> {
        model.check_run(0, &parse(out).unwrap()).violations
    }

    const EMPTY: &str = "STATE 0 cbf29ce484222325\n";

    fn state_line(pairs: &[(&str, u64)]) -> String {
        let state: BTreeMap<String, u64> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        format!("STATE {} {:016x}\n", state.len(), state_digest(&state))
    }

    #[test]
    fn accepts_acknowledged_records_coming_back() {
        let mut m = Model::default();
        let first = format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\nINTENT 2 del a\n");
        assert!(run(&mut m, &first).is_empty());
        let second = format!("REC 1 put a 0000000000000001\n{}", state_line(&[("a", 1)]));
        assert_eq!(
            run(&mut m, &second),
            Vec::<String>::new(),
            "in-flight del may vanish"
        );
    }

    #[test]
    fn group_acknowledgements_cover_earlier_records() {
        let mut m = Model::default();
        let out = format!(
            "{EMPTY}INTENT 1 put a 01\nINTENT 2 put b 02\nACK 1 put a 01\nACK 2 put b 02\n"
        );
        assert!(run(&mut m, &out).is_empty());
        assert_eq!((m.len(), m.acked()), (2, 2));
    }

    #[test]
    fn flags_lost_acknowledged_record() {
        let mut m = Model::default();
        run(
            &mut m,
            &format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\n"),
        );
        let v = run(&mut m, EMPTY);
        assert!(v.iter().any(|v| v.contains("lost")), "{v:?}");
        assert!(v.iter().any(|v| v.contains("LSN 1 `put a")), "{v:?}");
    }

    #[test]
    fn flags_phantom_and_changed_records() {
        let mut m = Model::default();
        run(
            &mut m,
            &format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\n"),
        );
        let v = run(&mut m, "REC 1 put a 02\nREC 2 del b\n");
        assert_eq!(v.len(), 2, "{v:?}");
    }

    /// Records below a retention point may go, and only while (or after) it is retired; the
    /// state is the whole history's.
    #[test]
    fn retention_may_drop_only_what_it_retires() {
        let work = format!(
            "{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\nINTENT 2 put a 02\nACK 2 put a 02\n\
             RETAIN 2\n"
        );
        let dropped = format!(
            "RECOVERY first_lsn=2\nREC 2 put a 0000000000000002\n{}",
            state_line(&[("a", 2)])
        );
        let mut m = Model::default();
        assert!(run(&mut m, &work).is_empty());
        assert_eq!(run(&mut m, &dropped), Vec::<String>::new());

        // Without the RETAIN line, the same dump lost LSN 1.
        let mut m = Model::default();
        run(&mut m, &work.replace("RETAIN 2\n", ""));
        let v = run(&mut m, &dropped);
        assert!(
            v.iter().any(|v| v.contains("lost records from LSN 1")),
            "{v:?}"
        );

        // Once retired for good, the record must not come back.
        let mut m = Model::default();
        run(&mut m, &format!("{work}RETAINED 2 removed=1 first=2\n"));
        let back = format!(
            "RECOVERY first_lsn=1\nREC 1 put a 0000000000000001\nREC 2 put a 0000000000000002\n{}",
            state_line(&[("a", 2)])
        );
        let v = run(&mut m, &back);
        assert!(v.iter().any(|v| v.contains("came back")), "{v:?}");
    }

    /// An in-flight record that a recovery cut, and whose LSN was reused, must never come
    /// back: neither while the new record at that LSN is in flight nor once it is acknowledged.
    #[test]
    fn a_cut_in_flight_record_that_comes_back_is_flagged() {
        let first = format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\nINTENT 2 put b 02\n");
        let cut = format!("REC 1 put a 0000000000000001\n{}", state_line(&[("a", 1)]));
        let back = format!(
            "REC 1 put a 0000000000000001\nREC 2 put b 0000000000000002\n{}",
            state_line(&[("a", 1), ("b", 2)])
        );

        let mut m = Model::default();
        assert!(run(&mut m, &first).is_empty());
        assert!(run(&mut m, &format!("{cut}INTENT 2 del a\n")).is_empty());
        let v = run(&mut m, &back);
        assert!(v.iter().any(|v| v.contains("phantom")), "{v:?}");

        let mut m = Model::default();
        assert!(run(&mut m, &first).is_empty());
        assert!(run(&mut m, &format!("{cut}INTENT 2 del a\nACK 2 del a\n")).is_empty());
        let v = run(&mut m, &back);
        assert!(
            v.iter()
                .any(|v| v.contains("recovered `put b") && v.contains("LSN 2 `del a`")),
            "{v:?}"
        );
    }

    /// A refused log is a violation naming the record recovery stopped at.
    #[test]
    fn a_failed_recovery_names_the_record() {
        let mut m = Model::default();
        run(
            &mut m,
            &format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\n"),
        );
        let v = run(
            &mut m,
            "OPENFAILED case=MissingNewestSegment segment=2 offset=40 lsn=1\n",
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("MissingNewestSegment in segment 2"), "{v:?}");
        assert!(v[0].contains("at LSN 1 `put a"), "{v:?}");
    }

    /// The state after a retained log must match the whole history, not just what is left.
    #[test]
    fn state_is_checked_against_the_whole_history() {
        let mut m = Model::default();
        let work = format!(
            "{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\nINTENT 2 put b 02\nACK 2 put b 02\n\
             RETAIN 2\nRETAINED 2 removed=1 first=2\n"
        );
        run(&mut m, &work);
        let partial = format!(
            "RECOVERY first_lsn=2\nREC 2 put b 0000000000000002\n{}",
            state_line(&[("b", 2)])
        );
        let v = run(&mut m, &partial);
        assert!(v.iter().any(|v| v.contains("rebuilt state")), "{v:?}");
    }
}
