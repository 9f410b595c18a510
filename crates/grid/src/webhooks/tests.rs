//! The dispatcher against a real HTTP receiver on loopback and the memory store.

use super::fanout::deliveries_for;
use super::{start, WebhookSettings};
use crate::tasks::Tasks;
use crate::testing::eventually_within;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use gridiron_domain::events::{NODE_UP, SESSION_STARTED};
use gridiron_domain::webhooks::{verify, SIGNATURE_HEADER};
use gridiron_store::webhooks::Webhook;
use gridiron_store::{Event, EventLog, MemoryStore, NewEvent, WebhookStore};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &str = "test-secret-0123456789";

/// What the receiver saw: headers, body, and the status it answered.
type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>, u16)>>>;

/// A receiver answering 500 to its first `fail_first` requests, 204 after.
async fn receiver(fail_first: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |req: Request<Body>| {
            let log = log.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let mut log = log.lock().unwrap();
                let status = if log.len() < fail_first { 500 } else { 204 };
                log.push((parts.headers, body.to_vec(), status));
                StatusCode::from_u16(status).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn hook(id: &str, url: &str, admin: bool, owner: Option<&str>) -> Webhook {
    Webhook {
        id: id.into(),
        url: url.into(),
        events: vec!["*".into()],
        secret: SECRET.into(),
        owner: owner.map(str::to_string),
        admin,
        created_at: 0,
        disabled: None,
        disabled_at: None,
        failures: 0,
        failing_since: None,
    }
}

fn started(sid: &str, owner: Option<&str>) -> NewEvent {
    NewEvent::now(SESSION_STARTED).session(sid).owner(owner)
}

/// A store whose fan-out cursor is set (the dispatcher starts after the newest event).
async fn store() -> Arc<MemoryStore> {
    let s = Arc::new(MemoryStore::new());
    s.events_to_fan_out("t", 1, Duration::ZERO).await.unwrap();
    s
}

#[tokio::test]
async fn a_failing_receiver_gets_a_signed_event_on_the_fourth_attempt() {
    let (url, seen) = receiver(3).await;
    let s = store().await;
    s.create_webhook(&hook("wh_a", &url, true, None))
        .await
        .unwrap();
    let tasks = Tasks::default();
    let settings = WebhookSettings::new(20, 20);
    let results = Arc::new(Mutex::new(Vec::new()));
    let told = results.clone();
    let on_result: super::ResultHook =
        Arc::new(move |r: &str| told.lock().unwrap().push(r.to_string()));
    start(s.clone(), &tasks, settings, "t".into(), Some(on_result)).unwrap();
    let id = s.append(started("s1", None)).await.unwrap();
    eventually_within(Duration::from_secs(20), "the fourth attempt", || async {
        seen.lock().unwrap().len() >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "delivered once, then never again");
    let (headers, body, status) = &seen[3];
    assert_eq!(*status, 204);
    let sig = headers[SIGNATURE_HEADER].to_str().unwrap();
    let now = gridiron_store::now_ms() / 1000;
    assert_eq!(verify(sig, SECRET, body, now, 60), Ok(()));
    assert_eq!(headers["gridiron-event-id"], id.as_str());
    assert_eq!(headers["gridiron-delivery"], format!("wh_a.{id}").as_str());
    let event: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["session"], "s1");
    assert_eq!(event["type"], SESSION_STARTED);
    eventually_within(Duration::from_secs(5), "the log", || async {
        s.delivery_log("wh_a", None, 10).await.unwrap().len() == 4
    })
    .await;
    let log = s.delivery_log("wh_a", None, 10).await.unwrap();
    let lines: Vec<&str> = log.iter().map(|e| e.result.as_str()).collect();
    assert_eq!(lines, ["delivered", "retrying", "retrying", "retrying"]);
    assert_eq!(log[0].attempt, 4);
    let w = s.webhook("wh_a").await.unwrap().unwrap();
    assert_eq!((w.failures, w.disabled), (0, None));
    assert_eq!(
        *results.lock().unwrap(),
        ["retrying", "retrying", "retrying", "delivered"]
    );
    assert!(tasks.close(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_disabled_and_gets_nothing_more() {
    let (url, seen) = receiver(usize::MAX).await;
    let s = store().await;
    s.create_webhook(&hook("wh_b", &url, true, None))
        .await
        .unwrap();
    let tasks = Tasks::default();
    // Base 2 ms: a window of 1.44 s; 3 failures in a row over it disable.
    start(
        s.clone(),
        &tasks,
        WebhookSettings::new(2, 3),
        "t".into(),
        None,
    )
    .unwrap();
    s.append(started("s1", None)).await.unwrap();
    eventually_within(
        Duration::from_secs(20),
        "the webhook to be disabled",
        || async { s.webhook("wh_b").await.unwrap().unwrap().disabled.is_some() },
    )
    .await;
    let w = s.webhook("wh_b").await.unwrap().unwrap();
    assert!(w.failures >= 3, "{w:?}");
    let log = s.delivery_log("wh_b", None, 500).await.unwrap();
    assert_eq!(log[0].result, "disabled");
    assert_eq!(log[0].error, w.disabled);
    assert!(log[1..].iter().all(|e| e.status == Some(500)));
    let attempts = seen.lock().unwrap().len();
    s.append(started("s2", None)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.lock().unwrap().len(), attempts);
    assert!(tasks.close(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_dead_receiver_is_an_error_in_the_log_not_a_stall() {
    // Nothing listens on this port (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = store().await;
    let url = format!("http://127.0.0.1:{port}/hook");
    s.create_webhook(&hook("wh_c", &url, true, None))
        .await
        .unwrap();
    let tasks = Tasks::default();
    start(
        s.clone(),
        &tasks,
        WebhookSettings::new(1_000, 20),
        "t".into(),
        None,
    )
    .unwrap();
    s.append(started("s1", None)).await.unwrap();
    eventually_within(Duration::from_secs(20), "a logged attempt", || async {
        !s.delivery_log("wh_c", None, 1).await.unwrap().is_empty()
    })
    .await;
    let e = &s.delivery_log("wh_c", None, 1).await.unwrap()[0];
    assert_eq!((e.status, e.result.as_str()), (None, "retrying"));
    assert!(e.error.as_deref().unwrap().contains("onnect"), "{e:?}");
    assert!(tasks.close(Duration::from_secs(5)).await);
}

fn event(id: &str, kind: &str, owner: Option<&str>, at: i64) -> Event {
    Event {
        id: id.into(),
        at,
        kind: kind.into(),
        session: Some("s".into()),
        node: None,
        owner: owner.map(str::to_string),
        fields: Default::default(),
    }
}

#[test]
fn events_go_to_the_subscriptions_that_want_and_may_see_them() {
    let admin = hook("wh_admin", "http://x/", true, Some("root"));
    let alice = hook("wh_alice", "http://x/", false, Some("alice"));
    let mut ended_only = hook("wh_ended", "http://x/", true, None);
    ended_only.events = vec!["session.ended".into()];
    let mut off = hook("wh_off", "http://x/", true, None);
    off.disabled = Some("too many failures".into());
    let mut later = hook("wh_later", "http://x/", true, None);
    later.created_at = 1_000;
    let hooks = [admin, alice, ended_only, off, later];
    let events = [
        event("1", SESSION_STARTED, Some("alice"), 500),
        event("2", SESSION_STARTED, Some("bob"), 500),
        event("3", NODE_UP, None, 2_000),
    ];
    let got: Vec<(String, String)> = deliveries_for(&hooks, &events)
        .into_iter()
        .map(|d| (d.webhook, d.event_id))
        .collect();
    let want = [
        ("wh_admin", "1"),
        ("wh_alice", "1"),
        ("wh_admin", "2"),
        ("wh_admin", "3"),
        ("wh_later", "3"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(w, e)| (w.to_string(), e.to_string()))
        .collect();
    assert_eq!(got, want);
    let body: serde_json::Value =
        serde_json::from_str(&deliveries_for(&hooks[..1], &events[..1])[0].body).unwrap();
    assert_eq!(body["id"], "1");
    assert!(body.get("owner").is_none(), "the payload names no key");
}
