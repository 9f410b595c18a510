//! `/metrics` through hubs: every hub answers for the whole grid, from the
//! counts each hub and node flushes to the shared state.

use super::fixture::{eventually, Grid};
use crate::driver_client::driver_client;
use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use serde_json::json;
use std::time::Duration;

/// The value of the sample line `name` (with its labels, exactly) in the
/// hub at `hub`'s `/metrics`.
async fn sample(hub: &str, name: &str) -> Option<f64> {
    let req = Request::get(format!("{hub}/metrics"))
        .body(Body::empty())
        .unwrap();
    let resp = driver_client().request(req).await.expect("the hub answers");
    assert_eq!(resp.status(), 200);
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn either_hub_counts_what_every_hub_and_node_did() {
    let g = Grid::new();
    let a = g
        .hub(|c| c.queue_timeout = Duration::from_millis(300))
        .await;
    let b = g.hub(|_| {}).await;
    let _node = g.node(1, |_| {}).await;
    let sid = g.client.new_session(&a.url, json!({})).await.session_id();
    for _ in 0..3 {
        assert_eq!(g.client.command(&b.url, &sid).await.status, 200);
    }
    // The only slot is taken: a request through `a` times out in the queue.
    let late = g.client.new_session(&a.url, json!({})).await;
    assert_eq!(late.status, 500, "{:?}", late.body);
    assert_eq!(g.client.quit(&b.url, &sid).await.status, 200);
    for hub in [&a.url, &b.url] {
        eventually(
            "the node's and the other hub's counts reach this hub",
            || async {
                sample(hub, "gridiron_commands_total").await == Some(4.0)
                    && sample(hub, "gridiron_sessions_ended_total{reason=\"quit\"}").await
                        == Some(1.0)
                    && sample(
                        hub,
                        "gridiron_sessions_ended_total{reason=\"queue_timeout\"}",
                    )
                    .await
                        == Some(1.0)
            },
        )
        .await;
        assert_eq!(
            sample(hub, "gridiron_session_start_seconds_count").await,
            Some(1.0)
        );
        assert_eq!(
            sample(hub, "gridiron_queue_wait_seconds_count").await,
            Some(1.0)
        );
        assert_eq!(sample(hub, "gridiron_queue_depth").await, Some(0.0));
    }
}
