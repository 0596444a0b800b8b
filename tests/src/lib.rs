//! Cross-adapter suites.
