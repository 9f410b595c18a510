//! `GET /metrics` (Prometheus text) and `GET /api/v1/scaling` (how many
//! slots the load needs, for KEDA's `metrics-api` scaler or an HPA), served
//! by the one front end for every role. `/metrics` is routed here,
//! `/api/v1/scaling` by the API's router (see [`crate::api`]).

use super::render::render;
use crate::api::{caller, json, only_params, param, query_pairs, ApiResult, Problem, Role};
use crate::http;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::routing::get;
use axum::Router;
use gridiron_domain::metrics::plan;
use serde::Serialize;
use utoipa::ToSchema;

/// The content type of the Prometheus text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `/metrics` route, to merge into the front end's router.
pub(crate) fn router() -> Router<Role> {
    Router::new().route(
        "/metrics",
        get(metrics).fallback(crate::routes::unknown_method),
    )
}

/// `GET /metrics`: the grid's metrics (in a cluster, the whole grid's), as
/// the caller may see them.
async fn metrics(State(b): State<Role>, req: Request<Body>) -> Response<Body> {
    let caller = caller(&req);
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

/// How many slots the current load needs. KEDA's `metrics-api` trigger
/// reads one field by `valueLocation` (say `desired_slots`, with a
/// `targetValue` of the slots per node, to get the nodes needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
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

/// How many more (or fewer) slots the queue and the running sessions need.
#[utoipa::path(
    get, path = "/api/v1/scaling", tag = "scaling",
    params(("headroom" = Option<u64>, Query, description = "Free slots wanted on top of the load (default 0)")),
    responses(
        (status = 200, description = "The slots the load needs", body = ScalingReport),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The grid or its store failed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn scaling(
    State(b): State<Role>,
    req: Request<Body>,
) -> ApiResult<axum::response::Response> {
    let pairs = query_pairs(&req)?;
    only_params(&pairs, &["headroom"])?;
    let headroom = headroom(param(&pairs, "headroom"))?;
    let view = b.metrics_view().await?;
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
    Ok(json(StatusCode::OK, &report))
}

/// The `headroom` parameter (0 if absent).
fn headroom(given: Option<&str>) -> ApiResult<u64> {
    match given {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            Problem::invalid(format!(
                "headroom must be a whole number of slots (0 or more), not {v:?}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::headroom;

    #[test]
    fn headroom_is_a_count_of_slots() {
        assert_eq!(headroom(None), Ok(0));
        assert_eq!(headroom(Some("3")), Ok(3));
        let e = headroom(Some("-1")).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.detail.contains("whole number"), "{}", e.detail);
    }
}
