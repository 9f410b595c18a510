//! The manager on a stand-in provisioner: admission, queueing, ends and
//! shutdown, without a browser or Redis.

use super::Manager;
use crate::config::GridConfig;
use crate::session::SessionKind;
use crate::testing::StandinProvisioner;
use bytes::Bytes;
use gridiron_domain::{EndReason, ErrorCode, GridError};
use gridiron_store::{SessionRecord, SqliteStore, Store};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `eventually` waits before failing a test.
const PATIENCE: Duration = Duration::from_secs(5);

/// Waits until `check` holds, polling; fails the test with `what` after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    crate::testing::eventually_within(PATIENCE, what, check).await
}

/// A manager on a stand-in, with its store and data directory.
struct Fixture {
    m: Arc<Manager>,
    standin: Arc<StandinProvisioner>,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    /// `slots` slots; `tune` adjusts the rest of the configuration.
    fn new(slots: usize, tune: impl FnOnce(&mut GridConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = GridConfig::with_defaults(slots, dir.path().to_path_buf());
        config.prewarm = false;
        config.queue_timeout = Duration::from_secs(10);
        tune(&mut config);
        let standin = StandinProvisioner::new();
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let m = Manager::start(config, store.clone(), standin.clone());
        Fixture {
            m,
            standin,
            store,
            _dir: dir,
        }
    }

    /// Requests a session with these capabilities (`alwaysMatch`).
    fn request(&self, always: Value) -> impl Future<Output = Result<Value, GridError>> {
        let m = self.m.clone();
        let body = serde_json::json!({"capabilities": {"alwaysMatch": always}});
        async move {
            m.new_session(Bytes::from(body.to_string()), "http://grid:4444".into())
                .await
        }
    }

    /// A new session; its id.
    async fn session(&self) -> String {
        let v = self.request(serde_json::json!({})).await.unwrap();
        v["value"]["sessionId"].as_str().unwrap().to_string()
    }

    async fn records(&self) -> Vec<SessionRecord> {
        self.store.list(1000).await.unwrap()
    }

    /// Whether some record ended for `reason`.
    async fn ended_for(&self, reason: EndReason) -> bool {
        self.records()
            .await
            .iter()
            .any(|r| r.end_reason == Some(reason))
    }

    /// The end reason the store has for `id`.
    async fn end_reason(&self, id: &str) -> Option<EndReason> {
        self.store.get(id).await.unwrap().and_then(|r| r.end_reason)
    }

    /// Requests waiting in the queue.
    fn waiting(&self) -> u64 {
        self.m.status("http://grid")["queue"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn a_new_session_has_the_w3c_shape() {
    let f = Fixture::new(1, |_| {});
    let v = f
        .request(serde_json::json!({"browserName": "chrome"}))
        .await
        .unwrap();
    let id = v["value"]["sessionId"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    assert_eq!(v["value"]["capabilities"]["browserName"], "chrome");
    let session = f.m.session(id).expect("the session is listed");
    assert!(
        matches!(session.kind, SessionKind::WebDriver { ref driver_session_id } if driver_session_id != id)
    );
    assert!(!session.is_cdp_only());
    let rec = f.store.get(id).await.unwrap().unwrap();
    assert_eq!((rec.state.as_str(), rec.end_reason), ("running", None));
    assert_eq!((f.m.slots_in_use(), f.standin.alive()), (1, 1));
}

#[tokio::test]
async fn requests_beyond_capacity_wait_and_are_served_in_order() {
    let f = Fixture::new(1, |_| {});
    let first = f.session().await;
    let second = tokio::spawn(f.request(serde_json::json!({})));
    eventually("the second request waits", || async { f.waiting() == 1 }).await;
    let third = tokio::spawn(f.request(serde_json::json!({})));
    eventually("the third request waits", || async { f.waiting() == 2 }).await;

    f.m.end(&first, EndReason::Quit).await;
    let second = second.await.unwrap().unwrap();
    assert!(
        !third.is_finished(),
        "the third waits for the second's slot"
    );
    assert_eq!(f.waiting(), 1);
    let second = second["value"]["sessionId"].as_str().unwrap().to_string();
    f.m.end(&second, EndReason::Quit).await;
    let third = third.await.unwrap().unwrap();
    assert!(third["value"]["sessionId"].is_string());
    assert_eq!((f.standin.started(), f.standin.alive()), (3, 1));
}

#[tokio::test]
async fn a_request_that_waits_too_long_is_not_created() {
    let f = Fixture::new(1, |c| c.queue_timeout = Duration::from_millis(100));
    let _held = f.session().await;
    let e = f.request(serde_json::json!({})).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SessionNotCreated);
    assert!(e.message.contains("waiting in the queue"), "{}", e.message);
    eventually("the request is recorded as timed out", || {
        f.ended_for(EndReason::QueueTimeout)
    })
    .await;
    assert_eq!(f.standin.started(), 1);
}

#[tokio::test]
async fn a_client_leaving_the_queue_leaves_a_record_and_no_session() {
    let f = Fixture::new(1, |_| {});
    let held = f.session().await;
    let gone = tokio::spawn(f.request(serde_json::json!({})));
    eventually("the request waits", || async { f.waiting() == 1 }).await;
    gone.abort();
    eventually("the request is recorded as client_gone", || {
        f.ended_for(EndReason::ClientGone)
    })
    .await;
    assert_eq!(f.waiting(), 0);
    f.m.end(&held, EndReason::Quit).await;
    assert_eq!(f.m.free_slots(), 1, "the gone request took no slot");
    assert_eq!((f.standin.started(), f.standin.alive()), (1, 0));
}

#[tokio::test]
async fn a_client_leaving_during_the_start_leaves_no_session() {
    let f = Fixture::new(1, |_| {});
    f.standin.set_start_delay(Duration::from_millis(200));
    let gone = tokio::spawn(f.request(serde_json::json!({})));
    eventually("the start is under way", || async {
        f.standin.started() == 1
    })
    .await;
    gone.abort();
    eventually("the started session is ended as client_gone", || {
        f.ended_for(EndReason::ClientGone)
    })
    .await;
    eventually("its processes are gone", || async {
        f.standin.alive() == 0
    })
    .await;
    assert!(f.m.session_ids().is_empty());
    assert_eq!(f.m.free_slots(), 1);
}

#[tokio::test]
async fn an_idle_session_times_out() {
    let f = Fixture::new(1, |c| c.idle_timeout = Duration::from_millis(300));
    let id = f.session().await;
    eventually("the idle session ends", || async {
        f.end_reason(&id).await == Some(EndReason::IdleTimeout)
    })
    .await;
    assert!(f.m.session(&id).is_none());
    assert_eq!((f.standin.alive(), f.m.free_slots()), (0, 1));
}

#[tokio::test]
async fn a_session_its_client_may_not_have_ends_unless_used_in_time() {
    let f = Fixture::new(2, |_| {});
    let (unused, used) = (f.session().await, f.session().await);
    for id in [&unused, &used] {
        f.m.session(id)
            .unwrap()
            .expect_claim(Duration::from_millis(300));
    }
    f.m.session(&used).unwrap().touch();
    eventually("the unused session ends", || async {
        f.end_reason(&unused).await == Some(EndReason::ClientGone)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(f.m.session(&used).is_some(), "a used session was claimed");
    assert_eq!((f.standin.alive(), f.m.free_slots()), (1, 1));
}

#[tokio::test]
async fn a_crashed_browser_ends_its_session() {
    let f = Fixture::new(1, |_| {});
    let id = f.session().await;
    assert!(!f.m.browser_gone(&f.m.session(&id).unwrap()));
    assert!(f.standin.crash(&id));
    eventually("the crashed session ends", || async {
        f.end_reason(&id).await == Some(EndReason::DriverCrashed)
    })
    .await;
    assert_eq!((f.standin.alive(), f.m.free_slots()), (0, 1));
    let e = f.m.unknown_session(&id).await;
    assert!(e.message.contains("driver_crashed"), "{}", e.message);
}

#[tokio::test]
async fn shutdown_ends_everything() {
    let f = Fixture::new(2, |_| {});
    let a = f.session().await;
    let b = f.session().await;
    let queued = tokio::spawn(f.request(serde_json::json!({})));
    eventually("a request waits", || async { f.waiting() == 1 }).await;
    let (m1, m2) = (f.m.clone(), f.m.clone());
    tokio::join!(m1.shutdown(), m2.shutdown());
    assert!(f.m.is_shut_down());
    let e = queued.await.unwrap().unwrap_err();
    assert_eq!(e.code, ErrorCode::SessionNotCreated);
    for id in [&a, &b] {
        assert_eq!(f.end_reason(id).await, Some(EndReason::Shutdown));
    }
    assert!(f.m.session_ids().is_empty());
    assert_eq!(f.standin.alive(), 0);
    assert_eq!(f.m.status("http://grid")["ready"], false);
    let refused = f.request(serde_json::json!({})).await.unwrap_err();
    assert!(
        refused.message.contains("shutting down"),
        "{}",
        refused.message
    );
}

#[tokio::test]
async fn impossible_capabilities_fail_at_once() {
    let f = Fixture::new(1, |_| {});
    let _held = f.session().await;
    let e = f
        .request(serde_json::json!({"browserName": "netscape"}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::SessionNotCreated);
    assert_eq!((f.standin.started(), f.waiting()), (1, 0));
}

#[tokio::test]
async fn a_failed_start_returns_the_slot() {
    let f = Fixture::new(1, |_| {});
    f.standin.fail_next_start();
    let e = f.request(serde_json::json!({})).await.unwrap_err();
    assert_eq!(e.code, ErrorCode::SessionNotCreated);
    assert!(e.message.contains("told to fail"), "{}", e.message);
    assert_eq!(f.m.free_slots(), 1);
    f.session().await;
    assert_eq!(f.standin.alive(), 1);
}

#[tokio::test]
async fn a_cdp_session_is_a_bare_browser() {
    let f = Fixture::new(1, |_| {});
    let request = gridiron_domain::cdp::parse_query(&[]).unwrap();
    let s = f.m.new_cdp_session(request).await.unwrap();
    assert!(s.is_cdp_only());
    assert_eq!(s.kind, SessionKind::CdpOnly);
    assert!(s.driver_url.starts_with("ws://127.0.0.1:"));
    let cdp_http = s.cdp_http.as_deref().unwrap_or_default();
    assert!(cdp_http.starts_with("http://127.0.0.1:"), "{cdp_http}");
    f.m.end(&s.id, EndReason::Quit).await;
    assert_eq!(f.end_reason(&s.id).await, Some(EndReason::Quit));
    assert_eq!(f.standin.alive(), 0);
}

/// Hostile launch requests: each is refused with `invalid argument` naming
/// the refused item, before a slot, a queue place, a record or a process.
#[tokio::test]
async fn the_launch_policy_refuses_before_anything_starts() {
    let f = Fixture::new(1, |_| {});
    // A full grid: a request that got past admission would wait in the queue.
    let held = f.session().await;
    for (caps, item) in [
        (
            serde_json::json!({"goog:chromeOptions": {"binary": "/usr/bin/python3", "args": ["-c", "open('/tmp/x','w')"]}}),
            "goog:chromeOptions.binary",
        ),
        (
            serde_json::json!({"goog:chromeOptions": {"args": ["--renderer-cmd-prefix=touch /tmp/x"]}}),
            "--renderer-cmd-prefix",
        ),
        (
            serde_json::json!({"goog:chromeOptions": {"args": ["--GPU-LAUNCHER", "touch /tmp/x"]}}),
            "--gpu-launcher",
        ),
        (
            serde_json::json!({"goog:chromeOptions": {"debuggerAddress": "127.0.0.1:9222"}}),
            "debuggerAddress",
        ),
        (
            serde_json::json!({"browserName": "firefox", "moz:firefoxOptions": {"env": {"LD_PRELOAD": "/tmp/x.so"}}}),
            "moz:firefoxOptions.env",
        ),
    ] {
        let started = Instant::now();
        let e = f.request(caps).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument, "{e}");
        assert!(e.message.contains(item), "{item} not named: {}", e.message);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
    }
    let cdp = gridiron_domain::cdp::CdpRequest {
        args: vec!["--utility-cmd-prefix=touch /tmp/x".into()],
        ..Default::default()
    };
    let Err(e) = f.m.new_cdp_session(cdp).await else {
        panic!("a CDP request with --utility-cmd-prefix started a session")
    };
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert!(e.message.contains("--utility-cmd-prefix"), "{}", e.message);
    assert_eq!(f.waiting(), 0, "nothing was queued");
    assert_eq!(
        (f.standin.started(), f.standin.alive()),
        (1, 1),
        "only the held session started"
    );
    assert_eq!(f.records().await.len(), 1, "no record of refused requests");
    f.m.end(&held, EndReason::Quit).await;
}

#[tokio::test]
async fn a_refused_request_starts_nothing_on_an_idle_grid() {
    let f = Fixture::new(2, |_| {});
    let e = f
        .request(serde_json::json!({"goog:chromeOptions": {"args": ["--utility-cmd-prefix=touch /tmp/x"]}}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert_eq!(e.http_status(), 400);
    assert_eq!((f.standin.started(), f.m.slots_in_use()), (0, 0));
}

#[tokio::test]
async fn the_operator_allows_exactly_what_it_names() {
    let f = Fixture::new(2, |c| {
        c.launch_allowances = gridiron_domain::launch_policy::LaunchAllowances::new(
            vec!["/opt/allowed/chrome".into()],
            vec!["--renderer-cmd-prefix".into()],
        )
        .unwrap()
    });
    let ok = f
        .request(serde_json::json!({"goog:chromeOptions": {
            "binary": "/opt/allowed/chrome",
            "args": ["--renderer-cmd-prefix=nice"]
        }}))
        .await
        .unwrap();
    assert!(ok["value"]["sessionId"].is_string());
    let e = f
        .request(serde_json::json!({"goog:chromeOptions": {"args": ["--utility-cmd-prefix=nice"]}}))
        .await
        .unwrap_err();
    assert!(e.message.contains("--utility-cmd-prefix"), "{}", e.message);
    let e = f
        .request(serde_json::json!({"goog:chromeOptions": {"binary": "/usr/bin/python3"}}))
        .await
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArgument);
    assert_eq!(f.standin.started(), 1, "only the allowed request started");
}
