//! `/api/v1/queue`: new-session requests waiting for a slot. A user key sees
//! and cancels only its own; a cancelled request's client gets a W3C
//! `session not created` error saying so.

use super::{caller, json, only_params, page_limit_of, query_pairs, ApiResult, Id, Problem, Role};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A request waiting in the queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QueueEntry {
    /// The request's id (what `DELETE /api/v1/queue/{id}` takes).
    pub id: String,
    /// Its place in line, from 1: the order nodes claim in on a scaled-out
    /// grid; arrival order on a standalone grid (where keys with a session
    /// limit take turns, so a request may be served before one listed ahead).
    pub position: usize,
    /// Milliseconds it has waited so far.
    pub waited_ms: i64,
    /// The browser it asks for.
    pub browser: String,
    /// The API key that asked (`null`: none).
    pub owner: Option<String>,
    /// The pool it targets (scaled-out grids).
    pub pool: Option<String>,
}

/// The waiting requests, first in line first.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuePage {
    /// The requests (at most `limit`).
    pub items: Vec<QueueEntry>,
    /// Always `null`: the queue is short-lived and listed whole up to `limit`.
    pub next_cursor: Option<String>,
}

/// List the requests waiting for a slot.
#[utoipa::path(
    operation_id = "list_queue",
    get, path = "/api/v1/queue", tag = "queue",
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "At most this many (default 50)")),
    responses(
        (status = 200, description = "The waiting requests", body = QueuePage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let pairs = query_pairs(&req)?;
    only_params(&pairs, &["limit"])?;
    let limit = page_limit_of(&pairs)?;
    let items = b
        .waiting()
        .await?
        .into_iter()
        .filter(|e| who.may_use(e.owner.as_deref()))
        .take(limit)
        .collect();
    Ok(json(
        StatusCode::OK,
        &QueuePage {
            items,
            next_cursor: None,
        },
    ))
}

/// Cancel a waiting request; its client gets a W3C error.
#[utoipa::path(
    operation_id = "cancel_queued_request",
    delete, path = "/api/v1/queue/{id}", tag = "queue",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 204, description = "Cancelled"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such waiting request (or not this key's)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn cancel(State(b): State<Role>, Id(id): Id, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let mine = b
        .waiting()
        .await?
        .into_iter()
        .any(|e| e.id == id && who.may_use(e.owner.as_deref()));
    if !mine || !b.cancel_waiting(&id).await? {
        return Err(Problem::not_found(format!("waiting request {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}
