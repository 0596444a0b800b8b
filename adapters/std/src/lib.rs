//! Walden on real files.
