//! API keys through the one front end of a standalone grid, over real HTTP,
//! on the stand-in provisioner: authentication, ownership, quotas, fairness
//! and rates.

use crate::config::GridConfig;
use crate::driver_client::{driver_client, DriverClient};
use crate::manager::Manager;
use crate::testing::StandinProvisioner;
use axum::body::Body;
use axum::http::{Method, Request};
use gridiron_domain::auth::{hash_token, ApiKey, Role};
use gridiron_store::{MemoryStore, Store};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A grid served on `127.0.0.1:0`, with its store.
struct Grid {
    url: String,
    store: Arc<MemoryStore>,
    http: DriverClient,
    _dir: tempfile::TempDir,
}

/// An HTTP answer.
struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["value"]["error"].as_str().unwrap_or("")
    }
    fn session_id(&self) -> String {
        assert_eq!(self.status, 200, "{}", self.body);
        self.body["value"]["sessionId"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

impl Grid {
    async fn start(slots: usize, tune: impl FnOnce(&mut GridConfig)) -> Grid {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GridConfig::with_defaults(slots, dir.path().to_path_buf());
        config.prewarm = false;
        config.queue_timeout = Duration::from_secs(10);
        tune(&mut config);
        let store = Arc::new(MemoryStore::new());
        let m = Manager::start(config, store.clone(), StandinProvisioner::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::serve_app(
            listener,
            crate::router(m),
            std::future::pending(),
        ));
        Grid {
            url,
            store,
            http: driver_client(),
            _dir: dir,
        }
    }

    /// Makes a key; returns its token.
    async fn key(&self, name: &str, role: Role, max: Option<u32>, rate: Option<f64>) -> String {
        let token = format!("token-{name}-{}", uuid::Uuid::new_v4().simple());
        let key = ApiKey {
            name: name.into(),
            role,
            token_hash: hash_token(&token),
            max_sessions: max,
            rate,
            created_at: 0,
        };
        assert!(self.store.create_key(key).await.unwrap());
        token
    }

    async fn call(&self, method: Method, path: &str, auth: Option<(&str, &str)>) -> Answer {
        let body = if method == Method::POST && path.ends_with("/session") {
            json!({"capabilities": {"alwaysMatch": {}}}).to_string()
        } else {
            String::new()
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json");
        if let Some((name, value)) = auth {
            req = req.header(name, value);
        }
        let resp = self
            .http
            .request(req.body(Body::from(body)).unwrap())
            .await
            .expect("the grid answers");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn new_session(&self, token: &str) -> Answer {
        self.as_key(Method::POST, "/session", token).await
    }

    async fn as_key(&self, method: Method, path: &str, token: &str) -> Answer {
        let bearer = format!("Bearer {token}");
        self.call(method, path, Some(("authorization", &bearer)))
            .await
    }
}

#[tokio::test]
async fn a_grid_without_keys_stays_open() {
    let g = Grid::start(1, |_| {}).await;
    let sid = g.call(Method::POST, "/session", None).await.session_id();
    let status = g.call(Method::GET, "/status", None).await;
    assert_eq!(
        status.body["value"]["nodes"][0]["slots"][0]["session"]["sessionId"],
        sid.as_str(),
        "without keys everyone sees everything, as before"
    );
    let title = g
        .call(Method::GET, &format!("/session/{sid}/title"), None)
        .await;
    assert_eq!(title.status, 200);
}

#[tokio::test]
async fn without_a_valid_key_requests_get_401_and_a_challenge() {
    let g = Grid::start(1, |_| {}).await;
    let token = g.key("alice", Role::User, None, None).await;
    // Keys are read through a short cache: wait for it to see the new key.
    tokio::time::sleep(crate::auth::KEY_CACHE).await;
    for (path, auth) in [
        ("/session", None),
        ("/session", Some(("authorization", "Bearer wrong"))),
        ("/session", Some(("authorization", "Basic !!"))),
        ("/session", Some(("x-api-key", "wrong"))),
    ] {
        let a = g.call(Method::POST, path, auth).await;
        assert_eq!(a.status, 401, "{auth:?}");
        assert_eq!(a.error(), "unknown error");
        assert!(a.body["value"]["message"].as_str().unwrap().contains("key"));
        assert_eq!(
            a.headers["www-authenticate"],
            "Basic realm=\"gridiron\", Bearer"
        );
    }
    // Readiness probes need no key.
    assert_eq!(g.call(Method::GET, "/status", None).await.status, 200);
    // Each way of presenting the key works.
    let sid = g.new_session(&token).await.session_id();
    let path = format!("/session/{sid}/title");
    let basic = format!("Basic {}", base64_of(&format!("alice:{token}")));
    for auth in [
        ("authorization", basic.as_str()),
        ("x-api-key", token.as_str()),
    ] {
        let a = g.call(Method::GET, &path, Some(auth)).await;
        assert_eq!(a.status, 200, "{auth:?}: {}", a.body);
    }
    let q = g
        .call(Method::GET, &format!("{path}?token={token}"), None)
        .await;
    assert_eq!(q.status, 200, "{}", q.body);
    // A Basic name must match its token.
    let wrong_name = format!("Basic {}", base64_of(&format!("bob:{token}")));
    let a = g
        .call(Method::GET, &path, Some(("authorization", &wrong_name)))
        .await;
    assert_eq!(a.status, 401);
}

fn base64_of(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn a_user_key_sees_and_drives_only_its_own_sessions() {
    let g = Grid::start(2, |_| {}).await;
    let a = g.key("a", Role::User, None, None).await;
    let b = g.key("b", Role::User, None, None).await;
    let admin = g.key("root", Role::Admin, None, None).await;
    tokio::time::sleep(crate::auth::KEY_CACHE).await;
    let sid = g.new_session(&a).await.session_id();
    assert_eq!(
        g.store.get(&sid).await.unwrap().unwrap().owner.as_deref(),
        Some("a")
    );
    let title = format!("/session/{sid}/title");
    // Another user key is told the session does not exist, for commands and deletes.
    for method in [Method::GET, Method::DELETE] {
        let path = if method == Method::GET {
            title.clone()
        } else {
            format!("/session/{sid}")
        };
        let r = g.as_key(method, &path, &b).await;
        assert_eq!((r.status, r.error()), (404, "invalid session id"));
        assert!(r.body["value"]["message"]
            .as_str()
            .unwrap()
            .contains("no such session"));
    }
    assert_eq!(g.as_key(Method::GET, &title, &a).await.status, 200);
    // Status shows the session's details only to its owner and admins.
    let slot_session = |a: &Answer| a.body["value"]["nodes"][0]["slots"][0]["session"].clone();
    let seen_by_b = g.as_key(Method::GET, "/status", &b).await;
    assert!(
        slot_session(&seen_by_b).get("sessionId").is_none(),
        "{}",
        seen_by_b.body
    );
    assert!(!seen_by_b.body.to_string().contains(&sid));
    let anonymous = g.call(Method::GET, "/status", None).await;
    assert!(!anonymous.body.to_string().contains(&sid));
    let seen_by_a = g.as_key(Method::GET, "/status", &a).await;
    assert_eq!(slot_session(&seen_by_a)["sessionId"], sid.as_str());
    let seen_by_admin = g.as_key(Method::GET, "/status", &admin).await;
    assert_eq!(slot_session(&seen_by_admin)["owner"], "a");
    // An admin may drive and end it.
    assert_eq!(g.as_key(Method::GET, &title, &admin).await.status, 200);
    let del = g
        .as_key(Method::DELETE, &format!("/session/{sid}"), &admin)
        .await;
    assert_eq!(del.status, 200, "{}", del.body);
}

#[tokio::test]
async fn a_capped_key_waits_while_another_key_is_served() {
    let g = Arc::new(Grid::start(3, |_| {}).await);
    let a = g.key("a", Role::User, Some(1), None).await;
    let b = g.key("b", Role::User, None, None).await;
    tokio::time::sleep(crate::auth::KEY_CACHE).await;
    let first = g.new_session(&a).await.session_id();
    // a's further requests wait although slots are free.
    let mut waiting = Vec::new();
    for _ in 0..5 {
        let (g, a) = (g.clone(), a.clone());
        waiting.push(tokio::spawn(
            async move { g.new_session(&a).await.session_id() },
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(waiting.iter().all(|w| !w.is_finished()));
    let queued = g.as_key(Method::GET, "/status", &b).await;
    assert_eq!(queued.body["value"]["queue"], 5);
    // b is served at once, ahead of a's five.
    let started = Instant::now();
    let other = g.new_session(&b).await.session_id();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(waiting.iter().all(|w| !w.is_finished()));
    // Each end of a's session lets one more of a's start.
    let mut current = first;
    for w in waiting {
        let del = g
            .as_key(Method::DELETE, &format!("/session/{current}"), &a)
            .await;
        assert_eq!(del.status, 200);
        current = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a's next request is served after its session ended")
            .unwrap();
    }
    assert_eq!(
        g.as_key(Method::DELETE, &format!("/session/{other}"), &b)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let g = Grid::start(1, |_| {}).await;
    let slow = g.key("slow", Role::User, None, Some(2.0)).await;
    let fast = g.key("fast", Role::User, None, None).await;
    tokio::time::sleep(crate::auth::KEY_CACHE).await;
    let codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                g.as_key(Method::GET, "/session/x/title", &slow)
                    .await
                    .status,
            );
        }
        v
    };
    assert_eq!(codes, [404, 404, 429]);
    let over = g.as_key(Method::GET, "/session/x/title", &slow).await;
    assert_eq!((over.status, over.error()), (429, "unknown error"));
    assert_eq!(over.headers["retry-after"], "1");
    assert!(over.body["value"]["message"]
        .as_str()
        .unwrap()
        .contains("rate limit"));
    // Other keys are not affected.
    assert_eq!(
        g.as_key(Method::GET, "/session/x/title", &fast)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn keys_made_or_revoked_while_running_take_effect() {
    let g = Grid::start(1, |_| {}).await;
    // Open at first.
    assert_eq!(
        g.call(Method::GET, "/session/x/title", None).await.status,
        404
    );
    let t = g.key("late", Role::User, None, None).await;
    tokio::time::sleep(crate::auth::KEY_CACHE + Duration::from_millis(50)).await;
    assert_eq!(
        g.call(Method::GET, "/session/x/title", None).await.status,
        401
    );
    assert_eq!(
        g.as_key(Method::GET, "/session/x/title", &t).await.status,
        404
    );
    assert!(g.store.revoke_key("late").await.unwrap());
    let other = g.key("other", Role::User, None, None).await;
    tokio::time::sleep(crate::auth::KEY_CACHE + Duration::from_millis(50)).await;
    assert_eq!(
        g.as_key(Method::GET, "/session/x/title", &t).await.status,
        401
    );
    assert_eq!(
        g.as_key(Method::GET, "/session/x/title", &other)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn require_auth_closes_a_grid_without_keys() {
    let g = Grid::start(1, |c| c.require_auth = true).await;
    assert_eq!(g.call(Method::POST, "/session", None).await.status, 401);
    let status = g.call(Method::GET, "/status", None).await;
    assert_eq!(status.status, 200);
}
