//! One side of a baseline connection that lives for a whole scenario: a thread
//! with a current-thread tokio runtime (as each netcore endpoint has an arbiter)
//! holding state set up once (a socket, a yamux connection) and running the jobs
//! the scenario hands it, round after round. Client and server are a `Side` each,
//! so a connection, its windows and its buffers stay warm across rounds, exactly
//! as a netcore link does.

use crate::peers::Error;
use crate::raw_tcp::{named, runtime};
use futures_util::future::LocalBoxFuture;
use std::future::Future;
use std::sync::mpsc as std_mpsc;
use tokio::sync::mpsc;

/// A job: what to do with the side's state, on its thread.
type Job<St> = Box<dyn FnOnce(St) -> LocalBoxFuture<'static, ()> + Send>;

/// A thread holding state `St` and running jobs on it in order.
pub struct Side<St> {
    jobs: Option<mpsc::UnboundedSender<Job<St>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<St: Clone + 'static> Side<St> {
    /// Starts thread `name`, which sets its state up with `setup` (errors end the
    /// thread, and every job then reports that it is gone) and then runs jobs
    /// until the side is dropped. Does not wait for the set-up.
    pub fn spawn<F, Fut>(name: &str, setup: F) -> Result<Side<St>, Error>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<St, Error>>,
    {
        let (jobs, mut queue) = mpsc::unbounded_channel::<Job<St>>();
        let thread = named(name).spawn(move || {
            let Ok(rt) = runtime() else { return };
            rt.block_on(async move {
                let Ok(state) = setup().await else { return };
                while let Some(job) = queue.recv().await {
                    job(state.clone()).await;
                }
            });
        })?;
        Ok(Side {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Hands `job` to the thread; the result arrives on the returned receiver
    /// (so a client and a server job can both be started before either is waited for).
    pub fn start<R, J, Fut>(&self, job: J) -> std_mpsc::Receiver<Result<R, Error>>
    where
        R: Send + 'static,
        J: FnOnce(St) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, Error>> + 'static,
    {
        let (tx, rx) = std_mpsc::channel();
        let job: Job<St> = Box::new(move |state| {
            Box::pin(async move {
                let _ = tx.send(job(state).await);
            })
        });
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(job);
        }
        rx
    }
}

/// The result of a started job; an error if its thread is gone.
pub fn wait<R>(result: std_mpsc::Receiver<Result<R, Error>>) -> Result<R, Error> {
    result
        .recv()
        .map_err(|_| "a baseline thread stopped (its set-up failed?)")?
}

impl<St> Drop for Side<St> {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop (and drops its state: the
        // connection closes).
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
