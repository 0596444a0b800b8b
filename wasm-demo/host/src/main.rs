//! `walden-demo-host`: runs the Walden wasm demo guest under wasmtime.
//!
//! * `run`: one run of the guest's key-value workload, printing its output.
//! * `crash-loop`: many runs, each cut where durability is decided (inside a sync, right after
//!   a create, remove or truncate, during recovery's repairs) or at an arbitrary instruction by
//!   a fuel budget, and followed by a simulated power loss; every recovery is checked against
//!   what the guest acknowledged.
//! * `bench`: append throughput inside the guest and natively, same core, same workload.
//! * `conformance`: the cross-adapter conformance suite over `walden-wasi`, inside the guest.
//!
//! The guest component is built by this crate's build script for `wasm32-wasip2`.

mod bench;
mod conformance;
mod crash_loop;
mod durable;
mod hooks;
#[path = "../../limits.rs"]
mod limits;
mod model;
mod points;
mod power_loss;
mod protocol;
mod report;
mod rng;
mod runner;
mod schedule;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::crash_loop::{Broken, Plan};
use crate::durable::DurableImage;
use crate::runner::{Ending, Guest, RunOptions};

#[derive(Parser)]
#[command(version, about = "Runs the Walden wasm demo guest under wasmtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the guest's workload once and print its output.
    Run {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        workload: WorkloadArgs,
    },
    /// Crash the guest over and over and check every recovery.
    CrashLoop {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        workload: WorkloadArgs,
        /// Runs in all; most are cut short at a crash point or by their fuel budget.
        #[arg(long, default_value_t = Plan::DEFAULT.runs)]
        runs: u64,
        /// Seed of crash points, fuel budgets, power-loss outcomes and workloads (decimal or
        /// 0x-prefixed hex).
        #[arg(long, default_value_t = Plan::DEFAULT.seed, value_parser = parse_seed)]
        seed: u64,
        /// One run in this many runs to the end (to re-measure a full run).
        #[arg(long, default_value_t = Plan::DEFAULT.full_run_every)]
        full_run_every: u64,
        /// Only kill the guest: keep unsynced data (no simulated power loss).
        #[arg(long)]
        no_power_loss: bool,
        /// Use the deliberately broken guest that acknowledges before syncing.
        #[arg(long, conflicts_with_all = ["skip_dir_sync", "skip_parent_sync"])]
        ack_before_sync: bool,
        /// Use the deliberately broken guest that skips the directory sync after creating a
        /// segment.
        #[arg(long, conflicts_with = "skip_parent_sync")]
        skip_dir_sync: bool,
        /// Use the deliberately broken guest that creates its log directory without syncing
        /// the preopen, so the directory's own name is not durable.
        #[arg(long)]
        skip_parent_sync: bool,
        /// Exit with success only if violations were found (with a broken guest: of the kind
        /// its bug causes), and stop at the first (for proving the checker works).
        #[arg(long)]
        expect_violations: bool,
        /// Print one line per run.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Measure append throughput in the guest and natively.
    Bench {
        #[command(flatten)]
        common: Common,
        /// Records to append.
        #[arg(long, default_value_t = 20_000)]
        records: u64,
        /// Value size in bytes.
        #[arg(long, default_value_t = 128)]
        value_size: u64,
        /// Sync after this many records.
        #[arg(long, default_value_t = 100)]
        sync_every: u64,
        /// Segment size in bytes.
        #[arg(long, default_value_t = 8 << 20)]
        segment_size: u64,
    },
    /// Run the cross-adapter conformance suite over `walden-wasi` inside the guest.
    Conformance {
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Args)]
struct Common {
    /// Data directory (default: a new temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temporary data directory.
    #[arg(long)]
    keep: bool,
    /// The guest component (default: the one the build script built).
    #[arg(long)]
    guest: Option<PathBuf>,
}

#[derive(Args)]
struct WorkloadArgs {
    /// Operations per run.
    #[arg(long, default_value_t = Plan::DEFAULT.ops)]
    ops: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = Plan::DEFAULT.keys)]
    keys: u64,
    /// Smallest value in bytes.
    #[arg(long, default_value_t = Plan::DEFAULT.min_value)]
    min_value: u64,
    /// Largest value in bytes.
    #[arg(long, default_value_t = Plan::DEFAULT.max_value)]
    max_value: u64,
    /// Segment size in bytes (small, so runs rotate segments).
    #[arg(long, default_value_t = Plan::DEFAULT.segment_size)]
    segment_size: u64,
    /// Compact the log (checkpoint, then `truncate_front`) above this many segments; 0: never
    /// (the guest's table holds 512 segments: about 1,800 crash-loop runs).
    #[arg(long, default_value_t = Plan::DEFAULT.retain_segments)]
    retain_segments: u64,
}

