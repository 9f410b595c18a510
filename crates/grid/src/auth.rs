//! Who is calling: the authentication layer of the one front end.
//!
//! Every request passes through [`identify`] (in the router's one layer)
//! before a handler runs. It
//! reads the credential (`Authorization: Bearer`/`Basic`, `X-API-Key`, or
//! `?token=` on websocket URLs), finds the key in the store's keys (read
//! through a cache of [`KEY_CACHE`], so keys made or revoked while the grid
//! runs take effect within it), applies the key's request rate, removes the
//! credential from the request (nothing behind the grid ever sees it), and
//! hands the handlers a [`Caller`]. A grid with no keys (and without
//! `--require-auth`) stays open, as before keys existed.
//!
//! A node does not authenticate clients: only hubs reach it, and the hub
//! already checked who asks for what. Its hub-only layer marks requests as
//! [`Caller::trusted`] before this layer runs, which then lets them through.

use crate::http;
use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use gridiron_domain::auth::{credential, find_key, strip_token, ApiKey, RateBucket, Role};
use gridiron_domain::dashboard::KEY_COOKIE;
use gridiron_domain::{ErrorCode, GridError, Origin};
use gridiron_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::warn;

/// How long the keys read from the store are used before being read again:
/// the longest a new or revoked key waits to take effect.
pub const KEY_CACHE: Duration = Duration::from_secs(1);

/// The `WWW-Authenticate` challenge of a refused request.
const CHALLENGE: &str = "Basic realm=\"gridiron\", Bearer";

/// Who a request comes from, as handlers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name; `None` on an open grid (no keys) and for hubs.
    pub key: Option<String>,
    /// Sees and may end every session.
    pub admin: bool,
    /// Sessions the key may run at once.
    pub max_sessions: Option<u32>,
}

impl Caller {
    /// Anyone, on a grid without keys: sees everything, as before keys existed.
    pub fn open() -> Caller {
        Caller {
            key: None,
            admin: true,
            max_sessions: None,
        }
    }

    /// A hub calling its node: the hub checked the client already.
    pub fn trusted() -> Caller {
        Caller::open()
    }

    /// Someone without a key on a grid that has keys: may read `/status`
    /// without its sessions, nothing more.
    pub fn anonymous() -> Caller {
        Caller {
            key: None,
            admin: false,
            max_sessions: None,
        }
    }

    /// The caller a key stands for.
    pub fn of(key: &ApiKey) -> Caller {
        Caller {
            key: Some(key.name.clone()),
            admin: key.role == Role::Admin,
            max_sessions: key.max_sessions,
        }
    }

    /// The caller a node records for a request a hub queued for `owner` (`""`: none).
    pub fn owner(owner: &str) -> Caller {
        Caller {
            key: Some(owner.to_string()).filter(|o| !o.is_empty()),
            admin: false,
            max_sessions: None,
        }
    }

    /// Whether this caller may see and drive a session owned by `owner`.
    pub fn may_use(&self, owner: Option<&str>) -> bool {
        self.admin || (self.key.is_some() && owner == self.key.as_deref())
    }
}

/// The API keys of a grid, as its front end checks them.
pub struct Keyring {
    store: Arc<dyn Store>,
    /// Refuse requests without a key even while no key exists.
    require: bool,
    /// The keys last read, and when.
    cache: Mutex<Option<(Instant, Arc<Vec<ApiKey>>)>>,
    /// One store read at a time; others use what is cached meanwhile.
    reading: tokio::sync::Mutex<()>,
    /// Request buckets of keys with a rate, by key name.
    buckets: Mutex<HashMap<String, RateBucket>>,
}

impl Keyring {
    /// Keys read from `store`; with `require`, a key is needed even while none exists.
    pub fn new(store: Arc<dyn Store>, require: bool) -> Arc<Keyring> {
        Arc::new(Keyring {
            store,
            require,
            cache: Mutex::new(None),
            reading: tokio::sync::Mutex::new(()),
            buckets: Mutex::default(),
        })
    }

    fn cached(&self) -> Option<(Instant, Arc<Vec<ApiKey>>)> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current keys: from the cache if fresh, else read from the store.
    /// If the store fails, the keys last read stand; if it never answered,
    /// `Err`, and requests are refused rather than let in unchecked.
    pub async fn keys(&self) -> Result<Arc<Vec<ApiKey>>, String> {
        if let Some((at, keys)) = self.cached() {
            if at.elapsed() < KEY_CACHE {
                return Ok(keys);
            }
        }
        let _one = self.reading.lock().await;
        // Someone else may have read them while this one waited.
        let before = self.cached();
        if let Some((at, keys)) = &before {
            if at.elapsed() < KEY_CACHE {
                return Ok(keys.clone());
            }
        }
        match self.store.keys().await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                *self.cache.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((Instant::now(), keys.clone()));
                Ok(keys)
            }
            Err(e) => {
                warn!(error = %e, "could not read the API keys; using those read before");
                before
                    .map(|(_, k)| k)
                    .ok_or_else(|| format!("the grid cannot read its API keys: {e}"))
            }
        }
    }

    /// Takes one request from `key`'s rate; `Err(seconds)` to wait if over it.
    fn take(&self, key: &ApiKey) -> Result<(), u64> {
        let Some(rate) = key.rate else {
            return Ok(());
        };
        let now = gridiron_store::now_ms();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        buckets
            .entry(key.name.clone())
            .or_insert_with(|| RateBucket::new(rate, now))
            .take(rate, now)
    }

    /// Whether requests without a key are let in: no keys exist and none is required.
    pub async fn open(&self) -> bool {
        !self.require && self.keys().await.is_ok_and(|k| k.is_empty())
    }
}

