//! The cross-adapter conformance suite (`walden-conformance`) run over `WasiStorage`, inside
//! the guest: the same cases the std and sim adapters pass natively.
//!
//! Each case gets a fresh subdirectory of `/data`. The release profile aborts on panic (wasm has
//! no unwinding on stable), so a failing case cannot be caught: a panic hook prints its `CASE
//! <name> failed` line before the abort, and the host restarts the guest at the next case
//! (`--from`). Lines:
//!
//! ```text
//! CASE <index> <name> ok
//! CASE <index> <name> failed <panic message, on one line>
//! CONFORMANCE <passed> passed, <failed> failed      (this run's cases; absent after an abort)
//! ```

use std::cell::Cell;

use walden_conformance::{Medium, cases};
use walden_wasi::WasiStorage;

use crate::{PREOPEN, line};

/// One case's directory below the preopen.
struct CaseDir {
    path: String,
}

impl Medium for CaseDir {
    type S = WasiStorage;

    fn open(&mut self) -> WasiStorage {
        WasiStorage::open_dir(PREOPEN, &self.path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", self.path))
    }

    fn close(&mut self, storage: WasiStorage) {
        // Dropping hands any buffered bytes to the host, as a process exit would.
        drop(storage);
    }
}

thread_local! {
    /// The case running now, for the panic hook: (index, name).
    static RUNNING: Cell<Option<(usize, &'static str)>> = const { Cell::new(None) };
}

/// Runs every case from index `from` on, one line each, then the summary line.
pub(crate) fn run(from: usize) {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string().replace('\n', " | ");
        match RUNNING.get() {
            Some((index, name)) => line(&format!("CASE {index} {name} failed {message}")),
            None => line(&format!("PANIC {message}")),
        }
    }));
    let all = cases::<CaseDir>();
    line(&format!("CASES {}", all.len()));
    let mut passed = 0;
    for (index, (name, case)) in all.iter().enumerate().skip(from) {
        RUNNING.set(Some((index, name)));
        let mut dir = CaseDir {
            path: format!("case-{index:02}-{name}"),
        };
        case(&mut dir);
        RUNNING.set(None);
        line(&format!("CASE {index} {name} ok"));
        passed += 1;
    }
    line(&format!("CONFORMANCE {passed} passed, 0 failed"));
}
