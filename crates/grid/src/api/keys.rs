//! `/api/v1/keys` (admin): API keys, as `gridiron keys` manages them. The
//! token is returned once, at creation; only its hash is kept.

use super::{
    admin, caller, json, json_body, only_params, query_pairs, ApiResult, Id, Problem, Role,
};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use gridiron_domain::auth::{check_key_name, hash_token, ApiKey, Role as KeyRole};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/keys`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// 1 to 64 of `A-Z a-z 0-9 . _ -`; the user name of Basic auth.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// `admin` (sees everything, manages keys, pools, nodes) or `user` (default: only its own sessions).
    #[schema(pattern = "^(admin|user)$")]
    pub role: Option<String>,
    /// Sessions the key may run at once (at least 1); more wait in the queue.
    #[schema(minimum = 1)]
    pub max_sessions: Option<u32>,
    /// Requests per second the key may make; more get 429.
    #[schema(exclusive_minimum = 0)]
    pub rate: Option<f64>,
}

/// An API key (never its token).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyView {
    /// Its name.
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// Sessions it may run at once (`null`: no limit).
    pub max_sessions: Option<u32>,
    /// Requests per second (`null`: no limit).
    pub rate: Option<f64>,
    /// Unix ms when it was made.
    pub created_at: i64,
}

/// A new key and its token, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key.
    #[serde(flatten)]
    pub key: KeyView,
    /// The token: present it as `Authorization: Bearer TOKEN` or `X-API-Key`.
    pub token: String,
}

/// Every key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyPage {
    /// The keys, by name.
    pub items: Vec<KeyView>,
    /// Always `null`: keys are listed whole.
    pub next_cursor: Option<String>,
}

fn view(k: &ApiKey) -> KeyView {
    KeyView {
        name: k.name.clone(),
        role: k.role.as_str().to_string(),
        max_sessions: k.max_sessions,
        rate: k.rate,
        created_at: k.created_at,
    }
}

/// Create a key (admin); the answer holds its token, shown only now.
#[utoipa::path(
    operation_id = "create_key",
    post, path = "/api/v1/keys", tag = "keys", request_body = NewKey,
    responses(
        (status = 201, description = "Created", body = CreatedKey),
        (status = 400, description = "Invalid key", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A key of that name exists", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    admin(&caller(&req))?;
    let new: NewKey = json_body(&b, req).await?;
    check_key_name(&new.name).map_err(Problem::invalid)?;
    let role = new.role.as_deref().unwrap_or("user");
    let role = KeyRole::parse(role)
        .ok_or_else(|| Problem::invalid(format!("role must be admin or user, got {role:?}")))?;
    if new.max_sessions == Some(0) {
        return Err(Problem::invalid("max_sessions must be at least 1"));
    }
    if new.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(Problem::invalid("rate must be a positive number"));
    }
    let token = gridiron_store::new_token().map_err(|e| Problem::new("internal", e))?;
    let key = ApiKey {
        name: new.name.clone(),
        role,
        token_hash: hash_token(&token),
        max_sessions: new.max_sessions,
        rate: new.rate,
        created_at: gridiron_store::now_ms(),
    };
    let shown = view(&key);
    if !b.store().create_key(key).await? {
        return Err(Problem::new(
            "conflict",
            format!("a key named {} exists already", new.name),
        ));
    }
    b.emit(
        gridiron_store::NewEvent::now(gridiron_domain::events::KEY_CREATED)
            .with("key", &shown.name)
            .with("role", &shown.role),
    );
    Ok(json(StatusCode::CREATED, &CreatedKey { key: shown, token }))
}

/// List the keys (admin).
#[utoipa::path(
    operation_id = "list_keys",
    get, path = "/api/v1/keys", tag = "keys",
    responses(
        (status = 200, description = "The keys", body = KeyPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    admin(&caller(&req))?;
    only_params(&query_pairs(&req)?, &[])?;
    let items = b.store().keys().await?.iter().map(view).collect();
    Ok(json(
        StatusCode::OK,
        &KeyPage {
            items,
            next_cursor: None,
        },
    ))
}

/// Revoke a key (admin): its token is refused from then on (within a second).
#[utoipa::path(
    operation_id = "revoke_key",
    delete, path = "/api/v1/keys/{name}", tag = "keys",
    params(("name" = String, Path, description = "Key name")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn revoke(
    State(b): State<Role>,
    Id(name): Id,
    req: Request<Body>,
) -> ApiResult<Response> {
    admin(&caller(&req))?;
    if !b.store().revoke_key(&name).await? {
        return Err(Problem::not_found(format!("key {name}")));
    }
    b.emit(gridiron_store::NewEvent::now(gridiron_domain::events::KEY_REVOKED).with("key", &name));
    Ok(StatusCode::NO_CONTENT.into_response())
}
