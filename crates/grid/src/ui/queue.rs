//! Placeholder of the queue pages (being built).

use super::Viewer;
use axum::body::Body;
use axum::http::{Response, StatusCode};

pub(crate) async fn page(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn cancel(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}
