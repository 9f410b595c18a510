//! Keeps the artifact storage honest and within bounds: at start it
//! reconciles the index with what the storage holds (files without entries
//! are indexed, entries without files dropped), then it removes artifacts
//! beyond the quota or the maximum age, oldest first, never a running (or
//! still collected) session's, at start, after each collection and
//! periodically. Which ones go is decided by the pure
//! [`gridiron_domain::artifacts::evictions`].
//!
//! With local storage each process keeps its own files (a node's quota is
//! its own); with a bucket, every process keeps the whole bucket's.

use crate::manager::Manager;
use gridiron_domain::artifacts::{content_type, evictions, Limits, Weighed};
use gridiron_domain::events;
use gridiron_store::{ArtifactRecord, NewEvent};
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tracing::{info, warn};

/// How often the keeper looks even when nothing was collected (the maximum age).
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

impl Manager {
    /// Starts the keeper (once): reconciliation, then sweeps. Call it once
    /// the node id is set, since it decides which local files are this process's.
    pub fn keep_artifacts(self: &Arc<Self>) {
        if self.artifact_keeper.set(()).is_ok() {
            self.tasks.spawn_until_stopped(keep(Arc::downgrade(self)));
        }
    }

    /// The limits of the storage.
    fn artifact_limits(&self) -> Limits {
        Limits {
            max_bytes: self.config.artifacts_max_bytes,
            max_age_ms: self
                .config
                .artifacts_max_age
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        }
    }

    /// Whether `r` is this process's to keep.
    fn keeps(&self, r: &ArtifactRecord) -> bool {
        let backend = &self.artifacts.backend;
        r.location == backend.location() && (r.location != "local" || r.node == self.node_id())
    }

