//! One wasmtime engine, the compiled guest component, and running it once with a fuel budget.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::p2::bindings::sync::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::durable::DurableImage;
use crate::hooks;
use crate::points::{Cut, Cutter, Events, PowerCut, Target};

/// Where the guest sees its data directory.
pub(crate) const GUEST_DATA_DIR: &str = "/data";

/// Most a guest may print in one run; the ACK stream of a long run fits many times over.
const STDOUT_CAPACITY: usize = 256 << 20;

/// The store's data: WASI state plus what the hooks (`hooks.rs`) keep: the durable image, the
/// crash-point cutter, and whether syncs reach the real disk.
pub(crate) struct HostState {
    ctx: WasiCtx,
    table: ResourceTable,
    pub(crate) image: DurableImage,
    pub(crate) cutter: Cutter,
    /// Whether the hooked syncs also `fdatasync`/`fsync` for real (the crash loop simulates
    /// the power loss from the image and does not need them).
    pub(crate) real_sync: bool,
    /// The file each descriptor `open-at` returned was opened by (by resource handle), so the
    /// hooks need not look files up by inode.
    pub(crate) opened: HashMap<u32, String>,
    /// Writes the hooked `write` refuses ([`RunOptions::fail_writes`]).
    pub(crate) fail_writes: Option<FailWrites>,
}

impl HostState {
    /// The state of one run: `ctx`, and the hooks' image, cutter and sync mode.
    pub(crate) fn new(ctx: WasiCtx, image: DurableImage, cutter: Cutter, real_sync: bool) -> Self {
        Self {
            ctx,
            table: ResourceTable::new(),
            image,
            cutter,
            real_sync,
            opened: HashMap::new(),
            fail_writes: None,
        }
    }

    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// How one run of the guest ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `main` returned normally.
    Finished,
    /// The fuel budget ran out: a crash at an arbitrary instruction.
    OutOfFuel,
    /// The host cut the power at a crash point (see [`RunOutcome::cut`]).
    PowerCut,
    /// The guest exited with a non-zero status or trapped for another reason (a panic).
    Failed,
}

/// What one run produced.
pub(crate) struct RunOutcome {
    pub(crate) ending: Ending,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) fuel_used: u64,
    /// The error text for [`Ending::Failed`].
    pub(crate) failure: Option<String>,
    /// Where the host cut the power, for [`Ending::PowerCut`].
    pub(crate) cut: Option<Cut>,
    /// The crash points the run passed.
    pub(crate) events: Events,
}

/// How one run is cut short, and how its syncs behave.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RunOptions {
    /// Fuel budget (ignored by an unmetered guest).
    pub(crate) fuel: u64,
    /// The crash point to cut the power at, if any.
    pub(crate) target: Option<Target>,
    /// Whether hooked syncs reach the real disk.
    pub(crate) real_sync: bool,
    /// Writes the host refuses, if any (a hooked guest only).
    pub(crate) fail_writes: Option<FailWrites>,
}

impl RunOptions {
    /// Runs to the end, syncing for real.
    pub(crate) fn whole() -> Self {
        Self {
            fuel: u64::MAX / 2,
            target: None,
            real_sync: true,
            fail_writes: None,
        }
    }
}

/// Writes the host refuses with the WASI error `io`: every `write` to `file` (its path below
/// the preopen) that reaches `from` or beyond. For tests of how a failed write is reported.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FailWrites {
    pub(crate) file: &'static str,
    pub(crate) from: u64,
}

/// The engine and the pre-linked guest, reused by every run.
pub(crate) struct Guest {
    engine: Engine,
    pre: CommandPre<HostState>,
    fuel: bool,
}

