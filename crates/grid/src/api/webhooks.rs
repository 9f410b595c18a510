//! `/api/v1/webhooks`: subscriptions to the grid's events, and the delivery
//! log of each. An admin key's subscription gets every event; a user key's
//! only those about its own sessions and requests, and a user key sees and
//! manages only its own subscriptions. The secret is returned once, at
//! creation.

use super::{
    caller, json, json_body, only_params, page_limit_of, param, query_pairs, ApiResult, Problem,
    Role,
};
use crate::auth::Caller;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use gridiron_domain::api::{paginate, Cursor};
use gridiron_store::webhooks::{LogEntry, Webhook};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/webhooks`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed: an `http://` or `https://` URL without a user or password.
    pub url: String,
    /// Event types wanted: names such as `session.ended`, prefixes such as
    /// `session.*`, or `*` for all.
    pub events: Vec<String>,
    /// The signing secret (16 to 256 printable ASCII characters); the grid
    /// makes one if none is given. Returned only in this answer.
    pub secret: Option<String>,
}

/// A webhook subscription (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Event types wanted.
    pub events: Vec<String>,
    /// The API key that made it (`null` on a grid without keys).
    pub owner: Option<String>,
    /// Whether it gets every event (made by an admin) or only its key's sessions' events.
    pub all_events: bool,
    /// Unix ms when it was made.
    pub created_at: i64,
    /// Why it was disabled (`null`: active).
    pub disabled: Option<String>,
    /// Unix ms when it was disabled.
    pub disabled_at: Option<i64>,
    /// Failed delivery attempts in a row, now.
    pub failures: u32,
}

/// A new subscription and its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The subscription.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The signing secret: `Gridiron-Signature` is HMAC-SHA256 under it.
    pub secret: String,
}

