//! A hub's `/metrics`: the whole grid's, from the shared state (sessions,
//! slots, queue) and the counters every hub and node flushes there.

use super::Hub;
use crate::metrics::{MetricsView, NodeSlots, RunningSession};
use gridiron_store::StoreError;

impl Hub {
    /// What `/metrics` reports, for the whole grid.
    pub(super) async fn grid_metrics(&self) -> Result<MetricsView, StoreError> {
        let cluster = self.cluster.as_ref();
        let counters = self.metrics.cluster_totals(cluster).await?;
        let tunnels_open = self.metrics.cluster_tunnels(cluster, &self.cfg.id).await?;
        let queued = cluster.queue_len().await?;
        let nodes = self
            .nodes(true)
            .await?
            .into_iter()
            .filter(|n| n.alive)
            .map(|n| {
                let mut browsers: Vec<String> = n
                    .info
                    .stereotypes
                    .iter()
                    .map(|s| s.kind.driver_browser_name().to_string())
                    .collect();
                browsers.sort_unstable();
                browsers.dedup();
                NodeSlots {
                    node: n.info.id,
                    browsers,
                    total: n.info.max_sessions,
                    used: n.used,
                    takes_sessions: !n.draining,
                }
            })
            .collect();
        let mut sessions = Vec::new();
        for id in self.store.unfinished_ids().await? {
            let Some(node) = cluster.route(&id).await? else {
                continue;
            };
            let Some(rec) = self.store.get(&id).await? else {
                continue;
            };
            if rec.end_reason.is_none() {
                sessions.push(RunningSession {
                    node,
                    browser: rec.browser,
                    owner: rec.owner,
                });
            }
        }
        Ok(MetricsView {
            counters,
            tunnels_open,
            sessions,
            nodes,
            queued,
        })
    }
}
