//! Hubs that stop heartbeating: the requests they held leave the queue, and
//! a session started for one of them is ended by the collector.

use super::fixture::{eventually, Grid};
use gridiron_domain::EndReason;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_dead_hubs_queued_requests_are_dropped() {
    let g = Grid::new();
    let dying = g.hub(|c| c.queue_timeout = Duration::from_secs(1)).await;
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let held = g.client.new_session(&hub.url, json!({})).await.session_id();

    let orphan = g.client.spawn_new_session(&dying.url, json!({}));
    eventually("the request waits", || async { g.queued().await == 1 }).await;
    let frozen = dying.process.freeze().await;
    eventually(
        "the live hub's collector drops the dead hub's request",
        || async { g.queued().await == 0 },
    )
    .await;

    // Nothing is started for it once a slot frees: the next request is served.
    g.client.quit(&hub.url, &held).await;
    let next = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(node.runs(&next));
    assert_eq!(node.standin.started(), 2);

    // The hub comes back to a request that was withdrawn.
    drop(frozen);
    let r = orphan.await.unwrap();
    assert_eq!((r.status, r.error()), (500, "session not created"));
    assert!(r.message().contains("withdrawn"), "{}", r.message());
}

#[tokio::test]
async fn a_session_started_for_a_dead_hub_is_ended_by_the_collector() {
    let g = Grid::new();
    let dying = g.hub(|_| {}).await;
    let _collector = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    node.standin.set_start_delay(Duration::from_millis(300));

    let orphan = g.client.spawn_new_session(&dying.url, json!({}));
    eventually("the node is starting the request", || async {
        node.standin.started() == 1
    })
    .await;
    // The hub stops before the start ends, but its heartbeat is still
    // current then: the answer is delivered and nobody takes it.
    let frozen = dying.process.freeze().await;
    eventually("the session runs", || async {
        node.m.session_ids().len() == 1
    })
    .await;
    let sid = node.m.session_ids().pop().unwrap();
    eventually("the collector ends it", || async {
        g.end_reason(&sid).await == Some(EndReason::ClientGone)
    })
    .await;
    eventually("the node is empty again", || async {
        node.standin.alive() == 0 && node.m.free_slots() == 1
    })
    .await;

    drop(frozen);
    let r = orphan.await.unwrap();
    assert_eq!((r.status, r.error()), (500, "session not created"));
    assert!(!node.runs(&sid));
}
