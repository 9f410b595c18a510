//! The REST API under `/api/v1`: sessions, the queue, nodes, pools and API
//! keys, with RFC 9457 problems ([`problem`]), cursor pagination
//! (`?limit=&cursor=`, answered as `{"items": [...], "next_cursor": ...}`),
//! its OpenAPI 3.1 document at `/api/v1/openapi.json` and Swagger UI at
//! `/api/docs`. It is served by the one front end, so a standalone grid and
//! every hub answer alike; what differs per role is behind [`Backend`].

pub mod artifacts;
pub mod keys;
pub mod live;
pub mod nodes;
pub mod pools;
pub mod problem;
pub mod queue;
pub mod sessions;
pub mod stats;
pub mod webhooks;

use crate::auth::Caller;
use crate::backend::Backend;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{any, get, post, MethodRouter};
use axum::Router;
pub use problem::Problem;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The shared state of every handler: the role serving the routes.
pub(crate) type Role = Arc<dyn Backend>;

/// The result of a handler: its answer, or a problem.
pub type ApiResult<T> = Result<T, Problem>;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// Where the interactive documentation is served.
pub const DOCS_PATH: &str = "/api/docs";

/// The OpenAPI document of `/api/v1`.
///
/// Other parts of the API add their paths and schemas here: `/api/v1/events`
/// (events), `/api/v1/webhooks*` (webhooks), `/api/v1/scaling` and
/// `/metrics` (metrics) — see the `EXTENSIONS` marker below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gridiron control plane",
        description = "Sessions, queue, nodes, pools, API keys and events of a Gridiron grid. \
            Errors are RFC 9457 problems (`application/problem+json`). Lists are paged: \
            `?limit=` (1-500, default 50) and the opaque `?cursor=` of the previous page's \
            `next_cursor`. On a grid with API keys, send `Authorization: Bearer TOKEN` or \
            `X-API-Key: TOKEN`; `user` keys see only their own sessions and queued requests, \
            nodes, pools and keys need an `admin` key."
    ),
    paths(
        sessions::create,
        sessions::list,
        sessions::get_one,
        sessions::delete,
        stats::sessions,
        live::watch,
        artifacts::list,
        artifacts::fetch,
        artifacts::delete,
        queue::list,
        queue::cancel,
        nodes::list,
        nodes::get_one,
        nodes::drain,
        pools::create,
        pools::list,
        pools::get_one,
        pools::update,
        pools::delete,
        keys::create,
        keys::list,
        keys::revoke,
        webhooks::create,
        webhooks::list,
        webhooks::get_one,
        webhooks::delete,
        webhooks::deliveries,
        crate::events::http::sse,
        crate::events::http::websocket,
        crate::metrics::routes::scaling,
        // EXTENSIONS: /metrics goes here.
    ),
    components(schemas(Problem, crate::metrics::routes::ScalingReport)),
    modifiers(&Security),
    security(("bearer" = []), ("api_key" = [])),
    tags(
        (name = "sessions", description = "Browser sessions"),
        (name = "artifacts", description = "What sessions leave behind: videos, logs, downloads"),
        (name = "queue", description = "New-session requests waiting for a slot"),
        (name = "nodes", description = "The hosts that run sessions (admin)"),
        (name = "pools", description = "Work pools of a scaled-out grid (admin)"),
        (name = "keys", description = "API keys (admin)"),
        (name = "events", description = "The grid's lifecycle events, live (SSE, WebSocket)"),
        (name = "scaling", description = "How many slots the load needs (KEDA metrics-api, HPA)"),
        (name = "webhooks", description = "Signed event deliveries to URLs, and their logs"),
    )
)]
pub struct ApiDoc;

/// Adds the two ways to present an API key.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The routes of `/api/v1` and `/api/docs`, merged into the one front end.
pub fn router() -> Router<Role> {
    let v1 = Router::new()
        .route(
            "/sessions",
            only(get(sessions::list).post(sessions::create)),
        )
        .route("/sessions/stats", only(get(stats::sessions)))
        .route(
            "/sessions/{id}",
            only(get(sessions::get_one).delete(sessions::delete)),
        )
        .route("/sessions/{id}/live", only(get(live::watch)))
        .route("/sessions/{id}/artifacts", only(get(artifacts::list)))
        .route(
            "/sessions/{id}/artifacts/{*name}",
            only(get(artifacts::fetch).delete(artifacts::delete)),
        )
        .route("/queue", only(get(queue::list)))
        .route("/queue/{id}", only(axum::routing::delete(queue::cancel)))
        .route("/nodes", only(get(nodes::list)))
        .route("/nodes/{id}", only(get(nodes::get_one)))
        .route("/nodes/{id}/drain", only(post(nodes::drain)))
        .route("/pools", only(get(pools::list).post(pools::create)))
        .route(
            "/pools/{name}",
            only(get(pools::get_one).put(pools::update).delete(pools::delete)),
        )
        .route("/keys", only(get(keys::list).post(keys::create)))
        .route("/keys/{name}", only(axum::routing::delete(keys::revoke)))
        .route(
            "/webhooks",
            only(get(webhooks::list).post(webhooks::create)),
        )
        .route(
            "/webhooks/{id}",
            only(get(webhooks::get_one).delete(webhooks::delete)),
        )
        .route("/webhooks/{id}/deliveries", only(get(webhooks::deliveries)))
        .merge(crate::events::routes())
        .route("/scaling", only(get(crate::metrics::routes::scaling)))
        // EXTENSIONS: further resources are routed here.
        .route("/{*rest}", any(not_found));
    let docs: Router<Role> = utoipa_swagger_ui::SwaggerUi::new(DOCS_PATH)
        .url(OPENAPI_PATH, openapi())
        .into();
    Router::new().nest("/api/v1", v1).merge(docs)
}