/// A page of subscriptions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookPage {
    /// The subscriptions.
    pub items: Vec<WebhookView>,
    /// Pass as `?cursor=` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// One attempt (or the disabling) in a subscription's delivery log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The delivery (`WEBHOOK.EVENT`), as the `Gridiron-Delivery` header names it.
    pub delivery: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The attempt's number (0 for the line saying the subscription was disabled).
    pub attempt: u32,
    /// Unix ms when the attempt ended.
    pub at: i64,
    /// How long it took, in ms.
    pub duration_ms: u64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why there was no answer (or why the subscription was disabled).
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed` (given up) or `disabled`.
    pub result: String,
}

/// A page of the delivery log, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryPage {
    /// The attempts.
    pub items: Vec<DeliveryView>,
    /// Pass as `?cursor=` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

fn view(w: &Webhook) -> WebhookView {
    WebhookView {
        id: w.id.clone(),
        url: w.url.clone(),
        events: w.events.clone(),
        owner: w.owner.clone(),
        all_events: w.admin,
        created_at: w.created_at,
        disabled: w.disabled.clone(),
        disabled_at: w.disabled_at,
        failures: w.failures,
    }
}

fn delivery_view(e: LogEntry) -> DeliveryView {
    DeliveryView {
        delivery: e.delivery,
        event_id: e.event_id,
        event_type: e.event_type,
        attempt: e.attempt,
        at: e.at,
        duration_ms: e.duration_ms,
        status: e.status,
        error: e.error,
        result: e.result,
    }
}

/// Whether `caller` may see and manage `w`: admins all, user keys their own.
fn mine(caller: &Caller, w: &Webhook) -> bool {
    caller.admin || (caller.key.is_some() && w.owner == caller.key)
}

/// Subscription `id`, if `caller` may see it; 404 otherwise (another key's
/// subscription is as unknown as a missing one).
async fn find(b: &Role, caller: &Caller, id: &str) -> ApiResult<Webhook> {
    match b.store().webhook(id).await? {
        Some(w) if mine(caller, &w) => Ok(w),
        _ => Err(Problem::not_found(format!("webhook {id}"))),
    }
}

/// A fresh id: `wh_` and 16 random hex digits.
fn new_id() -> ApiResult<String> {
    let token = gridiron_store::new_token().map_err(|e| Problem::new("internal", e))?;
    Ok(format!("wh_{}", &token[..16]))
}

/// Subscribe a URL to events; the answer holds the secret, shown only now.
#[utoipa::path(
    post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses(
        (status = 201, description = "Created", body = CreatedWebhook),
        (status = 400, description = "Invalid subscription", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let new: NewWebhook = json_body(&b, req).await?;
    let secret = match new.secret {
        Some(s) => s,
        None => gridiron_store::new_token().map_err(|e| Problem::new("internal", e))?,
    };
    let valid = gridiron_domain::webhooks::validate(&new.url, &new.events, &secret)
        .map_err(Problem::invalid)?;
    let hook = Webhook {
        id: new_id()?,
        url: valid.url,
        events: valid.events,
        secret: valid.secret,
        owner: who.key.clone(),
        admin: who.admin,
        created_at: gridiron_store::now_ms(),
        disabled: None,
        disabled_at: None,
        failures: 0,
        failing_since: None,
    };
    if !b.store().create_webhook(&hook).await? {
        return Err(Problem::new(
            "conflict",
            "a webhook with that id exists; try again",
        ));
    }
    let created = CreatedWebhook {
        webhook: view(&hook),
        secret: hook.secret,
    };
    Ok(json(StatusCode::CREATED, &created))
}

/// List the subscriptions the caller may see, newest first.
#[utoipa::path(
    get, path = "/api/v1/webhooks", tag = "webhooks",
    params(
        ("limit" = Option<usize>, Query, description = "Items per page, 1-500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The previous page's next_cursor"),
    ),
    responses(
        (status = 200, description = "The subscriptions", body = WebhookPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let pairs = query_pairs(&req)?;
    only_params(&pairs, &["limit", "cursor"])?;
    let limit = page_limit_of(&pairs)?;
    let cursor = param(&pairs, "cursor").map(Cursor::decode).transpose()?;
    let mut all: Vec<Webhook> = b
        .store()
        .webhooks()
        .await?
        .into_iter()
        .filter(|w| mine(&who, w))
        .filter(|w| {
            cursor
                .as_ref()
                .is_none_or(|c| c.before(w.created_at, &w.id))
        })
        .collect();
    all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    all.truncate(limit + 1);
    let (items, next_cursor) = paginate(all, limit, |w| Cursor {
        at: w.created_at,
        id: w.id.clone(),
    });
    let items = items.iter().map(view).collect();
    Ok(json(StatusCode::OK, &WebhookPage { items, next_cursor }))
}

/// One subscription.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(
    State(b): State<Role>,
    Path(id): Path<String>,
    req: Request<Body>,
) -> ApiResult<Response> {
    let w = find(&b, &caller(&req), &id).await?;
    Ok(json(StatusCode::OK, &view(&w)))
}

/// Delete a subscription with its pending deliveries and its log.
#[utoipa::path(
    delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(b): State<Role>,
    Path(id): Path<String>,
    req: Request<Body>,
) -> ApiResult<Response> {
    find(&b, &caller(&req), &id).await?;
    if !b.store().delete_webhook(&id).await? {
        return Err(Problem::not_found(format!("webhook {id}")));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A subscription's delivery log, newest first: every attempt with its
/// status or error, and the line saying it was disabled, if it was.
#[utoipa::path(
    get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(
        ("id" = String, Path, description = "Webhook id"),
        ("limit" = Option<usize>, Query, description = "Items per page, 1-500 (default 50)"),
        ("cursor" = Option<String>, Query, description = "The previous page's next_cursor"),
    ),
    responses(
        (status = 200, description = "The delivery log", body = DeliveryPage),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such webhook", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn deliveries(
    State(b): State<Role>,
    Path(id): Path<String>,
    req: Request<Body>,
) -> ApiResult<Response> {
    let pairs = query_pairs(&req)?;
    only_params(&pairs, &["limit", "cursor"])?;
    let limit = page_limit_of(&pairs)?;
    // The log's cursor is the place of the last line shown.
    let before = param(&pairs, "cursor")
        .map(Cursor::decode)
        .transpose()?
        .map(|c| c.at.max(0) as u64);
    find(&b, &caller(&req), &id).await?;
    let lines = b.store().delivery_log(&id, before, limit + 1).await?;
    let (items, next_cursor) = paginate(lines, limit, |e| Cursor {
        at: e.seq as i64,
        id: String::new(),
    });
    let items = items.into_iter().map(delivery_view).collect();
    Ok(json(StatusCode::OK, &DeliveryPage { items, next_cursor }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_describes_the_webhook_routes() {
        let doc: serde_json::Value = serde_json::from_str(&super::super::openapi_json()).unwrap();
        let paths = &doc["paths"];
        for (path, method) in [
            ("/api/v1/webhooks", "post"),
            ("/api/v1/webhooks", "get"),
            ("/api/v1/webhooks/{id}", "get"),
            ("/api/v1/webhooks/{id}", "delete"),
            ("/api/v1/webhooks/{id}/deliveries", "get"),
        ] {
            assert!(
                paths[path][method].is_object(),
                "{method} {path} is documented"
            );
        }
        let schemas = &doc["components"]["schemas"];
        for name in [
            "NewWebhook",
            "WebhookView",
            "CreatedWebhook",
            "WebhookPage",
            "DeliveryPage",
        ] {
            assert!(schemas[name].is_object(), "schema {name}");
        }
    }
}
