//! Forwarding session commands to the session's driver.
//!
//! Bodies are streamed in both directions; only the path is rewritten (grid
//! session id -> driver session id), and an error answer (small, read
//! whole) the other way, so a client never sees the driver's id.

use crate::http;
use crate::manager::Manager;
use crate::session::{Session, SessionKind};
use crate::timing::{CRASH_SETTLE, CRASH_SETTLE_STEP, QUIT_TIMEOUT, WINDOW_CLOSE_SETTLE};
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderName, Method, Request, Response, Uri};
use gridiron_domain::{EndReason, ErrorCode, GridError, Origin};
use http_body_util::Limited;
use std::sync::Arc;

/// How many of [`HOP_BY_HOP`] there are.
const HOPS: usize = 7;

/// Headers that describe one hop, not the message; never forwarded.
const HOP_BY_HOP: [HeaderName; HOPS] = [
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

/// Removes the hop-by-hop headers of a message about to be passed on, in
/// place: the message's own map travels on, with no copy of the rest.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the few headers a message has finds which to remove:
    // most answers have none, and each removal costs a hash lookup.
    let mut found = [false; HOPS];
    let mut keep_alive = false;
    for name in headers.keys() {
        match HOP_BY_HOP.iter().position(|h| h == name) {
            Some(i) => found[i] = true,
            None => keep_alive |= name.as_str() == "keep-alive",
        }
    }
    for (name, _) in HOP_BY_HOP.iter().zip(found).filter(|(_, f)| *f) {
        headers.remove(name);
    }
    if keep_alive {
        headers.remove("keep-alive");
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
    let (mut parts, body) = req.into_parts();
    let uri = match driver_uri(
        &session.driver_url,
        driver_session_id,
        rest,
        parts.uri.query(),
    ) {
        Ok(u) => u,
        Err(e) => return http::error(&GridError::invalid_argument(format!("bad path: {e}"))),
    };
    // A body the client declared (and the grid checked) cannot run past its
    // length; only a body of unknown length needs counting on the way.
    let body = if parts.headers.contains_key(header::CONTENT_LENGTH) {
        body
    } else {
        Body::new(Limited::new(body, m.config.max_body_bytes))
    };
    strip_hop_by_hop(&mut parts.headers);
    let mut upstream = Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = parts.headers;

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
            let mut headers = parts.headers;
            let body = if parts.status.is_client_error() || parts.status.is_server_error() {
                // An error names the session as the driver knows it: the client
                // must see the grid's id (successful answers stream untouched).
                headers.remove(header::CONTENT_LENGTH);
                match axum::body::to_bytes(Body::new(body), MAX_ERROR_BODY).await {
                    Ok(bytes) => Body::from(with_grid_id(&bytes, driver_session_id, &session.id)),
                    Err(e) => {
                        return http::error(&GridError::new(
                            ErrorCode::UnknownError,
                            Origin::Driver,
                            format!(
                                "the driver answered status {} and its error could not be read \
                                 (at most {MAX_ERROR_BODY} bytes): {e}",
                                parts.status
                            ),
                        ))
                    }
                }
            } else {
                Body::new(body)
            };
            let mut out = Response::new(body);
            *out.status_mut() = parts.status;
            strip_hop_by_hop(&mut headers);
            *out.headers_mut() = headers;
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

/// The largest error answer of a driver the grid reads to rewrite (W3C
/// errors are a message and a stack trace: a few kB).
const MAX_ERROR_BODY: usize = 1024 * 1024;

/// `body` with every occurrence of the driver's session id replaced by the
/// grid's: what the client knows the session as.
fn with_grid_id(body: &[u8], driver_id: &str, grid_id: &str) -> bytes::Bytes {
    let from = driver_id.as_bytes();
    if from.is_empty() || from == grid_id.as_bytes() {
        return bytes::Bytes::copy_from_slice(body);
    }
    let mut out = Vec::with_capacity(body.len());
    let mut rest = body;
    while let Some(i) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(grid_id.as_bytes());
        rest = &rest[i + from.len()..];
    }
    out.extend_from_slice(rest);
    out.into()
}

/// `{driver_url}/session/{driver_session_id}{rest}[?query]`, built in one
/// buffer of the right size.
fn driver_uri(
    driver_url: &str,
    driver_session_id: &str,
    rest: &str,
    query: Option<&str>,
) -> Result<Uri, axum::http::uri::InvalidUri> {
    const SESSION: &str = "/session/";
    let q = query.map_or(0, |q| q.len() + 1);
    let mut target = String::with_capacity(
        driver_url.len() + SESSION.len() + driver_session_id.len() + rest.len() + q,
    );
    target.push_str(driver_url);
    target.push_str(SESSION);
    target.push_str(driver_session_id);
    target.push_str(rest);
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    Uri::try_from(target)
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
        m.end_in_background(session, reason).recorded().await;
        return http::ok(serde_json::Value::Null);
    }
    // Whatever happens to this request, the session is ended: the rest runs on its own.
    // The client is answered once the driver has answered and the end is
    // recorded; the processes are killed and the slot freed before that, the
    // clean-up follows.
    let me = m.clone();
    m.tasks
        .spawn(async move {
            let m = me;
            let resp =
                tokio::time::timeout(QUIT_TIMEOUT, forward(&m, session.clone(), req, "")).await;
            m.end_in_background(session, reason).recorded().await;
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

    #[test]
    fn driver_uris_keep_the_path_and_query_as_given() {
        let u = driver_uri("http://127.0.0.1:9515", "abc", "/element/x%2Fy/click", None).unwrap();
        assert_eq!(
            u.to_string(),
            "http://127.0.0.1:9515/session/abc/element/x%2Fy/click"
        );
        let u = driver_uri("http://127.0.0.1:9515", "abc", "", Some("a=1&b=2")).unwrap();
        assert_eq!(u.to_string(), "http://127.0.0.1:9515/session/abc?a=1&b=2");
        assert!(driver_uri("http://127.0.0.1:9515", "abc", "/a b", None).is_err());
    }

    #[test]
    fn errors_name_the_grids_session_id() {
        let body = br#"{"value":{"error":"unknown command","message":"unknown command: session/d41/se/x d41"}}"#;
        let out = with_grid_id(body, "d41", "g-7");
        assert_eq!(
            &out[..],
            br#"{"value":{"error":"unknown command","message":"unknown command: session/g-7/se/x g-7"}}"#
        );
        assert_eq!(
            &with_grid_id(b"nothing here", "d41", "g")[..],
            b"nothing here"
        );
        assert_eq!(&with_grid_id(b"abc", "", "g")[..], b"abc");
    }

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("host", "grid:4444"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic x"),
            ("content-type", "application/json"),
            ("x-custom", "1"),
        ] {
            h.append(HeaderName::from_static(k), v.parse().unwrap());
        }
        h.append("x-custom", "2".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                ("content-type", "application/json"),
                ("x-custom", "1"),
                ("x-custom", "2")
            ]
        );
    }

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
