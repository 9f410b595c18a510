//! `/api/v1/pools` (admin): the work pools of a scaled-out grid, as
//! `gridiron pools` manages them. A standalone grid has no pools: every
//! pool route answers 404 `urn:gridiron:problem:needs-scaled-out-grid`.

use super::{
    admin, caller, json, json_body, only_params, query_pairs, ApiResult, Id, Problem, Role,
};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use gridiron_domain::launch_policy::{check_switches, LaunchAllowances};
use gridiron_domain::pool::{check_name, Pool};
use gridiron_store::Cluster;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;

/// A pool's settings, as created or updated.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Default `browserName` for requests that name none.
    pub browser: Option<String>,
    /// Default `browserVersion` (prefix) for requests that name none.
    pub version: Option<String>,
    /// Browser switches added to every session of the pool (the launch
    /// policy applies; switches an operator allows only by name need
    /// `gridiron pools create --allow-arg`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Labels of the pool's nodes, and default labels of its sessions.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Sessions that may run in the pool at once, over all its nodes (at least 1).
    #[schema(minimum = 1)]
    pub max_concurrency: Option<u32>,
    /// Warm sessions each node of the pool keeps, e.g. `chrome=2`.
    pub warm: Option<String>,
}

/// `POST /api/v1/pools`: a pool's name and settings (as [`PoolSpec`]). The
/// fields are spelled out rather than flattened from [`PoolSpec`]: both refuse
/// unknown fields, and a flattened pair would make two JSON schemas that each
/// forbid the other's properties, which no body could satisfy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPool {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// Default `browserName` for requests that name none.
    pub browser: Option<String>,
    /// Default `browserVersion` (prefix) for requests that name none.
    pub version: Option<String>,
    /// Browser switches added to every session of the pool.
    #[serde(default)]
    pub args: Vec<String>,
    /// Labels of the pool's nodes, and default labels of its sessions.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Sessions that may run in the pool at once (at least 1).
    #[schema(minimum = 1)]
    pub max_concurrency: Option<u32>,
    /// Warm sessions each node of the pool keeps, e.g. `chrome=2`.
    pub warm: Option<String>,
}

impl NewPool {
    /// The name and the settings.
    fn split(self) -> (String, PoolSpec) {
        let spec = PoolSpec {
            browser: self.browser,
            version: self.version,
            args: self.args,
            labels: self.labels,
            max_concurrency: self.max_concurrency,
            warm: self.warm,
        };
        (self.name, spec)
    }
}

/// A pool and its load.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PoolView {
    /// Its name.
    pub name: String,
    /// Default `browserName`.
    pub browser: Option<String>,
    /// Default `browserVersion` prefix.
    pub version: Option<String>,
    /// Switches added to every session.
    pub args: Vec<String>,
    /// Node labels and default session labels.
    pub labels: BTreeMap<String, String>,
    /// Sessions it may run at once (`null`: no limit).
    pub max_concurrency: Option<u32>,
    /// Warm sessions each of its nodes keeps.
    pub warm: Option<String>,
    /// Sessions it runs now.
    pub running: usize,
}

/// Every pool.
#[derive(Debug, Serialize, ToSchema)]
pub struct PoolPage {
    /// The pools, by name.
    pub items: Vec<PoolView>,
    /// Always `null`: pools are listed whole.
    pub next_cursor: Option<String>,
}

/// The cluster, for an admin on a scaled-out grid.
fn pools_of(b: &Role, req: &Request<Body>) -> ApiResult<Arc<dyn Cluster>> {
    admin(&caller(req))?;
    b.cluster().ok_or_else(|| {
        Problem::new(
            "needs-scaled-out-grid",
            "pools exist only on a scaled-out grid (hubs and nodes sharing a Redis store)",
        )
    })
}

fn pool(name: String, spec: PoolSpec) -> ApiResult<Pool> {
    check_name(&name)?;
    check_switches("args", &spec.args, &LaunchAllowances::default())?;
    if spec.max_concurrency == Some(0) {
        return Err(Problem::invalid("max_concurrency must be at least 1"));
    }
    if let Some(w) = &spec.warm {
        gridiron_domain::warm::WarmCounts::parse(w).map_err(Problem::invalid)?;
    }
    Ok(Pool {
        name,
        browser: spec.browser,
        version: spec.version,
        args: spec.args,
        labels: spec.labels,
        max_concurrency: spec.max_concurrency,
        warm: spec.warm,
    })
}