/// Identifies the caller of `req` (see the module docs): marks the request
/// with its [`Caller`] and removes its credential; `Some` is the refusal to answer.
pub async fn identify(ring: &Keyring, req: &mut Request<Body>) -> Option<Response<Body>> {
    if req.extensions().get::<Caller>().is_some() {
        // A hub's request to its node, already vouched for.
        return None;
    }
    let dashboard = gridiron_domain::dashboard::is_dashboard(req.uri().path());
    let given = {
        let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
        match credential(h("authorization"), h("x-api-key"), req.uri().query()) {
            // A signed-in browser presents its key in the dashboard's cookie.
            Ok(None) if dashboard => Ok(h("cookie")
                .and_then(|c| gridiron_domain::dashboard::cookie(c, KEY_COOKIE))
                .map(|token| gridiron_domain::auth::Credential {
                    name: None,
                    token: token.to_string(),
                })),
            other => other,
        }
    };
    strip_credentials(req);
    let api = crate::api::is_api(req.uri().path());
    let keys = match ring.keys().await {
        Ok(k) => k,
        Err(e) if api => return Some(crate::api::Problem::new("unavailable", e).response()),
        Err(e) => {
            let e = GridError::new(ErrorCode::UnknownError, Origin::Grid, e);
            return Some(http::error(&e));
        }
    };
    let refuse = |why: &str| {
        Some(if api {
            crate::api::problem::unauthorized(why, CHALLENGE)
        } else {
            refuse(why)
        })
    };
    let caller = match given {
        // The dashboard of an open grid is open; it answers a stranger to a
        // grid with keys with its sign-in page.
        _ if dashboard && keys.is_empty() && !ring.require => Caller::open(),
        Err(_) | Ok(None) if dashboard => Caller::anonymous(),
        Err(why) => return refuse(&format!("the API key could not be read: {why}")),
        Ok(Some(c)) => match find_key(&keys, &c) {
            Some(key) => {
                if let Err(wait) = ring.take(key) {
                    let r = too_many(key, wait);
                    return Some(if api { crate::api::problem::from_w3c(r).await } else { r });
                }
                Caller::of(key)
            }
            // A stale or wrong cookie: the dashboard's sign-in page.
            None if dashboard => Caller::anonymous(),
            None => return refuse("the API key is not valid (unknown, or revoked)"),
        },
        Ok(None) if keys.is_empty() && !ring.require => Caller::open(),
        // Readiness probes need no key; they see no sessions. Nor do the
        // API's documentation and its OpenAPI document.
        Ok(None) if is_status(req.uri().path()) || crate::api::is_public(req.uri().path()) => {
            Caller::anonymous()
        }
        Ok(None) => {
            return refuse("this grid needs an API key: send `Authorization: Bearer TOKEN`, `X-API-Key: TOKEN`, Basic auth NAME:TOKEN (http://NAME:TOKEN@host:port), or ?token=TOKEN on websocket URLs")
        }
    };
    req.extensions_mut().insert(caller);
    None
}

fn is_status(path: &str) -> bool {
    matches!(path, "/status" | "/wd/hub/status")
}

/// Removes every form of credential, so that no node, driver or browser sees it.
fn strip_credentials(req: &mut Request<Body>) {
    req.headers_mut().remove(header::AUTHORIZATION);
    req.headers_mut().remove("x-api-key");
    let Some(query) = req.uri().query() else {
        return;
    };
    if !query
        .split('&')
        .any(|p| p.split('=').next() == Some("token"))
    {
        return;
    }
    let path = req.uri().path();
    let pq = match strip_token(query) {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = pq.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
}

/// 401 with the W3C error shape and the challenge clients answer with a key.
fn refuse(why: &str) -> Response<Body> {
    let e = GridError::new(ErrorCode::UnknownError, Origin::Client, why);
    let mut r = http::json(StatusCode::UNAUTHORIZED, &e.to_json());
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    r
}

/// 429 with the W3C error shape and when to try again.
fn too_many(key: &ApiKey, wait: u64) -> Response<Body> {
    let rate = key.rate.unwrap_or(0.0);
    let e = GridError::new(
        ErrorCode::UnknownError,
        Origin::Client,
        format!(
            "rate limit of API key {} exceeded ({rate} requests per second); retry after {wait} s",
            key.name
        ),
    );
    let mut r = http::json(StatusCode::TOO_MANY_REQUESTS, &e.to_json());
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(wait));
    r
}
