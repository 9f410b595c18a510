//! New sessions through hubs: the W3C answer, routing through any hub, the
//! shared FIFO queue, impossible requests and the queue timeout.

use super::fixture::{eventually, Grid};
use gridiron_domain::EndReason;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_session_started_through_one_hub_is_served_through_either() {
    let g = Grid::new();
    let (a, b) = (g.hub(|_| {}).await, g.hub(|_| {}).await);
    let node = g.node(2, |_| {}).await;

    let answer = g
        .client
        .new_session(&a.url, json!({"browserName": "chrome"}))
        .await;
    let sid = answer.session_id();
    assert_eq!(sid.len(), 32, "the grid's own session id");
    assert_eq!(
        answer.body["value"]["capabilities"]["browserName"],
        "chrome"
    );
    assert!(node.runs(&sid), "the node runs it under the grid's id");
    assert_eq!(node.standin.alive(), 1);

    for hub in [&a, &b] {
        let r = g.client.command(&hub.url, &sid).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"value": null}));
    }
    let quit = g.client.quit(&b.url, &sid).await;
    assert_eq!(quit.status, 200, "{:?}", quit.body);
    assert!(!node.runs(&sid));
    assert_eq!(node.standin.alive(), 0);
    assert_eq!(g.end_reason(&sid).await, Some(EndReason::Quit));

    let gone = g.client.command(&a.url, &sid).await;
    assert_eq!((gone.status, gone.error()), (404, "invalid session id"));
    assert!(gone.message().contains("quit"), "{}", gone.message());
}

#[tokio::test]
async fn requests_beyond_capacity_wait_and_are_served_in_order() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let first = g.client.new_session(&hub.url, json!({})).await.session_id();

    let second = g.client.spawn_new_session(&hub.url, json!({}));
    eventually("the second request waits", || async {
        g.queued().await == 1
    })
    .await;
    let third = g.client.spawn_new_session(&hub.url, json!({}));
    eventually("the third request waits", || async {
        g.queued().await == 2
    })
    .await;
    assert_eq!(node.standin.started(), 1);

    g.client.quit(&hub.url, &first).await;
    let second = second.await.unwrap().session_id();
    assert!(node.runs(&second));
    assert!(
        !third.is_finished(),
        "the third waits for the second's slot"
    );
    assert_eq!(g.queued().await, 1);

    g.client.quit(&hub.url, &second).await;
    let third = third.await.unwrap().session_id();
    assert!(node.runs(&third));
    assert_eq!((node.standin.started(), node.standin.alive()), (3, 1));
    assert_eq!(g.queued().await, 0);
}

#[tokio::test]
async fn a_request_no_node_can_serve_fails_at_once() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let asked = Instant::now();
    for always in [
        json!({"browserName": "netscape"}),
        json!({"gridiron:options": {"nodeLabels": {"gpu": "yes"}}}),
    ] {
        let r = g.client.new_session(&hub.url, always).await;
        assert_eq!(
            (r.status, r.error()),
            (500, "session not created"),
            "{:?}",
            r.body
        );
    }
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "refused without waiting for the queue timeout"
    );
    assert_eq!((g.queued().await, node.standin.started()), (0, 0));
}

#[tokio::test]
async fn a_request_that_waits_too_long_is_not_created_and_leaves_the_queue() {
    let g = Grid::new();
    let hub = g
        .hub(|c| c.queue_timeout = Duration::from_millis(300))
        .await;
    let node = g.node(1, |_| {}).await;
    let held = g.client.new_session(&hub.url, json!({})).await.session_id();

    let r = g.client.new_session(&hub.url, json!({})).await;
    assert_eq!((r.status, r.error()), (500, "session not created"));
    assert!(r.message().contains("timed out"), "{}", r.message());
    assert_eq!(g.queued().await, 0, "the request left the queue");
    eventually("the request is recorded as timed out", || async {
        g.ended_for(EndReason::QueueTimeout).await == 1
    })
    .await;

    // Its slot freed, the node has nothing left to start for it: the next
    // request is the only one started.
    g.client.quit(&hub.url, &held).await;
    let next = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(node.runs(&next));
    assert_eq!((node.standin.started(), node.standin.alive()), (2, 1));
}