/// The data directory: the one given, or a temporary one removed on drop unless kept.
struct DataDir {
    path: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

impl DataDir {
    fn new(common: &Common) -> Result<Self> {
        if let Some(dir) = &common.dir {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            return Ok(Self {
                path: dir.clone(),
                _temp: None,
            });
        }
        let temp = tempfile::Builder::new().prefix("walden-demo-").tempdir()?;
        let path = temp.path().to_path_buf();
        if common.keep {
            eprintln!("data directory (kept): {}", path.display());
            let _ = temp.keep();
            return Ok(Self { path, _temp: None });
        }
        Ok(Self {
            path,
            _temp: Some(temp),
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `println!` into a closed pipe (`crash-loop | head`) panics.
    // A command-line tool should end quietly instead, as `cat` does.
    // SAFETY: setting a signal's disposition to its default at start-up, before any thread.
    #[cfg(unix)]
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run { common, workload } => {
            let guest = Guest::load(&runner::guest_path(common.guest.as_deref())?, true)?;
            let data = DataDir::new(&common)?;
            let args = vec![
                "--ops".to_owned(),
                workload.ops.to_string(),
                "--keys".to_owned(),
                workload.keys.to_string(),
                "--min-value".to_owned(),
                workload.min_value.to_string(),
                "--max-value".to_owned(),
                workload.max_value.to_string(),
                "--segment-size".to_owned(),
                workload.segment_size.to_string(),
                "--retain-segments".to_owned(),
                workload.retain_segments.to_string(),
                "--seed".to_owned(),
                rand_seed().to_string(),
            ];
            let (outcome, _) = guest.run(
                data.path(),
                &args,
                RunOptions::whole(),
                DurableImage::of(data.path())?,
            )?;
            print!("{}", outcome.stdout);
            eprint!("{}", outcome.stderr);
            eprintln!("fuel used: {}", outcome.fuel_used);
            Ok(if outcome.ending == Ending::Finished {
                ExitCode::SUCCESS
            } else {
                eprintln!("the guest failed: {}", outcome.failure.unwrap_or_default());
                ExitCode::FAILURE
            })
        }
        Command::CrashLoop {
            common,
            workload,
            runs,
            seed,
            full_run_every,
            no_power_loss,
            ack_before_sync,
            skip_dir_sync,
            skip_parent_sync,
            expect_violations,
            verbose,
        } => {
            let guest = Guest::load(&runner::guest_path(common.guest.as_deref())?, true)?;
            let data = DataDir::new(&common)?;
            let plan = Plan {
                runs,
                seed,
                ops: workload.ops,
                keys: workload.keys,
                min_value: workload.min_value,
                max_value: workload.max_value,
                segment_size: workload.segment_size,
                retain_segments: workload.retain_segments,
                full_run_every,
                power_loss: !no_power_loss,
                broken: if ack_before_sync {
                    Some(Broken::AckBeforeSync)
                } else if skip_dir_sync {
                    Some(Broken::SkipDirSync)
                } else if skip_parent_sync {
                    Some(Broken::ParentNotSynced)
                } else {
                    None
                },
                stop_at_violation: expect_violations,
                verbose,
            };
            let report = crash_loop::crash_loop(&guest, data.path(), &plan)?;
            for violation in report.violations.iter().take(20) {
                println!("VIOLATION {violation}");
            }
            if report.violations.len() > 20 {
                println!("... and {} more", report.violations.len() - 20);
            }
            println!("{report}");
            let found = match plan.broken {
                // A broken guest counts as caught only for the violation its bug causes.
                Some(broken) if expect_violations => {
                    let explained = report.violations.iter().any(|v| broken.explains(v));
                    if !explained && !report.violations.is_empty() {
                        println!(
                            "the violations above are not the kind {} must cause",
                            broken.flag()
                        );
                    }
                    explained
                }
                _ => !report.violations.is_empty(),
            };
            Ok(if found == expect_violations {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench {
            common,
            records,
            value_size,
            sync_every,
            segment_size,
        } => {
            let guest = Guest::load(&runner::guest_path(common.guest.as_deref())?, false)?;
            let work = bench::Workload {
                records,
                value_size,
                sync_every: sync_every.max(1),
                segment_size,
            };
            let data = DataDir::new(&common)?;
            let (wasm_dir, native_dir) = (data.path().join("wasm"), data.path().join("native"));
            std::fs::create_dir_all(&wasm_dir)?;
            std::fs::create_dir_all(&native_dir)?;
            let wasm = bench::in_guest(&guest, &wasm_dir, work)?;
            println!("guest (wasm32-wasip2 under wasmtime): {wasm}");
            let native = bench::native(&native_dir, work)?;
            println!("native (walden-std files):            {native}");
            println!(
                "guest time / native time:              {:.2}",
                wasm.secs / native.secs
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Conformance { common } => {
            let guest = Guest::load(&runner::guest_path(common.guest.as_deref())?, false)?;
            let data = DataDir::new(&common)?;
            let report = conformance::run_suite(&guest, data.path())?;
            println!("{report}");
            let complete = report.results.len() == report.cases && report.cases > 0;
            Ok(if complete && report.failed() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// A seed in decimal or `0x` hex.
fn parse_seed(text: &str) -> Result<u64, String> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.replace('_', "").parse(),
    };
    parsed.map_err(|e| format!("not a seed: {text}: {e}"))
}

/// A seed for a one-off run.
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse_seed("0x57414c44"), Ok(Plan::DEFAULT.seed));
        assert_eq!(parse_seed("1463897156"), Ok(Plan::DEFAULT.seed));
        assert_eq!(parse_seed("0x5741_4c44"), Ok(Plan::DEFAULT.seed));
        assert!(parse_seed("seed").is_err());
    }
}
