//! Command-line options (`--name value`), parsed by hand to keep the component small.

/// What the guest does this run.
pub struct Args {
    /// Operations in the workload (puts, deletes, gets, scans).
    pub ops: u64,
    /// Seed of the workload's PRNG.
    pub seed: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Smallest and largest value in bytes.
    pub min_value: usize,
    pub max_value: usize,
    /// Segment size of the log.
    pub segment_size: u64,
    /// The deliberate bug: print ACK before the record is synced, and sync only every 8 puts.
    pub ack_before_sync: bool,
    /// The other deliberate bug: skip the directory sync after creating a segment.
    pub skip_dir_sync: bool,
    /// The third: create the log directory without syncing the preopen that holds its name.
    pub skip_parent_sync: bool,
    /// Compact when the log has more segments than this: append a checkpoint (every live key
    /// again), sync, then `truncate_front` below it. 0: never.
    pub retain_segments: usize,
    /// Bytes `WasiStorage` buffers before handing writes to the host (`--write-buffer`).
    pub write_buffer: usize,
    /// Append benchmark instead of the workload: records.
    pub bench: Option<u64>,
    /// Sync (and then acknowledge) after this many appends, in the workload and the benchmark.
    pub sync_every: u64,
    /// Skip printing the recovered records (the state line is still printed).
    pub quiet_dump: bool,
    /// Rotate without syncing the old segment first (core's `Config::early_rotation`).
    pub early_rotation: bool,
    /// Run the conformance suite instead, from this case index on (`--conformance [--from N]`).
    pub conformance: Option<usize>,
}

impl Args {
    pub fn parse(mut words: impl Iterator<Item = String>) -> Result<Self, String> {
        let mut args = Self {
            ops: 40,
            seed: 1,
            keys: 64,
            min_value: 8,
            max_value: 256,
            segment_size: 32 * 1024,
            ack_before_sync: false,
            skip_dir_sync: false,
            skip_parent_sync: false,
            retain_segments: 0,
            write_buffer: 1 << 20,
            bench: None,
            sync_every: 1,
            quiet_dump: false,
            early_rotation: false,
            conformance: None,
        };
        while let Some(flag) = words.next() {
            let mut value = || words.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--ops" => args.ops = number(&value()?)?,
                "--seed" => args.seed = number(&value()?)?,
                "--keys" => args.keys = number(&value()?)?.max(1),
                "--min-value" => args.min_value = number(&value()?)? as usize,
                "--max-value" => args.max_value = number(&value()?)? as usize,
                "--segment-size" => args.segment_size = number(&value()?)?,
                "--bench" => args.bench = Some(number(&value()?)?),
                "--sync-every" => args.sync_every = number(&value()?)?.max(1),
                "--ack-before-sync" => args.ack_before_sync = true,
                "--skip-dir-sync" => args.skip_dir_sync = true,
                "--skip-parent-sync" => args.skip_parent_sync = true,
                "--retain-segments" => args.retain_segments = number(&value()?)? as usize,
                "--write-buffer" => args.write_buffer = number(&value()?)? as usize,
                "--quiet-dump" => args.quiet_dump = true,
                "--early-rotation" => args.early_rotation = true,
                "--conformance" => args.conformance = Some(args.conformance.unwrap_or(0)),
                "--from" => args.conformance = Some(number(&value()?)? as usize),
                _ => return Err(format!("unknown option {flag}")),
            }
        }
        if args.max_value < args.min_value {
            return Err("--max-value is below --min-value".into());
        }
        Ok(args)
    }
}

fn number(text: &str) -> Result<u64, String> {
    text.parse().map_err(|_| format!("not a number: {text}"))
}
