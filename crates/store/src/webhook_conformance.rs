//! The behaviour every [`WebhookStore`] implementation must show. Each
//! implementation's tests call [`run_all`] with a fresh, empty store.

use crate::webhooks::{LogEntry, NewDelivery, Recorded, Webhook, WebhookStore, LOG_KEPT};
use gridiron_domain::webhooks::{Next, Streak};

/// A subscription named `id`, made at `at`.
pub fn hook(id: &str, at: i64) -> Webhook {
    Webhook {
        id: id.into(),
        url: "http://127.0.0.1:9/hook".into(),
        events: vec!["session.*".into()],
        secret: "0123456789abcdef".into(),
        owner: Some("alice".into()),
        admin: false,
        created_at: at,
        disabled: None,
        disabled_at: None,
        failures: 0,
        failing_since: None,
    }
}

fn delivery(webhook: &str, event: &str) -> NewDelivery {
    NewDelivery {
        webhook: webhook.into(),
        event_id: event.into(),
        event_type: "session.ended".into(),
        body: format!(r#"{{"id":"{event}"}}"#),
    }
}

fn entry(attempt: u32, at: i64, status: Option<u16>, result: &str) -> LogEntry {
    LogEntry {
        seq: 0,
        delivery: String::new(),
        event_id: String::new(),
        event_type: "session.ended".into(),
        attempt,
        at,
        duration_ms: 3,
        status,
        error: status.is_none().then(|| "connection refused".into()),
        result: result.into(),
    }
}

/// Runs every check against an empty store; panics on the first failure.
pub async fn run_all(s: &dyn WebhookStore) {
    subscriptions_are_made_listed_and_deleted(s).await;
    deliveries_are_made_once_per_event(s).await;
    a_lease_keeps_others_out_until_it_runs_out(s).await;
    attempts_are_retried_finished_and_logged(s).await;
    disabling_drops_pending_deliveries_and_says_why(s).await;
    the_log_is_bounded_and_pages_back(s).await;
    finished_deliveries_are_pruned(s).await;
}

async fn subscriptions_are_made_listed_and_deleted(s: &dyn WebhookStore) {
    assert!(s.create_webhook(&hook("wh_b", 20)).await.unwrap());
    assert!(s.create_webhook(&hook("wh_a", 10)).await.unwrap());
    assert!(!s.create_webhook(&hook("wh_a", 30)).await.unwrap());
    let ids: Vec<String> = s
        .webhooks()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.id)
        .collect();
    assert_eq!(ids, ["wh_a", "wh_b"]);
    assert_eq!(s.webhook("wh_a").await.unwrap(), Some(hook("wh_a", 10)));
    assert_eq!(s.webhook("nope").await.unwrap(), None);
    let shown = format!("{:?}", hook("wh_a", 10));
    assert!(!shown.contains("0123456789abcdef") && shown.contains("***"));
    s.enqueue_deliveries(&[delivery("wh_a", "1")], 100)
        .await
        .unwrap();
    assert!(s.delete_webhook("wh_a").await.unwrap());
    assert!(!s.delete_webhook("wh_a").await.unwrap());
    assert!(s.delete_webhook("wh_b").await.unwrap());
    assert!(s.webhooks().await.unwrap().is_empty());
    // Its deliveries went with it.
    assert!(s.take_due(1_000, 10, 100, "h").await.unwrap().is_empty());
}

