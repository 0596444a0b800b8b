//! Cross-adapter suites: conformance (one suite, every medium), the crash explorers (core,
//! walden-std's files, flash, and the raft log store on top), and property tests. See `tests/tests/` for the test binaries.

pub use walden_conformance as conformance;
pub mod explorer;
pub mod files;
pub mod flash;
pub mod kill;
pub mod media;
pub mod raft;
