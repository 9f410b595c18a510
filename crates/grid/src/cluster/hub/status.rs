//! A hub's view of the grid: `/status` (nodes, capacity, queue) and the
//! running sessions.

use super::Hub;
use crate::backend::SessionSummary;
use crate::http;
use gridiron_store::cluster::NodeState;
use serde_json::{json, Value};

impl Hub {
    /// The `GET /status` value. Nodes are read from the store each time (not
    /// from the routing cache), so capacity shows a session as soon as its
    /// node has reported it, which it does before answering the request.
    pub(super) async fn status_value(&self) -> Value {
        let (nodes, queue) = match (self.nodes(true).await, self.cluster.queue_len().await) {
            (Ok(n), Ok(q)) => (n, q),
            (Err(e), _) | (_, Err(e)) => {
                return json!({
                    "ready": false,
                    "message": format!("Gridiron hub cannot reach its store: {e}"),
                    "nodes": [],
                })
            }
        };
        let usable = |n: &&NodeState| n.alive && !n.draining;
        let capacity: usize = nodes
            .iter()
            .filter(usable)
            .map(|n| n.info.max_sessions)
            .sum();
        let used: usize = nodes.iter().filter(usable).map(|n| n.used).sum();
        let free = capacity.saturating_sub(used);
        let ready = free > 0;
        let message = if ready {
            "Gridiron is ready to create new sessions".to_string()
        } else if capacity == 0 {
            "Gridiron has no node that takes new sessions".to_string()
        } else {
            format!("Gridiron is at capacity ({capacity} slots busy, {queue} waiting)")
        };
        let node_list: Vec<Value> = nodes
            .iter()
            .map(|n| {
                json!({
                    "id": n.info.id,
                    "uri": n.info.url,
                    "availability": if !n.alive { "DOWN" } else if n.draining { "DRAINING" } else { "UP" },
                    "maxSessions": n.info.max_sessions,
                    "sessions": n.used,
                    "stereotypes": n.info.stereotypes.iter().map(http::stereotype).collect::<Vec<_>>(),
                    "pools": n.info.profile.pools,
                    "labels": n.info.profile.labels,
                })
            })
            .collect();
        json!({
            "ready": ready,
            "message": message,
            "build": {"version": env!("CARGO_PKG_VERSION")},
            "hub": self.cfg.id,
            "maxSessions": capacity,
            "sessions": used,
            "freeSlots": free,
            "queue": queue,
            "nodes": node_list,
        })
    }

    /// The sessions the store has as running on a node, oldest first.
    pub(super) async fn running_sessions(
        &self,
    ) -> Result<Vec<SessionSummary>, gridiron_store::StoreError> {
        let mut all = Vec::new();
        for id in self.store.unfinished_ids().await? {
            let Some(node) = self.cluster.route(&id).await? else {
                continue;
            };
            let Some(rec) = self.store.get(&id).await? else {
                continue;
            };
            all.push(SessionSummary {
                name: rec.grid_options["name"].as_str().map(str::to_string),
                id,
                browser: rec.browser,
                started_at: rec.started_at.unwrap_or(rec.created_at),
                node,
            });
        }
        all.sort_by_key(|s| s.started_at);
        Ok(all)
    }
}
