//! `walden`: inspect, verify, dump and repair Walden log directories.
//!
//! Read-only commands (`inspect`, `verify`, `dump`) never create, change or remove a file; they
//! take a shared lock on `walden.lock` and refuse a directory that a running log holds. `repair`
//! takes the exclusive lock and copies every file it will change to `<name>.broken` first.
//! Exit codes are listed in `docs/OPERATIONS.md` and in `walden --help`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use walden_core::{Config, RecoveryPolicy};

/// `eprintln!` that cannot panic: when stderr is a pipe its reader has closed (`2>&1 | head`),
/// no one is left to tell, and the exit status still says what happened.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod dump;
mod examine;
mod render;
mod repair;
mod survey;

use survey::Failure;

/// Exit status: the log is clean (or the command succeeded).
const EXIT_CLEAN: u8 = 0;
/// Exit status: a torn tail or torn segment creation, repaired by `walden repair` (and by any
/// ordinary open). What it cuts, no record proves acknowledged: a crash's unsynced writes, or
/// damage after a sync that nothing written later vouches for (docs/FORMAT.md, "What is still
/// ambiguous").
const EXIT_TORN: u8 = 1;
/// Exit status: corruption, or anything else an ordinary open refuses.
const EXIT_CORRUPT: u8 = 2;
/// Exit status: the command could not run (locked, not a directory, no segment file in it, I/O
/// error, a needed key missing).
const EXIT_FAILURE: u8 = 3;
/// Exit status: bad command line.
const EXIT_USAGE: u8 = 64;

const AFTER_HELP: &str = "\
Exit status:
  0   clean (or: the command did what it was asked)
  1   torn tail or torn segment creation: what an ordinary crash leaves; `walden repair`
      fixes it (as any open would), keeping a .broken copy of every file it changes; no
      record proves that what it cuts was acknowledged
  2   corruption (or another problem an ordinary open refuses); `walden repair` refuses it
      unless given --salvage
  3   the command could not run: directory locked by a running log, not a directory,
      no Walden segment file (*.wal) in it, permission denied, I/O error, a key the
      command needs not in --key-file, a --key-file that cannot be read
  64  bad command line, a --key-file that is not a key file included

Read-only commands never write to the directory and never follow a symlink inside it.";

/// Inspect, verify, dump and repair Walden write-ahead log directories.
#[derive(Parser, Debug)]
#[command(name = "walden", version, after_help = AFTER_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show every segment: header fields, records, LSN range, size, and what a reopen would do.
    Inspect {
        #[command(flatten)]
        common: Common,
        /// The recovery policy whose decision to show.
        #[arg(long, value_enum, default_value_t = Policy::TolerateTornTail)]
        policy: Policy,
    },
    /// Verify every checksum; list each problem with its recovery case, segment and offset.
    ///
    /// Exits 0 when clean, 1 for a torn tail (repairable), 2 for corruption.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// Print the log's verified records, one per line.
    Dump {
        #[command(flatten)]
        common: Common,
        /// First LSN to print.
        #[arg(long, value_name = "LSN")]
        from: Option<u64>,
        /// Last LSN to print.
        #[arg(long, value_name = "LSN")]
        to: Option<u64>,
        /// How to print payloads (`--json` implies `json`).
        #[arg(long, value_enum, default_value_t = Format::Hex)]
        format: Format,
        /// Also decode payloads as key-value entries (walden_core::Entry) where they are.
        #[arg(long)]
        entries: bool,
    },
    /// Repair a torn tail or torn segment creation durably, keeping a `.broken` copy of every
    /// file it changes.
    ///
    /// Refuses corruption unless --salvage is given; with --salvage it keeps the longest valid
    /// prefix of the log and says exactly which LSNs were given up.
    Repair {
        #[command(flatten)]
        common: Common,
        /// Also give up damaged and later data to make the log open again (see the report for
        /// the LSNs lost).
        #[arg(long)]
        salvage: bool,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// The log directory.
    dir: PathBuf,
    /// Machine-readable JSON output (one object; for `dump`, one object per line).
    #[arg(long)]
    json: bool,
    /// The log's max_record_size. A valid record longer than this is reported as a
    /// configuration error, as an open with this limit would (never cut). The default is the
    /// largest limit any log can have, so records of any writer are read.
    #[arg(
        long,
        value_name = "BYTES",
        default_value_t = walden_core::MAX_RECORD_SIZE_LIMIT,
        value_parser = clap::value_parser!(u32).range(1..=i64::from(walden_core::MAX_RECORD_SIZE_LIMIT)),
    )]
    max_record_size: u32,
    /// The key file of an encrypted log (64 hex digits per key and line; see
    /// docs/OPERATIONS.md). `dump` needs it to show encrypted records and authenticates each
    /// one; `verify` with it also authenticates every record (a record altered with its
    /// checksum recomputed is corruption, exit status 2). `inspect` and `repair` never need a
    /// key (recovery checks the stored bytes' checksums) and accept it for uniform scripts;
    /// every command refuses a file that is not a key file (exit status 64).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

