//! Nodes claiming queued requests: one node per request, capacity summed
//! over the nodes, pools and labels honoured.

use super::fixture::{eventually, Grid};
use gridiron_domain::pool::Pool;
use gridiron_store::Cluster;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};

#[tokio::test]
async fn nodes_never_start_the_same_request_and_capacity_is_their_sum() {
    let g = Grid::new();
    let (a, b) = (g.hub(|_| {}).await, g.hub(|_| {}).await);
    let nodes = [g.node(2, |_| {}).await, g.node(3, |_| {}).await];
    // Both nodes race for every request, through both hubs.
    let requests: Vec<_> = (0..7)
        .map(|i| {
            let hub = if i % 2 == 0 { &a.url } else { &b.url };
            g.client.spawn_new_session(hub, json!({}))
        })
        .collect();
    eventually("the nodes are full and two requests wait", || async {
        nodes.iter().map(|n| n.m.slots_in_use()).sum::<usize>() == 5 && g.queued().await == 2
    })
    .await;
    assert_eq!(nodes[0].standin.started(), 2, "no start beyond its slots");
    assert_eq!(nodes[1].standin.started(), 3, "no start beyond its slots");

    eventually("five clients have their answer", || async {
        requests.iter().filter(|r| r.is_finished()).count() == 5
    })
    .await;
    let (mut served, mut waiting) = (Vec::new(), Vec::new());
    for r in requests {
        if r.is_finished() {
            served.push(r.await.unwrap().session_id());
        } else {
            waiting.push(r);
        }
    }
    let unique: HashSet<_> = served.iter().collect();
    assert_eq!(unique.len(), 5, "each request got a session of its own");
    for sid in &served {
        let on = nodes.iter().filter(|n| n.runs(sid)).count();
        assert_eq!(on, 1, "session {sid} runs on exactly one node");
    }

    // Freeing two slots serves the two waiting requests, nothing more.
    for sid in &served[..2] {
        g.client.quit(&a.url, sid).await;
    }
    for r in waiting {
        let sid = r.await.unwrap().session_id();
        assert!(nodes.iter().any(|n| n.runs(&sid)));
    }
    let started: usize = nodes.iter().map(|n| n.standin.started()).sum();
    let alive: usize = nodes.iter().map(|n| n.standin.alive()).sum();
    assert_eq!((started, alive, g.queued().await), (7, 5, 0));
}

#[tokio::test]
async fn pools_and_labels_send_requests_only_to_matching_nodes() {
    let g = Grid::new();
    g.cluster
        .put_pool(&Pool {
            name: "gpu".into(),
            labels: BTreeMap::from([("accel".into(), "yes".into())]),
            ..Pool::default()
        })
        .await
        .unwrap();
    let hub = g.hub(|_| {}).await;
    let gpu = g
        .node(1, |c| {
            c.profile.pools = vec!["gpu".into()];
            c.profile.labels = BTreeMap::from([("accel".into(), "yes".into())]);
        })
        .await;
    let eu = g
        .node(2, |c| {
            c.profile.labels = BTreeMap::from([("region".into(), "eu".into())]);
        })
        .await;

    let pooled = json!({"gridiron:options": {"pool": "gpu"}});
    let first = g.client.new_session(&hub.url, pooled.clone()).await;
    let first = first.session_id();
    assert!(gpu.runs(&first));

    let labelled = json!({"gridiron:options": {"nodeLabels": {"region": "eu"}}});
    let sid = g.client.new_session(&hub.url, labelled).await.session_id();
    assert!(eu.runs(&sid));

    // The pool's only node is full: the request waits although the other
    // node has a free slot.
    let second = g.client.spawn_new_session(&hub.url, pooled);
    eventually("the pooled request waits", || async {
        g.queued().await == 1
    })
    .await;
    assert_eq!(eu.m.free_slots(), 1);
    g.client.quit(&hub.url, &first).await;
    let second = second.await.unwrap().session_id();
    assert!(gpu.runs(&second));
    assert_eq!((gpu.standin.started(), eu.standin.started()), (2, 1));
}
