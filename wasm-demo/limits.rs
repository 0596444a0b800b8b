//! The demo guest's record and entry limits, in one place: the guest (`guest/src/main.rs`)
//! enforces them and the host (`host/src/crash_loop.rs`) refuses options beyond them before
//! any run. Both crates include this file (`#[path]`): the guest is a wasm crate the host does
//! not link.

/// The largest record the demo writes or accepts.
pub(crate) const MAX_RECORD: usize = 64 * 1024;
/// The largest key of an entry.
pub(crate) const MAX_KEY: usize = 1024;
/// The largest value of an entry: a key and value always fit in one record with room for
/// postcard's tag and length prefixes.
pub(crate) const MAX_VALUE: usize = MAX_RECORD - MAX_KEY - 16;
