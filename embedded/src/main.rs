//! Walden on a Cortex-M4 (QEMU `mps2-an386`), printing over semihosting.
//!
//! * Default (`log`): the size-budget program of `docs/EMBEDDED.md` over a RAM `Storage`: open,
//!   50 appends, a batch, sync, reopen with recovery, read everything back, `truncate_front`.
//! * `--no-default-features`: the same program without the log, the baseline the size budget
//!   subtracts.
//! * `--features flash`: the log over `walden-flash` on an emulated NOR flash in RAM; the power
//!   is cut in the middle of a program operation, and the log recovers.
//!
//! Every run prints `walden-embedded: ok` and exits with status 0, or says what failed and
//! exits with 1.

#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};

#[cfg(feature = "flash")]
mod power_cut;
#[cfg(all(feature = "log", not(feature = "flash")))]
mod program;
#[cfg(all(feature = "log", not(feature = "flash")))]
mod ram;
#[cfg(feature = "flash")]
mod ramflash;
mod stack;

/// What a run did, printed at the end.
#[derive(Clone, Copy, Default)]
pub struct Summary {
    /// Records appended.
    pub appended: u64,
    /// Records the reopened log holds.
    pub recovered: u64,
    /// Records read back and checked.
    pub read_back: u64,
    /// Segments `truncate_front` removed.
    pub removed: u64,
    /// Stack bytes `Wal::open` (the reopen, with recovery) used.
    pub open_stack: u64,
}

#[entry]
fn main() -> ! {
    let outcome = run();
    match outcome {
        Ok(s) => {
            hprintln!(
                "appended {} records; recovered {}; read back {}; truncate_front removed {} segments",
                s.appended,
                s.recovered,
                s.read_back,
                s.removed
            );
            hprintln!("stack used by Wal::open: {} bytes", s.open_stack);
            hprintln!("walden-embedded: ok");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(why) => {
            hprintln!("walden-embedded: FAILED: {}", why);
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(all(feature = "log", not(feature = "flash")))]
fn run() -> Result<Summary, &'static str> {
    program::run()
}

#[cfg(feature = "flash")]
fn run() -> Result<Summary, &'static str> {
    power_cut::run()
}

/// The same program without the log: it prints the same lines, from numbers it did not compute.
#[cfg(not(feature = "log"))]
fn run() -> Result<Summary, &'static str> {
    let n = core::hint::black_box(0u64);
    let used = stack::measure(|| core::hint::black_box(n));
    // It can fail like the program with the log, so both link the same printing code.
    if core::hint::black_box(false) {
        return Err("baseline");
    }
    Ok(Summary {
        appended: n,
        recovered: n,
        read_back: n,
        removed: n,
        open_stack: used.1 as u64,
    })
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("walden-embedded: FAILED: panic");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
