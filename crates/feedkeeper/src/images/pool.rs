//! The threads that make variants: a few of their own (`images.process_concurrency`), at a
//! lower scheduling priority than the serving threads, so a backlog of images uses the CPU the
//! web server leaves and never the other way round. Work waits in the caller (a job), never in
//! an unbounded queue here: [`ImagePool::run`] takes a slot before it sends.

use std::sync::{Arc, Mutex, mpsc};

use tokio::sync::{Semaphore, oneshot};

type Task = Box<dyn FnOnce() + Send>;

/// How much lower than the rest of the process the pool's threads run (`nice`).
const NICENESS: i32 = 10;

/// A fixed set of low-priority threads.
#[derive(Clone)]
pub struct ImagePool {
    send: Arc<Mutex<mpsc::Sender<Task>>>,
    slots: Arc<Semaphore>,
}

impl std::fmt::Debug for ImagePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImagePool")
            .field("free", &self.slots.available_permits())
            .finish()
    }
}

impl ImagePool {
    /// Starts `threads` threads (they end when the last handle is dropped).
    pub fn new(threads: usize) -> ImagePool {
        let threads = threads.max(1);
        let (send, receive) = mpsc::channel::<Task>();
        let receive = Arc::new(Mutex::new(receive));
        for n in 0..threads {
            let receive = receive.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("images-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let task = match receive.lock() {
                            Ok(r) => r.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match task {
                            Ok(task) => task(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start an image thread");
            }
        }
        ImagePool {
            send: Arc::new(Mutex::new(send)),
            slots: Arc::new(Semaphore::new(threads)),
        }
    }

    /// Runs `work` on one of the pool's threads once one is free, and returns its result. A
    /// panic in `work` is returned as an error (the thread lives on).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let _slot = self.slots.acquire().await?;
        let (done, result) = oneshot::channel();
        let task: Task = Box::new(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
            let _ = done.send(outcome);
        });
        self.send
            .lock()
            .map_err(|_| anyhow::anyhow!("the image pool is broken"))?
            .send(task)
            .map_err(|_| anyhow::anyhow!("the image pool has stopped"))?;
        match result.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => anyhow::bail!("making an image's variants panicked"),
            Err(_) => anyhow::bail!("the image pool dropped a task"),
        }
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // A thread's nice value is its own on Linux: this leaves the serving threads as they are.
    if let Err(e) = rustix::process::nice(NICENESS) {
        tracing::debug!(error = %e, "image threads keep the normal priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {
    let _ = NICENESS;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_work_and_survives_a_panic() {
        let pool = ImagePool::new(1);
        assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
        let panicked = pool.run(|| -> u32 { panic!("bad image") }).await;
        assert!(panicked.is_err());
        assert_eq!(pool.run(|| 5).await.unwrap(), 5);
    }
}
