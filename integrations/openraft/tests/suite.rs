//! openraft's own storage test suite (`openraft::testing::Suite::test_all`) against
//! `walden_openraft::LogStore`, with the in-memory key-value state machine.

use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use walden_openraft::LogStore;
use walden_openraft::kv::{NodeId, StateMachine, TypeConfig};

/// Builds a store in a fresh temporary directory; the directory lives as long as the guard.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore<TypeConfig>, StateMachine, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore<TypeConfig>, StateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LogStore::open(dir.path()).expect("open store");
        Ok((dir, store, StateMachine::default()))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(Builder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
