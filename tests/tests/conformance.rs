//! The conformance suite over real files and over the simulator.

mod files {
    walden_conformance::conformance_suite!(walden_tests::media::FileMedium::new());
}

mod sim {
    walden_conformance::conformance_suite!(walden_tests::media::SimMedium::new());
}

/// Raw NOR flash through `walden-flash`. `mid_log_corruption` is left out: it damages a record
/// by writing a flipped bit over it, and NOR programming cannot set a bit (the write leaves the
/// byte as it was half the time). Damage on flash is what the flash explorer's torn programs
/// and erases make.
mod flash {
    walden_conformance::conformance_suite!(@cases walden_tests::media::FlashMedium::new();
        append_and_reopen, batches_and_reads_from_any_lsn, manual_sync_moves_the_durable_lsn,
        rotation_and_retention, rewind_and_overwrite, torn_tail_is_cut,
        missing_segment_is_refused, bad_input_is_refused_cleanly);
}
