//! The launch policy across hubs and nodes: a hub refuses a hostile request
//! at once, a pool's arguments from the store are checked when applied, and a
//! node checks again what it takes from the store.

use super::fixture::Grid;
use gridiron_domain::launch_policy::LaunchAllowances;
use gridiron_domain::pool::Pool;
use gridiron_store::Cluster;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_hub_refuses_hostile_requests_at_once() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    for (always, item) in [
        (
            json!({"goog:chromeOptions": {"binary": "/usr/bin/python3"}}),
            "goog:chromeOptions.binary",
        ),
        (
            json!({"goog:chromeOptions": {"args": ["--Renderer-Cmd-Prefix=touch /tmp/x"]}}),
            "--renderer-cmd-prefix",
        ),
        (
            json!({"browserName": "firefox", "moz:firefoxOptions": {"profile": "UEsDBA=="}}),
            "moz:firefoxOptions.profile",
        ),
    ] {
        let started = Instant::now();
        let a = g.client.new_session(&hub.url, always).await;
        assert_eq!(
            (a.status, a.error()),
            (400, "invalid argument"),
            "{:?}",
            a.body
        );
        assert!(a.message().contains(item), "{item}: {}", a.message());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "refused at once"
        );
    }
    assert_eq!(g.queued().await, 0, "nothing reached the queue");
    assert_eq!(node.standin.started(), 0);
}

#[tokio::test]
async fn a_pools_arguments_are_checked_when_applied() {
    let g = Grid::new();
    // Written straight into the store, as anyone with access to it could.
    g.cluster
        .put_pool(&Pool {
            name: "web".into(),
            args: vec!["--gpu-launcher=touch /tmp/x".into()],
            ..Pool::default()
        })
        .await
        .unwrap();
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |c| c.profile.pools = vec!["web".into()]).await;
    let a = g
        .client
        .new_session(&hub.url, json!({"gridiron:options": {"pool": "web"}}))
        .await;
    assert_eq!(
        (a.status, a.error()),
        (400, "invalid argument"),
        "{:?}",
        a.body
    );
    assert!(a.message().contains("pool web"), "{}", a.message());
    assert!(a.message().contains("--gpu-launcher"), "{}", a.message());
    assert_eq!((g.queued().await, node.standin.started()), (0, 0));
}

#[tokio::test]
async fn a_node_checks_again_what_it_takes_from_the_store() {
    let g = Grid::new();
    // A hub that lets the switch through (or anything else that writes the
    // queue): the node, which allows nothing, still refuses it.
    let hub = g
        .hub(|c| {
            c.launch_allowances =
                LaunchAllowances::new(vec![], vec!["--gpu-launcher".into()]).unwrap()
        })
        .await;
    let node = g.node(1, |_| {}).await;
    let a = g
        .client
        .new_session(
            &hub.url,
            json!({"goog:chromeOptions": {"args": ["--gpu-launcher=touch /tmp/x"]}}),
        )
        .await;
    assert_eq!(
        (a.status, a.error()),
        (400, "invalid argument"),
        "{:?}",
        a.body
    );
    assert!(a.message().contains("--gpu-launcher"), "{}", a.message());
    assert_eq!(node.standin.started(), 0);
    assert_eq!(node.m.slots_in_use(), 0);
    assert_eq!(g.queued().await, 0);
}
