//! The background work of a role, tracked: every task a manager, hub or node
//! spawns is counted, loops stop when the role stops, and shutdown waits for
//! what is still running instead of leaving it to be cut off at exit.

use std::future::Future;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Tracks a role's tasks. Cheap to clone; clones share the same tasks.
#[derive(Clone, Default)]
pub struct Tasks {
    /// Every task spawned through this handle, until it finishes.
    tracker: TaskTracker,
    /// Cancelled when the role stops: loops and tunnels end.
    stop: CancellationToken,
}

impl Tasks {
    /// Runs `work` to its end in a task of its own (so a cancelled caller
    /// cannot cut it off half-way), tracked until it finishes.
    pub fn spawn<F>(&self, work: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(work)
    }

    /// Runs `work` (a loop, a tunnel) until it ends or the role stops.
    pub fn spawn_until_stopped<F>(&self, work: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = work => {}
            }
        })
    }

    /// Resolves once the role has begun to stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }

    /// Whether the role has begun to stop.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Stops loops and tunnels, then waits up to `grace` for every task to
    /// finish; `false` if some were still running when the grace ran out.
    /// Must not be awaited from a task of these same tasks.
    pub async fn close(&self, grace: Duration) -> bool {
        self.stop.cancel();
        self.tracker.close();
        let done = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !done {
            tracing::warn!(
                running = self.tracker.len(),
                "background tasks still running at shutdown"
            );
        }
        done
    }

    /// Tasks still running.
    pub fn running(&self) -> usize {
        self.tracker.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn close_stops_loops_and_waits_for_work() {
        let tasks = Tasks::default();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tasks.spawn_until_stopped(std::future::pending());
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(());
        });
        assert_eq!(tasks.running(), 2);
        assert!(tasks.close(Duration::from_secs(5)).await);
        assert_eq!(tasks.running(), 0);
        assert!(
            rx.await.is_ok(),
            "work ran to its end before close returned"
        );
        assert!(tasks.is_stopping());
    }

    #[tokio::test]
    async fn close_gives_up_after_the_grace() {
        let tasks = Tasks::default();
        tasks.spawn(std::future::pending::<()>());
        assert!(!tasks.close(Duration::from_millis(20)).await);
        assert_eq!(tasks.running(), 1);
    }
}
