//! The one background-task mechanism: named tasks with a shared shutdown signal.
//! Tasks are awaited on close and aborted when the handle is dropped; nothing is detached.

use std::future::Future;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub(crate) struct Tasks {
    shutdown: watch::Sender<bool>,
    handles: Mutex<Vec<(&'static str, JoinHandle<()>)>>,
    /// Held through `Db::close`, so a concurrent second call returns only once the first
    /// has finished.
    pub close_lock: tokio::sync::Mutex<()>,
}

impl Tasks {
    pub fn new() -> Self {
        Tasks {
            shutdown: watch::channel(false).0,
            handles: Mutex::new(Vec::new()),
            close_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// A receiver that turns `true` when the tasks should stop.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// Spawn `fut` as the task `name`, owned by this set.
    #[expect(clippy::disallowed_methods, reason = "the task seam itself")]
    pub fn spawn(&self, name: &'static str, fut: impl Future<Output = ()> + Send + 'static) {
        self.handles.lock().push((name, tokio::spawn(fut)));
    }

    /// Signal shutdown and wait for every task to finish.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let handles = std::mem::take(&mut *self.handles.lock());
        for (name, h) in handles {
            if let Err(e) = h.await {
                if !e.is_cancelled() {
                    tracing::error!(task = name, error = %e, "background task panicked");
                }
            }
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        for (_, h) in self.handles.get_mut().drain(..) {
            h.abort();
        }
    }
}