    /// Makes the index agree with the storage: stored files without an entry
    /// are indexed, entries of this process without a file are dropped
    /// (`artifact.deleted`, reason `missing`). Returns (indexed, dropped).
    pub async fn reconcile_artifacts(&self) -> std::io::Result<(usize, usize)> {
        let a = &self.artifacts;
        if a.backend.location() != "local" {
            self.upload_salvaged().await;
        }
        let collecting = a.collecting();
        // The index first: an entry is written after its file, so a file
        // listed after the index was read is never missed.
        let index = self
            .store
            .all_artifacts()
            .await
            .map_err(std::io::Error::other)?;
        let stored = a.backend.list_all().await?;
        let on_disk: HashSet<(&str, &str)> = stored
            .iter()
            .map(|s| (s.session.as_str(), s.name.as_str()))
            .collect();
        let local = a.backend.location() == "local";
        let mut indexed = 0;
        for s in &stored {
            if collecting.contains(&s.session) {
                continue;
            }
            let entry = index.iter().find(|r| {
                r.session == s.session && r.name == s.name && r.location == a.backend.location()
            });
            // A local file indexed under another node id is this data dir's
            // (a node gets a new id each start): it is ours again.
            let adopt = entry.is_some_and(|r| local && r.node != self.node_id());
            if entry.is_some() && !adopt {
                continue;
            }
            let owner = match entry {
                Some(r) => r.owner.clone(),
                None => self
                    .store
                    .get(&s.session)
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.owner),
            };
            let record = ArtifactRecord {
                session: s.session.clone(),
                name: s.name.clone(),
                size: s.size,
                content_type: content_type(&s.name).to_string(),
                owner,
                created_at: entry.map_or(s.modified, |r| r.created_at),
                node: self.node_id().to_string(),
                location: a.backend.location().to_string(),
            };
            if self.store.put_artifact(&record).await.is_ok() {
                indexed += 1;
            }
        }
        let mut dropped = 0;
        for r in index.iter().filter(|r| self.keeps(r)) {
            if collecting.contains(&r.session) || on_disk.contains(&(&r.session, &r.name)) {
                continue;
            }
            if self
                .store
                .remove_artifact(&r.session, &r.name)
                .await
                .unwrap_or(false)
            {
                dropped += 1;
                self.announce_deleted(r, "missing");
            }
        }
        Ok((indexed, dropped))
    }

    /// Moves files saved into the data directory at a restart (see
    /// [`super::files::salvage_outboxes`]) into the bucket this grid uses.
    async fn upload_salvaged(&self) {
        let spool = super::backend::LocalBackend::new(self.config.data_dir.join("artifacts"));
        let Ok(saved) = super::backend::ArtifactBackend::list_all(&spool).await else {
            return;
        };
        let root = self.config.data_dir.join("artifacts");
        for s in saved {
            let path = root.join(&s.session).join(&s.name);
            match self
                .artifacts
                .backend
                .put_file(&s.session, &s.name, &path)
                .await
            {
                Ok(_) => {
                    let _ =
                        super::backend::ArtifactBackend::remove(&spool, &s.session, &s.name).await;
                }
                Err(e) => {
                    warn!(session = %s.session, artifact = %s.name, error = %e, "saved artifact not uploaded")
                }
            }
        }
    }

    /// Removes what the quota and the maximum age say must go; returns how
    /// many artifacts went.
    pub async fn sweep_artifacts(&self) -> std::io::Result<usize> {
        let limits = self.artifact_limits();
        if limits == Limits::default() {
            return Ok(0);
        }
        let mine: Vec<ArtifactRecord> = self
            .store
            .all_artifacts()
            .await
            .map_err(std::io::Error::other)?
            .into_iter()
            .filter(|r| self.keeps(r))
            .collect();
        let mut protected = self.artifacts.collecting();
        protected.extend(
            self.store
                .unfinished_ids()
                .await
                .map_err(std::io::Error::other)?,
        );
        protected.extend(self.session_ids());
        let weighed: Vec<Weighed<'_>> = mine
            .iter()
            .map(|r| Weighed {
                session: &r.session,
                name: &r.name,
                size: r.size,
                created: r.created_at,
            })
            .collect();
        let protected_refs: HashSet<&str> = protected.iter().map(String::as_str).collect();
        let chosen = evictions(&weighed, &protected_refs, limits, gridiron_store::now_ms());
        let mut removed = 0;
        for (i, why) in chosen {
            let r = &mine[i];
            match self.artifacts.remove(&r.session, &r.name).await {
                Ok(Some(_)) => {
                    removed += 1;
                    self.announce_deleted(r, why.as_str());
                }
                Ok(None) => {}
                Err(e) => {
                    warn!(session = %r.session, artifact = %r.name, error = %e, "artifact not removed")
                }
            }
        }
        if removed > 0 {
            info!(removed, "artifacts removed by the quota or maximum age");
        }
        Ok(removed)
    }

    /// Records that artifact `r` is gone, and why.
    pub(crate) fn announce_deleted(&self, r: &ArtifactRecord, reason: &str) {
        self.emit(
            NewEvent::now(events::ARTIFACT_DELETED)
                .session(&r.session)
                .owner(r.owner.as_deref())
                .with("name", &r.name)
                .with("size", r.size)
                .with("reason", reason),
        );
    }
}

/// The keeper's loop.
async fn keep(m: Weak<Manager>) {
    if let Some(m) = m.upgrade() {
        match m.reconcile_artifacts().await {
            Ok((0, 0)) => {}
            Ok((indexed, dropped)) => {
                info!(
                    indexed,
                    dropped, "artifact index reconciled with the storage"
                )
            }
            Err(e) => warn!(error = %e, "artifact index not reconciled"),
        }
    }
    loop {
        let Some(m) = m.upgrade() else { return };
        if let Err(e) = m.sweep_artifacts().await {
            warn!(error = %e, "artifact sweep failed");
        }
        let artifacts = m.artifacts.clone();
        drop(m);
        tokio::select! {
            _ = artifacts.changed.notified() => {}
            _ = tokio::time::sleep(SWEEP_EVERY) => {}
        }
    }
}
