//! Helpers shared by the store's integration tests (`reopen.rs`, `edges.rs`).

use openraft::RaftLogReader;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use walden_openraft::LogStore;
use walden_openraft::kv::{Request, TypeConfig};

pub(crate) type Store = LogStore<TypeConfig>;

/// The log id of `index` in `term` (node 1 leads every term).
pub(crate) fn id(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// An entry at `index` in `term` whose payload names both.
pub(crate) fn entry(term: u64, index: u64) -> Entry<TypeConfig> {
    Entry {
        log_id: id(term, index),
        payload: EntryPayload::Normal(Request::Set {
            key: format!("k{index}"),
            value: format!("v{term}-{index}"),
        }),
    }
}

/// Every entry the store holds, as `(term, index)`.
pub(crate) async fn indexes(store: &mut Store) -> Vec<(u64, u64)> {
    store
        .try_get_log_entries(0..u64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.log_id.leader_id.term, e.log_id.index))
        .collect()
}
