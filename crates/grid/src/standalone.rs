//! The [`Backend`] of a process that runs its sessions itself: a standalone
//! grid, or a node (behind its hubs).

use crate::api::nodes::NodeView;
use crate::api::queue::QueueEntry;
use crate::auth::{Caller, Keyring};
use crate::backend::{Backend, FrontConfig, Located, SessionSummary};
use crate::manager::Manager;
use async_trait::async_trait;
use bytes::Bytes;
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::{EndReason, GridError};
use serde_json::Value;
use std::sync::Arc;

#[async_trait]
impl Backend for Manager {
    fn front(&self) -> &FrontConfig {
        &self.front
    }

    fn keyring(&self) -> Arc<Keyring> {
        self.keyring.clone()
    }

    async fn new_session(
        self: Arc<Self>,
        body: Bytes,
        public_base: String,
        caller: Caller,
    ) -> Result<Value, GridError> {
        Manager::new_session_for(&self, body, public_base, &caller).await
    }

    async fn new_cdp_session(
        self: Arc<Self>,
        request: CdpRequest,
        _query: String,
        _public_base: String,
        caller: Caller,
    ) -> Result<String, GridError> {
        Manager::new_cdp_session_for(&self, request, &caller)
            .await
            .map(|s| s.id.clone())
    }

    async fn locate(&self, id: &str) -> Result<Located, GridError> {
        if let Some(session) = self.session(id) {
            let manager = self.me();
            return Ok(Located::Local { manager, session });
        }
        Ok(Located::NotRunning(self.not_running(id).await))
    }

    async fn end_session(&self, id: &str, reason: EndReason) {
        self.me().end(id, reason).await;
    }

    async fn sessions(&self) -> Result<Vec<SessionSummary>, GridError> {
        Ok(self.summaries())
    }

    async fn status(&self, uri: &str) -> Value {
        Manager::status(self, uri)
    }

    async fn chromium_version(&self) -> Option<String> {
        Manager::chromium_version(self)
    }

    fn tasks(&self) -> &crate::tasks::Tasks {
        Manager::tasks(self)
    }

    fn event_feed(&self) -> &crate::events::EventFeed {
        Manager::event_feed(self)
    }

    fn emit(&self, event: gridiron_store::NewEvent) {
        Manager::emit(self, event)
    }

    fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    async fn metrics_view(&self) -> Result<crate::metrics::MetricsView, GridError> {
        Ok(self.local_metrics())
    }

    fn store(&self) -> Arc<dyn gridiron_store::Store> {
        self.store_handle()
    }

    fn artifacts(&self) -> Option<Arc<crate::artifacts::Artifacts>> {
        Some(self.artifacts.clone())
    }

    fn own_node(&self) -> Option<String> {
        Some(self.node_id().to_string())
    }

    async fn artifacts_settled(&self, id: &str, patience: std::time::Duration) -> bool {
        self.artifacts.settled(id, patience).await
    }

    async fn session_node(&self, id: &str) -> Result<Option<String>, GridError> {
        Ok(self.session(id).map(|_| LOCAL.to_string()))
    }

    async fn waiting(&self) -> Result<Vec<QueueEntry>, GridError> {
        Ok(self.waitlist.entries())
    }

    async fn cancel_waiting(&self, id: &str) -> Result<bool, GridError> {
        Ok(self.waitlist.cancel(id))
    }

    async fn nodes(&self) -> Result<Vec<NodeView>, GridError> {
        Ok(vec![NodeView {
            id: LOCAL.to_string(),
            url: None,
            slots: self.config.max_sessions,
            used: self.slots_in_use(),
            sessions: self.summaries().into_iter().map(|s| s.id).collect(),
            browsers: self
                .catalog()
                .iter()
                .map(|s| format!("{} {}", s.kind.driver_browser_name(), s.version))
                .collect(),
            labels: Default::default(),
            pools: Vec::new(),
            heartbeat_age_ms: None,
            alive: !self.is_shutting_down(),
            draining: self.is_shutting_down(),
            started_at: self.started_at_ms,
        }])
    }

    async fn drain_node(&self, _id: &str) -> Result<bool, GridError> {
        // A standalone grid drains by shutting down (SIGTERM); the API
        // answers 404 `needs-scaled-out-grid` before asking (see `api::nodes`).
        Ok(false)
    }
}

/// The one node a standalone grid presents itself as.
pub const LOCAL: &str = "local";
