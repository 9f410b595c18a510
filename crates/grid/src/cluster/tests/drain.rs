//! Draining a node: it stops claiming, its sessions finish, and the drain
//! ends when it is idle or at the drain timeout.

use super::fixture::{eventually, Grid, PATIENCE};
use gridiron_store::Cluster;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_draining_node_takes_no_work_and_is_drained_once_idle() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let draining = g.node(2, |_| {}).await;
    let running = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(draining.runs(&running));
    let other = g.node(2, |_| {}).await;

    // An operator asks through the store; the node hears it at its heartbeat.
    assert!(g.cluster.drain_node(&draining.id).await.unwrap());
    let agent = draining.agent.clone();
    let drained = draining.process.spawn(async move { agent.drained().await });
    let a = g.client.new_session(&hub.url, json!({})).await.session_id();
    let b = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(
        other.runs(&a) && other.runs(&b),
        "the free slot is not taken"
    );
    assert_eq!(draining.standin.started(), 1);

    // Its session still answers; the drain waits for it.
    let r = g.client.command(&hub.url, &running).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(!drained.is_finished());
    g.client.quit(&hub.url, &running).await;
    tokio::time::timeout(PATIENCE, drained)
        .await
        .expect("drained once idle")
        .unwrap();
    assert_eq!(draining.standin.alive(), 0);

    // Only draining nodes are left free: a new request waits.
    let waiting = g.client.spawn_new_session(&hub.url, json!({}));
    eventually("the request waits", || async { g.queued().await == 1 }).await;
    g.client.quit(&hub.url, &a).await;
    assert!(other.runs(&waiting.await.unwrap().session_id()));
    assert_eq!(draining.standin.started(), 1);
}

#[tokio::test]
async fn a_drain_ends_at_its_timeout_when_sessions_keep_running() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let timeout = Duration::from_millis(300);
    let node = g.node(1, |c| c.drain_timeout = timeout).await;
    let sid = g.client.new_session(&hub.url, json!({})).await.session_id();

    let asked = Instant::now();
    let agent = node.agent.clone();
    node.process
        .run(async move {
            tokio::time::timeout(PATIENCE, agent.drain())
                .await
                .expect("the drain ends")
        })
        .await;
    let took = asked.elapsed();
    assert!(
        took >= timeout,
        "the drain waited for the session: {took:?}"
    );
    assert!(
        took < timeout * 5,
        "the drain ended at its timeout: {took:?}"
    );
    // Ending what still runs is for whoever stops the node.
    assert!(node.runs(&sid));
    let nodes = g.cluster.nodes().await.unwrap();
    assert!(nodes.iter().any(|n| n.info.id == node.id && n.draining));
}
