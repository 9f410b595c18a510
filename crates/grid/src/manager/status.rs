//! The `GET /status` document.

use super::Manager;
use crate::metrics::{MetricsView, NodeSlots, RunningSession};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;

impl Manager {
    /// What `/metrics` reports of this process: its own counts, sessions
    /// and slots, as the one node `local`.
    pub fn local_metrics(&self) -> MetricsView {
        let (free, capacity, waiting, _) = self.slot_snapshot();
        let mut browsers: Vec<String> = self
            .catalog
            .iter()
            .map(|s| s.kind.driver_browser_name().to_string())
            .collect();
        browsers.sort_unstable();
        browsers.dedup();
        let sessions = self
            .all_sessions()
            .iter()
            .map(|s| RunningSession {
                node: "local".into(),
                browser: s.browser.clone(),
                owner: s.owner.clone(),
            })
            .collect();
        MetricsView {
            counters: self.metrics.snapshot(),
            tunnels_open: self.metrics.tunnels_open(),
            sessions,
            nodes: vec![NodeSlots {
                node: "local".into(),
                browsers,
                total: capacity,
                used: capacity.saturating_sub(free),
                takes_sessions: !self.shutting_down.load(Ordering::SeqCst),
            }],
            queued: waiting,
        }
    }

    /// The `GET /status` value.
    pub fn status(&self, uri: &str) -> Value {
        let (free, capacity, waiting, ready) = self.slot_snapshot();
        let shutting_down = self.shutting_down.load(Ordering::SeqCst);
        let ready = ready && !shutting_down && !self.catalog.is_empty();
        let sessions = self.all_sessions();
        let stereotypes: Vec<Value> = self.catalog.iter().map(crate::http::stereotype).collect();
        let slots: Vec<Value> = (0..capacity)
            .map(|i| {
                let session = sessions.iter().find(|s| s.slot == i).map(|s| {
                    json!({
                        "sessionId": s.id,
                        "browserName": s.browser,
                        "startedAt": s.started_at_ms,
                        "name": s.options.name,
                        "commands": s.command_count(),
                        "owner": s.owner,
                    })
                });
                json!({
                    "id": format!("slot-{i}"),
                    "stereotype": stereotypes.first(),
                    "stereotypes": stereotypes,
                    "session": session,
                })
            })
            .collect();
        let message = if shutting_down {
            "Gridiron is shutting down".to_string()
        } else if self.catalog.is_empty() {
            "Gridiron found no browser it can run; see `gridiron doctor`".to_string()
        } else if ready {
            "Gridiron is ready to create new sessions".to_string()
        } else {
            format!("Gridiron is at capacity ({capacity} slots busy, {waiting} waiting)")
        };
        json!({
            "ready": ready,
            "message": message,
            "build": {"version": env!("CARGO_PKG_VERSION")},
            "maxSessions": capacity,
            "sessions": sessions.len(),
            "freeSlots": free,
            // Started ahead of demand, nobody's yet (`--warm`); their slots count as free.
            "warmSessions": self.warm_ready(),
            "queue": waiting,
            "nodes": [{
                "id": "local",
                "uri": uri,
                "availability": if shutting_down { "DOWN" } else { "UP" },
                "maxSessions": capacity,
                "slots": slots,
            }],
        })
    }
}
