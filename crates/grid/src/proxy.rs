//! Forwarding session commands to the session's driver.
//!
//! Bodies are streamed in both directions; only the path is rewritten (grid
//! session id -> driver session id).

use crate::http;
use crate::manager::Manager;
use crate::session::{Session, SessionKind};
use crate::timing::{CRASH_SETTLE, CRASH_SETTLE_STEP, QUIT_TIMEOUT, WINDOW_CLOSE_SETTLE};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Method, Request, Response, Uri};
use gridiron_domain::{EndReason, ErrorCode, GridError, Origin};
use http_body_util::Limited;
use std::sync::Arc;

/// Headers that describe one hop, not the message; never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::HOST,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Copies end-to-end headers (not hop-by-hop ones).
pub(crate) fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_BY_HOP.contains(k) && k.as_str() != "keep-alive" {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Marks a command finished when dropped, including when the client leaves mid-command.
struct InFlight<'a>(&'a Session);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.command_done();
    }
}

/// Rejects a body whose declared length is over the limit, before reading it.
pub fn check_length(headers: &HeaderMap, limit: usize) -> Result<(), GridError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit as u64 => Err(body_too_large(limit)),
        _ => Ok(()),
    }
}

/// Reads a whole request body of at most `limit` bytes, declared or actual.
pub(crate) async fn read_body(
    req: Request<Body>,
    limit: usize,
) -> Result<(axum::http::request::Parts, bytes::Bytes), GridError> {
    check_length(req.headers(), limit)?;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            body_too_large(limit)
        } else {
            GridError::invalid_argument(format!("could not read the request body: {e}"))
        }
    })?;
    Ok((parts, body))
}

/// Whether `e`, or any error that caused it, is a body over its length limit.
pub(crate) fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The error for a body over `limit` bytes.
pub fn body_too_large(limit: usize) -> GridError {
    GridError::invalid_argument(format!(
        "request body is larger than the grid's limit of {limit} bytes (--max-body-bytes)"
    ))
}

/// Sends one command (`rest` is the path after `/session/{id}`) to the session's driver.
pub async fn forward(
    m: &Arc<Manager>,
    session: Arc<Session>,
    req: Request<Body>,
    rest: &str,
) -> Response<Body> {
    if let Err(e) = check_length(req.headers(), m.config.max_body_bytes) {
        return http::error(&e);
    }
    let SessionKind::WebDriver { driver_session_id } = &session.kind else {
        return http::error(&GridError::new(
            ErrorCode::UnknownCommand,
            Origin::Client,
            format!(
                "session {} is a CDP-only session: it takes no WebDriver commands",
                session.id
            ),
        ));
    };
    let (parts, body) = req.into_parts();
    let mut target = format!("{}/session/{driver_session_id}{rest}", session.driver_url);
    if let Some(q) = parts.uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let uri: Uri = match target.parse() {
        Ok(u) => u,
        Err(e) => return http::error(&GridError::invalid_argument(format!("bad path: {e}"))),
    };
    let mut upstream = Request::new(Body::new(Limited::new(body, m.config.max_body_bytes)));
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    copy_headers(&parts.headers, upstream.headers_mut());

    let closes_window = upstream.method() == Method::DELETE && rest == "/window";
    if session.command_started() {
        m.activity(&session);
    }
    m.metrics.command();
    let result = {
        let _in_flight = InFlight(&session);
        tokio::time::timeout(m.config.command_timeout, m.client.request(upstream)).await
    };
    let Ok(result) = result else {
        return command_timed_out(m, session).await;
    };
    match result {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            if parts.status.is_server_error() {
                // A dead browser shows up as a driver error first: end the session now
                // so the next command fails fast with a clear reason.
                let (me, s) = (m.clone(), session.clone());
                m.tasks.spawn(
                    async move { me.end_if_browser_gone(&s, EndReason::DriverCrashed).await },
                );
            } else if closes_window && parts.status.is_success() {
                // Closing the last window makes the driver close the browser: that is
                // the client's doing, not a crash.
                let (me, s) = (m.clone(), session.clone());
                m.tasks.spawn(async move {
                    tokio::time::sleep(WINDOW_CLOSE_SETTLE).await;
                    me.end_if_browser_gone(&s, EndReason::Quit).await
                });
            }
            let mut out = Response::new(Body::new(body));
            *out.status_mut() = parts.status;
            copy_headers(&parts.headers, out.headers_mut());
            out
        }
        Err(e) => {
            // The driver may have died a moment ago and not be reaped yet: give it
            // a short while to show, so the client learns the session is gone.
            let looks = (CRASH_SETTLE.as_millis() / CRASH_SETTLE_STEP.as_millis()).max(1);
            for _ in 0..looks {
                if m.end_if_browser_gone(&session, EndReason::DriverCrashed)
                    .await
                    || m.session(&session.id).is_none()
                {
                    break;
                }
                tokio::time::sleep(CRASH_SETTLE_STEP).await;
            }
            if m.session(&session.id).is_none() {
                return http::error(&m.unknown_session(&session.id).await);
            }
            if is_length_limit(&e) {
                return http::error(&body_too_large(m.config.max_body_bytes));
            }
            let cause = std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_default();
            http::error(&GridError::new(
                ErrorCode::UnknownError,
                Origin::Driver,
                format!("the session's driver did not answer: {e} {cause}"),
            ))
        }
    }
}

