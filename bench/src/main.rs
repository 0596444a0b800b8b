//! `walden-bench`: runs every workload against every write-ahead log in [`peers`], measures the
//! machine's own limits in the same run, and writes a Markdown report and SVG charts.
//!
//! ```text
//! cargo run --release -p walden-bench                 # full run, writes BENCHMARKS.md + docs/bench/
//! cargo run --release -p walden-bench -- --quick      # CI smoke run, seconds, numbers meaningless
//! ```
//!
//! Nothing here asserts a speed. See `BENCHMARKS.md` for the latest results.

mod charts;
mod checksums;
mod limits;
mod machine;
mod measure;
mod peers;
mod reads;
mod report;
mod subject;
mod workloads;

use core::time::Duration;
use std::{path::PathBuf, process::ExitCode};

use clap::Parser;

use crate::{measure::Budget, reads::ReadScale};

/// Benchmarks Walden against other write-ahead logs and the disk's own limits.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Run every workload tiny (a CI smoke run: seconds, numbers meaningless).
    #[arg(long)]
    quick: bool,
    /// Markdown report to write [default: BENCHMARKS.md, or target/bench-quick/BENCHMARKS.md with
    /// --quick].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Directory for the SVG charts [default: docs/bench, or target/bench-quick with --quick].
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Where logs are written (a temp dir is made inside it) [default: the current directory,
    /// so the data lands on the repository's file system].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds per timed case (overrides the default: 1.5, or 0.02 with --quick).
    #[arg(long)]
    seconds: Option<f64>,
    /// Only run peers whose name contains one of these (repeatable).
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// Skip the log workloads and measure only the limits and checksums.
    #[arg(long)]
    limits_only: bool,
    /// Run only the read workloads (5-7: replay, open, reads by LSN), to measure a change to
    /// the read path without the write workloads' minutes.
    #[arg(long)]
    reads_only: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("walden-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> std::io::Result<()> {
    let quick = args.quick;
    let seconds = args.seconds.unwrap_or(if quick { 0.02 } else { 1.5 });
    let budget = Budget {
        time: Duration::from_secs_f64(seconds),
        min_ops: if quick { 2 } else { 20 },
        max_ops: if quick { 200 } else { 5_000_000 },
    };
    let writers: Vec<usize> = vec![1, 4, 16, 64];
    let scale = ReadScale {
        log_bytes: if quick { 2 << 20 } else { 1 << 30 },
        read_records: if quick { 10_000 } else { 1_000_000 },
        open_repeats: if quick { 1 } else { 3 },
    };
    let quick_dir = PathBuf::from("target/bench-quick");
    let out = args.out.clone().unwrap_or_else(|| {
        if quick {
            quick_dir.join("BENCHMARKS.md")
        } else {
            PathBuf::from("BENCHMARKS.md")
        }
    });
    let chart_dir = args.charts.clone().unwrap_or_else(|| {
        if quick {
            quick_dir.clone()
        } else {
            PathBuf::from("docs/bench")
        }
    });
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let data = tempfile::Builder::new()
        .prefix(".walden-bench-")
        .tempdir_in(&base)?;
    let machine = machine::Machine::describe(data.path());
    eprintln!(
        "walden-bench: data in {} ({} on {})",
        data.path().display(),
        machine.filesystem,
        machine.device
    );

    eprintln!("checksums");
    let checksum_sizes = [128usize, 4096, 1 << 20];
    let per_case = Duration::from_secs_f64(if quick { 0.005 } else { 0.3 });
    let checksums = checksums::measure(&checksum_sizes, per_case);

    eprintln!("physical limits");
    let fsync_sizes = workloads::fsync_sizes(&writers);
    let mut limits = limits::measure(data.path(), &fsync_sizes, scale.log_bytes, budget)?;

    let peers = peers::selected(&args.peers);
    let mut rows = Vec::new();
    if !args.limits_only {
        // Case by case, every peer in turn (`workloads::each_peer`).
        let mut turn = 0;
        if !args.reads_only {
            rows.extend(workloads::run_writes(
                data.path(),
                &peers,
                &mut limits,
                budget,
                &writers,
                &mut turn,
            ));
        }
        let read_budget = Budget {
            max_ops: if quick { 1_000 } else { 200_000 },
            ..budget
        };
        rows.extend(reads::run_reads(
            data.path(),
            &peers,
            &limits,
            scale,
            read_budget,
            &mut turn,
        ));
    }
    drop(data);

    let chart_names = charts::draw(
        &chart_dir,
        &rows,
        &limits,
        &writers,
        workloads::W4,
        workloads::W1,
        "128 B",
    )?;
    // Links in the report are relative to the report's own directory.
    let report_dir = out.parent().map(PathBuf::from).unwrap_or_default();
    let chart_links: Vec<String> = chart_names
        .iter()
        .map(|name| relative(&chart_dir.join(name), &report_dir))
        .collect();
    let command = format!(
        "cargo run --release -p walden-bench --{}",
        std::env::args()
            .skip(1)
            .map(|a| format!(" {a}"))
            .collect::<String>()
    );
    let command = command.trim_end_matches(" --").to_owned();
    let markdown = report::render(&report::Run {
        command,
        quick,
        machine: &machine,
        crc_fast_target: checksums::crc_fast_target(),
        checksums: &checksums,
        checksum_sizes: &checksum_sizes,
        limits: &limits,
        peers: &peers,
        rows: &rows,
        charts: &chart_links,
    });
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    // Sections other benchmarks wrote into the report (the replicated-writes one) survive.
    let mut markdown = markdown;
    if let Ok(old) = std::fs::read_to_string(&out) {
        let kept = report::kept_sections(&old);
        if !kept.is_empty() {
            markdown.push('\n');
            markdown.push_str(&kept);
        }
    }
    std::fs::write(&out, markdown)?;
    eprintln!(
        "wrote {} and {} chart(s) in {}",
        out.display(),
        chart_names.len(),
        chart_dir.display()
    );
    Ok(())
}

/// `path` relative to `from` when `from` is a prefix of it, else `path` as given.
fn relative(path: &std::path::Path, from: &std::path::Path) -> String {
    path.strip_prefix(from)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}
