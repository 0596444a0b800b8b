//! A deliberately naive reader for [`Variant::NaiveReader`](super::Variant::NaiveReader): it
//! parses segments with the core codec but never verifies payload checksums. The explorer must
//! catch it returning damaged data.

use walden_core::Lsn;
use walden_core::raw::{
    RECORD_HEADER_LEN, RecordHeader, RecordKind, SEGMENT_HEADER_LEN, SegmentHeader,
};
use walden_sim::SimStorage;

use super::check::Recovered;

/// Reads the log in `sim` (which should be just out of a crash) the naive way: segment headers
/// and record headers are verified, payload checksums are not. Stops at the first record that
/// does not decode; keeps only complete batches.
pub fn naive_scan(sim: &SimStorage) -> Recovered {
    let mut records = Vec::new();
    let mut first = None;
    'segments: for segment in sim.durable_segments() {
        let Some(bytes) = sim.contents(segment) else {
            break;
        };
        let Ok(header) = SegmentHeader::decode(bytes) else {
            break;
        };
        first.get_or_insert(header.first_lsn);
        let mut at = SEGMENT_HEADER_LEN;
        let mut batch: Vec<(Lsn, Vec<u8>)> = Vec::new();
        while let Some(raw) = bytes.get(at..at + RECORD_HEADER_LEN) {
            let Ok(h) = RecordHeader::decode(raw, header.checksum, header.salt) else {
                break 'segments;
            };
            let start = at + RECORD_HEADER_LEN;
            let Some(payload) = bytes.get(start..start + h.length as usize) else {
                break 'segments;
            };
            // The one check left out on purpose: `h.payload_crc` is never compared.
            if h.kind == RecordKind::Meta {
                at = start + h.length as usize;
                continue;
            }
            batch.push((h.lsn, payload.to_vec()));
            if matches!(h.kind, RecordKind::Single | RecordKind::Last) {
                records.append(&mut batch);
            }
            at = start + h.length as usize;
        }
    }
    Recovered {
        first: first.unwrap_or(Lsn(1)),
        records,
        report: None,
    }
}

/// Where one verified record sits on the medium.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    /// Its segment.
    pub segment: u64,
    /// Offset of its header.
    pub offset: u64,
    /// Payload length.
    pub payload_len: u32,
    /// Its LSN.
    pub lsn: Lsn,
    /// `true` if a later segment exists.
    pub sealed: bool,
}

/// The records of a clean log in `sim` with their places (for choosing where to inject media
/// faults).
pub fn record_spans(sim: &SimStorage) -> Vec<RecordSpan> {
    let segments = sim.durable_segments();
    let mut spans = Vec::new();
    for (index, &segment) in segments.iter().enumerate() {
        let Some(bytes) = sim.contents(segment) else {
            continue;
        };
        let Ok(header) = SegmentHeader::decode(bytes) else {
            continue;
        };
        let mut at = SEGMENT_HEADER_LEN;
        while let Some(raw) = bytes.get(at..at + RECORD_HEADER_LEN) {
            let Ok(h) = RecordHeader::decode(raw, header.checksum, header.salt) else {
                break;
            };
            // Seals are not records of the log: damage to one is trailing garbage.
            if h.kind != RecordKind::Meta {
                spans.push(RecordSpan {
                    segment,
                    offset: at as u64,
                    payload_len: h.length,
                    lsn: h.lsn,
                    sealed: index + 1 < segments.len(),
                });
            }
            at += RECORD_HEADER_LEN + h.length as usize;
        }
    }
    spans
}
