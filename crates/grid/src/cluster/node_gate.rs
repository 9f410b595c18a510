//! The node's HTTP surface: the grid's one router, behind a gate that lets
//! only hubs through (signed, fresh, unreplayed requests) and never lets a
//! client start a session directly.

use super::signing::{self, Refusal, SIGNED_HEADERS};
use super::{hub_only_headers, unix_ms, ClusterSecret, END_REASON_HEADER};
use crate::http;
use crate::manager::Manager;
use crate::proxy::read_body;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, Response, StatusCode};
use axum::middleware::Next;
use axum::Router;
use gridiron_domain::{EndReason, ErrorCode, GridError, Origin};
use std::sync::{Arc, Mutex};
use tracing::warn;

/// The node's HTTP surface: the grid's W3C routes for hubs only. Requests
/// without a valid, fresh, unreplayed hub signature (see
/// [`super::signing`]) are refused; sessions start from the queue.
pub fn node_router(m: Arc<Manager>, secret: impl Into<ClusterSecret>) -> Router {
    let gate = Arc::new(Gate {
        secret: secret.into(),
        nonces: Mutex::default(),
        max_body_bytes: m.config.max_body_bytes,
    });
    crate::routes::router(m).layer(axum::middleware::from_fn_with_state(gate, only_hubs))
}

/// What a node checks hub requests with.
struct Gate {
    secret: ClusterSecret,
    nonces: Mutex<signing::NonceCache>,
    max_body_bytes: usize,
}

fn refused(why: &Refusal) -> Response<Body> {
    warn!(reason = %why, "refused a request that is not from a hub of this grid");
    let e = GridError::new(
        ErrorCode::UnknownError,
        Origin::Client,
        format!("this is a Gridiron node: only signed requests from its hubs are served ({why})"),
    );
    http::json(StatusCode::UNAUTHORIZED, &e.to_json())
}

/// The timestamp, nonce and signature a hub sent.
fn signature_fields(h: &axum::http::HeaderMap) -> Result<(u64, String, String), Refusal> {
    let get = |name: &'static str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or(Refusal::Missing(name))
    };
    let timestamp = get(signing::TIMESTAMP_HEADER)?
        .parse::<u64>()
        .map_err(|_| Refusal::Missing(signing::TIMESTAMP_HEADER))?;
    Ok((
        timestamp,
        get(signing::NONCE_HEADER)?,
        get(signing::SIGNATURE_HEADER)?,
    ))
}

/// Checks a hub's signature over the request, then passes it on without the
/// hub-only headers (drivers and browsers never see them).
async fn only_hubs(
    State(gate): State<Arc<Gate>>,
    req: Request<Body>,
    next: Next,
) -> Response<Body> {
    let (timestamp_ms, nonce, signature) = match signature_fields(req.headers()) {
        Ok(x) => x,
        Err(why) => return refused(&why),
    };
    // Refused before the body is read, so an old or forged timestamp costs
    // the node no buffering.
    if u128::from(unix_ms().abs_diff(timestamp_ms)) > signing::MAX_SKEW.as_millis() {
        return refused(&Refusal::Stale);
    }
    // The body is read whole to check its digest, then handed on as read.
    let (mut parts, body) = match read_body(req, gate.max_body_bytes).await {
        Ok(x) => x,
        Err(e) => return http::error(&e),
    };
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let digest = signing::body_digest(&body);
    let signed = signing::Parts {
        method: parts.method.as_str(),
        path_and_query: pq,
        timestamp_ms,
        nonce: &nonce,
        body_digest: &digest,
        headers: SIGNED_HEADERS.map(|h| parts.headers.get(h).map(|v| v.as_bytes())),
    };
    let now = unix_ms();
    let checked = signing::verify(gate.secret.key(), &signed, &signature, now).and_then(|()| {
        gate.nonces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&nonce, timestamp_ms, now)
    });
    if let Err(why) = checked {
        return refused(&why);
    }
    // The hub judged the client's Origin against its own --allowed-origin.
    parts.headers.remove(axum::http::header::ORIGIN);
    // Only a hub may say why it ends a session; the header stops here.
    let reason = parts.headers.get(END_REASON_HEADER).cloned();
    for h in hub_only_headers() {
        parts.headers.remove(h);
    }
    let mut req = Request::from_parts(parts, Body::from(body));
    // The hub checked the client's key and its right to the session.
    req.extensions_mut().insert(crate::auth::Caller::trusted());
    if let Some(r) = reason
        .as_ref()
        .and_then(|r| r.to_str().ok())
        .and_then(EndReason::parse)
    {
        req.extensions_mut()
            .insert(crate::local_session::RequestedEnd(r));
    }
    let path = req.uri().path();
    let new_session = req.method() == Method::POST
        && matches!(path, "/session" | "/wd/hub/session")
        || path == "/cdp";
    if new_session {
        return http::error(&GridError::new(
            ErrorCode::UnknownCommand,
            Origin::Client,
            "sessions start through a hub, which queues them for the nodes",
        ));
    }
    next.run(req).await
}
