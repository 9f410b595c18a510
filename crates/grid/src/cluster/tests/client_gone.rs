//! Clients that leave while their new session is queued or being started.

use super::fixture::{eventually, send_new_session, Grid};
use gridiron_domain::EndReason;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn a_client_leaving_the_queue_takes_its_request_out() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let held = g.client.new_session(&hub.url, json!({})).await.session_id();

    let leaving = send_new_session(&hub.url).await;
    eventually("the request waits", || async { g.queued().await == 1 }).await;
    drop(leaving);
    eventually("the request leaves the queue", || async {
        g.queued().await == 0 && g.ended_for(EndReason::ClientGone).await == 1
    })
    .await;

    g.client.quit(&hub.url, &held).await;
    let next = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(node.runs(&next));
    assert_eq!(
        (node.standin.started(), node.standin.alive()),
        (2, 1),
        "nothing was started for the client that left"
    );
}

#[tokio::test]
async fn a_client_leaving_while_a_node_starts_its_session_gets_it_ended() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    node.standin.set_start_delay(Duration::from_millis(300));

    let leaving = send_new_session(&hub.url).await;
    eventually("the node is starting the request", || async {
        node.standin.started() == 1 && g.queued().await == 0
    })
    .await;
    drop(leaving);
    eventually("the started session is ended as client_gone", || async {
        g.ended_for(EndReason::ClientGone).await == 1
    })
    .await;
    eventually("its slot comes back", || async {
        node.standin.alive() == 0 && node.m.free_slots() == 1 && node.m.session_ids().is_empty()
    })
    .await;

    node.standin.set_start_delay(Duration::ZERO);
    let next = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(node.runs(&next));
}
