//! Building W3C-shaped HTTP responses.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use gridiron_domain::GridError;
use serde_json::Value;

/// The content type of every response the grid writes itself.
pub const JSON: &str = "application/json; charset=utf-8";

/// A `200` response with `body` as JSON.
pub fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
    r
}

/// `{"value": value}` with status 200.
pub fn ok(value: Value) -> Response<Body> {
    json(StatusCode::OK, &serde_json::json!({ "value": value }))
}

/// The W3C error response for `e`.
pub fn error(e: &GridError) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &e.to_json())
}

/// A browser as `/status` lists it in a node's stereotypes.
pub fn stereotype(s: &gridiron_domain::Stereotype) -> Value {
    serde_json::json!({
        "browserName": s.kind.driver_browser_name(),
        "browserVersion": s.version,
        "platformName": s.platform,
    })
}

/// Wrapper so handlers can `?` a [`GridError`] into a response.
pub struct GridErrorResponse(pub GridError);

impl From<GridError> for GridErrorResponse {
    fn from(e: GridError) -> Self {
        GridErrorResponse(e)
    }
}

impl axum::response::IntoResponse for GridErrorResponse {
    fn into_response(self) -> axum::response::Response {
        error(&self.0)
    }
}
