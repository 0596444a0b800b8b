//! The media the conformance suite runs on.

use tempfile::TempDir;
use walden_sim::SimStorage;
use walden_std::FileStorage;

use crate::conformance::Medium;

/// A temporary directory of real files.
pub struct FileMedium {
    dir: TempDir,
}

impl FileMedium {
    /// A fresh temporary directory.
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }
}

impl Default for FileMedium {
    fn default() -> Self {
        Self::new()
    }
}

impl Medium for FileMedium {
    type S = FileStorage;
    fn open(&mut self) -> FileStorage {
        FileStorage::open(self.dir.path(), true).expect("open directory")
    }
    fn close(&mut self, storage: FileStorage) {
        drop(storage);
    }
}

/// The simulator without faults; closing is a process exit (the simulated OS keeps the data).
/// Opening hands out a copy, so a refused open loses nothing.
#[derive(Default)]
pub struct SimMedium {
    sim: Option<SimStorage>,
}

impl SimMedium {
    /// A fresh simulated disk.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Medium for SimMedium {
    type S = SimStorage;
    fn open(&mut self) -> SimStorage {
        // Keep the state as of the last close: a failed open consumes the storage it was given.
        self.sim.clone().unwrap_or_default()
    }
    fn close(&mut self, storage: SimStorage) {
        self.sim = Some(storage.reopen());
    }
}
