//! Closing removed segments' files off the caller's thread.
//!
//! A file's blocks are freed at its last close after the unlink (or at the unlink, when nothing
//! holds it open). On a file system that discards freed blocks as it frees them (ext4 mounted
//! with `discard`, as many cloud images are), that waits for the device: 13-16 ms per 64 MiB
//! segment on this project's VM. `truncate_front` removes segments under the log lock, so every
//! appender and reader waited for it, once per segment removed (66-88 ms for four, `cargo run
//! --release -p walden-bench --example retention`). `FileStorage::remove` now holds the
//! segment's file open across the unlink (which then only drops the name: 20 µs) and, once the
//! directory sync that follows has made the unlink durable, hands it here: a background job
//! shrinks it [`SHRINK_STEP`] at a time, then closes it. Freed all at once, the 64 MiB held up
//! every `fdatasync` of the log behind the device's discard (up to 10 ms, measured); freed
//! 4 MiB at a time, by about a millisecond at most.
//!
//! Nothing durable depends on this: the name is gone, durably, before a file is shrunk, so no
//! crash can bring back a shortened segment (a file whose unlink is not known durable is only
//! closed, never shrunk), and nothing reads an unlinked file.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::filesystem::{FileSystem, FsFile, JobStep, Worker};

/// How much of a removed file a step of the job frees (see the module's documentation).
pub(crate) const SHRINK_STEP: u64 = 4 << 20;

/// At most this many files wait for the job; past it, a file is closed on the caller's thread
/// (as before the closer): a `truncate_front` of hundreds of segments must not hold hundreds
/// of descriptors open at once (the process's limit is often 1024), and the wait is then the
/// backpressure.
pub(crate) const MAX_QUEUED: usize = 16;

/// A file to close, and whether to shrink it first (only once its unlink is durable).
struct Closing<F: FileSystem> {
    file: Arc<F::File>,
    shrink: bool,
}

struct State<F: FileSystem> {
    /// Files to close, in no particular order.
    queue: Vec<Closing<F>>,
    /// Whether a job is draining `queue`: it clears this when it finds `queue` empty, under
    /// the same lock, so a file pushed while it is set is always taken by that job.
    running: bool,
}

/// Closes files on a background job (see the module's documentation).
pub(crate) struct Closer<F: FileSystem> {
    state: Arc<Mutex<State<F>>>,
    worker: Mutex<Option<Worker>>,
}

impl<F: FileSystem> Default for Closer<F> {
    fn default() -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                queue: Vec::new(),
                running: false,
            })),
            worker: Mutex::new(None),
        }
    }
}

fn lock<F: FileSystem>(state: &Mutex<State<F>>) -> MutexGuard<'_, State<F>> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<F: FileSystem> Closer<F> {
    /// Drops `file` on a background job (on the caller's thread if no job can be started),
    /// shrinking it to nothing first if `shrink`: only for a file whose unlink is durable.
    pub(crate) fn close_later(&self, fs: &F, file: Arc<F::File>, shrink: bool) {
        {
            let mut st = lock(&self.state);
            if st.queue.len() >= MAX_QUEUED {
                drop(st);
                drop(file);
                return;
            }
            st.queue.push(Closing { file, shrink });
            if st.running {
                return;
            }
            st.running = true;
        }
        let state = Arc::clone(&self.state);
        let mut current: Option<Closing<F>> = None;
        let job = Box::new(move || {
            if current.is_none() {
                let mut st = lock(&state);
                current = st.queue.pop();
                st.running = current.is_some();
            }
            let Some(closing) = current.as_mut() else {
                return JobStep::Done;
            };
            // A failure only means the rest is freed at the close.
            if closing.shrink
                && let Ok(len) = closing.file.len()
                && len > 0
                && (closing.file)
                    .set_len(len.saturating_sub(SHRINK_STEP))
                    .is_ok()
            {
                return JobStep::Again;
            }
            current = None; // the close
            JobStep::Again
        });
        match fs.spawn("walden-close", job) {
            // A previous job found the queue empty (it cleared `running`); reap it.
            Ok(worker) => worker.replace_in(&self.worker),
            Err(e) => {
                tracing::debug!(error = %e, "could not start a job to close removed segments");
                let files = {
                    let mut st = lock(&self.state);
                    st.running = false;
                    core::mem::take(&mut st.queue)
                };
                drop(files);
            }
        }
    }

    /// Waits for the job, which closes whatever is queued first.
    pub(crate) fn shutdown(&self) {
        Worker::join_slot(&self.worker);
    }
}
