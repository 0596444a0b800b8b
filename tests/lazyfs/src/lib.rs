//! A power-loss test for walden-std on the real kernel, in the spirit of LazyFS.
//!
//! [`LazyFs`] is an in-memory FUSE file system with two layers: a **durable** image and a
//! **volatile** one on top (the crash tests' fault model, `FAULT-MODEL.md`, as a real mount). A
//! file's data and length changes are volatile until `fsync`/`fdatasync` of that file; a
//! directory's entries until `fsync` of that directory. A [crash](Mounted::crash) freezes the
//! file system (every further operation fails with `EIO`), unmounts it and keeps only what a
//! [`CrashPlan`] says survives; the test then mounts that image and reopens the log.
//!
//! walden-std runs on it through its real file system calls ([`walden_std::OsFs`]'s
//! `std::fs::File`), so what is tested is what the kernel gets: `fdatasync` on the right
//! descriptor, the directory's `fsync` after a create, link, rename or unlink, `ftruncate`,
//! `fallocate`. See `README.md` for what it models and what it does not.

mod fs;
pub mod harness;
mod mount;

pub use fs::{BrokenFs, CrashPlan, Image, LazyFs, Node, OpKind, Shared};
pub use mount::{Mounted, SKIP_ENV};
