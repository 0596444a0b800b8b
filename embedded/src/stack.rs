//! Measures the stack a call uses: paint the free stack below the current frame with a
//! pattern, make the call, and find the deepest word it overwrote.
//!
//! This reads and writes memory below the stack pointer through raw pointers, which only works
//! on a single core with no interrupt handler touching that stack (true in this program).

/// The bytes painted below the caller's frame (the measure cannot see deeper than this).
const DEPTH: usize = 32 * 1024;
const PAINT: u32 = 0x5741_4c44; // "WALD"

/// Runs `f` and returns its result and the bytes of stack it used (within [`DEPTH`]).
#[inline(never)]
pub fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let top = cortex_m::register::msp::read() as usize & !3;
    // Leave 256 bytes for this function's own frame and the call into `f`.
    let top = top - 256;
    let bottom = top - DEPTH;
    let mut at = bottom;
    while at < top {
        // SAFETY: [bottom, top) is free stack below the live frames (4 MiB of RAM hold the
        // stack and nothing else lives there); single core, no interrupts in this program.
        unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
    let out = call(f);
    let mut lowest = bottom;
    // SAFETY: the same words, read back after the call.
    while lowest < top && unsafe { core::ptr::read_volatile(lowest as *const u32) } == PAINT {
        lowest += 4;
    }
    (out, top + 256 - lowest)
}

/// Runs `f` in a frame of its own below `measure`'s: whatever the compiler inlines into it lands
/// in that frame, which the paint covers, never in `measure`'s own frame, which it does not.
#[inline(never)]
fn call<T>(f: impl FnOnce() -> T) -> T {
    f()
}
