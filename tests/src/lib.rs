//! Cross-adapter suites: conformance (one suite, every medium), the crash explorer, and
//! property tests. See `tests/tests/` for the test binaries.

pub mod conformance;
pub mod explorer;
pub mod media;
