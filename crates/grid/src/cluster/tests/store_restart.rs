//! A store that restarts without its data: nodes register and announce
//! their sessions again, hubs wait for routes meanwhile and queue again
//! the requests they hold.

use super::fixture::{eventually, Grid};
use gridiron_store::Cluster;
use serde_json::json;

#[tokio::test]
async fn running_sessions_keep_working_through_a_store_that_restarted_empty() {
    let g = Grid::new();
    let (a, b) = (g.hub(|_| {}).await, g.hub(|_| {}).await);
    let node = g.node(2, |_| {}).await;
    let sid = g.client.new_session(&a.url, json!({})).await.session_id();

    g.cluster.clear();
    assert_eq!(g.cluster.route(&sid).await.unwrap(), None);
    // Hub b never routed the session: it must find the route again, once
    // the node has announced it, rather than answer 404.
    let r = g.client.command(&b.url, &sid).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(g.cluster.route(&sid).await.unwrap(), Some(node.id.clone()));
    assert!(g.node_alive(&node.id).await, "the node registered again");
    let rec = g.cluster.sessions().get(&sid).await.unwrap();
    assert!(
        rec.is_some_and(|r| r.end_reason.is_none()),
        "its record is back"
    );

    let quit = g.client.quit(&a.url, &sid).await;
    assert_eq!(quit.status, 200, "{:?}", quit.body);
    assert!(!node.runs(&sid));
    let more = g.client.new_session(&b.url, json!({})).await.session_id();
    assert!(node.runs(&more));
}

#[tokio::test]
async fn requests_a_hub_holds_are_queued_again_after_the_store_restarts_empty() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let held = g.client.new_session(&hub.url, json!({})).await.session_id();
    let waiting = g.client.spawn_new_session(&hub.url, json!({}));
    eventually("the request waits", || async { g.queued().await == 1 }).await;

    g.cluster.clear();
    eventually("the hub queues it again", || async {
        g.queued().await == 1
    })
    .await;
    eventually("the node announces its session again", || async {
        g.cluster.route(&held).await.unwrap().is_some()
    })
    .await;
    g.client.quit(&hub.url, &held).await;
    let sid = waiting.await.unwrap().session_id();
    assert!(node.runs(&sid));
    assert_eq!(node.standin.started(), 2);
    assert_eq!(g.queued().await, 0);
}