impl Guest {
    /// Compiles the guest component at `wasm`. With `fuel`, every run is metered and can be cut
    /// at an arbitrary instruction, and the durability-deciding calls are hooked (they feed
    /// the power-loss model and are crash points); without it (for benchmarks) runs are not
    /// metered and use wasmtime's own calls.
    pub(crate) fn load(wasm: &Path, fuel: bool) -> Result<Self> {
        let mut config = Config::new();
        config.consume_fuel(fuel);
        let engine = Engine::new(&config)?;
        let component = Component::from_file(&engine, wasm)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("loading the guest component {}", wasm.display()))?;
        let mut linker = Linker::<HostState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        if fuel {
            hooks::install(&mut linker)?;
        }
        let pre = CommandPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self { engine, pre, fuel })
    }

    /// Runs the guest once with `args` (without the program name) against the host directory
    /// `data`, stopping it after `options.fuel` units if this guest is metered, or at
    /// `options.target`.
    pub(crate) fn run(
        &self,
        data: &Path,
        args: &[String],
        options: RunOptions,
        image: DurableImage,
    ) -> Result<(RunOutcome, DurableImage)> {
        let fuel = options.fuel;
        let stdout = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(STDOUT_CAPACITY);
        let mut builder = WasiCtxBuilder::new();
        builder
            .arg("walden-demo-guest")
            .args(args)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            // The host is synchronous: do file I/O on this thread rather than bouncing each
            // call through a blocking pool (and set it before the preopen, which captures it).
            .allow_blocking_current_thread(true)
            .preopened_dir(data, GUEST_DATA_DIR, FsPerms::ReadWrite)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("preopening {}", data.display()))?;
        let mut state = HostState::new(
            builder.build(),
            image,
            Cutter::new(options.target, stdout.clone()),
            options.real_sync,
        );
        state.fail_writes = options.fail_writes;
        let mut store = Store::new(&self.engine, state);
        if self.fuel {
            store.set_fuel(fuel)?;
        }
        let result = self
            .pre
            .instantiate(&mut store)
            .and_then(|command| command.wasi_cli_run().call_run(&mut store));
        let fuel_used = if self.fuel {
            fuel - store.get_fuel()?
        } else {
            0
        };
        let (ending, failure) = match result {
            Ok(Ok(())) => (Ending::Finished, None),
            Ok(Err(())) => (Ending::Failed, Some("the guest returned an error".into())),
            Err(e) if e.downcast_ref::<PowerCut>().is_some() => (Ending::PowerCut, None),
            Err(e) => match e.downcast_ref::<Trap>() {
                Some(Trap::OutOfFuel) => (Ending::OutOfFuel, None),
                _ => match e.downcast_ref::<I32Exit>() {
                    Some(I32Exit(0)) => (Ending::Finished, None),
                    // Its message is on stderr; the wasm backtrace would only repeat `exit`.
                    Some(I32Exit(status)) => {
                        (Ending::Failed, Some(format!("exited with status {status}")))
                    }
                    _ => (Ending::Failed, Some(format!("{e:?}"))),
                },
            },
        };
        let state = store.into_data();
        let (events, cut) = state.cutter.finish();
        let image = state.image;
        let outcome = RunOutcome {
            cut,
            events,
            ending,
            stdout: String::from_utf8_lossy(&stdout.contents()).into_owned(),
            stderr: String::from_utf8_lossy(&stderr.contents()).into_owned(),
            fuel_used,
            failure,
        };
        Ok((outcome, image))
    }
}

/// The guest component built by `build.rs`, unless `explicit` names another.
pub(crate) fn guest_path(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = explicit.map_or_else(
        || PathBuf::from(env!("WALDEN_GUEST_WASM")),
        Path::to_path_buf,
    );
    if !path.is_file() {
        bail!(
            "guest component {} not found; rebuild walden-demo-host (its build script builds the guest)",
            path.display()
        );
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With early rotation the log moves on to a new segment while the old one's last records
    /// are still buffered in the guest (walden-wasi hands them to the host when the new
    /// segment is first written). When the host refuses them, the error must name the old
    /// segment, whose records are lost, not the new one whose write triggered the hand-over
    /// (it named the new one: `IoFailure { op: Write, segment: Some(2), .. }`).
    #[test]
    fn a_failed_write_of_an_old_segments_buffer_is_reported_against_that_segment() {
        // The log's second segment (the first is 0).
        const FAILING: &str = "wal/00000000000000000001.wal";
        let guest = Guest::load(&guest_path(None).unwrap(), true).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let args: Vec<String> = [
            "--ops",
            "200",
            "--segment-size",
            "4096",
            "--min-value",
            "100",
            "--max-value",
            "200",
            "--early-rotation",
            // No sync before the end: segment 1's records stay buffered in the guest until
            // segment 2 is written.
            "--sync-every",
            "1000",
            "--write-buffer",
            "1048576",
        ]
        .map(String::from)
        .to_vec();
        let options = RunOptions {
            // Every write to segment 1 past its header (64 bytes) fails.
            fail_writes: Some(FailWrites {
                file: FAILING,
                from: 64,
            }),
            ..RunOptions::whole()
        };
        let image = DurableImage::of(tmp.path()).unwrap();
        let (outcome, _) = guest.run(tmp.path(), &args, options, image).unwrap();
        let shown = format!(
            "{:?}: {:?}\n{}\n--- stderr ---\n{}",
            outcome.ending, outcome.failure, outcome.stdout, outcome.stderr
        );
        assert_eq!(outcome.ending, Ending::Failed, "{shown}");
        assert!(
            tmp.path().join("wal/00000000000000000002.wal").exists(),
            "the log never moved on to segment 2: {shown}"
        );
        assert!(
            outcome.stderr.contains("segment: Some(1)"),
            "the failure does not name segment 1: {shown}"
        );
        assert!(
            !outcome.stderr.contains("segment: Some(2)"),
            "the failure names segment 2: {shown}"
        );
    }
}
