//! The [`Backend`] of a process that runs its sessions itself: a standalone
//! grid, or a node (behind its hubs).

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
}
