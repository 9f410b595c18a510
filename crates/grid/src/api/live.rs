//! `GET /api/v1/sessions/{id}/live`: what the session's browser shows, as
//! MJPEG (`multipart/x-mixed-replace` of JPEG frames) that an `<img>` tag
//! displays. The capture starts with the first watcher and stops after the
//! last one leaves; a user key watches only its own sessions.

use super::{caller, Id, Problem, Role};
use crate::backend::{Located, NotRunning};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use std::time::Duration;
use tokio::time::Instant;

/// The boundary between frames.
const BOUNDARY: &str = "gridironframe";
/// A frame is sent at least this often, the latest again if nothing changed
/// (the live view promises one a second; some viewers stall without).
const RESEND: Duration = Duration::from_millis(500);
/// Frames are sent at most this often to one watcher.
const MIN_GAP: Duration = Duration::from_millis(100);

/// Watch a session live: an MJPEG stream (`<img src=".../live">`).
#[utoipa::path(
    operation_id = "watch_session",
    get, path = "/api/v1/sessions/{id}/live", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "JPEG frames, at least one a second, until the session ends or the watcher leaves",
         content_type = "multipart/x-mixed-replace; boundary=gridironframe"),
        (status = 400, description = "The session has no live view (not Chromium, no display of its own)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session (or not this key's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The session is not running", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn watch(
    State(b): State<Role>,
    Id(id): Id,
    req: Request<Body>,
) -> Result<Response, Problem> {
    let who = caller(&req);
    let hidden = || Problem::not_found(format!("session {id}"));
    match b.locate(&id).await? {
        Located::Local { manager, session } => {
            if !who.may_use(session.owner.as_deref()) {
                return Err(hidden());
            }
            Ok(local(&manager, &session).await)
        }
        Located::Remote(remote) => {
            if !who.may_use(remote.owner()) {
                return Err(hidden());
            }
            // The node that runs it answers on the session's own path (a
            // node serves no API); its frames stream through.
            let mut req = req;
            let path = format!("/session/{id}{NODE_PATH}");
            *req.uri_mut() = path
                .parse()
                .map_err(|_| Problem::invalid(format!("bad session id {id:?}")))?;
            Ok(remote.forward(req).await)
        }
        Located::NotRunning(NotRunning::Unknown) => Err(hidden()),
        Located::NotRunning(n) => {
            if !who.may_use(n.owner()) {
                return Err(hidden());
            }
            Err(Problem::new(
                "conflict",
                format!("session {id} is not running; there is nothing to watch"),
            ))
        }
    }
}

/// Where below `/session/{id}` a node serves a session's live view to hubs.
pub(crate) const NODE_PATH: &str = "/gridiron/live";

/// The live view of a session that runs here (refusals as problems).
pub(crate) async fn local(
    m: &std::sync::Arc<crate::manager::Manager>,
    session: &std::sync::Arc<crate::session::Session>,
) -> Response {
    match crate::devtools::live::watch(m, session).await {
        Ok(frames) => stream(frames),
        Err(e) => axum::response::IntoResponse::into_response(Problem::from(e)),
    }
}

/// The MJPEG answer fed by `frames`; it ends when the capture does, and
/// the capture learns that this watcher left when the body is dropped.
fn stream(frames: crate::devtools::live::Frames) -> Response {
    let s =
        futures_util::stream::unfold((frames, None::<Instant>), |(mut frames, last)| async move {
            if let Some(at) = last {
                tokio::time::sleep_until(at + MIN_GAP).await;
            }
            loop {
                let changed = match last {
                    // The first frame as soon as there is one.
                    None if frames.borrow().is_some() => Ok(Ok(())),
                    _ => tokio::time::timeout(RESEND, frames.changed()).await,
                };
                // The capture ended (the session did, or its display went away).
                if let Ok(Err(_)) = changed {
                    return None;
                }
                let Some(jpeg) = frames.borrow_and_update().clone() else {
                    continue;
                };
                let part = part(&jpeg);
                return Some((
                    Ok::<_, std::io::Error>(part),
                    (frames, Some(Instant::now())),
                ));
            }
        });
    let mut r = Response::new(Body::from_stream(s));
    let ct = format!("multipart/x-mixed-replace; boundary={BOUNDARY}");
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ct) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    *r.status_mut() = StatusCode::OK;
    r
}

/// One part of the stream: a JPEG with its headers.
fn part(jpeg: &Bytes) -> Bytes {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        jpeg.len()
    );
    let mut b = BytesMut::with_capacity(head.len() + jpeg.len() + 2);
    b.extend_from_slice(head.as_bytes());
    b.extend_from_slice(jpeg);
    b.extend_from_slice(b"\r\n");
    b.freeze()
}
