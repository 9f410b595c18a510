//! What the manager writes to and reads from the store.

use super::Manager;
use crate::backend::NotRunning;
use gridiron_domain::{GridError, GridOptions};
use gridiron_store::{now_ms, NewSession, StoreError};
use serde_json::Value;
use std::sync::Arc;
use tracing::warn;

impl Manager {
    /// Writes the records of running sessions the store no longer has (it
    /// lost its data). A session the store has as ended is ended here too:
    /// it never comes back.
    pub async fn rewrite_records(self: &Arc<Self>) {
        for s in self.all_sessions() {
            match self.store.get(&s.id).await {
                Ok(Some(rec)) => {
                    if let Some(reason) = rec.end_reason {
                        self.end(&s.id, reason).await;
                    }
                }
                Err(_) => {}
                Ok(None) => {
                    let new = NewSession {
                        id: s.id.clone(),
                        browser: s.browser.clone(),
                        requested_caps: Value::Null,
                        grid_options: s.options.to_json(),
                        created_at: s.started_at_ms,
                        owner: s.owner.clone(),
                    };
                    self.record("insert", self.store.insert(new, false).await);
                    self.record(
                        "mark_running",
                        self.store
                            .mark_running(&s.id, Value::Null, s.started_at_ms)
                            .await,
                    );
                }
            }
        }
    }

    /// The error for a session id that is not running, saying why if the store knows.
    pub async fn unknown_session(&self, id: &str) -> GridError {
        self.not_running(id).await.error(id)
    }

    /// Why session `id` is not running, as far as the store knows.
    pub(crate) async fn not_running(&self, id: &str) -> NotRunning {
        NotRunning::of(self.store.as_ref(), id)
            .await
            .unwrap_or(NotRunning::Unknown)
            .local()
    }

    /// Records a session whose processes just started.
    pub(super) async fn record_new(
        &self,
        id: &str,
        browser: &str,
        requested: Value,
        options: &GridOptions,
        owner: Option<String>,
    ) {
        let new = NewSession {
            id: id.to_string(),
            browser: browser.to_string(),
            requested_caps: requested,
            grid_options: options.to_json(),
            created_at: now_ms(),
            owner,
        };
        self.record("insert", self.store.insert(new, false).await);
    }

    /// Logs a failed store write: a record is lost, the session goes on.
    pub(super) fn record(&self, op: &str, r: Result<(), StoreError>) {
        if let Err(e) = r {
            warn!(op, error = %e, "store write failed");
        }
    }
}
