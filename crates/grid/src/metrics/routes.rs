//! `GET /metrics` (Prometheus text) and `GET /api/v1/scaling` (how many
//! slots the load needs, for KEDA's `metrics-api` scaler or an HPA), served
//! by the one front end for every role.

use super::render::render;
use crate::backend::Backend;
use crate::http;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use gridiron_domain::metrics::plan;
use serde::Serialize;
use std::sync::Arc;

/// The content type of the Prometheus text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The routes, to merge into the front end's router.
pub(crate) fn router() -> Router<Arc<dyn Backend>> {
    Router::new()
        .route(
            "/metrics",
            get(metrics).fallback(crate::routes::unknown_method),
        )
        .route(
            "/api/v1/scaling",
            get(scaling).fallback(crate::routes::unknown_method),
        )
}

/// `GET /metrics`: the grid's metrics (in a cluster, the whole grid's), as
/// the caller may see them.
async fn metrics(State(b): State<Arc<dyn Backend>>, req: Request<Body>) -> Response<Body> {
    let caller = crate::routes::caller(&req);
    match b.metrics_view().await {
        Ok(view) => {
            let mut r = Response::new(Body::from(render(&view, &caller)));
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            r
        }
        Err(e) => http::error(&e),
    }
}

/// The answer of `GET /api/v1/scaling`. KEDA's `metrics-api` trigger reads
/// one field by `valueLocation` (say `desired_slots`, with a `targetValue`
/// of the slots per node, to get the nodes needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScalingReport {
    /// Slots the current load needs: running + queued + headroom.
    pub desired_slots: u64,
    /// `desired_slots - total_slots`: slots to add (positive) or that could
    /// go (negative).
    pub slot_delta: i64,
    /// Requests waiting for a slot.
    pub queued: u64,
    /// Sessions on slots that take new sessions.
    pub running: u64,
    /// Slots free now.
    pub free_slots: u64,
    /// Slots of live nodes that take new sessions (draining ones excluded).
    pub total_slots: u64,
    /// The free slots asked for on top of the load (`?headroom=`, default 0).
    pub headroom: u64,
}

/// `GET /api/v1/scaling[?headroom=N]`: how many more (or fewer) slots the
/// queue and the running sessions need.
async fn scaling(State(b): State<Arc<dyn Backend>>, RawQuery(q): RawQuery) -> Response<Body> {
    let headroom = match headroom(q.as_deref().unwrap_or("")) {
        Ok(h) => h,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, "Invalid argument", &detail),
    };
    let view = match b.metrics_view().await {
        Ok(v) => v,
        Err(e) => {
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return problem(status, "Metrics unavailable", &e.message);
        }
    };
    let input = view.scaling_input(headroom);
    let p = plan(input);
    let report = ScalingReport {
        desired_slots: p.desired_slots,
        slot_delta: p.slot_delta,
        queued: input.queued,
        running: input.running,
        free_slots: p.free_slots,
        total_slots: input.total_slots,
        headroom,
    };
    http::json(
        StatusCode::OK,
        &serde_json::to_value(report).unwrap_or_default(),
    )
}

/// The `headroom` of a scaling query (0 if absent).
fn headroom(query: &str) -> Result<u64, String> {
    let params: Vec<(String, String)> =
        serde_urlencoded::from_str(query).map_err(|e| format!("malformed query string: {e}"))?;
    let mut headroom = 0;
    for (k, v) in params {
        match k.as_str() {
            "headroom" => {
                headroom = v.parse().map_err(|_| {
                    format!("headroom must be a whole number of slots (0 or more), not {v:?}")
                })?
            }
            other => {
                return Err(format!(
                    "unknown query parameter {other:?}; only headroom is known"
                ))
            }
        }
    }
    Ok(headroom)
}

/// An RFC 9457 problem document.
fn problem(status: StatusCode, title: &str, detail: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut r = http::json(status, &body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::headroom;

    #[test]
    fn headroom_is_a_count_of_slots() {
        assert_eq!(headroom(""), Ok(0));
        assert_eq!(headroom("headroom=3"), Ok(3));
        assert!(headroom("headroom=-1")
            .unwrap_err()
            .contains("whole number"));
        assert!(headroom("head=1")
            .unwrap_err()
            .contains("unknown query parameter"));
    }
}