async fn deliveries_are_made_once_per_event(s: &dyn WebhookStore) {
    s.create_webhook(&hook("wh_once", 0)).await.unwrap();
    let ds = [delivery("wh_once", "1"), delivery("wh_once", "2")];
    assert_eq!(s.enqueue_deliveries(&ds, 100).await.unwrap(), 2);
    // Fanned out again (a restart between enqueueing and the cursor's move).
    assert_eq!(s.enqueue_deliveries(&ds, 150).await.unwrap(), 0);
    // Unknown subscriptions get nothing.
    let stray = [delivery("wh_none", "1")];
    assert_eq!(s.enqueue_deliveries(&stray, 100).await.unwrap(), 0);
    assert!(s.take_due(99, 10, 1_000, "h").await.unwrap().is_empty());
    let taken = s.take_due(100, 10, 1_000, "h").await.unwrap();
    let mut events: Vec<&str> = taken.iter().map(|d| d.event_id.as_str()).collect();
    events.sort();
    assert_eq!(events, ["1", "2"]);
    let d = &taken[0];
    assert_eq!(d.webhook, "wh_once");
    assert_eq!(d.attempt, 1);
    assert_eq!(d.first_at, 100);
    assert_eq!(d.id, crate::webhooks::delivery_id("wh_once", &d.event_id));
    assert_eq!(d.body, format!(r#"{{"id":"{}"}}"#, d.event_id));
    for d in &taken {
        let e = entry(1, 110, Some(200), "delivered");
        assert!(matches!(
            s.record_attempt(d, Next::Delivered, &e).await.unwrap(),
            Recorded::Done(_)
        ));
    }
    // Delivered ones are remembered: enqueueing them again makes nothing.
    assert_eq!(s.enqueue_deliveries(&ds, 200).await.unwrap(), 0);
    assert!(s.take_due(10_000, 10, 1_000, "h").await.unwrap().is_empty());
    s.delete_webhook("wh_once").await.unwrap();
}

async fn a_lease_keeps_others_out_until_it_runs_out(s: &dyn WebhookStore) {
    s.create_webhook(&hook("wh_lease", 0)).await.unwrap();
    s.enqueue_deliveries(&[delivery("wh_lease", "1")], 100)
        .await
        .unwrap();
    let first = s.take_due(100, 10, 1_000, "hub-a").await.unwrap();
    assert_eq!(first.len(), 1);
    // Another sender finds nothing while the lease runs.
    assert!(s
        .take_due(1_099, 10, 1_000, "hub-b")
        .await
        .unwrap()
        .is_empty());
    // hub-a died: the lease runs out and hub-b takes it, as attempt 2.
    let second = s.take_due(1_100, 10, 1_000, "hub-b").await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].first_at, 100);
    assert_ne!(second[0].token, first[0].token);
    // hub-a's late report is refused; hub-b's counts.
    let e = entry(1, 1_200, Some(200), "delivered");
    assert_eq!(
        s.record_attempt(&first[0], Next::Delivered, &e)
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    let e = entry(2, 1_300, Some(204), "delivered");
    assert_eq!(
        s.record_attempt(&second[0], Next::Delivered, &e)
            .await
            .unwrap(),
        Recorded::Done(Streak::default())
    );
    // Recording twice under one lease counts once.
    assert_eq!(
        s.record_attempt(&second[0], Next::Delivered, &e)
            .await
            .unwrap(),
        Recorded::LeaseLost
    );
    let log = s.delivery_log("wh_lease", None, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, Some(204));
    s.delete_webhook("wh_lease").await.unwrap();
}

async fn attempts_are_retried_finished_and_logged(s: &dyn WebhookStore) {
    s.create_webhook(&hook("wh_retry", 0)).await.unwrap();
    s.enqueue_deliveries(&[delivery("wh_retry", "9")], 100)
        .await
        .unwrap();
    let d = s.take_due(100, 1, 60_000, "h").await.unwrap().remove(0);
    let e = entry(1, 150, None, "retrying");
    assert_eq!(
        s.record_attempt(&d, Next::RetryAt(500), &e).await.unwrap(),
        Recorded::Done(Streak {
            failures: 1,
            since: Some(150)
        })
    );
    // Due again at the retry time, not before (the lease no longer counts).
    assert!(s.take_due(499, 1, 60_000, "h").await.unwrap().is_empty());
    let d = s.take_due(500, 1, 60_000, "h").await.unwrap().remove(0);
    assert_eq!((d.attempt, d.first_at), (2, 100));
    let e = entry(2, 550, Some(503), "failed");
    assert_eq!(
        s.record_attempt(&d, Next::Failed, &e).await.unwrap(),
        Recorded::Done(Streak {
            failures: 2,
            since: Some(150)
        })
    );
    // Given up: never due again.
    assert!(s
        .take_due(i64::MAX / 2, 1, 1, "h")
        .await
        .unwrap()
        .is_empty());
    let w = s.webhook("wh_retry").await.unwrap().unwrap();
    assert_eq!((w.failures, w.failing_since), (2, Some(150)));
    let log = s.delivery_log("wh_retry", None, 10).await.unwrap();
    let results: Vec<(&str, Option<u16>)> =
        log.iter().map(|e| (e.result.as_str(), e.status)).collect();
    assert_eq!(results, [("failed", Some(503)), ("retrying", None)]);
    assert!(log[0].seq > log[1].seq);
    assert_eq!(log[1].error.as_deref(), Some("connection refused"));
    // A success ends the run of failures.
    s.enqueue_deliveries(&[delivery("wh_retry", "10")], 600)
        .await
        .unwrap();
    let d = s.take_due(600, 1, 60_000, "h").await.unwrap().remove(0);
    let e = entry(1, 610, Some(200), "delivered");
    assert_eq!(
        s.record_attempt(&d, Next::Delivered, &e).await.unwrap(),
        Recorded::Done(Streak::default())
    );
    let w = s.webhook("wh_retry").await.unwrap().unwrap();
    assert_eq!((w.failures, w.failing_since), (0, None));
    s.delete_webhook("wh_retry").await.unwrap();
    assert!(s
        .delivery_log("wh_retry", None, 10)
        .await
        .unwrap()
        .is_empty());
}

async fn disabling_drops_pending_deliveries_and_says_why(s: &dyn WebhookStore) {
    s.create_webhook(&hook("wh_off", 0)).await.unwrap();
    s.enqueue_deliveries(&[delivery("wh_off", "1"), delivery("wh_off", "2")], 100)
        .await
        .unwrap();
    let held = s.take_due(100, 1, 60_000, "h").await.unwrap().remove(0);
    assert!(s
        .disable_webhook("wh_off", "too many failures", 200)
        .await
        .unwrap());
    assert!(!s.disable_webhook("wh_off", "again", 300).await.unwrap());
    assert!(!s.disable_webhook("wh_unknown", "x", 300).await.unwrap());
    let w = s.webhook("wh_off").await.unwrap().unwrap();
    assert_eq!(w.disabled.as_deref(), Some("too many failures"));
    assert_eq!(w.disabled_at, Some(200));
    assert!(s
        .take_due(i64::MAX / 2, 10, 1, "h")
        .await
        .unwrap()
        .is_empty());
    // New events make no deliveries for it.
    assert_eq!(
        s.enqueue_deliveries(&[delivery("wh_off", "3")], 400)
            .await
            .unwrap(),
        0
    );
    // The attempt under way when it was disabled may still be recorded or not;
    // either way nothing becomes due.
    let _ = s
        .record_attempt(&held, Next::RetryAt(500), &entry(1, 450, None, "retrying"))
        .await
        .unwrap();
    assert!(s
        .take_due(i64::MAX / 2, 10, 1, "h")
        .await
        .unwrap()
        .is_empty());
    let log = s.delivery_log("wh_off", None, 10).await.unwrap();
    let disabled = log.iter().find(|e| e.result == "disabled").unwrap();
    assert_eq!(disabled.error.as_deref(), Some("too many failures"));
    assert_eq!(disabled.at, 200);
    s.delete_webhook("wh_off").await.unwrap();
}

async fn the_log_is_bounded_and_pages_back(s: &dyn WebhookStore) {
    s.create_webhook(&hook("wh_log", 0)).await.unwrap();
    let n = LOG_KEPT + 5;
    let ds: Vec<NewDelivery> = (0..n).map(|i| delivery("wh_log", &i.to_string())).collect();
    s.enqueue_deliveries(&ds, 100).await.unwrap();
    let taken = s.take_due(100, n, 60_000, "h").await.unwrap();
    assert_eq!(taken.len(), n);
    for (i, d) in taken.iter().enumerate() {
        let e = entry(1, 200 + i as i64, Some(200), "delivered");
        s.record_attempt(d, Next::Delivered, &e).await.unwrap();
    }
    let first = s.delivery_log("wh_log", None, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(first[0].at, 200 + n as i64 - 1);
    let next = s
        .delivery_log("wh_log", Some(first[2].seq), 1_000)
        .await
        .unwrap();
    assert_eq!(next.len(), LOG_KEPT - 3);
    assert!(next.iter().all(|e| e.seq < first[2].seq));
    assert!(next.windows(2).all(|w| w[0].seq > w[1].seq));
    s.delete_webhook("wh_log").await.unwrap();
}

async fn finished_deliveries_are_pruned(s: &dyn WebhookStore) {
    s.create_webhook(&hook("wh_prune", 0)).await.unwrap();
    s.enqueue_deliveries(&[delivery("wh_prune", "1"), delivery("wh_prune", "2")], 100)
        .await
        .unwrap();
    let mut taken = s.take_due(100, 2, 60_000, "h").await.unwrap();
    taken.sort_by(|a, b| a.event_id.cmp(&b.event_id));
    let e = entry(1, 150, Some(200), "delivered");
    s.record_attempt(&taken[0], Next::Delivered, &e)
        .await
        .unwrap();
    s.prune_deliveries(1_000).await.unwrap();
    // The pending one stays whatever its age.
    let e = entry(1, 2_000, Some(200), "delivered");
    assert!(matches!(
        s.record_attempt(&taken[1], Next::Delivered, &e)
            .await
            .unwrap(),
        Recorded::Done(_)
    ));
    s.delete_webhook("wh_prune").await.unwrap();
}

/// Fan-out from the event log, as every store does it: events before the
/// first call are skipped, the rest come once confirmed no more.
pub async fn fan_out(s: &dyn crate::Store) {
    use crate::events::NewEvent;
    use std::time::Duration;
    let long = Duration::from_secs(3600);
    let ev = |n: u32| NewEvent::now("session.started").session(&format!("fan-{n}"));
    let ids = |es: Vec<crate::Event>| es.into_iter().map(|e| e.id).collect::<Vec<_>>();
    s.append(ev(1)).await.unwrap();
    assert!(s.events_to_fan_out("a", 10, long).await.unwrap().is_empty());
    let e2 = s.append(ev(2)).await.unwrap();
    let e3 = s.append(ev(3)).await.unwrap();
    let got = s.events_to_fan_out("a", 10, long).await.unwrap();
    assert_eq!(got[0].session.as_deref(), Some("fan-2"));
    assert_eq!(ids(got), [e2.clone(), e3.clone()]);
    s.events_fanned_out("a", &[e2, e3]).await.unwrap();
    let e4 = s.append(ev(4)).await.unwrap();
    assert_eq!(
        ids(s.events_to_fan_out("a", 10, long).await.unwrap()),
        std::slice::from_ref(&e4)
    );
    s.events_fanned_out("a", &[e4]).await.unwrap();
    assert!(s.events_to_fan_out("a", 10, long).await.unwrap().is_empty());
    s.events_fanned_out("a", &[]).await.unwrap();
}
