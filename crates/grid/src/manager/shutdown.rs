//! Shutdown, recovery after an earlier process, and removing session files.

use super::Manager;
use crate::timing::{DIR_REMOVE_ATTEMPTS, DIR_REMOVE_BACKOFF, SHUTDOWN_START_GRACE, TASKS_GRACE};
use gridiron_domain::EndReason;
use gridiron_provision::sweep;
use gridiron_store::{now_ms, Store};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{info, warn};

impl Manager {
    /// Whether [`Manager::shutdown`] has finished.
    pub fn is_shut_down(&self) -> bool {
        *self.shut_down.borrow()
    }

    /// Refuses new work, fails waiters, ends every session and stops every
    /// process this grid started. A second call waits for the first to finish.
    pub async fn shutdown(self: &Arc<Self>) {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            let _ = self.shut_down.subscribe().wait_for(|done| *done).await;
            return;
        }
        self.slots.close();
        self.warm.close().await;
        // Starts already under way finish first (and end themselves, seeing the
        // shutdown), so none is cut off half-way with processes running.
        let mut starting = self.starting.subscribe();
        let _ = tokio::time::timeout(SHUTDOWN_START_GRACE, starting.wait_for(|n| *n == 0)).await;
        let mut ends = tokio::task::JoinSet::new();
        for s in self.all_sessions() {
            let m = self.clone();
            ends.spawn(async move { m.end(&s.id, EndReason::Shutdown).await });
        }
        while ends.join_next().await.is_some() {}
        self.provisioner.close().await;
        // Anything still carrying our marker (a start that raced shutdown) goes too.
        let data_dir = self.config.data_dir.clone();
        let stray = tokio::task::spawn_blocking(move || sweep::kill_marked(&data_dir))
            .await
            .unwrap_or(0);
        if stray > 0 {
            warn!(stray, "killed processes left after ending sessions");
        }
        remove_session_dirs(self.provisioner.sessions_dir()).await;
        remove_tmp_dirs(self.config.data_dir.clone()).await;
        // Loops and tunnels stop; records of the ends above get written.
        self.tasks.close(TASKS_GRACE).await;
        self.shut_down.send_replace(true);
        info!("all sessions ended");
    }
}

/// Removes every session directory; retries with growing pauses, as a
/// process killed a moment ago may still be writing its last files.
async fn remove_session_dirs(dir: PathBuf) {
    let mut pause = DIR_REMOVE_BACKOFF;
    for _ in 0..DIR_REMOVE_ATTEMPTS {
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return;
        };
        let mut left = false;
        while let Ok(Some(e)) = entries.next_entry().await {
            left |= tokio::fs::remove_dir_all(e.path()).await.is_err();
        }
        if !left {
            return;
        }
        tokio::time::sleep(pause).await;
        pause *= 2;
    }
}

/// Removes the sessions' temp directories, off the async threads.
async fn remove_tmp_dirs(data_dir: PathBuf) {
    let _ = tokio::task::spawn_blocking(move || sweep::remove_tmp_dirs(&data_dir)).await;
}

/// Prepares a data directory left by an earlier process: kills its leftover
/// processes and removes session files.
pub async fn recover_processes(data_dir: &Path) {
    let dir = data_dir.to_path_buf();
    let killed = tokio::task::spawn_blocking(move || sweep::kill_marked(&dir))
        .await
        .unwrap_or(0);
    if killed > 0 {
        warn!(killed, "killed processes left by a previous grid process");
    }
    // What those sessions left behind is kept before their directories go.
    let dir = data_dir.to_path_buf();
    let saved =
        tokio::task::spawn_blocking(move || crate::artifacts::files::salvage_outboxes(&dir))
            .await
            .unwrap_or(0);
    if saved > 0 {
        info!(
            files = saved,
            "kept the artifacts of sessions a previous grid process left"
        );
    }
    remove_session_dirs(data_dir.join("sessions")).await;
    remove_tmp_dirs(data_dir.to_path_buf()).await;
}

/// [`recover_processes`], then closes the unfinished records of a store that
/// only this grid writes to.
pub async fn recover(data_dir: &Path, store: &dyn Store) -> usize {
    recover_processes(data_dir).await;
    match store.close_unfinished(EndReason::Shutdown, now_ms()).await {
        Ok(n) => {
            if n > 0 {
                info!(
                    closed = n,
                    "closed session records left by a previous grid process"
                );
            }
            n
        }
        Err(e) => {
            warn!(error = %e, "could not close unfinished session records");
            0
        }
    }
}
