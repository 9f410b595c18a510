//! The control plane's view of a scaled-out grid (see `crate::api`): the
//! shared queue, the registered nodes, pools in the shared store.

use super::{store_error, Hub};
use crate::api::nodes::NodeView;
use crate::api::queue::QueueEntry;
use gridiron_domain::GridError;
use gridiron_store::cluster::Cancelled;
use gridiron_store::now_ms;
use serde_json::Value;

/// The most queued requests the API lists.
const QUEUE_SHOWN: usize = 10_000;

impl Hub {
    /// The shared queue, in claim order.
    pub(super) async fn queue_entries(&self) -> Result<Vec<QueueEntry>, GridError> {
        let waiting = self
            .cluster
            .waiting(0, QUEUE_SHOWN)
            .await
            .map_err(store_error)?;
        let now = now_ms();
        Ok(waiting
            .into_iter()
            .enumerate()
            .map(|(i, w)| QueueEntry {
                browser: requested_browser(&w.body),
                waited_ms: if w.created_at > 0 {
                    (now - w.created_at).max(0)
                } else {
                    0
                },
                position: i + 1,
                owner: Some(w.owner).filter(|o| !o.is_empty()),
                pool: w.pool,
                id: w.id,
            })
            .collect())
    }

    /// Withdraws a waiting request; its hub (this or another) fails its client.
    pub(super) async fn cancel_queued(&self, rid: &str) -> Result<bool, GridError> {
        // Soft: a request a node is already starting is left to finish.
        let outcome = self
            .cluster
            .cancel(rid, "deleted_by_api", true)
            .await
            .map_err(store_error)?;
        if let Some(n) = self.waiters().get(rid) {
            n.notify_one();
        }
        Ok(matches!(outcome, Cancelled::Removed))
    }

    /// The registered nodes with the sessions each runs.
    pub(super) async fn node_views(&self) -> Result<Vec<NodeView>, GridError> {
        let nodes = self.nodes(true).await.map_err(store_error)?;
        let running = self.running_sessions().await.map_err(store_error)?;
        Ok(nodes
            .into_iter()
            .map(|n| NodeView {
                sessions: running
                    .iter()
                    .filter(|s| s.node == n.info.id)
                    .map(|s| s.id.clone())
                    .collect(),
                url: Some(n.info.url.clone()),
                slots: n.info.max_sessions,
                used: n.used,
                browsers: n
                    .info
                    .stereotypes
                    .iter()
                    .map(|s| format!("{} {}", s.kind.driver_browser_name(), s.version))
                    .collect(),
                labels: n.info.profile.labels.clone(),
                pools: n.info.profile.pools.clone(),
                heartbeat_age_ms: n.heartbeat_age_ms.map(|a| a as i64),
                alive: n.alive,
                draining: n.draining,
                started_at: n.info.started_at,
                id: n.info.id,
            })
            .collect())
    }
}

/// The browser a new-session body asks for (`alwaysMatch`, else the first
/// `firstMatch`), `any` if none.
fn requested_browser(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let caps = &v["capabilities"];
    let name = |m: &Value| {
        m.get("browserName")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    name(&caps["alwaysMatch"])
        .or_else(|| name(&caps["firstMatch"][0]))
        .unwrap_or_else(|| "any".to_string())
}