fn view(p: Pool, running: usize) -> PoolView {
    PoolView {
        name: p.name,
        browser: p.browser,
        version: p.version,
        args: p.args,
        labels: p.labels,
        max_concurrency: p.max_concurrency,
        warm: p.warm,
        running,
    }
}

async fn one(c: &Arc<dyn Cluster>, name: &str) -> ApiResult<PoolView> {
    let all = c.pools().await?;
    all.into_iter()
        .find(|(p, _)| p.name == name)
        .map(|(p, n)| view(p, n))
        .ok_or_else(|| Problem::not_found(format!("pool {name}")))
}

/// Create a pool (admin; scaled-out grids).
#[utoipa::path(
    operation_id = "create_pool",
    post, path = "/api/v1/pools", tag = "pools", request_body = NewPool,
    responses(
        (status = 201, description = "Created", body = PoolView),
        (status = 400, description = "Invalid pool", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A pool of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pool, or a standalone grid (no pools: `needs-scaled-out-grid`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let c = pools_of(&b, &req)?;
    let new: NewPool = json_body(&b, req).await?;
    let (name, spec) = new.split();
    let p = pool(name, spec)?;
    if c.pool(&p.name).await?.is_some() {
        return Err(Problem::new(
            "conflict",
            format!("pool {} exists already", p.name),
        ));
    }
    c.put_pool(&p).await?;
    b.emit(pool_changed(&p.name, "created"));
    Ok(json(StatusCode::CREATED, &view(p, 0)))
}

/// List the pools (admin; scaled-out grids).
#[utoipa::path(
    operation_id = "list_pools",
    get, path = "/api/v1/pools", tag = "pools",
    responses(
        (status = 200, description = "The pools", body = PoolPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pool, or a standalone grid (no pools: `needs-scaled-out-grid`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let c = pools_of(&b, &req)?;
    only_params(&query_pairs(&req)?, &[])?;
    let items = c
        .pools()
        .await?
        .into_iter()
        .map(|(p, n)| view(p, n))
        .collect();
    Ok(json(
        StatusCode::OK,
        &PoolPage {
            items,
            next_cursor: None,
        },
    ))
}

/// One pool (admin; scaled-out grids).
#[utoipa::path(
    operation_id = "get_pool",
    get, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses(
        (status = 200, description = "The pool", body = PoolView),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pool, or a standalone grid (no pools: `needs-scaled-out-grid`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(
    State(b): State<Role>,
    Id(name): Id,
    req: Request<Body>,
) -> ApiResult<Response> {
    let c = pools_of(&b, &req)?;
    Ok(json(StatusCode::OK, &one(&c, &name).await?))
}

/// Replace a pool's settings (admin; scaled-out grids).
#[utoipa::path(
    operation_id = "update_pool",
    put, path = "/api/v1/pools/{name}", tag = "pools", request_body = PoolSpec,
    params(("name" = String, Path, description = "Pool name")),
    responses(
        (status = 200, description = "Updated", body = PoolView),
        (status = 400, description = "Invalid pool", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pool, or a standalone grid (no pools: `needs-scaled-out-grid`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn update(
    State(b): State<Role>,
    Id(name): Id,
    req: Request<Body>,
) -> ApiResult<Response> {
    let c = pools_of(&b, &req)?;
    let spec: PoolSpec = json_body(&b, req).await?;
    let p = pool(name.clone(), spec)?;
    if c.pool(&name).await?.is_none() {
        return Err(Problem::not_found(format!("pool {name}")));
    }
    c.put_pool(&p).await?;
    b.emit(pool_changed(&name, "updated"));
    Ok(json(StatusCode::OK, &one(&c, &name).await?))
}

/// Delete a pool (admin; scaled-out grids).
#[utoipa::path(
    operation_id = "delete_pool",
    delete, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "Pool name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such pool, or a standalone grid (no pools: `needs-scaled-out-grid`)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(b): State<Role>,
    Id(name): Id,
    req: Request<Body>,
) -> ApiResult<Response> {
    let c = pools_of(&b, &req)?;
    if !c.delete_pool(&name).await? {
        return Err(Problem::not_found(format!("pool {name}")));
    }
    b.emit(pool_changed(&name, "deleted"));
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The event of a change to pool `name`.
fn pool_changed(name: &str, change: &str) -> gridiron_store::NewEvent {
    gridiron_store::NewEvent::now(gridiron_domain::events::POOL_CHANGED)
        .with("pool", name)
        .with("change", change)
}
