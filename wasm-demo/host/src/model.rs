//! The reference model: which records the guest promised, and the checks every recovery must
//! pass (durability, dense prefix, no phantoms, a state that matches the log).

use std::collections::BTreeMap;

use crate::protocol::{Line, Op, state_digest};

/// What the host knows about the log across runs.
#[derive(Debug, Default)]
pub(crate) struct Model {
    /// Records known to be in the log, `log[i]` at LSN `i + 1`: everything acknowledged plus
    /// everything a recovery has already shown (once recovered, a record is part of the log).
    log: Vec<Op>,
    /// Highest acknowledged LSN.
    acked: u64,
    /// Appends started but not acknowledged: each may or may not survive the crash.
    in_flight: BTreeMap<u64, Op>,
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
    /// Records known to be in the log.
    pub(crate) fn len(&self) -> u64 {
        self.log.len() as u64
    }

    /// Highest acknowledged LSN.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Checks one run's output: first its recovered dump against the model, then what it
    /// appended and acknowledged, which the model adopts.
    pub(crate) fn check_run(&mut self, lines: &[Line]) -> RunCheck {
        let mut check = RunCheck::default();
        let split = lines
            .iter()
            .position(|l| matches!(l, Line::State { .. }))
            .map_or(lines.len(), |i| i + 1);
        let (dump, work) = lines.split_at(split);
        self.check_dump(dump, &mut check);
        self.absorb_work(work, &mut check);
        check
    }

    fn check_dump(&mut self, dump: &[Line], check: &mut RunCheck) {
        let mut state = BTreeMap::new();
        let mut recovered = Vec::new();
        let mut next = 1u64;
        for line in dump {
            match line {
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
                        if known != op {
                            check.violations.push(format!(
                                "LSN {lsn}: recovered `{op}` but the log holds `{known}`{}",
                                if *lsn <= self.acked {
                                    " (acknowledged)"
                                } else {
                                    ""
                                }
                            ));
                        }
                    } else if self.in_flight.get(lsn) == Some(op) {
                        // An unacknowledged append that survived: it joins the log.
                        self.log.push(op.clone());
                    } else {
                        check.violations.push(format!(
                            "LSN {lsn}: phantom record `{op}` that was never appended"
                        ));
                    }
                    match op {
                        Op::Put { key, hash } => {
                            state.insert(key.clone(), *hash);
                        }
                        Op::Del { key } => {
                            state.remove(key);
                        }
                    }
                }
                Line::State { keys, digest } => {
                    check.dump_complete = true;
                    if check.recovered < self.len() {
                        check.violations.push(format!(
                            "recovered {} records but {} are known ({} acknowledged): lost records",
                            check.recovered,
                            self.len(),
                            self.acked
                        ));
                    }
                    if *keys != state.len() as u64 || *digest != state_digest(&state) {
                        check.violations.push(format!(
                            "rebuilt state ({keys} keys, digest {digest:016x}) does not match \
                             the recovered log ({} keys, digest {:016x})",
                            state.len(),
                            state_digest(&state)
                        ));
                    }
                }
                _ => {}
            }
        }
        if check.dump_complete {
            // Whatever did not come back is gone for good; its LSN will be reused.
            self.in_flight.clear();
            if !check.violations.is_empty() {
                // Report each failure once: from here on, check against what is really there.
                self.log = recovered;
                self.acked = self.acked.min(self.len());
            }
        }
    }

    fn absorb_work(&mut self, work: &[Line], check: &mut RunCheck) {
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
                        self.log.push(op);
                        check.acked += 1;
                    }
                    self.acked = self.acked.max(*lsn);
                }
                Line::Rec(..) | Line::State { .. } | Line::Recovery(_) => {
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
        model.check_run(&parse(out).unwrap()).violations
    }

    const EMPTY: &str = "STATE 0 cbf29ce484222325\n";

    #[test]
    fn accepts_acknowledged_records_coming_back() {
        let mut m = Model::default();
        let first = format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\nINTENT 2 del a\n");
        assert!(run(&mut m, &first).is_empty());
        let digest = state_digest(&BTreeMap::from([("a".to_owned(), 1)]));
        let second = format!("REC 1 put a 0000000000000001\nSTATE 1 {digest:016x}\n");
        assert_eq!(
            run(&mut m, &second),
            Vec::<String>::new(),
            "in-flight del may vanish"
        );
    }

    #[test]
    fn flags_lost_acknowledged_record() {
        let mut m = Model::default();
        run(
            &mut m,
            &format!("{EMPTY}INTENT 1 put a 01\nACK 1 put a 01\n"),
        );
        let v = run(&mut m, EMPTY);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("lost"));
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
}
