//! The low-level layer: the on-disk format, the record cursor and the recovery decision table.
//!
//! Everything an application needs is at the crate root: [`Wal`](crate::Wal), its
//! [`Config`](crate::Config), the [`Storage`](crate::Storage) trait, the errors and reports, and
//! [`inspect`](crate::inspect()). This module is for the tools that work *below* that API and
//! must see the bytes: the `walden` CLI (dumping records at their file offsets), the fuzz
//! targets (which build headers by hand), the conformance and crash-explorer tests (which
//! check every [`Case`](crate::Case) of the decision table), and [`walden-std`]'s parallel
//! verifier (which scans segments and hands their summaries to the planner).
//!
//! What is here mirrors `docs/FORMAT.md` and may change when the format does; it is not covered
//! by the stability the root API promises. Nothing here can corrupt a log by itself (every type
//! only encodes, decodes or classifies), but nothing here checks that you use it consistently
//! either.
//!
//! [`walden-std`]: https://docs.rs/walden-std

pub use crate::case::Action;
pub use crate::checksum::Checksum;
pub use crate::cursor::{Fault, Located, RecordCursor, SealFound, SegmentKeys};
pub use crate::format::{
    AEAD_TAG_LEN, FORMAT_VERSION, FRAME_PREFIX_LEN, HeaderProblem, Meta, RECORD_HEADER_LEN,
    RecordFlags, RecordHeader, RecordKind, RecordProblem, SEGMENT_HEADER_LEN, SegmentHeader,
    is_start_slot,
};
#[cfg(feature = "replay")]
pub use crate::recovery::plan::stale_segments;
#[cfg(feature = "replay")]
pub use crate::recovery::replay_segment;
#[cfg(all(feature = "replay", feature = "alloc"))]
pub use crate::recovery::{Chunk, ReadAhead, replay_segment_ahead};
pub use crate::recovery::{SegmentSummary, scan_segment};
pub use crate::storage::read_full;
pub use crate::transform::Unseal;
