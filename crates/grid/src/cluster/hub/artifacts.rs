//! Artifacts as a hub reaches them: a node keeps the artifacts of its
//! sessions in its own directory (the hub forwards reads and deletes to it,
//! signed like every hub request), unless the grid stores them in a bucket,
//! which the hub reads itself. A node that is gone makes its artifacts lost.

use super::Hub;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use gridiron_domain::events::SESSION_ENDED;
use gridiron_store::EventLog;
use std::time::{Duration, Instant};

/// How often a hub looks again whether a session's artifacts are collected.
const SETTLED_POLL: Duration = Duration::from_millis(200);

/// How long after a session's end its artifacts count as collected whatever
/// the event log says, in ms (collection takes seconds at most).
const SETTLED_AFTER_MS: i64 = 120_000;

impl Hub {
    /// Whether node `id` is registered and heartbeating.
    pub(super) async fn artifact_node_alive(&self, id: &str) -> bool {
        self.live_node_url(id).await.is_some()
    }

    /// The URL of live node `id`.
    async fn live_node_url(&self, id: &str) -> Option<String> {
        for fresh in [false, true] {
            if let Ok(nodes) = self.nodes(fresh).await {
                if let Some(n) = nodes.into_iter().find(|n| n.info.id == id && n.alive) {
                    return Some(n.info.url);
                }
            }
        }
        None
    }

    /// Forwards `req` (an artifact request, without a body) to node `id`.
    pub(super) async fn forward_artifact_request(
        &self,
        id: &str,
        req: Request<Body>,
    ) -> Option<Response<Body>> {
        let url = self.live_node_url(id).await?;
        let (parts, _) = req.into_parts();
        Some(match self.send_to(&url, parts, Bytes::new()).await {
            Ok(resp) => resp,
            Err(e) => crate::api::Problem::new(
                "gone",
                format!("node {id} that keeps the artifact did not answer: {e}"),
            )
            .response(),
        })
    }

    /// Waits until the node that ran session `id` has collected its
    /// artifacts: it records the session's end event only after that.
    pub(super) async fn artifacts_collected(&self, id: &str, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        loop {
            if let Ok(events) = self.store.session_events(id, 1000).await {
                if events.iter().any(|e| e.kind == SESSION_ENDED) {
                    return true;
                }
            }
            // Its end event may be trimmed from the log, or never written (a
            // session found stranded): long after the end, nothing more comes.
            if let Ok(Some(rec)) = self.store.get(id).await {
                if rec
                    .ended_at
                    .is_some_and(|at| gridiron_store::now_ms() - at > SETTLED_AFTER_MS)
                {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(SETTLED_POLL).await;
        }
    }
}
