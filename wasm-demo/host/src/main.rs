//! `walden-demo-host`: runs the Walden wasm demo guest under wasmtime.
//!
//! * `run`: one run of the guest's key-value workload, printing its output.
//! * `crash-loop`: many runs, each cut at an arbitrary instruction by a fuel budget and followed
//!   by a simulated power loss; every recovery is checked against what the guest acknowledged.
//! * `bench`: append throughput inside the guest and natively, same core, same workload.
//! * `conformance`: the cross-adapter conformance suite over `walden-wasi`, inside the guest.
//!
//! The guest component is built by this crate's build script for `wasm32-wasip2`.

mod bench;
mod conformance;
mod crash_loop;
mod durable;
mod model;
mod protocol;
mod rng;
mod runner;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::durable::DurableImage;
use crate::runner::{Ending, Guest};

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
        /// Runs in all; most are cut short by their fuel budget.
        #[arg(long, default_value_t = 320)]
        runs: u64,
        /// Seed of fuel budgets, power-loss outcomes and workloads.
        #[arg(long, default_value_t = 0x5741_4c44)]
        seed: u64,
        /// One run in this many gets unlimited fuel (to re-measure a full run).
        #[arg(long, default_value_t = 10)]
        full_run_every: u64,
        /// Only kill the guest: keep unsynced data (no simulated power loss).
        #[arg(long)]
        no_power_loss: bool,
        /// Use the deliberately broken guest mode that acknowledges before syncing.
        #[arg(long)]
        ack_before_sync: bool,
        /// Exit with success only if violations were found (for proving the checker works).
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
    #[arg(long, default_value_t = 40)]
    ops: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 64)]
    keys: u64,
    /// Smallest value in bytes.
    #[arg(long, default_value_t = 8)]
    min_value: u64,
    /// Largest value in bytes.
    #[arg(long, default_value_t = 256)]
    max_value: u64,
    /// Segment size in bytes (small, so runs rotate segments).
    #[arg(long, default_value_t = 16 * 1024)]
    segment_size: u64,
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
                "--seed".to_owned(),
                rand_seed().to_string(),
            ];
            let (outcome, _) = guest.run(
                data.path(),
                &args,
                u64::MAX / 2,
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
            expect_violations,
            verbose,
        } => {
            let guest = Guest::load(&runner::guest_path(common.guest.as_deref())?, true)?;
            let data = DataDir::new(&common)?;
            let plan = crash_loop::Plan {
                runs,
                seed,
                ops: workload.ops,
                keys: workload.keys,
                min_value: workload.min_value,
                max_value: workload.max_value,
                segment_size: workload.segment_size,
                full_run_every: full_run_every.max(1),
                power_loss: !no_power_loss,
                ack_before_sync,
                verbose,
            };
            let report = crash_loop::crash_loop(&guest, data.path(), &plan)?;
            for violation in report.violations.iter().take(20) {
                println!("VIOLATION {violation}");
            }
            println!("{report}");
            let found = !report.violations.is_empty();
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

/// A seed for a one-off run.
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}
