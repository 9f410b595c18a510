//! The dashboard's style sheet and script, built into the binary.

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;

const CSS: &str = include_str!("assets/gridiron.css");
const JS: &str = include_str!("assets/gridiron.js");

/// `GET /ui/assets/{name}`: served to anyone (they hold no data), cached
/// for an hour.
pub(crate) async fn serve(Path(name): Path<String>) -> Response<Body> {
    let (body, kind) = match name.as_str() {
        "gridiron.css" => (CSS, "text/css; charset=utf-8"),
        "gridiron.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}
