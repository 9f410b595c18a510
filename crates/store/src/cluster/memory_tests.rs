//! Tests of what only [`MemoryCluster`] has: tokio time and its hooks.

use super::{Beat, Cluster, MemoryCluster, NodeInfo, QueuedRequest, RequestState};
use crate::NewSession;
use std::time::Duration;

fn info(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        url: format!("http://{id}:5555"),
        max_sessions: 1,
        stereotypes: vec![],
        profile: Default::default(),
        started_at: 1,
    }
}

#[tokio::test(start_paused = true)]
async fn heartbeats_and_locks_expire_with_tokio_time() {
    let c = MemoryCluster::new();
    c.register_node(&info("n1"), Duration::from_secs(10))
        .await
        .unwrap();
    c.hub_heartbeat("hub", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(c
        .try_lock("gc", "hub", Duration::from_secs(5))
        .await
        .unwrap());
    tokio::time::advance(Duration::from_secs(6)).await;
    assert!(c
        .try_lock("gc", "other", Duration::from_secs(5))
        .await
        .unwrap());
    assert_eq!(c.reclaim_node("n1").await.unwrap(), None);
    assert_eq!(c.forget_dead_hubs().await.unwrap(), (0, vec![]));
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(c.reclaim_node("n1").await.unwrap(), Some(vec![]));
    assert_eq!(c.forget_dead_hubs().await.unwrap(), (1, vec![]));
    // A lost node is remembered as lost for a while, then forgotten.
    assert_eq!(c.heartbeat("n1", 0, LONG).await.unwrap(), Beat::Lost);
    tokio::time::advance(crate::cluster::LOST_TTL).await;
    assert_eq!(c.heartbeat("n1", 0, LONG).await.unwrap(), Beat::Unknown);
}

const LONG: Duration = Duration::from_secs(30);

#[tokio::test]
async fn clear_forgets_everything_and_tells_subscribers() {
    let c = MemoryCluster::new();
    let mut work = c.subscribe(vec![c.work_channel()]);
    assert_eq!(work.recv().await.unwrap(), (String::new(), String::new()));
    c.register_node(&info("n1"), LONG).await.unwrap();
    c.sessions()
        .insert(
            NewSession {
                id: "s1".into(),
                browser: "chrome".into(),
                requested_caps: serde_json::json!({}),
                grid_options: serde_json::json!({}),
                created_at: 1,
                owner: None,
            },
            false,
        )
        .await
        .unwrap();
    c.add_session("n1", "s1", "r1", None, None).await.unwrap();
    c.clear();
    assert_eq!(work.recv().await.unwrap(), (String::new(), String::new()));
    assert_eq!(c.heartbeat("n1", 0, LONG).await.unwrap(), Beat::Unknown);
    assert_eq!(c.route("s1").await.unwrap(), None);
    assert_eq!(c.sessions().get("s1").await.unwrap(), None);
    assert_eq!(c.request_state("r1").await.unwrap(), RequestState::Missing);
    // Subscriptions outlive the loss.
    c.enqueue(
        &QueuedRequest {
            id: "r2".into(),
            body: "{}".into(),
            pool: None,
            pool_max: 0,
            hub: "hub".into(),
            public_base: String::new(),
            created_at: 1,
            owner: String::new(),
            key_max: 0,
        },
        10,
    )
    .await
    .unwrap();
    assert_eq!(work.recv().await.unwrap(), (c.work_channel(), "r2".into()));
}

#[test]
fn session_records_read_old_and_new_layouts() {
    use super::{parse_session_value, session_value};
    // Written before keys had places: "rid pool".
    assert_eq!(parse_session_value("r1 web"), ("r1", Some("web"), None));
    assert_eq!(parse_session_value("r1 "), ("r1", None, None));
    assert_eq!(parse_session_value("r1"), ("r1", None, None));
    for (pool, key) in [
        (None, None),
        (Some("web"), None),
        (None, Some("alice")),
        (Some("web"), Some("alice")),
    ] {
        let v = session_value("r1", pool, key);
        assert_eq!(parse_session_value(&v), ("r1", pool, key), "{v:?}");
    }
    assert_eq!(session_value("r1", Some("web"), None), "r1 web");
}
