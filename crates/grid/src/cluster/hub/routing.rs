//! How a hub reaches the node of a session: the route cache, forwarding
//! commands and tunnels (signed with the cluster secret), and what a node
//! that does not answer means.

use super::Hub;
use crate::backend::RemoteSession;
use crate::cluster::END_REASON_HEADER;
use crate::cluster::SECRET_HEADER;
use crate::http;
use crate::proxy::copy_headers;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use gridiron_domain::{EndReason, ErrorCode, GridError, Origin};
use gridiron_store::cluster::NodeState;
use gridiron_store::now_ms;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

impl Hub {
    /// The registered nodes, read again if `fresh` or older than half a second.
    pub(super) async fn nodes(
        &self,
        fresh: bool,
    ) -> Result<Vec<NodeState>, gridiron_store::StoreError> {
        let mut cache = self.nodes.lock().await;
        let stale = cache
            .0
            .is_none_or(|t| fresh || t.elapsed() > crate::timing::NODE_CACHE);
        if stale {
            *cache = (Some(Instant::now()), self.cluster.nodes().await?);
        }
        Ok(cache.1.clone())
    }

    /// The URL of the node running session `sid`, if any.
    pub(super) async fn node_url(
        &self,
        sid: &str,
    ) -> Result<Option<String>, gridiron_store::StoreError> {
        Ok(self.node_route(sid).await?.map(|r| r.url))
    }

    /// The node running session `sid` and the session's owner, if it runs.
    pub(super) async fn node_route(
        &self,
        sid: &str,
    ) -> Result<Option<Route>, gridiron_store::StoreError> {
        if let Some(route) = self.routes().get(sid) {
            return Ok(Some(route.clone()));
        }
        let Some(node) = self.cluster.route(sid).await? else {
            return Ok(None);
        };
        let find = |nodes: Vec<NodeState>| {
            nodes
                .into_iter()
                .find(|n| n.info.id == node)
                .map(|n| n.info.url)
        };
        let url = match find(self.nodes(false).await?) {
            Some(u) => Some(u),
            None => find(self.nodes(true).await?),
        };
        let Some(url) = url else {
            return Ok(None);
        };
        // Read once per session and hub: owners never change.
        let owner = self.store.get(sid).await?.and_then(|r| r.owner);
        let route = Route { url, owner };
        self.routes().insert(sid.to_string(), route.clone());
        Ok(Some(route))
    }

    /// A node did not answer: if its heartbeat is gone the session is lost.
    async fn unreachable(&self, sid: &str, url: &str, e: String) -> GridError {
        self.routes().remove(sid);
        let alive = self
            .nodes(true)
            .await
            .map(|ns| ns.iter().any(|n| n.info.url == url && n.alive))
            .unwrap_or(true);
        if alive {
            return GridError::new(
                ErrorCode::UnknownError,
                Origin::Grid,
                format!("the node running session {sid} did not answer: {e}"),
            );
        }
        let _ = self
            .store
            .end_elsewhere(sid, EndReason::NodeLost, now_ms())
            .await;
        GridError::invalid_session(format!(
            "session {sid} has ended (node_lost): its node stopped heartbeating"
        ))
    }

    /// Streams a request to the node and its response back.
    async fn forward(&self, node_url: &str, req: Request<Body>) -> Result<Response<Body>, String> {
        let (parts, body) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri: Uri = format!("{node_url}{pq}")
            .parse()
            .map_err(|e| format!("bad node URL {node_url}: {e}"))?;
        let mut out = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(body)
            .map_err(|e| e.to_string())?;
        copy_headers(&parts.headers, out.headers_mut());
        self.sign(out.headers_mut());
        let resp = self.client.request(out).await.map_err(|e| e.to_string())?;
        Ok(resp.map(Body::new))
    }

    /// Authenticates a request to a node.
    pub(super) fn sign(&self, headers: &mut axum::http::HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.cfg.secret) {
            headers.insert(SECRET_HEADER, v);
        }
    }

    /// Ends session `sid` on its node, recording `reason`.
    pub(super) async fn delete_session(&self, sid: &str, reason: EndReason) {
        let Ok(Some(url)) = self.node_url(sid).await else {
            return;
        };
        let req = Request::delete(format!("/session/{sid}"))
            .header(END_REASON_HEADER, reason.as_str())
            .body(Body::empty())
            .expect("valid request");
        if let Err(e) = self.forward(&url, req).await {
            warn!(session = %sid, error = %e, "could not end the session");
        }
        self.routes().remove(sid);
    }
}

/// Where a session runs, and whose it is, as a hub caches it.
#[derive(Debug, Clone)]
pub(super) struct Route {
    /// Its node's URL.
    pub url: String,
    /// The API key that owns it.
    pub owner: Option<String>,
}

/// A session on a node, as this hub reaches it.
pub(super) struct NodeSession {
    /// The hub that located it.
    pub hub: Arc<Hub>,
    /// The session id.
    pub id: String,
    /// Where its node answers.
    pub node_url: String,
    /// The API key that owns it.
    pub owner: Option<String>,
}

#[async_trait]
impl RemoteSession for NodeSession {
    async fn forward(self: Box<Self>, req: Request<Body>) -> Response<Body> {
        let quit = req.method() == Method::DELETE
            && crate::routes::session_path(req.uri().path())
                .is_some_and(|(_, rest)| rest.is_empty());
        match self.hub.forward(&self.node_url, req).await {
            Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => http::error(&GridError::new(
                ErrorCode::UnknownError,
                Origin::Grid,
                "the node refused this hub: their cluster secrets differ",
            )),
            Ok(resp) => {
                if quit || resp.status() == StatusCode::NOT_FOUND {
                    self.hub.routes().remove(&self.id);
                }
                resp
            }
            Err(e) => http::error(&self.hub.unreachable(&self.id, &self.node_url, e).await),
        }
    }

    fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    fn tunnel_target(&self, req: &mut Request<Body>, path_and_query: &str) -> String {
        self.hub.sign(req.headers_mut());
        node_ws(&self.node_url, path_and_query)
    }
}

/// The websocket URL of `path` on the node at `node_url`.
fn node_ws(node_url: &str, path: &str) -> String {
    format!("{}{path}", node_url.replacen("http://", "ws://", 1))
}
