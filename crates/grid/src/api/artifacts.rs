//! `/api/v1/sessions/{id}/artifacts`: what a session left behind (videos,
//! logs, downloads), listed, streamed with HTTP Range, and removed. The owner
//! rules are those of the session: a user key reaches only its own sessions'
//! artifacts, and someone else's are answered as ones that never existed.

use super::sessions::visible;
use super::{caller, json, ApiResult, Id, Problem, Role};
use crate::artifacts::backend::ByteStream;
use crate::artifacts::{ArtifactView, Artifacts, COLLECT_PATIENCE};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use gridiron_domain::artifacts::{check_name, content_type, range, shown_inline, RangeAnswer};
use gridiron_domain::events;
use gridiron_domain::percent;
use gridiron_store::artifacts::IN_BUCKET;
use gridiron_store::{ArtifactRecord, NewEvent};
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use utoipa::ToSchema;

/// A session's artifacts.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactList {
    /// The session.
    pub session_id: String,
    /// Its stored artifacts, by name.
    pub artifacts: Vec<ArtifactView>,
    /// `false` while the session runs or its artifacts are still being
    /// collected (the list waits up to 10 s for a session that just ended).
    pub complete: bool,
}

/// A session id and an artifact name from the path; a malformed one is a problem.
pub struct IdAndName(pub String, pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdAndName {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path((id, name)) =
            axum::extract::Path::<(String, String)>::from_request_parts(parts, state)
                .await
                .map_err(|e| Problem::invalid(e.body_text()))?;
        // Names come from clients: whatever escapes the session's directory
        // (`..`, absolute, backslashes), however it was encoded, is refused.
        check_name(&name).map_err(|e| Problem::invalid(e.0))?;
        Ok(IdAndName(id, name))
    }
}

/// Where an artifact's bytes can be read from, as this role sees it.
enum Reach {
    /// This process's own storage.
    Here(Arc<Artifacts>),
    /// The live node that keeps it.
    Node(String),
}

/// How this role reaches artifact `r`; a problem if it cannot (410 when the
/// node that kept it is gone).
async fn reach(b: &Role, r: &ArtifactRecord) -> ApiResult<Reach> {
    let own = b.artifacts();
    let bucket = r.location == IN_BUCKET;
    if let Some(a) = own.filter(|a| {
        a.backend.location() == r.location && (bucket || b.own_node().as_deref() == Some(&r.node))
    }) {
        return Ok(Reach::Here(a));
    }
    if bucket {
        return Err(Problem::new(
            "not-found",
            "artifacts of this grid are in a bucket this process is not configured for (--artifacts-url)",
        ));
    }
    if b.node_alive(&r.node).await {
        return Ok(Reach::Node(r.node.clone()));
    }
    Err(Problem::new(
        "gone",
        format!(
            "artifact {:?} of session {} is lost: node {} that kept it is gone",
            r.name, r.session, r.node
        ),
    ))
}

/// Whether the artifacts of `records` are lost, by node (asked once each).
async fn lost_nodes(b: &Role, records: &[ArtifactRecord]) -> HashSet<String> {
    let mut lost = HashSet::new();
    let mut seen = HashSet::new();
    for r in records.iter().filter(|r| r.location != IN_BUCKET) {
        if seen.insert(r.node.clone()) && !b.node_alive(&r.node).await {
            lost.insert(r.node.clone());
        }
    }
    lost
}

/// The indexed artifact `name` of session `id`, or 404.
async fn indexed(b: &Role, id: &str, name: &str) -> ApiResult<ArtifactRecord> {
    b.store()
        .artifact(id, name)
        .await?
        .ok_or_else(|| not_found(id, name))
}

/// Sends the request for artifact `name` of session `id` on to the node
/// that keeps it. The path is built again: a nested router has cut the
/// request's own down to its part below `/api/v1`.
async fn forward(
    b: &Role,
    node: &str,
    id: &str,
    name: &str,
    mut req: Request<Body>,
) -> ApiResult<Response> {
    let path = format!(
        "/api/v1/sessions/{}/artifacts/{}",
        percent::path(id),
        percent::path(name)
    );
    *req.uri_mut() = path
        .parse()
        .map_err(|e| Problem::new("internal", format!("bad artifact path: {e}")))?;
    b.forward_to_node(node, req).await.ok_or_else(|| {
        Problem::new(
            "gone",
            format!("node {node} that keeps the artifact is gone"),
        )
    })
}

/// List a session's artifacts.
#[utoipa::path(
    operation_id = "list_artifacts",
    get, path = "/api/v1/sessions/{id}/artifacts", tag = "artifacts",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session's artifacts", body = ArtifactList),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session (or not this key's)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, Id(id): Id, req: Request<Body>) -> ApiResult<Response> {
    let rec = visible(&b, &id, &caller(&req)).await?;
    // An ended session's list waits for its collection; a running one's
    // artifacts come when it ends.
    let complete = rec.end_reason.is_some() && b.artifacts_settled(&id, COLLECT_PATIENCE).await;
    let records = b.store().session_artifacts(&id).await?;
    let lost = lost_nodes(&b, &records).await;
    let artifacts = records
        .iter()
        .map(|r| ArtifactView::of(r, r.location != IN_BUCKET && lost.contains(&r.node)))
        .collect();
    Ok(json(
        StatusCode::OK,
        &ArtifactList {
            session_id: id,
            artifacts,
            complete,
        },
    ))
}

