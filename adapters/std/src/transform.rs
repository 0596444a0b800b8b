//! The scratch memory compression needs (format version 3, feature `compress`).

use walden_core::{AppendError, Lsn, SegmentTable, Storage, Wal};

/// Scratch for compressing records, grown to fit the longest record compressed so far
/// ([`walden_core::transform_scratch_len`]) and kept for the next append.
#[derive(Debug, Default)]
pub(crate) struct Scratch(#[allow(dead_code)] Vec<u8>);

impl Scratch {
    /// Appends `payloads` to `wal`, compressing those at least the configured threshold long.
    pub(crate) fn append_batch<S: Storage, T: SegmentTable>(
        &mut self,
        wal: &mut Wal<S, T>,
        payloads: &[&[u8]],
    ) -> Result<Lsn, AppendError<S::Error>> {
        #[cfg(feature = "compress")]
        {
            let threshold = wal.config().compress_threshold as usize;
            let longest = payloads
                .iter()
                .map(|p| p.len())
                .filter(|&n| threshold > 0 && n >= threshold)
                .max();
            // Longer than max_record_size is refused before any compression.
            let limit = wal.config().max_record_size as usize;
            if let Some(n) = longest.filter(|&n| n <= limit) {
                let need = walden_core::transform_scratch_len(n as u32);
                if self.0.len() < need {
                    self.0.resize(need, 0);
                }
            }
            wal.append_batch_in(payloads, &mut self.0)
        }
        #[cfg(not(feature = "compress"))]
        wal.append_batch(payloads)
    }
}
