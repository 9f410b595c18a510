//! Placeholder of the sessions pages (being built).

use super::Viewer;
use axum::body::Body;
use axum::http::{Response, StatusCode};

pub(crate) async fn list(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn page(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn end(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn live(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn artifact(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}
