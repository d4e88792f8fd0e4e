//! app::intake: the thread the telemetry intake runs on, so that the rules (and
//! whatever else `Pipeline::ingest` costs on a huge batch) never run on the tokio
//! runtime thread that answers Lambda: a slow pattern on a 1 MiB line must not delay the
//! event loop's `next`, INVOKE handling, or the flusher.
//!
//! Owns one named thread and its FIFO of jobs: jobs run one at a time in the order they
//! were submitted (batch order is kept), and [`Intake::run`] resolves only once its job
//! has finished, so the telemetry handler answers Lambda after the items are held. A job
//! that panics is reported as an error (the batch is refused and delivered again) and
//! the thread goes on. When the thread cannot be started, jobs run inline on the
//! caller's thread, as before there was one. Started at the first job.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// The intake thread. See the module documentation.
#[derive(Default)]
pub(crate) struct Intake {
    /// `None` inside: the thread could not be started; jobs run inline.
    tx: OnceLock<Option<Mutex<mpsc::Sender<Job>>>>,
}

/// A job panicked; its work is lost (nothing was acknowledged for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Panicked;

impl Intake {
    /// Runs `f` on the intake thread after every job submitted before it, and resolves
    /// to its result once it has finished.
    pub(crate) async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, Panicked> {
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // A panic is caught here so the thread survives; the receiver sees it as Err.
            if let Ok(v) = catch_unwind(AssertUnwindSafe(f)) {
                let _ = done.send(v);
            }
        });
        let sent = match self.sender() {
            Some(tx) => tx.lock().unwrap_or_else(|p| p.into_inner()).send(job).map_err(|e| e.0),
            None => Err(job),
        };
        if let Err(job) = sent {
            job();
        }
        result.await.map_err(|_| Panicked)
    }

    fn sender(&self) -> Option<&Mutex<mpsc::Sender<Job>>> {
        self.tx
            .get_or_init(|| {
                let (tx, rx) = mpsc::channel::<Job>();
                let spawned = std::thread::Builder::new().name("tandem-intake".into()).spawn(move || {
                    // Ends when the `Intake` (its sender) is dropped.
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                });
                match spawned {
                    Ok(_) => Some(Mutex::new(tx)),
                    Err(e) => {
                        crate::diag::warn(format_args!("cannot start the intake thread ({e}); ingesting inline"));
                        None
                    }
                }
            })
            .as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    fn current_thread_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
    }

    #[test]
    fn jobs_run_off_the_runtime_thread_in_order_and_resolve_when_done() {
        let rt = current_thread_runtime();
        let intake = Arc::new(Intake::default());
        let runtime_thread = thread::current().id();
        let seen = Arc::new(Mutex::new(Vec::new()));
        rt.block_on(async {
            // Submitted from concurrent tasks, as the SDK's connections do (tasks are
            // first polled in the order they were spawned).
            let tasks: Vec<_> = (0..20)
                .map(|i| {
                    let (seen, intake) = (seen.clone(), intake.clone());
                    tokio::spawn(async move {
                        let r = intake
                            .run(move || {
                                seen.lock().unwrap().push(i);
                                (thread::current().id(), thread::current().name().map(str::to_owned))
                            })
                            .await;
                        (i, r)
                    })
                })
                .collect();
            for task in tasks {
                let (i, r) = task.await.unwrap();
                let (id, name) = r.unwrap();
                assert_ne!(id, runtime_thread, "job {i} ran on the runtime thread");
                assert_eq!(name.as_deref(), Some("tandem-intake"));
                // Resolved only once done: its own push is already there.
                assert!(seen.lock().unwrap().contains(&i));
            }
        });
        assert_eq!(*seen.lock().unwrap(), (0..20).collect::<Vec<_>>(), "batch order kept");
    }

    #[test]
    fn the_runtime_thread_keeps_running_while_a_job_is_slow() {
        // The job blocks until a task on the (single-threaded) runtime has run: if the job
        // ran on the runtime thread, that task could never run and the job would wait
        // out its (generous) timeout.
        let rt = current_thread_runtime();
        let intake = Intake::default();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let outcome = rt.block_on(async {
            let job = intake.run(move || wait.recv_timeout(Duration::from_secs(30)).is_ok());
            let other = async {
                tokio::task::yield_now().await;
                go.send(()).unwrap();
            };
            let (job, ()) = tokio::join!(job, other);
            job
        });
        assert_eq!(outcome, Ok(true), "the runtime ran the other task while the job was blocked");
    }

    #[test]
    fn a_panicking_job_is_an_error_and_the_thread_goes_on() {
        let rt = current_thread_runtime();
        let intake = Intake::default();
        rt.block_on(async {
            let r: Result<(), Panicked> = intake.run(|| panic!("a bad batch")).await;
            assert_eq!(r, Err(Panicked));
            assert_eq!(intake.run(|| 7).await, Ok(7));
        });
    }
}