impl Common {
    /// The keyring of `--key-file`, if given. A file that cannot be read is a failure to run;
    /// one that is not a key file (a bad line, no key, not text) is a bad command line.
    fn keys(&self) -> Result<Option<walden_core::Keyring>, Failure> {
        use walden_std::KeyFileError;
        let Some(path) = &self.key_file else {
            return Ok(None);
        };
        walden_std::load_key_file(path)
            .map(Some)
            .map_err(|e| match e {
                KeyFileError::Io { ref error, .. }
                    if error.kind() != io::ErrorKind::InvalidData =>
                {
                    Failure::new(e.to_string())
                }
                _ => Failure::usage(e.to_string()),
            })
    }

    /// The configuration the log is read with. Only the command line shapes it, so a
    /// configuration that does not validate is a bad command line.
    fn config(&self, policy: RecoveryPolicy) -> Result<Config, Failure> {
        let config = Config::default()
            .with_max_record_size(self.max_record_size)
            .with_max_batch_size(
                u64::from(self.max_record_size).max(Config::default().max_batch_size),
            )
            .with_recovery(policy);
        config
            .validate()
            .map_err(|e| Failure::usage(format!("--max-record-size: {e}")))?;
        Ok(config)
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Policy {
    /// Any invalid byte is an error.
    Strict,
    /// Cut a torn tail; refuse corruption (what an ordinary open does).
    TolerateTornTail,
    /// Keep the longest valid prefix.
    Salvage,
}

impl From<Policy> for RecoveryPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::Strict => RecoveryPolicy::Strict,
            Policy::TolerateTornTail => RecoveryPolicy::TolerateTornTail,
            Policy::Salvage => RecoveryPolicy::Salvage,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Payload as hex.
    Hex,
    /// Payload as text (invalid UTF-8 shown escaped).
    Utf8,
    /// JSON lines.
    Json,
}

/// A write to stdout, where a reader that stopped reading (`walden verify DIR | head -1`) is
/// no error: it has what it wanted, and the exit status stays the command's verdict.
fn reader_gone(written: io::Result<()>) -> io::Result<()> {
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes `text` to stdout. Any error but a closed pipe ([`reader_gone`]) is a failure.
fn print_out(text: &str) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    reader_gone(out.write_all(text.as_bytes()).and_then(|()| out.flush()))
        .map_err(|e| Failure::new(format!("cannot write to stdout: {e}")))
}

/// Prints a command that did not run as the one JSON object `--json` promises.
fn print_json_error(e: &Failure) {
    let v = serde_json::json!({ "error": e.message, "exit_code": e.code });
    let _ = print_out(&format!("{v}\n"));
}

/// Whether a command line clap refused still asked for `--json` (before any `--`).
fn asked_for_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` are not errors; anything else is a bad command line,
            // which a script that asked for `--json` gets as the one object it expects too.
            if e.use_stderr() && asked_for_json(std::env::args_os().skip(1)) {
                // clap's message is the paragraph before the usage line.
                let text = e.render().to_string();
                let paragraph: Vec<&str> = text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect();
                let message = paragraph.join(" ");
                let message = message.strip_prefix("error: ").unwrap_or(&message);
                print_json_error(&Failure::usage(message.to_owned()));
            }
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let json = match &cli.command {
        Command::Inspect { common, .. }
        | Command::Verify { common }
        | Command::Dump { common, .. }
        | Command::Repair { common, .. } => common.json,
    };
    let result = match cli.command {
        Command::Dump {
            from: Some(from),
            to: Some(to),
            ..
        } if from > to => Err(Failure::usage(format!(
            "--from {from} is after --to {to}: no LSN is in that range"
        ))),
        Command::Inspect { common, policy } => examine::inspect(&common, policy.into()),
        Command::Verify { common } => examine::verify(&common),
        Command::Dump {
            common,
            from,
            to,
            format,
            entries,
        } => dump::run(&common, from, to, format, entries),
        Command::Repair { common, salvage } => repair::run(&common, salvage),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if json {
                print_json_error(&e);
            }
            note!("walden: {e}");
            ExitCode::from(e.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's range keeps every `--max-record-size` the binary accepts valid today; a value
    /// that does not validate still names the option and is a usage error, not a failure to run.
    #[test]
    fn a_configuration_that_does_not_validate_is_a_usage_error() {
        let common = Common {
            dir: PathBuf::from("log"),
            json: false,
            max_record_size: 0,
            key_file: None,
        };
        let e = common.config(RecoveryPolicy::TolerateTornTail).unwrap_err();
        assert_eq!(e.code, EXIT_USAGE, "{e}");
        assert!(e.message.starts_with("--max-record-size: "), "{e}");
    }
}
