//! The HTTP client the grid talks to drivers (and browsers' DevTools
//! endpoints) with, and the typed errors of those exchanges.

use crate::timing::{DRIVER_CONNECT_TIMEOUT, DRIVER_POOL_IDLE};
use axum::body::Body;
use gridiron_domain::{ErrorCode, GridError, Origin};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// HTTP client used to talk to drivers (pooled keep-alive, no TLS).
pub type DriverClient = Client<HttpConnector, Body>;

/// A pooled keep-alive HTTP client without Nagle delays.
pub fn driver_client() -> DriverClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(DRIVER_CONNECT_TIMEOUT));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(DRIVER_POOL_IDLE)
        .build(connector)
}

/// A failed exchange with a driver.
#[derive(Debug)]
pub enum DriverError {
    /// The request could not be built (a bad URL).
    BadRequest(hyper::http::Error),
    /// The driver could not be reached, or the connection failed before an answer.
    Unreachable(hyper_util::client::legacy::Error),
    /// The answer's body could not be read to its end.
    Body(hyper::Error),
    /// No answer within the given time.
    Timeout(Duration),
    /// The answer is not JSON.
    InvalidJson {
        /// The HTTP status of the answer.
        status: u16,
        /// The answer, as text.
        body: String,
        /// Why it did not parse.
        source: serde_json::Error,
    },
    /// The driver answered, refusing: an error status or a body without what was asked.
    Refused {
        /// The HTTP status of the answer.
        status: u16,
        /// The driver's W3C error code, if it gave one.
        error: Option<String>,
        /// The driver's message (or the whole answer, if it had none).
        message: String,
    },
}

impl DriverError {
    /// Whether the same request may succeed if tried again: a connection
    /// that could not be made or broke off, or a slow answer.
    pub fn retryable(&self) -> bool {
        match self {
            DriverError::Unreachable(e) => e.is_connect(),
            DriverError::Body(_) | DriverError::Timeout(_) => true,
            DriverError::BadRequest(_)
            | DriverError::InvalidJson { .. }
            | DriverError::Refused { .. } => false,
        }
    }

    /// Whether the driver blamed the request's arguments.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(self, DriverError::Refused { error: Some(e), .. } if e == "invalid argument")
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DriverError::BadRequest(e) => write!(f, "bad driver request: {e}"),
            DriverError::Unreachable(e) => write!(f, "driver request failed: {e}"),
            DriverError::Body(e) => write!(f, "driver response failed: {e}"),
            DriverError::Timeout(d) => write!(f, "the driver did not answer within {d:?}"),
            DriverError::InvalidJson {
                status,
                body,
                source,
            } => write!(
                f,
                "driver answered status {status} with invalid JSON ({source}): {body}"
            ),
            DriverError::Refused { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::BadRequest(e) => Some(e),
            DriverError::Unreachable(e) => Some(e),
            DriverError::Body(e) => Some(e),
            DriverError::InvalidJson { source, .. } => Some(source),
            DriverError::Timeout(_) | DriverError::Refused { .. } => None,
        }
    }
}

/// A driver's failure is the driver's: `timeout` when it was too slow, its
/// own W3C error when it refused with one, `unknown error` otherwise.
impl From<DriverError> for GridError {
    fn from(e: DriverError) -> Self {
        let code = match &e {
            DriverError::Timeout(_) => ErrorCode::Timeout,
            DriverError::Refused { error: Some(c), .. } => {
                ErrorCode::parse(c).unwrap_or(ErrorCode::UnknownError)
            }
            _ => ErrorCode::UnknownError,
        };
        GridError::new(code, Origin::Driver, e.to_string())
    }
}

/// `GET url`, expecting JSON; the status and the parsed body.
pub async fn get_json(client: &DriverClient, url: &str) -> Result<(u16, Value), DriverError> {
    let req = hyper::Request::get(url)
        .body(Body::empty())
        .map_err(DriverError::BadRequest)?;
    json_request(client, req).await
}

/// `POST url` with a JSON body, expecting JSON; the status and the parsed body.
pub async fn post_json(
    client: &DriverClient,
    url: &str,
    body: &Value,
) -> Result<(u16, Value), DriverError> {
    let req = hyper::Request::post(url)
        .header(hyper::header::CONTENT_TYPE, crate::http::JSON)
        .body(Body::from(body.to_string()))
        .map_err(DriverError::BadRequest)?;
    json_request(client, req).await
}

async fn json_request(
    client: &DriverClient,
    req: hyper::Request<Body>,
) -> Result<(u16, Value), DriverError> {
    let resp = client
        .request(req)
        .await
        .map_err(DriverError::Unreachable)?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(DriverError::Body)?
        .to_bytes();
    let v = serde_json::from_slice(&bytes).map_err(|source| DriverError::InvalidJson {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
        source,
    })?;
    Ok((status, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[tokio::test]
    async fn an_unreachable_driver_is_worth_retrying() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = get_json(&driver_client(), &format!("http://127.0.0.1:{port}/status"))
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::Unreachable(_)), "{e:?}");
        assert!(e.retryable());
        assert!(e.source().is_some());
        let g = GridError::from(e);
        assert_eq!(
            (g.code, g.origin),
            (ErrorCode::UnknownError, Origin::Driver)
        );
    }

    #[tokio::test]
    async fn a_bad_url_is_not() {
        let e = get_json(&driver_client(), "http://bad host/")
            .await
            .unwrap_err();
        assert!(matches!(e, DriverError::BadRequest(_)), "{e:?}");
        assert!(!e.retryable());
    }

    #[test]
    fn refusals_keep_the_drivers_code() {
        let refused = DriverError::Refused {
            status: 400,
            error: Some("invalid argument".into()),
            message: "bad args".into(),
        };
        assert!(refused.is_invalid_argument());
        assert!(!refused.retryable());
        assert_eq!(refused.to_string(), "bad args");
        assert_eq!(GridError::from(refused).code, ErrorCode::InvalidArgument);
        let slow = GridError::from(DriverError::Timeout(Duration::from_secs(1)));
        assert_eq!(slow.code, ErrorCode::Timeout);
    }
}