/// A command got no answer within `--command-timeout`: the browser is stuck
/// (a script that never returns, a hung renderer), so the session ends as
/// `command_timeout` rather than hold its slot, and the client is told.
async fn command_timed_out(m: &Arc<Manager>, session: Arc<Session>) -> Response<Body> {
    let limit = m.config.command_timeout;
    tracing::warn!(session = %session.id, ?limit, "command timed out; ending the session");
    let (me, id) = (m.clone(), session.id.clone());
    // Ended before the answer, so the client's next command learns why; in a
    // task of its own, so a client that leaves cannot stop it half-way.
    let _ = m
        .tasks
        .spawn(async move { me.end(&id, EndReason::CommandTimeout).await })
        .await;
    http::error(&GridError::new(
        ErrorCode::Timeout,
        Origin::Driver,
        format!(
            "the driver did not answer within the grid's command timeout of {limit:?} \
             (--command-timeout); session {} has ended (command_timeout)",
            session.id
        ),
    ))
}

/// `DELETE /session/{id}`: asks the driver to quit, then ends the session
/// as `reason` (a quit, unless a hub says otherwise).
pub async fn quit(
    m: &Arc<Manager>,
    session: Arc<Session>,
    req: Request<Body>,
    reason: EndReason,
) -> Response<Body> {
    // Claim the end first: the browser closing during DELETE is not a crash.
    let Some(session) = m.begin_end(&session.id, reason) else {
        return http::error(&m.unknown_session(&session.id).await);
    };
    // A CDP-only session has no driver to tell: its browser just stops.
    if session.is_cdp_only() {
        drop(m.end_in_background(session, reason));
        return http::ok(serde_json::Value::Null);
    }
    // Whatever happens to this request, the session is ended: the rest runs on its own.
    // The client is answered once the driver has answered; the processes are
    // killed and the slot freed before that, the clean-up and record follow.
    let me = m.clone();
    m.tasks
        .spawn(async move {
            let m = me;
            let resp =
                tokio::time::timeout(QUIT_TIMEOUT, forward(&m, session.clone(), req, "")).await;
            drop(m.end_in_background(session, reason));
            match resp {
                Ok(r) if r.status().is_success() => r,
                // The driver may be gone already; the session is ended either way.
                _ => http::ok(serde_json::Value::Null),
            }
        })
        .await
        .unwrap_or_else(|_| http::ok(serde_json::Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_over_the_limit_is_told_apart_from_other_read_errors() {
        let req = Request::post("/session")
            .body(Body::from(vec![b'x'; 100]))
            .unwrap();
        let e = read_body(req, 10).await.unwrap_err();
        assert_eq!(e, body_too_large(10));
        let declared = Request::post("/session")
            .header(header::CONTENT_LENGTH, "100")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            read_body(declared, 10).await.unwrap_err(),
            body_too_large(10)
        );
        let io = std::io::Error::other("connection reset");
        assert!(!is_length_limit(&io));
        let (_, body) = read_body(Request::new(Body::from("{}")), 10).await.unwrap();
        assert_eq!(&body[..], b"{}");
    }
}
