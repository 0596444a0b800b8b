//! The reference model: what the log must hold after a crash, given what the workload was told.

use walden_core::Lsn;

/// One record the workload appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRecord {
    /// Its LSN.
    pub lsn: Lsn,
    /// Its payload.
    pub payload: Vec<u8>,
    /// `true` for a single record or the last record of a batch: a crash may cut the log here.
    pub batch_end: bool,
    /// `true` for a single record or the first record of a batch.
    pub batch_start: bool,
    /// The highest LSN this record proves durable (its `ack_gap`, as the model predicts it).
    pub proves_durable: Lsn,
}

/// What the workload was told, and therefore what every recovery must produce.
///
/// The recovered log must be a dense run `f..=l` of [`Model::records`] where `f` lies in
/// `first_min..=first_max` (front truncation may or may not have happened), `l ≥ acked`, and
/// `l` ends a batch. Records above `acked` are in flight: they may be recovered, as a prefix.
#[derive(Clone, Debug)]
pub struct Model {
    /// Every record the log may hold, in LSN order: acknowledged ones and in-flight ones.
    pub records: Vec<ModelRecord>,
    /// Every record up to this LSN was acknowledged durable.
    pub acked: Lsn,
    /// The lowest first LSN a recovery may report.
    pub first_min: Lsn,
    /// The highest first LSN a recovery may report.
    pub first_max: Lsn,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            acked: Lsn::ZERO,
            first_min: Lsn(1),
            first_max: Lsn(1),
        }
    }
}

impl Model {
    /// The model of a log that holds exactly `records` (all LSN-dense from `first`), all of
    /// them durable: what a completed recovery promises.
    pub fn recovered(first: Lsn, records: &[(Lsn, Vec<u8>)]) -> Self {
        let last = records.last().map_or(first.prev(), |r| r.0);
        Self {
            records: records
                .iter()
                .map(|(lsn, payload)| ModelRecord {
                    lsn: *lsn,
                    payload: payload.clone(),
                    batch_end: true,
                    batch_start: true,
                    proves_durable: Lsn::ZERO,
                })
                .collect(),
            acked: last,
            first_min: first,
            first_max: first,
        }
    }

    /// The LSN of the last record appended (`first_min − 1` when empty).
    pub fn last(&self) -> Lsn {
        self.records
            .last()
            .map_or(self.first_min.prev(), |record| record.lsn)
    }

    /// The LSN the next append gets.
    pub fn next_lsn(&self) -> Lsn {
        self.last().next()
    }

    /// The record with this LSN, if the model has one.
    pub fn get(&self, lsn: Lsn) -> Option<&ModelRecord> {
        let first = self.records.first()?.lsn;
        let index = usize::try_from(lsn.0.checked_sub(first.0)?).ok()?;
        self.records.get(index)
    }

    /// Records a batch (one payload for `append`) about to be written while `durable` is the
    /// log's durable LSN. They are in flight until acknowledged.
    pub fn begin_append(&mut self, payloads: &[Vec<u8>], durable: Lsn) {
        let first = self.next_lsn();
        let n = payloads.len();
        for (i, payload) in payloads.iter().enumerate() {
            let lsn = Lsn(first.0 + i as u64);
            self.records.push(ModelRecord {
                lsn,
                payload: payload.clone(),
                batch_start: i == 0,
                batch_end: i + 1 == n,
                proves_durable: durable,
            });
        }
    }

    /// The log said everything up to `lsn` is durable.
    pub fn acknowledge(&mut self, lsn: Lsn) {
        self.acked = self.acked.max(lsn);
    }

    /// A `truncate_back(lsn)` is starting: from now on, records after `lsn` need not survive.
    pub fn begin_truncate_back(&mut self, lsn: Lsn) {
        self.acked = self.acked.min(lsn);
    }

    /// A `truncate_back(lsn)` returned `Ok`: records after `lsn` are gone for good.
    pub fn finish_truncate_back(&mut self, lsn: Lsn) {
        self.records.retain(|record| record.lsn <= lsn);
        self.acked = lsn;
    }

    /// A `truncate_front(lsn)` is starting: the first LSN may move up to `lsn + 1`.
    pub fn begin_truncate_front(&mut self, lsn: Lsn) {
        self.first_max = self.first_max.max(lsn.next().min(self.next_lsn()));
    }

    /// A `truncate_front` returned `Ok` and the log now starts at `first`.
    pub fn finish_truncate_front(&mut self, first: Lsn) {
        self.first_min = first;
        self.first_max = first;
        self.records.retain(|record| record.lsn >= first);
    }
}