/// Fetch one artifact. A single `Range` (`bytes=a-b`, `bytes=a-`,
/// `bytes=-n`) is answered with 206 and `Content-Range`.
#[utoipa::path(
    operation_id = "get_artifact",
    get, path = "/api/v1/sessions/{id}/artifacts/{name}", tag = "artifacts",
    params(
        ("id" = String, Path, description = "Session id"),
        ("name" = String, Path, description = "Artifact name (may contain slashes)"),
        ("Range" = Option<String>, Header, description = "One byte range"),
    ),
    responses(
        (status = 200, description = "The artifact's bytes, typed by its name (video/mp4, application/json, text/plain, ...)", content_type = "*/*"),
        (status = 206, description = "The requested range", content_type = "*/*"),
        (status = 400, description = "A name that is not a plain relative path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or artifact (or not this key's)", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "Its node is gone", body = Problem, content_type = "application/problem+json"),
        (status = 416, description = "The range selects nothing", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn fetch(
    State(b): State<Role>,
    IdAndName(id, name): IdAndName,
    req: Request<Body>,
) -> ApiResult<Response> {
    let rec = visible(&b, &id, &caller(&req)).await?;
    let r = match indexed(&b, &id, &name).await {
        // A session that just ended may still be handing its files over.
        Err(p) if rec.end_reason.is_some() && b.artifacts_settled(&id, COLLECT_PATIENCE).await => {
            b.store().artifact(&id, &name).await?.ok_or(p)?
        }
        other => other?,
    };
    let store = match reach(&b, &r).await? {
        Reach::Node(node) => return forward(&b, &node, &id, &name, req).await,
        Reach::Here(a) => a,
    };
    let len = match store.backend.size(&id, &name).await {
        Ok(len) => len,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Problem::new(
                "gone",
                format!("artifact {name:?} of session {id} is indexed but its bytes are gone"),
            ))
        }
        Err(e) => {
            return Err(Problem::new(
                "internal",
                format!("artifact unreadable: {e}"),
            ))
        }
    };
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (status, start, count) = match range(asked, len) {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => return Ok(unsatisfiable(len)),
    };
    let stream = store
        .backend
        .read(&id, &name, start, count)
        .await
        .map_err(|e| Problem::new("internal", format!("artifact unreadable: {e}")))?;
    Ok(serve(stream, &name, status, start, count, len))
}

/// Remove one artifact.
#[utoipa::path(
    operation_id = "delete_artifact",
    delete, path = "/api/v1/sessions/{id}/artifacts/{name}", tag = "artifacts",
    params(
        ("id" = String, Path, description = "Session id"),
        ("name" = String, Path, description = "Artifact name (may contain slashes)"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "A name that is not a plain relative path", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session or artifact (or not this key's)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(
    State(b): State<Role>,
    IdAndName(id, name): IdAndName,
    req: Request<Body>,
) -> ApiResult<Response> {
    visible(&b, &id, &caller(&req)).await?;
    let r = indexed(&b, &id, &name).await?;
    let store = match reach(&b, &r).await {
        Ok(Reach::Here(a)) => a,
        Ok(Reach::Node(node)) => return forward(&b, &node, &id, &name, req).await,
        Err(p) if p.status == 410 => {
            // Its bytes are beyond reach; the entry can still go.
            if b.store().remove_artifact(&id, &name).await? {
                b.emit(deleted(&r, "api"));
            }
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        Err(p) => return Err(p),
    };
    match store.remove(&id, &name).await {
        Ok(Some(r)) => b.emit(deleted(&r, "api")),
        Ok(None) => return Err(not_found(&id, &name)),
        Err(e) => {
            return Err(Problem::new(
                "internal",
                format!("artifact not removed: {e}"),
            ))
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The `artifact.deleted` event of `r`.
fn deleted(r: &ArtifactRecord, reason: &str) -> NewEvent {
    NewEvent::now(events::ARTIFACT_DELETED)
        .session(&r.session)
        .owner(r.owner.as_deref())
        .with("name", &r.name)
        .with("size", r.size)
        .with("reason", reason)
}

fn not_found(id: &str, name: &str) -> Problem {
    Problem::not_found(format!("artifact {name:?} of session {id}"))
}

/// 416, saying how long the artifact is.
fn unsatisfiable(len: u64) -> Response {
    let mut r = Problem::new(
        "range-not-satisfiable",
        format!("the artifact has {len} bytes"),
    )
    .response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
        r.headers_mut().insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Streams `count` bytes of an artifact of `len` bytes from `start`, with its headers.
fn serve(
    stream: ByteStream,
    name: &str,
    status: StatusCode,
    start: u64,
    count: u64,
    len: u64,
) -> Response {
    let mut r = Response::new(Body::from_stream(stream));
    *r.status_mut() = status;
    let ct = content_type(name);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Artifacts come from pages: never sniffed into something that runs.
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let disposition = if shown_inline(ct) {
        "inline"
    } else {
        "attachment"
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{disposition}; filename=\"{}\"",
        file_name.replace(['"', '\\'], "_")
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", start + count - 1))
        {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    r
}
