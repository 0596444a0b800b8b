//! Walden over WASI preview 2.
