//! What sessions leave behind: recordings, logs, downloads. While a session
//! runs, whatever makes one of its artifacts writes it as a file under the
//! session's outbox (`<session dir>/artifacts/`, the file's path below it is
//! the artifact's name); when the session ends, the outbox is collected into
//! the artifact storage ([`backend`]) and indexed in the grid's store. The
//! [`keeper`] holds the storage to its quota and maximum age.

pub mod backend;
pub mod files;
pub mod keeper;
#[cfg(feature = "s3")]
pub mod s3;
#[cfg(test)]
mod tests;

use crate::manager::Manager;
use crate::session::Session;
use backend::{ArtifactBackend, LocalBackend};
use gridiron_domain::artifacts::{content_type, is_path_safe_id};
use gridiron_domain::events;
use gridiron_store::{ArtifactRecord, NewEvent, Store};
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
    /// `ready`, or `lost` (the node that holds it is gone; it cannot be fetched).
    pub state: String,
}

impl ArtifactView {
    /// How the API shows `r`; `lost` when its bytes cannot be reached.
    pub fn of(r: &ArtifactRecord, lost: bool) -> Self {
        ArtifactView {
            name: r.name.clone(),
            size: r.size,
            content_type: r.content_type.clone(),
            created: r.created_at,
            state: if lost { "lost" } else { "ready" }.into(),
        }
    }
}

/// The backend `url` names (`s3://bucket/prefix`), or the local directory
/// `<data_dir>/artifacts` without one.
pub fn backend_for(url: Option<&str>, data_dir: &Path) -> Result<Arc<dyn ArtifactBackend>, String> {
    match url {
        None => Ok(Arc::new(LocalBackend::new(data_dir.join("artifacts")))),
        #[cfg(feature = "s3")]
        Some(u) if u.starts_with("s3://") => Ok(Arc::new(s3::S3Backend::from_url(u)?)),
        #[cfg(not(feature = "s3"))]
        Some(u) if u.starts_with("s3://") => Err(format!(
            "--artifacts-url {u}: this build of Gridiron has no S3 support (cargo feature `s3`)"
        )),
        Some(u) => Err(format!(
            "--artifacts-url {u:?}: only s3://bucket/prefix is supported (leave it unset for the data directory)"
        )),
    }
}

/// The artifact storage of a process: where the bytes go, the index in the
/// grid's store, and which sessions' artifacts are still being collected.
pub struct Artifacts {
    /// Where the bytes are.
    pub backend: Arc<dyn ArtifactBackend>,
    /// The grid's store, which holds the index.
    store: Arc<dyn Store>,
    /// Sessions that have ended and whose outbox is not yet collected.
    collecting: watch::Sender<HashSet<String>>,
    /// Wakes the keeper (after a collection).
    pub(crate) changed: tokio::sync::Notify,
}

impl Artifacts {
    /// Storage in `backend`, indexed in `store`.
    pub fn new(backend: Arc<dyn ArtifactBackend>, store: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Artifacts {
            backend,
            store,
            collecting: watch::Sender::new(HashSet::new()),
            changed: tokio::sync::Notify::new(),
        })
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
        self.changed.notify_one();
    }

    /// The sessions whose artifacts are being collected now.
    pub fn collecting(&self) -> HashSet<String> {
        self.collecting.borrow().clone()
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

    /// Moves the files of `outbox` into storage as artifacts of session `id`
    /// (owned by `owner`, held by `node`) and indexes them.
    pub async fn take(
        &self,
        id: &str,
        owner: Option<&str>,
        node: &str,
        outbox: &Path,
    ) -> Vec<ArtifactRecord> {
        if !is_path_safe_id(id) {
            return Vec::new();
        }
        let dir = outbox.to_path_buf();
        let found = tokio::task::spawn_blocking(move || files::outbox_files(&dir))
            .await
            .unwrap_or_default();
        let mut taken = Vec::new();
        for (name, _) in found {
            let size = match self.backend.put_file(id, &name, &outbox.join(&name)).await {
                Ok(size) => size,
                Err(e) => {
                    tracing::warn!(session = %id, artifact = %name, error = %e, "artifact not stored");
                    continue;
                }
            };
            let record = ArtifactRecord {
                session: id.to_string(),
                content_type: content_type(&name).to_string(),
                name,
                size,
                owner: owner.map(str::to_string),
                created_at: gridiron_store::now_ms(),
                node: node.to_string(),
                location: self.backend.location().to_string(),
            };
            match self.store.put_artifact(&record).await {
                Ok(()) => taken.push(record),
                // Stored but not indexed: the keeper's reconciliation indexes it.
                Err(e) => tracing::warn!(session = %id, error = %e, "artifact not indexed"),
            }
        }
        taken
    }

    /// Removes artifact `name` of session `id` from storage and index; the
    /// record it had, `None` if there was none.
    pub async fn remove(&self, id: &str, name: &str) -> std::io::Result<Option<ArtifactRecord>> {
        let rec = self
            .store
            .artifact(id, name)
            .await
            .map_err(std::io::Error::other)?;
        let removed = self.backend.remove(id, name).await?;
        let unindexed = self
            .store
            .remove_artifact(id, name)
            .await
            .map_err(std::io::Error::other)?;
        Ok(rec.filter(|_| removed || unindexed))
    }
}

impl Manager {
    /// Takes what `session` left in `outbox` into the artifact storage and
    /// announces each artifact (`artifact.ready`).
    pub(crate) async fn collect_artifacts(&self, session: &Session, outbox: &Path) {
        let taken = self
            .artifacts
            .take(
                &session.id,
                session.owner.as_deref(),
                self.node_id(),
                outbox,
            )
            .await;
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
