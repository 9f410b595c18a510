//! The combined steps of the [`crate::cluster_conformance`] suite: a node's
//! answer with its session's route and load, and a session's end with the
//! load, do what the separate calls would.

use crate::cluster::{Completion, Ended, Started};
use crate::cluster_conformance::{claimed, next_message, node, request, with_hub, Fixture, LONG};

/// Runs the combined-step checks; panics on the first failure.
pub async fn run_all(f: &dyn Fixture) {
    an_answer_carries_the_route_and_the_load(f).await;
    an_end_forgets_the_route_and_reports_the_load(f).await;
    a_freed_pool_place_is_announced_as_work(f).await;
}

/// The slots in use the store holds for `node`.
async fn used(c: &std::sync::Arc<dyn crate::Cluster>, node: &str) -> usize {
    let nodes = c.nodes().await.unwrap();
    nodes.iter().find(|n| n.info.id == node).unwrap().used
}

async fn an_answer_carries_the_route_and_the_load(f: &dyn Fixture) {
    let c = with_hub(f, "complete-started").await;
    c.register_node(&node("n1"), LONG).await.unwrap();
    c.enqueue(&request("r1", Some("web"), 1), 10).await.unwrap();
    let w = c.waiting(0, 10).await.unwrap().remove(0);
    let e = claimed(c.claim(&w, "n1").await.unwrap());
    let s = Started {
        sid: "s1",
        key: None,
        used: 1,
        ttl: LONG,
    };
    assert_eq!(
        c.complete_started(&w, "n1", e, "answer", &s).await.unwrap(),
        Completion::Delivered
    );
    assert_eq!(c.route("s1").await.unwrap().as_deref(), Some("n1"));
    assert_eq!(
        used(&c, "n1").await,
        1,
        "the load is recorded with the answer"
    );
    assert_eq!(
        c.take_answer("hub-1", "r1").await.unwrap().as_deref(),
        Some("answer")
    );
    // A retry (its first reply was lost) is told the same and changes nothing.
    assert_eq!(
        c.complete_started(&w, "n1", e, "answer", &s).await.unwrap(),
        Completion::Delivered
    );
    // The session holds its pool place until it ends.
    c.enqueue(&request("r2", Some("web"), 1), 10).await.unwrap();
    let w2 = c.waiting(0, 10).await.unwrap().remove(0);
    assert_eq!(
        c.claim(&w2, "n1").await.unwrap(),
        crate::cluster::Claim::PoolFull
    );
    // Another registration's answer is refused, but its route is recorded
    // (the node ends the session, which forgets it).
    let fenced = Started { sid: "s9", ..s };
    assert_eq!(
        c.complete_started(&w, "n2", e, "other", &fenced)
            .await
            .unwrap(),
        Completion::Fenced
    );
}

async fn an_end_forgets_the_route_and_reports_the_load(f: &dyn Fixture) {
    let c = with_hub(f, "end-session").await;
    c.register_node(&node("n1"), LONG).await.unwrap();
    for (i, rid) in ["r1", "r2"].iter().enumerate() {
        c.enqueue(&request(rid, Some("web"), 2), 10).await.unwrap();
        let w = c.waiting(0, 10).await.unwrap().remove(0);
        let e = claimed(c.claim(&w, "n1").await.unwrap());
        let s = Started {
            sid: &format!("s{}", i + 1),
            key: None,
            used: i + 1,
            ttl: LONG,
        };
        c.complete_started(&w, "n1", e, "answer", &s).await.unwrap();
    }
    let ended = |sid: &'static str, rid: &'static str, used: usize| Ended {
        sid,
        rid,
        pool: Some("web"),
        key: None,
        used,
        ttl: LONG,
    };
    c.end_session("n1", &ended("s1", "r1", 1)).await.unwrap();
    assert_eq!(c.route("s1").await.unwrap(), None);
    assert_eq!(used(&c, "n1").await, 1);
    // A node whose record differs from the store's (say, the store's was
    // rewritten) still frees what the store holds.
    c.end_session("n1", &ended("s2", "elsewhere", 0))
        .await
        .unwrap();
    assert_eq!(c.route("s2").await.unwrap(), None);
    assert_eq!(used(&c, "n1").await, 0);
    // Both pool places are free again: two more requests of the pool are claimed.
    for rid in ["r3", "r4"] {
        c.enqueue(&request(rid, Some("web"), 2), 10).await.unwrap();
        let w = c.waiting(0, 10).await.unwrap().remove(0);
        claimed(c.claim(&w, "n1").await.unwrap());
    }
}

async fn a_freed_pool_place_is_announced_as_work(f: &dyn Fixture) {
    let c = with_hub(f, "freed").await;
    c.register_node(&node("n1"), LONG).await.unwrap();
    let mut work = c.subscribe(vec![c.work_channel()]);
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), work.recv())
        .await
        .expect("subscribed within 5 s");
    assert_eq!(first, Some((String::new(), String::new())));
    // p1 runs in pool web (one at a time); p2 waits for its place.
    for rid in ["p1", "p2"] {
        c.enqueue(&request(rid, Some("web"), 1), 10).await.unwrap();
        assert_eq!(next_message(&mut work).await.1, rid);
    }
    let w = c.waiting(0, 10).await.unwrap();
    let e = claimed(c.claim(&w[0], "n1").await.unwrap());
    let s = Started {
        sid: "s1",
        key: None,
        used: 1,
        ttl: LONG,
    };
    c.complete_started(&w[0], "n1", e, "answer", &s)
        .await
        .unwrap();
    assert_eq!(
        c.claim(&w[1], "n2").await.unwrap(),
        crate::cluster::Claim::PoolFull
    );
    // Its end frees the place, and every node hears of it at once.
    let ended = Ended {
        sid: "s1",
        rid: "p1",
        pool: Some("web"),
        key: None,
        used: 0,
        ttl: LONG,
    };
    c.end_session("n1", &ended).await.unwrap();
    assert_eq!(next_message(&mut work).await.1, "freed");
    // A failed start gives its place back with the same announcement.
    let e2 = claimed(c.claim(&w[1], "n2").await.unwrap());
    c.complete(&w[1], "n2", e2, "error", false).await.unwrap();
    assert_eq!(next_message(&mut work).await.1, "freed");
}
