//! Placeholder of the admin pages (being built).

use super::Viewer;
use axum::body::Body;
use axum::http::{Response, StatusCode};

pub(crate) async fn keys(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn create_key(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn revoke_key(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn webhooks(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn create_webhook(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn webhook(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}

pub(crate) async fn delete_webhook(v: Viewer) -> Response<Body> {
    super::layout::refusal(&v, StatusCode::NOT_IMPLEMENTED, "not built yet")
}
