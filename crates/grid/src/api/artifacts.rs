//! `/api/v1/sessions/{id}/artifacts`: what a session left behind (videos,
//! logs, downloads), listed, streamed with HTTP Range, and removed. The owner
//! rules are those of the session: a user key reaches only its own sessions'
//! artifacts, and someone else's are answered as ones that never existed.

use super::sessions::visible;
use super::{caller, json, ApiResult, Id, Problem, Role};
use crate::artifacts::{ArtifactView, Artifacts, COLLECT_PATIENCE};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use gridiron_domain::artifacts::{check_name, content_type, range, shown_inline, RangeAnswer};
use gridiron_domain::events;
use gridiron_store::NewEvent;
use serde::Serialize;
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

/// The storage serving this role's artifacts.
fn storage(b: &Role) -> ApiResult<Arc<Artifacts>> {
    b.artifacts().ok_or_else(|| {
        Problem::new(
            "not-found",
            "artifacts are served by the node that ran the session",
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
    let store = storage(&b)?;
    let complete = rec.end_reason.is_some() && store.settled(&id, COLLECT_PATIENCE).await;
    let artifacts = store.list(&id).await;
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
        (status = 200, description = "The artifact's bytes", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range", content_type = "application/octet-stream"),
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
    visible(&b, &id, &caller(&req)).await?;
    let store = storage(&b)?;
    let file = store
        .open(&id, &name)
        .await
        .map_err(|_| not_found(&id, &name))?;
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    serve_file(file, &name, asked).await
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
    let rec = visible(&b, &id, &caller(&req)).await?;
    let store = storage(&b)?;
    let size = match store.open(&id, &name).await {
        Ok(f) => f.metadata().map(|m| m.len()).unwrap_or(0),
        Err(_) => return Err(not_found(&id, &name)),
    };
    if !store.remove(&id, &name).await {
        return Err(not_found(&id, &name));
    }
    b.emit(
        NewEvent::now(events::ARTIFACT_DELETED)
            .session(&id)
            .owner(rec.owner.as_deref())
            .with("name", &name)
            .with("size", size)
            .with("reason", "api"),
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn not_found(id: &str, name: &str) -> Problem {
    Problem::not_found(format!("artifact {name:?} of session {id}"))
}

/// Bytes read per chunk of a streamed artifact.
const CHUNK: usize = 64 * 1024;

/// Streams `file` (or the part `asked` selects) with its headers.
async fn serve_file(file: std::fs::File, name: &str, asked: Option<&str>) -> ApiResult<Response> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let len = file
        .metadata()
        .map_err(|e| Problem::new("internal", format!("artifact unreadable: {e}")))?
        .len();
    let (status, start, count) = match range(asked, len) {
        RangeAnswer::Full => (StatusCode::OK, 0, len),
        RangeAnswer::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            let mut r = Problem::new(
                "range-not-satisfiable",
                format!("the artifact has {len} bytes"),
            )
            .response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| Problem::new("internal", format!("artifact unreadable: {e}")))?;
    }
    let reader = file.take(count);
    let stream = futures_util::stream::unfold(reader, |mut reader| async move {
        let mut buf = vec![0u8; CHUNK];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), reader))
            }
            Err(e) => Some((Err(e), reader)),
        }
    });
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
    Ok(r)
}
