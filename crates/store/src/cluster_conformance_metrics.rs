//! The metrics part of the [`crate::cluster_conformance`] suite: counters
//! added by several processes add up, gauges are per process and expire.

use crate::cluster::QueuedRequest;
use crate::cluster_conformance::Fixture;
use std::time::Duration;

/// Runs the metrics checks; panics on the first failure.
pub async fn run_all(f: &dyn Fixture) {
    counters_from_every_process_add_up(f).await;
    gauges_are_per_process_and_expire(f).await;
    waiting_requests_say_when_they_were_made(f).await;
}

fn deltas(pairs: &[(&str, u64)]) -> Vec<(String, u64)> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn counters_from_every_process_add_up(f: &dyn Fixture) {
    let c = f.cluster("metric-counters").await;
    assert!(c.metric_totals().await.unwrap().is_empty());
    c.add_metrics(&[]).await.unwrap();
    // Two hubs and a node flush their increments.
    c.add_metrics(&deltas(&[("commands", 5), ("ended:quit", 1)]))
        .await
        .unwrap();
    c.add_metrics(&deltas(&[("commands", 2), ("hist:start:b:3", 1)]))
        .await
        .unwrap();
    c.add_metrics(&deltas(&[("ended:quit", 2), ("ended:idle_timeout", 1)]))
        .await
        .unwrap();
    let totals = c.metric_totals().await.unwrap();
    let got: Vec<(&str, u64)> = totals.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        got,
        [
            ("commands", 7),
            ("ended:idle_timeout", 1),
            ("ended:quit", 3),
            ("hist:start:b:3", 1)
        ]
    );
    // Another grid's counters are its own.
    let other = f.cluster("metric-counters-other").await;
    assert!(other.metric_totals().await.unwrap().is_empty());
}

async fn gauges_are_per_process_and_expire(f: &dyn Fixture) {
    let c = f.cluster("metric-gauges").await;
    assert!(c.gauges().await.unwrap().is_empty());
    let long = Duration::from_secs(30);
    let g = |n: i64| vec![("tunnels_open".to_string(), n)];
    c.put_gauges("hub-a", &g(2), long).await.unwrap();
    c.put_gauges("hub-b", &g(5), long).await.unwrap();
    // A publication replaces the process's previous one.
    c.put_gauges("hub-a", &g(3), long).await.unwrap();
    let all = c.gauges().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all["hub-a"]["tunnels_open"], 3);
    assert_eq!(all["hub-b"]["tunnels_open"], 5);
    // A process that stops publishing drops out once its ttl has passed.
    c.put_gauges("hub-b", &g(5), Duration::from_millis(50))
        .await
        .unwrap();
    let mut left = c.gauges().await.unwrap();
    for _ in 0..100 {
        if !left.contains_key("hub-b") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = c.gauges().await.unwrap();
    }
    assert_eq!(left.keys().collect::<Vec<_>>(), ["hub-a"]);
}

/// Nodes measure the queue wait of what they claim from its creation time.
async fn waiting_requests_say_when_they_were_made(f: &dyn Fixture) {
    let c = f.cluster("metric-waiting").await;
    c.hub_heartbeat("hub-1", Duration::from_secs(30))
        .await
        .unwrap();
    let r = QueuedRequest {
        id: "r1".into(),
        body: "{}".into(),
        pool: None,
        pool_max: 0,
        hub: "hub-1".into(),
        public_base: "http://grid".into(),
        created_at: 1_700_000_000_123,
        owner: String::new(),
        key_max: 0,
    };
    c.enqueue(&r, 10).await.unwrap().expect("queued");
    let w = c.waiting(0, 10).await.unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].created_at, 1_700_000_000_123);
}
