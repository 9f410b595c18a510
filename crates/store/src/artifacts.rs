//! The index of session artifacts (videos, logs, downloads): what is stored,
//! for which session and owner, how big, since when, and where (which node
//! holds the file, or the shared bucket). The files themselves live in the
//! artifact storage; the index is what lists, quotas and hubs read.

use crate::StoreResult;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where an artifact's bytes are.
pub const IN_BUCKET: &str = "bucket";

/// One stored artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    /// The session that left it.
    pub session: String,
    /// Its name: a relative path (`video.mp4`, `downloads/report.csv`).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// The content type it is served with.
    pub content_type: String,
    /// The API key that owned the session (`None`: made without a key).
    pub owner: Option<String>,
    /// Unix ms when it was stored.
    pub created_at: i64,
    /// The node that stored it (`local` on a standalone grid).
    pub node: String,
    /// Where its bytes are: the node's own directory (`local`) or the shared
    /// bucket ([`IN_BUCKET`]), which any process of the grid reads.
    pub location: String,
}

/// The artifact index, part of every [`crate::Store`].
#[async_trait]
pub trait ArtifactIndex: Send + Sync {
    /// Records an artifact, replacing one of the same session and name.
    async fn put_artifact(&self, artifact: &ArtifactRecord) -> StoreResult<()>;
    /// One artifact, if indexed.
    async fn artifact(&self, session: &str, name: &str) -> StoreResult<Option<ArtifactRecord>>;
    /// The artifacts of one session, by name.
    async fn session_artifacts(&self, session: &str) -> StoreResult<Vec<ArtifactRecord>>;
    /// Every indexed artifact, oldest first (ties by session, then name).
    async fn all_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>>;
    /// Removes one artifact from the index; `false` if it was not there.
    async fn remove_artifact(&self, session: &str, name: &str) -> StoreResult<bool>;
}

/// Sorts `v` oldest first, ties by session then name (the order of
/// [`ArtifactIndex::all_artifacts`]).
pub fn oldest_first(v: &mut [ArtifactRecord]) {
    v.sort_by(|a, b| (a.created_at, &a.session, &a.name).cmp(&(b.created_at, &b.session, &b.name)));
}
