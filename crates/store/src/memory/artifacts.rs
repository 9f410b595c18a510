//! The artifact index of [`MemoryStore`]: a map by session and name.

use super::MemoryStore;
use crate::artifacts::{oldest_first, ArtifactIndex, ArtifactRecord};
use crate::StoreResult;
use async_trait::async_trait;
use std::collections::BTreeMap;

/// Artifacts by (session, name).
pub(super) type Artifacts = BTreeMap<(String, String), ArtifactRecord>;

#[async_trait]
impl ArtifactIndex for MemoryStore {
    async fn put_artifact(&self, a: &ArtifactRecord) -> StoreResult<()> {
        self.artifact_map()
            .insert((a.session.clone(), a.name.clone()), a.clone());
        Ok(())
    }

    async fn artifact(&self, session: &str, name: &str) -> StoreResult<Option<ArtifactRecord>> {
        Ok(self
            .artifact_map()
            .get(&(session.to_string(), name.to_string()))
            .cloned())
    }

    async fn session_artifacts(&self, session: &str) -> StoreResult<Vec<ArtifactRecord>> {
        Ok(self
            .artifact_map()
            .values()
            .filter(|a| a.session == session)
            .cloned()
            .collect())
    }

    async fn all_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>> {
        let mut all: Vec<ArtifactRecord> = self.artifact_map().values().cloned().collect();
        oldest_first(&mut all);
        Ok(all)
    }

    async fn remove_artifact(&self, session: &str, name: &str) -> StoreResult<bool> {
        Ok(self
            .artifact_map()
            .remove(&(session.to_string(), name.to_string()))
            .is_some())
    }
}
