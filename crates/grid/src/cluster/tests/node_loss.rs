//! Nodes that stop heartbeating: the collector declares them lost, their
//! sessions end as `node_lost`, what they were starting is served
//! elsewhere, and a lost node that comes back is fenced.

use super::fixture::{eventually, Grid};
use gridiron_domain::EndReason;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_lost_nodes_sessions_end_and_it_ends_them_itself_when_it_comes_back() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let sid = g.client.new_session(&hub.url, json!({})).await.session_id();

    let frozen = node.process.freeze().await;
    eventually("the collector declares the node lost", || async {
        g.end_reason(&sid).await == Some(EndReason::NodeLost)
    })
    .await;
    assert!(!g.node_alive(&node.id).await);
    let r = g.client.command(&hub.url, &sid).await;
    assert_eq!((r.status, r.error()), (404, "invalid session id"));
    assert!(r.message().contains("node_lost"), "{}", r.message());

    // Back again, the node learns it was lost: the session it still runs
    // must not come back, and it rejoins under a new registration.
    assert!(node.runs(&sid));
    drop(frozen);
    eventually("the node ends what it still ran and rejoins", || async {
        !node.runs(&sid) && node.standin.alive() == 0 && g.node_alive(&node.id).await
    })
    .await;
    let next = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(node.runs(&next), "the rejoined node serves again");
    assert_eq!(g.end_reason(&sid).await, Some(EndReason::NodeLost));
}

#[tokio::test]
async fn a_request_a_lost_node_was_starting_is_served_by_another_and_the_late_start_is_fenced() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let lost = g.node(1, |_| {}).await;
    lost.standin.set_start_delay(Duration::from_millis(300));
    let request = g.client.spawn_new_session(&hub.url, json!({}));
    eventually("the first node is starting the request", || async {
        lost.standin.started() == 1 && g.queued().await == 0
    })
    .await;
    let frozen = lost.process.freeze().await;

    let other = g.node(1, |_| {}).await;
    let sid = request.await.unwrap().session_id();
    assert!(other.runs(&sid), "the request went back to the queue");
    assert!(!g.node_alive(&lost.id).await);

    // The lost node finishes its start late, under a claim it no longer
    // holds: it ends that session and gets its slot back.
    drop(frozen);
    eventually(
        "the late session is ended and the slot returned",
        || async {
            lost.standin.started() == 1
                && lost.standin.alive() == 0
                && lost.m.free_slots() == 1
                && g.ended_for(EndReason::NodeLost).await == 1
        },
    )
    .await;
    assert!(other.runs(&sid), "the served session is untouched");
    eventually("the lost node rejoins", || async {
        g.node_alive(&lost.id).await
    })
    .await;
    lost.standin.set_start_delay(Duration::ZERO);
    let next = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(
        lost.runs(&next),
        "the other node is full; the returned slot serves"
    );
}
