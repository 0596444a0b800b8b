//! Walden over WASI preview 2.
//!
//! `WasiStorage` implements core's [`Storage`](walden_core::Storage) with the filesystem
//! descriptors of WASI 0.2 (`wasi:filesystem/types`), for components built for
//! `wasm32-wasip2` and run by any WASI host (wasmtime, for one). It does not use `std::fs`: every
//! operation is one named WASI call, so what it promises about durability is exactly what the
//! host's `sync-data` and directory `sync` promise.
//!
//! Segments are files named `{id:020}.wal` (twenty zero-padded decimal digits), the same names the
//! std adapter uses. Other entries in the directory are left alone: [`Storage::list`] skips them
//! and `WasiStorage::foreign_entries` reports them.
//!
//! ```ignore
//! use walden_wasi::WasiStorage;
//! let storage = WasiStorage::open_dir(".", "wal")?; // `wal/` below the preopen `.`
//! ```
//!
//! On other targets the crate holds only [`WasiError`], so the workspace still builds on the
//! host.
//!
//! [`Storage::list`]: walden_core::Storage::list

// Used by the WASI storage; on other targets only its tests use it.
#[cfg_attr(not(all(target_arch = "wasm32", target_os = "wasi")), allow(dead_code))]
mod dir;
mod error;
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
mod storage;

pub use error::WasiError;
#[cfg(all(target_arch = "wasm32", target_os = "wasi"))]
pub use storage::WasiStorage;
/// Segment file names are core's, shared with the std adapter.
pub use walden_core::{SEGMENT_NAME_LEN, SegmentName, parse_segment_name};
