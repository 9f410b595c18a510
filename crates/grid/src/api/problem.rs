//! RFC 9457 problem details: every error of `/api/v1` is one
//! `application/problem+json` body, built here from a [`GridError`] or one of
//! the API's own refusals (401, 403, 404, 409).

use crate::http;
use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use gridiron_domain::{ErrorCode, GridError};
use serde::Serialize;
use utoipa::ToSchema;

/// The content type of every error of the API.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error of the REST API (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// What kind of problem: `urn:gridiron:problem:<kind>`, e.g.
    /// `urn:gridiron:problem:invalid-argument`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
}

/// Every problem kind: its slug, title and status.
const KINDS: &[(&str, &str, u16)] = &[
    ("invalid-argument", "Invalid request", 400),
    ("unauthorized", "An API key is needed", 401),
    ("forbidden", "Not allowed for this API key", 403),
    ("not-found", "No such resource", 404),
    ("method-not-allowed", "Method not allowed", 405),
    ("conflict", "Conflicts with the current state", 409),
    ("gone", "No longer available", 410),
    ("payload-too-large", "Request body too large", 413),
    (
        "range-not-satisfiable",
        "The range selects nothing of the resource",
        416,
    ),
    ("too-many-requests", "Rate limit exceeded", 429),
    (
        "session-not-created",
        "The session could not be created",
        500,
    ),
    ("internal", "The grid failed", 500),
    ("timeout", "Timed out", 500),
    (
        "needs-scaled-out-grid",
        "Only a scaled-out grid (hubs and nodes) has this",
        404,
    ),
    ("unavailable", "The grid's store is unavailable", 503),
];

impl Problem {
    /// A problem of kind `slug` (one of the kinds above) with `detail`.
    pub fn new(slug: &str, detail: impl Into<String>) -> Problem {
        let (slug, title, status) = KINDS.iter().copied().find(|(s, ..)| *s == slug).unwrap_or((
            "internal",
            "The grid failed",
            500,
        ));
        Problem {
            kind: format!("urn:gridiron:problem:{slug}"),
            title: title.to_string(),
            status,
            detail: detail.into(),
        }
    }

    /// 404 for `what` (e.g. `session abc`).
    pub fn not_found(what: impl std::fmt::Display) -> Problem {
        Problem::new("not-found", format!("no such {what}"))
    }

    /// 403: the caller's key is a `user` key.
    pub fn admin_only() -> Problem {
        Problem::new("forbidden", "this operation needs an admin API key")
    }

    /// 400 with `detail`.
    pub fn invalid(detail: impl Into<String>) -> Problem {
        Problem::new("invalid-argument", detail)
    }

    /// The response carrying this problem.
    pub fn response(&self) -> Response<Body> {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = http::json(status, &serde_json::to_value(self).unwrap_or_default());
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        r
    }
}

/// The one mapping from grid errors to problems.
impl From<GridError> for Problem {
    fn from(e: GridError) -> Problem {
        let slug = match e.code {
            ErrorCode::InvalidArgument => "invalid-argument",
            ErrorCode::InvalidSessionId | ErrorCode::UnknownCommand => "not-found",
            ErrorCode::UnknownMethod => "method-not-allowed",
            ErrorCode::SessionNotCreated => "session-not-created",
            ErrorCode::Timeout => "timeout",
            ErrorCode::UnknownError | ErrorCode::UnsupportedOperation => "internal",
        };
        Problem::new(slug, e.message)
    }
}

impl From<gridiron_store::StoreError> for Problem {
    fn from(e: gridiron_store::StoreError) -> Problem {
        Problem::new("unavailable", e.to_string())
    }
}

impl axum::response::IntoResponse for Problem {
    fn into_response(self) -> axum::response::Response {
        self.response()
    }
}

/// 401 for an API route, with the challenge clients answer with a key.
pub fn unauthorized(why: &str, challenge: &'static str) -> Response<Body> {
    let mut r = Problem::new("unauthorized", why).response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// A W3C error response of the shared layers (rate limit), re-shaped as a
/// problem for an API route; its status and headers are kept.
pub async fn from_w3c(r: Response<Body>) -> Response<Body> {
    use http_body_util::BodyExt;
    let (mut parts, body) = r.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let detail = v["value"]["message"]
        .as_str()
        .unwrap_or("refused")
        .to_string();
    let slug = match parts.status.as_u16() {
        429 => "too-many-requests",
        403 => "forbidden",
        _ => "internal",
    };
    let mut p = Problem::new(slug, detail);
    p.status = parts.status.as_u16();
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&p).unwrap_or_default();
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grid_error_maps_to_one_problem_with_a_known_status() {
        for code in ErrorCode::ALL {
            let p = Problem::from(GridError::new(code, gridiron_domain::Origin::Client, "x"));
            assert!(p.kind.starts_with("urn:gridiron:problem:"));
            assert_eq!(p.detail, "x");
            assert!(KINDS.iter().any(|(_, _, s)| *s == p.status));
        }
        assert_eq!(Problem::admin_only().status, 403);
        assert_eq!(Problem::new("no-such-kind", "x").status, 500);
        assert_eq!(Problem::new("needs-scaled-out-grid", "").status, 404);
    }

    #[tokio::test]
    async fn a_shared_layers_w3c_refusal_becomes_a_problem_with_its_headers() {
        use http_body_util::BodyExt;
        let e = GridError::new(
            ErrorCode::UnknownError,
            gridiron_domain::Origin::Client,
            "slow down",
        );
        let mut w3c = http::json(StatusCode::TOO_MANY_REQUESTS, &e.to_json());
        w3c.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        let r = from_w3c(w3c).await;
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        let body = r.into_body().collect().await.unwrap().to_bytes();
        let p: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(p["type"], "urn:gridiron:problem:too-many-requests");
        assert_eq!(
            (p["status"].as_u64(), p["detail"].as_str()),
            (Some(429), Some("slow down"))
        );
    }
}