/// A method router that answers other methods with a 405 problem.
fn only(m: MethodRouter<Role>) -> MethodRouter<Role> {
    m.fallback(method_not_allowed)
}

async fn not_found(req: Request<Body>) -> Problem {
    Problem::new(
        "not-found",
        format!("no such API route: {}", req.uri().path()),
    )
}

async fn method_not_allowed(req: Request<Body>) -> Problem {
    Problem::new(
        "method-not-allowed",
        format!("{} is not supported on {}", req.method(), req.uri().path()),
    )
}

pub(crate) use crate::routes::caller;

/// Refuses callers without an admin key.
pub(crate) fn admin(caller: &Caller) -> ApiResult<()> {
    if caller.admin {
        Ok(())
    } else {
        Err(Problem::admin_only())
    }
}

/// The query string of `req` as pairs; malformed ones are a problem.
pub(crate) fn query_pairs<B>(req: &Request<B>) -> ApiResult<Vec<(String, String)>> {
    serde_urlencoded::from_str(req.uri().query().unwrap_or(""))
        .map_err(|e| Problem::invalid(format!("malformed query string: {e}")))
}

/// Refuses query parameters other than `known`.
pub(crate) fn only_params(pairs: &[(String, String)], known: &[&str]) -> ApiResult<()> {
    match pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(Problem::invalid(format!("unknown query parameter {k:?}"))),
        None => Ok(()),
    }
}

/// The value of query parameter `name`, if given.
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads a JSON body of type `T` within the grid's body limit.
pub(crate) async fn json_body<T: DeserializeOwned>(b: &Role, req: Request<Body>) -> ApiResult<T> {
    // As for `POST /session`: a page can send `text/plain` or a form without
    // a CORS preflight; the API takes JSON only.
    let content_type = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(ct) = &content_type {
        if gridiron_domain::cross_site::check_json_content_type(Some(ct)).is_err() {
            return Err(Problem::invalid(format!(
                "the request body must be JSON (Content-Type: application/json), not {ct:?}"
            )));
        }
    }
    let limit = b.front().max_body_bytes;
    let (_, body) = crate::proxy::read_body(req, limit).await.map_err(|e| {
        if e == crate::proxy::body_too_large(limit) {
            Problem::new("payload-too-large", e.message)
        } else {
            Problem::from(e)
        }
    })?;
    serde_json::from_slice(&body).map_err(|e| Problem::invalid(format!("malformed JSON body: {e}")))
}

/// A JSON answer with `status`.
pub(crate) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> axum::response::Response {
    crate::http::json(status, &serde_json::to_value(value).unwrap_or_default())
}

/// The document served at [`OPENAPI_PATH`]: [`ApiDoc`], merged with the
/// documents other parts of the API keep next to their handlers.
///
/// EXTENSIONS: a module may instead derive its own `OpenApi` struct and merge
/// it here, e.g. `doc.merge(webhooks::WebhooksDoc::openapi())`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    openapi().to_pretty_json().unwrap_or_default()
}

/// The `?limit=` of `pairs`.
pub(crate) fn page_limit_of(pairs: &[(String, String)]) -> ApiResult<usize> {
    Ok(gridiron_domain::api::page_limit(param(pairs, "limit"))?)
}

/// Whether `path` is the API's: its refusals are problems, not W3C errors.
pub fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// Whether `path` is served to anyone, key or not: the documentation.
pub fn is_public(path: &str) -> bool {
    path == OPENAPI_PATH || path == DOCS_PATH || path.starts_with("/api/docs/")
}

/// A path parameter (an id or name); a malformed one is a problem, not
/// axum's plain-text rejection.
pub struct Id(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Id {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| Id(id))
            .map_err(|e| Problem::invalid(e.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every operation is documented with a unique id, a summary, a 401 (all
    /// need a key on a grid with keys) and problem+json for every error.
    #[test]
    fn every_operation_documents_its_errors_as_problems() {
        let doc: Value = serde_json::from_str(&openapi_json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut ids = std::collections::HashSet::new();
        let paths = doc["paths"].as_object().unwrap();
        assert!(paths.len() >= 11, "{:?}", paths.keys());
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                let what = format!("{method} {path}");
                let id = op["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "{what}: operation id {id:?} repeats"
                );
                assert!(op["summary"].is_string(), "{what} has no summary");
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("401"), "{what} documents no 401");
                for (status, r) in responses {
                    if status.starts_with('4') || status.starts_with('5') {
                        let content = &r["content"]["application/problem+json"];
                        assert!(content.is_object(), "{what} {status} is not a problem");
                    }
                }
            }
        }
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert!(schemes.contains_key("bearer") && schemes.contains_key("api_key"));
    }
}
