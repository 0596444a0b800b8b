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

/// Raw NOR flash (the [`NorSim`](walden_sim::NorSim) model, 4-byte words, 1 KiB blocks) behind
/// `walden-flash`: 20 areas of 2 blocks. Closing gives the flash back; opening mounts a copy, so
/// a refused open loses nothing. Unsynced bytes still in the adapter's RAM are dropped at close,
/// as a power loss would drop them (the suite syncs every append).
pub struct FlashMedium {
    nor: FlashNor,
}

/// The flash behind [`FlashMedium`].
pub type FlashNor = walden_sim::NorSim<4, 1024>;

/// The storage [`FlashMedium`] yields.
pub type FlashMediumStorage = walden_flash::FlashStorage<FlashNor, 20>;

impl FlashMedium {
    /// A fresh, erased flash.
    pub fn new() -> Self {
        Self {
            nor: FlashNor::new(40, 0x5eed),
        }
    }
}

impl Default for FlashMedium {
    fn default() -> Self {
        Self::new()
    }
}

impl Medium for FlashMedium {
    type S = FlashMediumStorage;
    fn open(&mut self) -> FlashMediumStorage {
        walden_flash::FlashStorage::mount(self.nor.clone(), walden_flash::Layout::new(20, 2))
            .expect("mount")
    }
    fn close(&mut self, storage: FlashMediumStorage) {
        self.nor = storage.into_inner();
    }
}
