//! What sessions leave behind: recordings, logs, downloads. While a session
//! runs, whatever makes one of its artifacts writes it as a file under the
//! session's outbox (`<session dir>/artifacts/`, the file's path below it is
//! the artifact's name); when the session ends, the outbox is collected into
//! the artifact storage and indexed in the grid's store.

pub mod files;
#[cfg(test)]
mod tests;

use crate::manager::Manager;
use crate::session::Session;
use gridiron_domain::artifacts::{check_name, content_type, is_path_safe_id};
use gridiron_domain::events;
use gridiron_store::NewEvent;
use serde::Serialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The outbox of the session whose directory is `session_dir`.
pub fn outbox(session_dir: &Path) -> PathBuf {
    session_dir.join("artifacts")
}

/// How long a list waits for a just-ended session's artifacts to be collected.
pub const COLLECT_PATIENCE: Duration = Duration::from_secs(10);

/// One stored artifact, as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    /// Its name: its path below the session's outbox (`video.mp4`, `downloads/report.csv`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The content type it is served with.
    pub content_type: String,
    /// Unix ms when it was stored.
    pub created: i64,
    /// `ready`, or `lost` (its node is gone; it cannot be fetched).
    pub state: String,
}

/// The artifact storage of this process: files under
/// `<data_dir>/artifacts/<session id>/<name>`, and which sessions' artifacts
/// are still being collected.
pub struct Artifacts {
    /// `<data_dir>/artifacts`.
    root: PathBuf,
    /// Sessions that have ended and whose outbox is not yet collected.
    collecting: watch::Sender<HashSet<String>>,
}

impl Artifacts {
    /// Storage under `data_dir`.
    pub fn new(data_dir: &Path) -> Arc<Self> {
        Arc::new(Artifacts {
            root: data_dir.join("artifacts"),
            collecting: watch::Sender::new(HashSet::new()),
        })
    }

    /// Where session `id`'s artifacts are kept; `None` for an id that cannot
    /// name a directory.
    fn session_dir(&self, id: &str) -> Option<PathBuf> {
        is_path_safe_id(id).then(|| self.root.join(id))
    }

    /// Notes that session `id` has ended and its artifacts are on their way.
    pub(crate) fn begin_collecting(&self, id: &str) {
        self.collecting.send_modify(|s| {
            s.insert(id.to_string());
        });
    }

    /// Notes that session `id`'s artifacts are all stored.
    pub(crate) fn done_collecting(&self, id: &str) {
        self.collecting.send_modify(|s| {
            s.remove(id);
        });
    }

    /// Whether session `id`'s artifacts are still being collected.
    pub fn is_collecting(&self, id: &str) -> bool {
        self.collecting.borrow().contains(id)
    }

    /// Waits up to `patience` for session `id`'s collection to finish;
    /// `true` if it is not (or no longer) being collected.
    pub async fn settled(&self, id: &str, patience: Duration) -> bool {
        let mut rx = self.collecting.subscribe();
        let settled = tokio::time::timeout(patience, rx.wait_for(|s| !s.contains(id)))
            .await
            .is_ok_and(|r| r.is_ok());
        settled
    }

    /// Moves the files of `outbox` into session `id`'s storage.
    pub async fn take(&self, id: &str, outbox: &Path) -> Vec<files::Taken> {
        let Some(dest) = self.session_dir(id) else {
            return Vec::new();
        };
        let outbox = outbox.to_path_buf();
        tokio::task::spawn_blocking(move || files::take_outbox(&outbox, &dest))
            .await
            .unwrap_or_default()
    }

    /// The stored artifacts of session `id`, by name.
    pub async fn list(&self, id: &str) -> Vec<ArtifactView> {
        let Some(dir) = self.session_dir(id) else {
            return Vec::new();
        };
        let found = tokio::task::spawn_blocking(move || files::list(&dir))
            .await
            .unwrap_or_default();
        found
            .into_iter()
            .map(|(name, size, created)| ArtifactView {
                content_type: content_type(&name).to_string(),
                name,
                size,
                created,
                state: "ready".into(),
            })
            .collect()
    }

    /// Opens artifact `name` of session `id` for reading.
    pub async fn open(&self, id: &str, name: &str) -> std::io::Result<std::fs::File> {
        let not_found = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let dir = self.session_dir(id).ok_or_else(not_found)?;
        check_name(name).map_err(|_| not_found())?;
        let name = name.to_string();
        tokio::task::spawn_blocking(move || files::open_regular_below(&dir, &name).map(|(f, _)| f))
            .await
            .map_err(|_| not_found())?
    }

    /// Removes artifact `name` of session `id`; `false` if there was none.
    pub async fn remove(&self, id: &str, name: &str) -> bool {
        let Some(dir) = self.session_dir(id) else {
            return false;
        };
        let name = name.to_string();
        tokio::task::spawn_blocking(move || files::remove_below(&dir, &name))
            .await
            .unwrap_or(false)
    }
}

impl Manager {
    /// Takes what `session` left in `outbox` into the artifact storage and
    /// announces each artifact (`artifact.ready`).
    pub(crate) async fn collect_artifacts(&self, session: &Session, outbox: &Path) {
        let taken = self.artifacts.take(&session.id, outbox).await;
        for t in &taken {
            self.emit(
                NewEvent::now(events::ARTIFACT_READY)
                    .session(&session.id)
                    .owner(session.owner.as_deref())
                    .with("name", &t.name)
                    .with("size", t.size),
            );
        }
        if !taken.is_empty() {
            tracing::info!(session = %session.id, files = taken.len(), "artifacts stored");
        }
    }

    /// The artifact storage of this process.
    pub fn artifacts(&self) -> &Arc<Artifacts> {
        &self.artifacts
    }
}
