//! How a hub reaches the node of a session: the route cache, forwarding
//! commands and tunnels (signed with the cluster secret), and what a node
//! that does not answer means.

use super::Hub;
use crate::backend::RemoteSession;
use crate::cluster::signing::{self, SIGNED_HEADERS};
use crate::cluster::{hub_only_headers, unix_ms, END_REASON_HEADER};
use crate::http;
use crate::proxy::{copy_headers, read_body};
use crate::tunnel::Target;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
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
        if let Ok(true) = self
            .store
            .end_elsewhere(sid, EndReason::NodeLost, now_ms())
            .await
        {
            self.metrics.session_ended(EndReason::NodeLost);
        }
        GridError::invalid_session(format!(
            "session {sid} has ended (node_lost): its node stopped heartbeating"
        ))
    }

    /// Sends a request to the node (body already read) and streams its
    /// response back. `end_reason` is the hub's own reason for ending a
    /// session; whatever a client sent in that header is dropped.
    async fn send(
        &self,
        node_url: &str,
        parts: axum::http::request::Parts,
        body: Bytes,
        end_reason: Option<EndReason>,
    ) -> Result<Response<Body>, String> {
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri: Uri = format!("{node_url}{pq}")
            .parse()
            .map_err(|e| format!("bad node URL {node_url}: {e}"))?;
        let mut headers = HeaderMap::new();
        copy_headers(&parts.headers, &mut headers);
        self.sign(&parts.method, pq, &mut headers, &body, end_reason);
        let mut out = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(Body::from(body))
            .map_err(|e| e.to_string())?;
        *out.headers_mut() = headers;
        let resp = self.client.request(out).await.map_err(|e| e.to_string())?;
        Ok(resp.map(Body::new))
    }

    /// Sends a request to the node at `node_url` and streams its answer back.
    pub(super) async fn send_to(
        &self,
        node_url: &str,
        parts: axum::http::request::Parts,
        body: Bytes,
    ) -> Result<Response<Body>, String> {
        self.send(node_url, parts, body, None).await
    }

    /// Signs a request to a node (see [`crate::cluster::signing`]): drops the
    /// hub-only headers a client may have sent, sets this hub's end reason,
    /// and adds a timestamp, a fresh nonce and the signature. `path_and_query`
    /// is relative to the node's advertised URL, as the node sees it.
    pub(super) fn sign(
        &self,
        method: &Method,
        path_and_query: &str,
        headers: &mut HeaderMap,
        body: &[u8],
        end_reason: Option<EndReason>,
    ) {
        for h in hub_only_headers() {
            headers.remove(h);
        }
        if let Some(r) = end_reason {
            headers.insert(END_REASON_HEADER, HeaderValue::from_static(r.as_str()));
        }
        let timestamp_ms = unix_ms();
        let nonce = signing::new_nonce();
        let digest = signing::body_digest(body);
        let signed_headers = SIGNED_HEADERS.map(|h| headers.get(h).map(HeaderValue::as_bytes));
        let signature = signing::sign(
            self.cfg.secret.key(),
            &signing::Parts {
                method: method.as_str(),
                path_and_query,
                timestamp_ms,
                nonce: &nonce,
                body_digest: &digest,
                headers: signed_headers,
            },
        );
        for (name, value) in [
            (signing::TIMESTAMP_HEADER, timestamp_ms.to_string()),
            (signing::NONCE_HEADER, nonce),
            (signing::SIGNATURE_HEADER, signature),
        ] {
            headers.insert(
                name,
                HeaderValue::from_str(&value).expect("ASCII digits and hex"),
            );
        }
    }

    /// Ends session `sid` on its node, recording `reason`.
    pub(super) async fn delete_session(&self, sid: &str, reason: EndReason) {
        let Ok(Some(url)) = self.node_url(sid).await else {
            return;
        };
        let (parts, ()) = Request::delete(format!("/session/{sid}"))
            .body(())
            .expect("valid request")
            .into_parts();
        if let Err(e) = self.send(&url, parts, Bytes::new(), Some(reason)).await {
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
        // The signature covers the body's digest, which the hub must know
        // before it sends the first byte: bodies to nodes are buffered (up to
        // the grid's body limit) instead of streamed. Commands' bodies are
        // small; the cost is one copy of an upload in the hub's memory.
        let (parts, body) = match read_body(req, self.hub.cfg.max_body_bytes).await {
            Ok(x) => x,
            Err(e) => return http::error(&e),
        };
        match self.hub.send(&self.node_url, parts, body, None).await {
            Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => http::error(&GridError::new(
                ErrorCode::UnknownError,
                Origin::Grid,
                "the node refused this hub's signature: their cluster secrets or clocks differ",
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

    fn tunnel_target(&self, req: &mut Request<Body>, path_and_query: &str) -> Target {
        // The tunnel sends a GET with an empty body (see `tunnel::open`).
        self.hub
            .sign(&Method::GET, path_and_query, req.headers_mut(), b"", None);
        Target {
            url: node_ws(&self.node_url, path_and_query),
            tls: Some(self.hub.tls.clone()),
        }
    }
}

/// The websocket URL of `path` on the node at `node_url`.
fn node_ws(node_url: &str, path: &str) -> String {
    if let Some(rest) = node_url.strip_prefix("https://") {
        return format!("wss://{rest}{path}");
    }
    format!("{}{path}", node_url.replacen("http://", "ws://", 1))
}
