//! `/api/v1/nodes` (admin): the hosts that run sessions. A standalone grid
//! presents itself as the one node `local`.

use super::{admin, caller, json, only_params, query_pairs, ApiResult, Id, Problem, Role};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A node and what it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    /// Its id (`local` on a standalone grid).
    pub id: String,
    /// Where hubs reach it (`null` on a standalone grid).
    pub url: Option<String>,
    /// Its slots.
    pub slots: usize,
    /// Slots in use.
    pub used: usize,
    /// Ids of the sessions it runs.
    pub sessions: Vec<String>,
    /// The browsers it offers (`chrome 131.0...`).
    pub browsers: Vec<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The pools it serves.
    pub pools: Vec<String>,
    /// Milliseconds since its last heartbeat (`null` once it has expired,
    /// and on a standalone grid, which is this process).
    pub heartbeat_age_ms: Option<i64>,
    /// Its heartbeat is current.
    pub alive: bool,
    /// It takes no new sessions.
    pub draining: bool,
    /// Unix ms when it registered (or started).
    pub started_at: i64,
}

/// Every node.
#[derive(Debug, Serialize, ToSchema)]
pub struct NodePage {
    /// The nodes, oldest first.
    pub items: Vec<NodeView>,
    /// Always `null`: nodes are listed whole.
    pub next_cursor: Option<String>,
}

/// List the nodes (admin).
#[utoipa::path(
    operation_id = "list_nodes",
    get, path = "/api/v1/nodes", tag = "nodes",
    responses(
        (status = 200, description = "The nodes", body = NodePage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    admin(&caller(&req))?;
    only_params(&query_pairs(&req)?, &[])?;
    let items = b.nodes().await?;
    Ok(json(
        StatusCode::OK,
        &NodePage {
            items,
            next_cursor: None,
        },
    ))
}

/// One node (admin).
#[utoipa::path(
    operation_id = "get_node",
    get, path = "/api/v1/nodes/{id}", tag = "nodes",
    params(("id" = String, Path, description = "Node id")),
    responses(
        (status = 200, description = "The node", body = NodeView),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such node", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(State(b): State<Role>, Id(id): Id, req: Request<Body>) -> ApiResult<Response> {
    admin(&caller(&req))?;
    let node = b.nodes().await?.into_iter().find(|n| n.id == id);
    let node = node.ok_or_else(|| Problem::not_found(format!("node {id}")))?;
    Ok(json(StatusCode::OK, &node))
}

/// Drain a node: it takes no new sessions; running ones finish (admin).
#[utoipa::path(
    operation_id = "drain_node",
    post, path = "/api/v1/nodes/{id}/drain", tag = "nodes",
    params(("id" = String, Path, description = "Node id")),
    responses(
        (status = 202, description = "The node is draining"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such live node (a standalone grid cannot drain: `needs-scaled-out-grid`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn drain(State(b): State<Role>, Id(id): Id, req: Request<Body>) -> ApiResult<Response> {
    admin(&caller(&req))?;
    if b.cluster().is_none() {
        return Err(Problem::new(
            "needs-scaled-out-grid",
            "a standalone grid cannot drain: stop it (SIGTERM) and its sessions end",
        ));
    }
    if !b.drain_node(&id).await? {
        return Err(Problem::not_found(format!("live node {id}")));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}
