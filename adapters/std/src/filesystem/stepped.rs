//! Background jobs run in steps chosen by the caller instead of on threads, so that what a
//! file system sees is the same on every run (the simulated file system's and the FUSE
//! power-loss harness's `FileSystem::spawn`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Job, JobStep, Worker};

struct Queued {
    id: u64,
    name: String,
    job: Job,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Queued>,
    next_id: u64,
}

/// A queue of background [`Job`]s that run only when the owner says: in
/// [`SteppedJobs::run`], or when walden-std waits for one ([`Worker::join`]). Clones share the
/// queue.
#[derive(Clone, Default)]
pub struct SteppedJobs {
    queue: Arc<Mutex<Queue>>,
}

impl SteppedJobs {
    /// Queues `job` (with `inline`, after running it at once until it finishes or waits for
    /// the writer) and returns the worker that walden-std joins: joining takes the job off the
    /// queue and runs it while it has steps to take. A job that still waits for the writer
    /// then would never end on a thread either; it is abandoned (it takes no further step).
    pub fn spawn(&self, name: &str, mut job: Job, inline: bool) -> Worker {
        if inline {
            loop {
                match job() {
                    JobStep::Again => {}
                    JobStep::Done => return Worker::custom(|| {}),
                    JobStep::Wait(_) => break, // queued below, like a deferred job
                }
            }
        }
        let id = {
            let mut queue = self.lock();
            let id = queue.next_id;
            queue.next_id += 1;
            queue.jobs.push_back(Queued {
                id,
                name: name.into(),
                job,
            });
            id
        };
        let queue = Arc::clone(&self.queue);
        Worker::custom(move || {
            let queued = {
                let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
                let at = queue.jobs.iter().position(|q| q.id == id);
                at.and_then(|at| queue.jobs.remove(at))
            };
            if let Some(mut queued) = queued {
                while (queued.job)() == JobStep::Again {}
            }
        })
    }

    /// Runs up to `steps` steps of the queued jobs, oldest first (a job that waits for the
    /// writer goes to the back), and stops early once every queued job waits. Returns how many
    /// steps ran.
    pub fn run(&self, steps: usize) -> usize {
        let mut ran = 0;
        let mut waiting = 0;
        while ran < steps {
            let Some(mut queued) = self.lock().jobs.pop_front() else {
                break;
            };
            ran += 1;
            let step = (queued.job)();
            let mut queue = self.lock();
            match step {
                JobStep::Done => waiting = 0,
                JobStep::Again => {
                    waiting = 0;
                    queue.jobs.push_front(queued);
                }
                JobStep::Wait(_) => {
                    waiting += 1;
                    let all_waiting = waiting > queue.jobs.len();
                    queue.jobs.push_back(queued);
                    if all_waiting {
                        break; // every job waits for the writer
                    }
                }
            }
        }
        ran
    }

    /// Jobs queued and not finished.
    pub fn pending(&self) -> usize {
        self.lock().jobs.len()
    }

    /// Names of the queued jobs, oldest first.
    pub fn names(&self) -> Vec<String> {
        self.lock().jobs.iter().map(|q| q.name.clone()).collect()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
