//! The public HTTP surface: W3C WebDriver at `/` and `/wd/hub`, and `/status`.

use crate::http::{self, GridErrorResponse};
use crate::manager::Manager;
use crate::proxy;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, Request, Response, StatusCode};
use axum::routing::{any, get, post};
use axum::Router;
use gridiron_domain::{ErrorCode, GridError, Origin};
use std::sync::Arc;

/// The grid's router, with its W3C routes mounted at `/` and `/wd/hub`.
pub fn router(m: Arc<Manager>) -> Router {
    let w3c = Router::new()
        .route("/status", get(status).fallback(unknown_method))
        .route("/session", post(new_session).fallback(unknown_method))
        .route("/session/{id}", any(session_command))
        .route("/session/{id}/{*rest}", any(session_command));
    Router::new()
        .merge(w3c.clone())
        .nest("/wd/hub", w3c)
        .fallback(unknown_command)
        .with_state(m)
}

async fn status(State(m): State<Arc<Manager>>, req: Request<Body>) -> Response<Body> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    http::ok(m.status(&format!("http://{host}")))
}

async fn new_session(
    State(m): State<Arc<Manager>>,
    req: Request<Body>,
) -> Result<Response<Body>, GridErrorResponse> {
    let limit = m.config.max_body_bytes;
    proxy::check_length(req.headers(), limit)?;
    let body = axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            if format!("{e:?}").contains("LengthLimit") {
                proxy::body_too_large(limit)
            } else {
                GridError::invalid_argument(format!("could not read the request body: {e}"))
            }
        })?;
    let value = m.new_session(body).await?;
    Ok(http::json(StatusCode::OK, &value))
}

/// Splits `/[wd/hub/]session/{id}[/rest]` into the id and the raw rest (with its `/`).
fn session_path(path: &str) -> Option<(&str, &str)> {
    let p = path.strip_prefix("/wd/hub").unwrap_or(path);
    let p = p.strip_prefix("/session/")?;
    Some(match p.find('/') {
        Some(i) => (&p[..i], &p[i..]),
        None => (p, ""),
    })
}

async fn session_command(State(m): State<Arc<Manager>>, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some((id, rest)) = session_path(&path) else {
        return unknown_command().await;
    };
    let Some(session) = m.session(id) else {
        return http::error(&m.unknown_session(id).await);
    };
    if rest.is_empty() && req.method() == Method::DELETE {
        proxy::quit(&m, session, req).await
    } else {
        proxy::forward(&m, session, req, rest).await
    }
}

async fn unknown_command() -> Response<Body> {
    http::error(&GridError::new(
        ErrorCode::UnknownCommand,
        Origin::Client,
        "unknown command: no such route on this grid",
    ))
}

async fn unknown_method(req: Request<Body>) -> Response<Body> {
    http::error(&GridError::new(
        ErrorCode::UnknownMethod,
        Origin::Client,
        format!("{} is not supported on {}", req.method(), req.uri().path()),
    ))
}

#[cfg(test)]
mod tests {
    use super::session_path;

    #[test]
    fn session_paths() {
        assert_eq!(session_path("/session/abc"), Some(("abc", "")));
        assert_eq!(session_path("/session/abc/url"), Some(("abc", "/url")));
        assert_eq!(
            session_path("/wd/hub/session/abc/element/x%2Fy/click"),
            Some(("abc", "/element/x%2Fy/click"))
        );
        assert_eq!(session_path("/sessions"), None);
    }
}
