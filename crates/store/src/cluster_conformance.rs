//! The behaviour every [`Cluster`] implementation must show. Each
//! implementation's tests call [`run_all`] with a [`Fixture`] that makes a
//! fresh, empty cluster per check and can silence a node or hub on it.

use crate::cluster::{
    Beat, Cancelled, Claim, Cluster, Completion, MemoryCluster, NodeInfo, QueuedRequest,
    RequestState,
};
use async_trait::async_trait;
use gridiron_domain::pool::{NodeProfile, Pool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the suite needs of an implementation.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// A fresh, empty cluster; `name` is different for every check (use it
    /// as a namespace, say).
    async fn cluster(&self, name: &str) -> Arc<dyn Cluster>;
    /// Makes `node`'s heartbeat on cluster `name` expire now, as if the node
    /// had gone silent past its TTL.
    async fn silence_node(&self, name: &str, node: &str);
    /// Makes `hub`'s heartbeat on cluster `name` expire now.
    async fn silence_hub(&self, name: &str, hub: &str);
}

/// Runs every check; panics on the first failure.
pub async fn run_all(f: &dyn Fixture) {
    the_queue_is_fifo_bounded_and_claimed_once(f).await;
    cancelling_depends_on_where_the_request_is(f).await;
    pools_cap_concurrency_until_sessions_end(f).await;
    keys_cap_concurrency_until_sessions_end(f).await;
    a_cancelled_request_gives_its_key_place_back(f).await;
    a_reclaimed_node_gives_its_key_places_back(f).await;
    keys_take_turns_in_the_queue(f).await;
    silent_nodes_are_reclaimed_and_cannot_come_back(f).await;
    requests_of_silent_hubs_are_dropped(f).await;
    a_stale_node_cannot_free_the_place_of_a_request_requeued_elsewhere(f).await;
    a_claim_of_a_lost_registration_is_fenced(f).await;
    work_and_answers_are_announced(f).await;
    events_are_recorded(f).await;
    crate::cluster_conformance_metrics::run_all(f).await;
    crate::cluster_conformance_steps::run_all(f).await;
}

/// [`MemoryCluster`]s by name, silenced through their hooks.
#[derive(Default)]
pub struct MemoryFixture {
    clusters: Mutex<HashMap<String, Arc<MemoryCluster>>>,
}

impl MemoryFixture {
    fn get(&self, name: &str) -> Arc<MemoryCluster> {
        let mut g = self.clusters.lock().unwrap_or_else(|e| e.into_inner());
        g.entry(name.to_string()).or_default().clone()
    }
}

#[async_trait]
impl Fixture for MemoryFixture {
    async fn cluster(&self, name: &str) -> Arc<dyn Cluster> {
        self.get(name)
    }
    async fn silence_node(&self, name: &str, node: &str) {
        self.get(name).expire_node(node);
    }
    async fn silence_hub(&self, name: &str, hub: &str) {
        self.get(name).expire_hub(hub);
    }
}

pub(crate) const LONG: Duration = Duration::from_secs(30);

pub(crate) fn request(id: &str, pool: Option<&str>, pool_max: u32) -> QueuedRequest {
    QueuedRequest {
        id: id.into(),
        body: format!(r#"{{"n":"{id}"}}"#),
        pool: pool.map(str::to_string),
        pool_max,
        hub: "hub-1".into(),
        public_base: "http://grid".into(),
        created_at: 1,
        owner: format!("owner-of-{id}"),
        key_max: 0,
    }
}

pub(crate) fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        url: format!("http://{id}:5555"),
        max_sessions: 2,
        stereotypes: vec![],
        profile: NodeProfile::default(),
        started_at: 1,
    }
}

/// The epoch of a successful claim; panics on any other outcome.
pub(crate) fn claimed(c: Claim) -> u64 {
    match c {
        Claim::Claimed { epoch } => epoch,
        other => panic!("expected a claim, got {other:?}"),
    }
}

/// A fresh cluster whose hub `hub-1` is alive.
pub(crate) async fn with_hub(f: &dyn Fixture, name: &str) -> Arc<dyn Cluster> {
    let c = f.cluster(name).await;
    c.hub_heartbeat("hub-1", LONG).await.unwrap();
    c
}

async fn the_queue_is_fifo_bounded_and_claimed_once(f: &dyn Fixture) {
    let c = with_hub(f, "fifo").await;
    for i in 0..5 {
        assert!(c
            .enqueue(&request(&format!("r{i}"), None, 0), 5)
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(c.enqueue(&request("r5", None, 0), 5).await.unwrap(), None);
    let waiting = c.waiting(0, 10).await.unwrap();
    let ids: Vec<&str> = waiting.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4"]);
    assert_eq!(waiting[0].body, r#"{"n":"r0"}"#);
    assert_eq!(waiting[0].hub, "hub-1");
    assert_eq!(waiting[0].public_base, "http://grid");
    assert_eq!(
        waiting[0].owner, "owner-of-r0",
        "the key that asked travels with it"
    );
    assert_eq!(waiting[0].created_at, 1, "operators see how long it waited");
    let e = claimed(c.claim(&waiting[0], "n1").await.unwrap());
    assert_eq!(c.claim(&waiting[0], "n2").await.unwrap(), Claim::Gone);
    assert_eq!(c.queue_len().await.unwrap(), 4);
    assert_eq!(c.waiting(0, 1).await.unwrap()[0].id, "r1");
    // The answer reaches the hub once; a second completion is refused.
    let done = |node: &'static str, answer: &'static str| {
        let (c, w) = (c.clone(), waiting[0].clone());
        async move { c.complete(&w, node, e, answer, true).await.unwrap() }
    };
    assert_eq!(done("n1", "answer").await, Completion::Delivered);
    // A retry (its first reply was lost) is told the same; another node is refused.
    assert_eq!(done("n1", "answer").await, Completion::Delivered);
    assert_eq!(done("n2", "again").await, Completion::Fenced);
    assert_eq!(c.waiting(2, 10).await.unwrap()[0].id, "r3");
    assert_eq!(
        c.request_state("r0").await.unwrap(),
        RequestState::Answered("answer".into())
    );
    assert_eq!(
        c.request_state("nosuch").await.unwrap(),
        RequestState::Missing
    );
    // Delivered, a retry of the completion still does not end the session.
    assert_eq!(
        c.take_answer("hub-1", "r0").await.unwrap().as_deref(),
        Some("answer")
    );
    assert_eq!(done("n1", "answer").await, Completion::Delivered);
}

async fn cancelling_depends_on_where_the_request_is(f: &dyn Fixture) {
    let c = with_hub(f, "cancel").await;
    for id in ["a", "b", "c"] {
        c.enqueue(&request(id, None, 0), 10).await.unwrap();
    }
    assert_eq!(
        c.cancel("a", "client_gone", false).await.unwrap(),
        Cancelled::Removed
    );
    assert_eq!(c.request_state("a").await.unwrap(), RequestState::Cancelled);
    // Cancelling again finds it over.
    assert_eq!(
        c.cancel("a", "client_gone", false).await.unwrap(),
        Cancelled::Removed
    );
    let w = c.waiting(0, 10).await.unwrap();
    assert_eq!(w[0].id, "b");
    let e = claimed(c.claim(&w[0], "n1").await.unwrap());
    // A soft cancel (queue timeout) leaves a started request alone...
    assert_eq!(
        c.cancel("b", "queue_timeout", true).await.unwrap(),
        Cancelled::WhileStarting
    );
    assert_eq!(c.request_state("b").await.unwrap(), RequestState::Pending);
    // ...a hard one withdraws it, and the node's answer is then refused.
    assert_eq!(
        c.cancel("b", "client_gone", false).await.unwrap(),
        Cancelled::WhileStarting
    );
    assert_eq!(
        c.complete(&w[0], "n1", e, "late", true).await.unwrap(),
        Completion::Gone
    );
    let e = claimed(c.claim(&w[1], "n1").await.unwrap());
    c.complete(&w[1], "n1", e, "done", true).await.unwrap();
    assert_eq!(
        c.cancel("c", "client_gone", false).await.unwrap(),
        Cancelled::Answered("done".into())
    );
    // The answer went with the cancel: it is not taken twice.
    assert_eq!(c.take_answer("hub-1", "c").await.unwrap(), None);
    assert_eq!(
        c.cancel("zzz", "client_gone", false).await.unwrap(),
        Cancelled::Missing
    );
}

async fn pools_cap_concurrency_until_sessions_end(f: &dyn Fixture) {
    let c = with_hub(f, "pools").await;
    let pool = Pool {
        name: "web".into(),
        max_concurrency: Some(1),
        ..Default::default()
    };
    c.put_pool(&pool).await.unwrap();
    assert_eq!(c.pool("web").await.unwrap(), Some(pool.clone()));
    assert_eq!(c.pool("nosuch").await.unwrap(), None);
    c.enqueue(&request("p1", Some("web"), 1), 10).await.unwrap();
    c.enqueue(&request("p2", Some("web"), 1), 10).await.unwrap();
    let w = c.waiting(0, 10).await.unwrap();
    assert_eq!(w[0].pool.as_deref(), Some("web"));
    let e1 = claimed(c.claim(&w[0], "n1").await.unwrap());
    assert_eq!(c.claim(&w[1], "n2").await.unwrap(), Claim::PoolFull);
    assert_eq!(
        c.complete(&w[0], "n1", e1, "ok", true).await.unwrap(),
        Completion::Delivered
    );
    c.add_session("n1", "s1", "p1", Some("web"), None)
        .await
        .unwrap();
    assert_eq!(c.pools().await.unwrap(), vec![(pool, 1)]);
    assert_eq!(c.claim(&w[1], "n2").await.unwrap(), Claim::PoolFull);
    assert_eq!(c.route("s1").await.unwrap().as_deref(), Some("n1"));
    c.remove_session("n1", "s1").await.unwrap();
    assert_eq!(c.route("s1").await.unwrap(), None);
    let e2 = claimed(c.claim(&w[1], "n2").await.unwrap());
    // A failed start frees the place at once.
    assert_eq!(
        c.complete(&w[1], "n2", e2, "error", false).await.unwrap(),
        Completion::Delivered
    );
    assert_eq!(c.pools().await.unwrap()[0].1, 0);
    assert!(c.delete_pool("web").await.unwrap());
    assert!(!c.delete_pool("web").await.unwrap());
}

/// A request of API key `owner`, which may run `max` sessions at once.
fn keyed(id: &str, owner: &str, max: u32) -> QueuedRequest {
    QueuedRequest {
        owner: owner.into(),
        key_max: max,
        ..request(id, None, 0)
    }
}

/// The ids waiting, in claim order.
async fn waiting_ids(c: &Arc<dyn Cluster>) -> Vec<String> {
    let w = c.waiting(0, 100).await.unwrap();
    w.into_iter().map(|w| w.id).collect()
}

async fn keys_cap_concurrency_until_sessions_end(f: &dyn Fixture) {
    let c = with_hub(f, "keys").await;
    c.enqueue(&keyed("k1", "alice", 1), 10).await.unwrap();
    c.enqueue(&keyed("k2", "alice", 1), 10).await.unwrap();
    c.enqueue(&keyed("o1", "bob", 1), 10).await.unwrap();
    let w = c.waiting(0, 10).await.unwrap();
    let by_id = |id: &str| w.iter().find(|w| w.id == id).unwrap().clone();
    let (k1, k2, o1) = (by_id("k1"), by_id("k2"), by_id("o1"));
    assert_eq!((k1.owner.as_str(), k1.key_max), ("alice", 1));
    let e1 = claimed(c.claim(&k1, "n1").await.unwrap());
    // alice runs as many as she may; bob is not held back by her.
    assert_eq!(c.claim(&k2, "n2").await.unwrap(), Claim::KeyFull);
    claimed(c.claim(&o1, "n2").await.unwrap());
    assert_eq!(
        waiting_ids(&c).await,
        ["k2"],
        "a refused claim leaves it waiting"
    );
    assert_eq!(
        c.complete(&k1, "n1", e1, "ok", true).await.unwrap(),
        Completion::Delivered
    );
    c.add_session("n1", "s1", "k1", None, Some("alice"))
        .await
        .unwrap();
    // Announcing the session again (after a store restart, say) takes no second place.
    c.add_session("n1", "s1", "k1", None, Some("alice"))
        .await
        .unwrap();
    assert_eq!(c.claim(&k2, "n2").await.unwrap(), Claim::KeyFull);
    c.remove_session("n1", "s1").await.unwrap();
    let e2 = claimed(c.claim(&k2, "n2").await.unwrap());
    // A failed start frees the place at once.
    c.complete(&k2, "n2", e2, "error", false).await.unwrap();
    c.enqueue(&keyed("k3", "alice", 1), 10).await.unwrap();
    let k3 = c.waiting(0, 1).await.unwrap().pop().unwrap();
    claimed(c.claim(&k3, "n1").await.unwrap());
    // Without a limit, a key is never refused.
    for i in 0..3 {
        c.enqueue(&keyed(&format!("u{i}"), "carol", 0), 10)
            .await
            .unwrap();
    }
    for w in c.waiting(0, 10).await.unwrap() {
        claimed(c.claim(&w, "n3").await.unwrap());
    }
}

async fn a_cancelled_request_gives_its_key_place_back(f: &dyn Fixture) {
    let c = with_hub(f, "keys-cancel").await;
    c.enqueue(&keyed("a", "alice", 1), 10).await.unwrap();
    c.enqueue(&keyed("b", "alice", 1), 10).await.unwrap();
    c.enqueue(&keyed("c", "alice", 1), 10).await.unwrap();
    let w = c.waiting(0, 10).await.unwrap();
    // A waiting request holds no place: cancelling it changes nothing else.
    assert_eq!(
        c.cancel("c", "queue_timeout", false).await.unwrap(),
        Cancelled::Removed
    );
    // Cancelled while a node starts it: the node's report frees the place,
    // whether the session started (and is ended) or not.
    let e = claimed(c.claim(&w[0], "n1").await.unwrap());
    assert_eq!(c.claim(&w[1], "n1").await.unwrap(), Claim::KeyFull);
    assert_eq!(
        c.cancel("a", "client_gone", false).await.unwrap(),
        Cancelled::WhileStarting
    );
    c.add_session("n1", "sa", "a", None, Some("alice"))
        .await
        .unwrap();
    assert_eq!(
        c.complete(&w[0], "n1", e, "ok", true).await.unwrap(),
        Completion::Gone
    );
    assert_eq!(c.claim(&w[1], "n1").await.unwrap(), Claim::KeyFull);
    c.remove_session("n1", "sa").await.unwrap();
    let e = claimed(c.claim(&w[1], "n1").await.unwrap());
    assert_eq!(
        c.cancel("b", "client_gone", false).await.unwrap(),
        Cancelled::WhileStarting
    );
    assert_eq!(
        c.complete(&w[1], "n1", e, "error", false).await.unwrap(),
        Completion::Gone
    );
    c.enqueue(&keyed("d", "alice", 1), 10).await.unwrap();
    let d = c.waiting(0, 1).await.unwrap().pop().unwrap();
    claimed(c.claim(&d, "n1").await.unwrap());
}

async fn a_reclaimed_node_gives_its_key_places_back(f: &dyn Fixture) {
    let name = "keys-reclaim";
    let c = with_hub(f, name).await;
    c.register_node(&node("n1"), LONG).await.unwrap();
    c.register_node(&node("n2"), LONG).await.unwrap();
    for id in ["a", "b", "c"] {
        c.enqueue(&keyed(id, "alice", 2), 10).await.unwrap();
    }
    let w = c.waiting(0, 10).await.unwrap();
    // n1 runs "a" and is starting "b".
    let e = claimed(c.claim(&w[0], "n1").await.unwrap());
    c.add_session("n1", "sa", "a", None, Some("alice"))
        .await
        .unwrap();
    c.complete(&w[0], "n1", e, "ok", true).await.unwrap();
    claimed(c.claim(&w[1], "n1").await.unwrap());
    assert_eq!(c.claim(&w[2], "n2").await.unwrap(), Claim::KeyFull);
    f.silence_node(name, "n1").await;
    assert_eq!(
        c.reclaim_node("n1").await.unwrap(),
        Some(vec!["sa".to_string()])
    );
    // Both places are free: "b" (back in the queue) and "c" start on n2.
    assert_eq!(waiting_ids(&c).await, ["b", "c"]);
    claimed(c.claim(&w[1], "n2").await.unwrap());
    claimed(c.claim(&w[2], "n2").await.unwrap());
    // A node that leaves cleanly frees its places too.
    c.enqueue(&keyed("d", "alice", 2), 10).await.unwrap();
    let d = c.waiting(0, 1).await.unwrap().pop().unwrap();
    assert_eq!(c.claim(&d, "n3").await.unwrap(), Claim::KeyFull);
    c.remove_node("n2").await.unwrap();
    claimed(c.claim(&d, "n3").await.unwrap());
}

async fn keys_take_turns_in_the_queue(f: &dyn Fixture) {
    let c = with_hub(f, "keys-fair").await;
    for i in 0..5 {
        c.enqueue(&keyed(&format!("a{i}"), "alice", 0), 100)
            .await
            .unwrap();
    }
    c.enqueue(&keyed("b0", "bob", 0), 100).await.unwrap();
    c.enqueue(&keyed("b1", "bob", 0), 100).await.unwrap();
    c.enqueue(&keyed("c0", "carol", 0), 100).await.unwrap();
    // One request per key per round, each key in its own order, each round
    // in order of arrival.
    assert_eq!(
        waiting_ids(&c).await,
        ["a0", "b0", "c0", "a1", "b1", "a2", "a3", "a4"]
    );
    // Claiming moves the current round on: a key that comes later (or
    // comes back) starts there, not behind everything alice queued, nor
    // ahead of what was queued in the current round before it.
    for _ in 0..4 {
        let w = c.waiting(0, 1).await.unwrap().pop().unwrap();
        claimed(c.claim(&w, "n1").await.unwrap());
    }
    assert_eq!(waiting_ids(&c).await, ["b1", "a2", "a3", "a4"]);
    c.enqueue(&keyed("c1", "carol", 0), 100).await.unwrap();
    c.enqueue(&keyed("d0", "dave", 0), 100).await.unwrap();
    assert_eq!(waiting_ids(&c).await, ["b1", "c1", "d0", "a2", "a3", "a4"]);
    // Re-enqueueing an id replaces it, as its key's newest request.
    c.enqueue(&keyed("b1", "bob", 0), 100).await.unwrap();
    assert_eq!(waiting_ids(&c).await, ["c1", "d0", "a2", "b1", "a3", "a4"]);
}

async fn silent_nodes_are_reclaimed_and_cannot_come_back(f: &dyn Fixture) {
    let c = with_hub(f, "nodes").await;
    c.register_node(&node("n1"), LONG).await.unwrap();
    c.register_node(&node("n2"), LONG).await.unwrap();
    c.enqueue(&request("r1", None, 0), 10).await.unwrap();
    c.enqueue(&request("r2", None, 0), 10).await.unwrap();
    let w = c.waiting(0, 10).await.unwrap();
    claimed(c.claim(&w[0], "n1").await.unwrap());
    let e = claimed(c.claim(&w[1], "n1").await.unwrap());
    c.complete(&w[1], "n1", e, "ok", true).await.unwrap();
    c.add_session("n1", "s1", "r2", None, None).await.unwrap();
    assert_eq!(c.reclaim_node("n1").await.unwrap(), None, "still alive");
    assert_eq!(
        c.heartbeat("n1", 1, LONG).await.unwrap(),
        Beat::Alive { draining: false }
    );
    let n1 = c.nodes().await.unwrap();
    assert_eq!((n1[0].info.id.as_str(), n1[0].used), ("n1", 1));
    assert!(n1[0].alive);
    // Just renewed: its age is a small part of its TTL.
    let age = n1[0].heartbeat_age_ms.expect("a live node's heartbeat age");
    assert!(age < LONG.as_millis() as u64 / 2, "{age} ms");
    f.silence_node("nodes", "n1").await;
    let silent = c.nodes().await.unwrap();
    assert!(!silent[0].alive);
    assert_eq!(silent[0].heartbeat_age_ms, None);
    assert_eq!(
        c.reclaim_node("n1").await.unwrap(),
        Some(vec!["s1".to_string()])
    );
    // What n1 was starting is back in the queue, in its place.
    assert_eq!(c.waiting(0, 10).await.unwrap()[0].id, "r1");
    assert_eq!(c.route("s1").await.unwrap(), None);
    assert_eq!(c.heartbeat("n1", 0, LONG).await.unwrap(), Beat::Lost);
    // Declared lost, it claims nothing until it registers again.
    let r1 = c.waiting(0, 1).await.unwrap().pop().unwrap();
    assert_eq!(c.claim(&r1, "n1").await.unwrap(), Claim::Gone);
    let nodes = c.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0].info.id, "n2");
    assert!(c.drain_node("n2").await.unwrap());
    assert!(!c.drain_node("n1").await.unwrap());
    assert!(nodes[0].alive && !nodes[0].draining);
    assert!(c.nodes().await.unwrap()[0].draining);
    // A draining node claims nothing, even before it hears of the drain.
    c.enqueue(&request("r4", None, 0), 10).await.unwrap();
    let r4 = c.waiting(0, 10).await.unwrap().pop().unwrap();
    assert_eq!(r4.id, "r4");
    assert_eq!(c.claim(&r4, "n2").await.unwrap(), Claim::Gone);
    assert_eq!(
        c.cancel("r4", "client_gone", false).await.unwrap(),
        Cancelled::Removed
    );
    assert_eq!(
        c.heartbeat("n2", 0, LONG).await.unwrap(),
        Beat::Alive { draining: true }
    );
    assert_eq!(c.heartbeat("n9", 0, LONG).await.unwrap(), Beat::Unknown);
    c.remove_node("n2").await.unwrap();
    assert!(c.nodes().await.unwrap().is_empty());
    // Leaving frees the node's routes and claims.
    c.register_node(&node("n3"), LONG).await.unwrap();
    c.enqueue(&request("r3", None, 0), 10).await.unwrap();
    let r3 = c.waiting(0, 10).await.unwrap().pop().unwrap();
    assert_eq!(r3.id, "r3");
    claimed(c.claim(&r3, "n3").await.unwrap());
    c.add_session("n3", "s3", "r9", None, None).await.unwrap();
    c.remove_node("n3").await.unwrap();
    assert!(c.nodes().await.unwrap().is_empty());
    assert_eq!(c.route("s3").await.unwrap(), None);
    assert!(c.waiting(0, 10).await.unwrap().iter().any(|w| w.id == "r3"));
    // A node that left is unknown, not lost: it may register again.
    assert_eq!(c.heartbeat("n3", 0, LONG).await.unwrap(), Beat::Unknown);
}

async fn requests_of_silent_hubs_are_dropped(f: &dyn Fixture) {
    let c = f.cluster("hubs").await;
    // A hub learns whether the store knew it (it did not, after a data loss).
    assert!(!c.hub_heartbeat("hub-1", LONG).await.unwrap());
    assert!(c.hub_heartbeat("hub-1", LONG).await.unwrap());
    c.hub_heartbeat("hub-2", LONG).await.unwrap();
    c.enqueue(&request("r1", None, 0), 10).await.unwrap();
    let mut other = request("r2", None, 0);
    other.hub = "hub-2".into();
    c.enqueue(&other, 10).await.unwrap();
    // hub-1 also has an answer it never delivered.
    c.enqueue(&request("r3", None, 0), 10).await.unwrap();
    let r3 = c.waiting(0, 10).await.unwrap().pop().unwrap();
    assert_eq!(r3.id, "r3");
    let e = claimed(c.claim(&r3, "n1").await.unwrap());
    assert_eq!(
        c.complete(&r3, "n1", e, "answer-3", true).await.unwrap(),
        Completion::Delivered
    );
    assert_eq!(c.forget_dead_hubs().await.unwrap(), (0, vec![]));
    f.silence_hub("hubs", "hub-1").await;
    assert_eq!(
        c.forget_dead_hubs().await.unwrap(),
        (1, vec!["answer-3".to_string()])
    );
    assert_eq!(
        c.request_state("r1").await.unwrap(),
        RequestState::Cancelled
    );
    assert_eq!(c.forget_dead_hubs().await.unwrap(), (0, vec![]));
    let w = c.waiting(0, 10).await.unwrap();
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].id, "r2");
    // An answer is taken once.
    let e = claimed(c.claim(&w[0], "n1").await.unwrap());
    assert_eq!(
        c.complete(&w[0], "n1", e, "answer-2", true).await.unwrap(),
        Completion::Delivered
    );
    assert_eq!(
        c.take_answer("hub-2", "r2").await.unwrap().as_deref(),
        Some("answer-2")
    );
    assert_eq!(c.take_answer("hub-2", "r2").await.unwrap(), None);
    // A node answering for a hub that went silent meanwhile is told nobody waits.
    c.enqueue(&other_hub("r5", "hub-3"), 10).await.unwrap();
    let r5 = c.waiting(0, 10).await.unwrap().pop().unwrap();
    let e = claimed(c.claim(&r5, "n1").await.unwrap());
    assert_eq!(
        c.complete(&r5, "n1", e, "answer-5", true).await.unwrap(),
        Completion::Gone
    );
    assert!(c.try_lock("gc", "hub-2", LONG).await.unwrap());
    assert!(!c.try_lock("gc", "hub-3", LONG).await.unwrap());
    c.remove_hub("hub-2").await.unwrap();
    assert_eq!(c.forget_dead_hubs().await.unwrap(), (0, vec![]));
}

fn other_hub(id: &str, hub: &str) -> QueuedRequest {
    QueuedRequest {
        hub: hub.into(),
        ..request(id, None, 0)
    }
}

async fn a_stale_node_cannot_free_the_place_of_a_request_requeued_elsewhere(f: &dyn Fixture) {
    let c = f.cluster("places").await;
    c.hub_heartbeat("hub", LONG).await.unwrap();
    let r = QueuedRequest {
        id: "r".into(),
        body: "{}".into(),
        pool: Some("web".into()),
        pool_max: 1,
        hub: "hub".into(),
        public_base: String::new(),
        created_at: 1,
        owner: String::new(),
        key_max: 0,
    };
    c.enqueue(&r, 10).await.unwrap();
    let w = c.waiting(0, 1).await.unwrap().pop().unwrap();
    let stale = claimed(c.claim(&w, "stale").await.unwrap());
    // "stale" is declared lost; the request goes back and "fresh" takes it.
    assert!(c.reclaim_node("stale").await.unwrap().is_some());
    let fresh = claimed(c.claim(&w, "fresh").await.unwrap());
    // The stale node's late failure report frees nothing of "fresh".
    assert_eq!(
        c.complete(&w, "stale", stale, "error", false)
            .await
            .unwrap(),
        Completion::Fenced
    );
    assert_eq!(c.pools().await.unwrap(), vec![]);
    c.put_pool(&Pool {
        name: "web".into(),
        max_concurrency: Some(1),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(c.pools().await.unwrap()[0].1, 1);
    assert_eq!(
        c.complete(&w, "fresh", fresh, "ok", true).await.unwrap(),
        Completion::Delivered
    );
    c.add_session("fresh", "s", "r", Some("web"), None)
        .await
        .unwrap();
    assert_eq!(c.pools().await.unwrap()[0].1, 1);
    c.remove_session("fresh", "s").await.unwrap();
    assert_eq!(c.pools().await.unwrap()[0].1, 0);
}

/// A node paused past its TTL is declared lost while starting a request; it
/// rejoins and may even claim the same request again. Its old start must be
/// refused (so it ends that session), the new one served normally.
async fn a_claim_of_a_lost_registration_is_fenced(f: &dyn Fixture) {
    let c = with_hub(f, "fencing").await;
    c.register_node(&node("n1"), LONG).await.unwrap();
    c.register_node(&node("n2"), LONG).await.unwrap();
    c.enqueue(&request("r1", None, 0), 10).await.unwrap();
    c.enqueue(&request("r2", None, 0), 10).await.unwrap();
    let w = c.waiting(0, 10).await.unwrap();
    let old = claimed(c.claim(&w[0], "n1").await.unwrap());
    claimed(c.claim(&w[1], "n1").await.unwrap());
    f.silence_node("fencing", "n1").await;
    assert!(c.reclaim_node("n1").await.unwrap().is_some());
    assert_eq!(c.heartbeat("n1", 0, LONG).await.unwrap(), Beat::Lost);
    c.register_node(&node("n1"), LONG).await.unwrap();
    // Rejoined, n1 takes r1 again under its new registration; n2 takes r2.
    let new = claimed(c.claim(&w[0], "n1").await.unwrap());
    assert_ne!(new, old);
    let other = claimed(c.claim(&w[1], "n2").await.unwrap());
    // The old starts finish late: both refused, whoever holds the claim now.
    assert_eq!(
        c.complete(&w[0], "n1", old, "old-1", true).await.unwrap(),
        Completion::Fenced
    );
    assert_eq!(
        c.complete(&w[1], "n1", old, "old-2", true).await.unwrap(),
        Completion::Fenced
    );
    assert_eq!(c.request_state("r1").await.unwrap(), RequestState::Pending);
    assert_eq!(
        c.complete(&w[0], "n1", new, "new-1", true).await.unwrap(),
        Completion::Delivered
    );
    assert_eq!(
        c.complete(&w[1], "n2", other, "new-2", true).await.unwrap(),
        Completion::Delivered
    );
    for (rid, answer) in [("r1", "new-1"), ("r2", "new-2")] {
        assert_eq!(
            c.take_answer("hub-1", rid).await.unwrap().as_deref(),
            Some(answer)
        );
    }
    // Even after delivery, the old registration is refused.
    assert_eq!(
        c.complete(&w[0], "n1", old, "old-1", true).await.unwrap(),
        Completion::Fenced
    );
}

/// Receives the next message that is not a (re)subscription mark.
pub(crate) async fn next_message(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(String, String)>,
) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = rx.recv().await.expect("subscription open");
            if !m.0.is_empty() {
                return m;
            }
        }
    })
    .await
    .expect("a message within 5 s")
}

async fn work_and_answers_are_announced(f: &dyn Fixture) {
    let c = with_hub(f, "announce").await;
    let mut work = c.subscribe(vec![c.work_channel()]);
    let mut answers = c.subscribe(vec![c.hub_channel("hub-1")]);
    // The first message marks the subscription: what came before may be missed.
    for rx in [&mut work, &mut answers] {
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("subscribed within 5 s");
        assert_eq!(first, Some((String::new(), String::new())));
    }
    c.enqueue(&request("r1", None, 0), 10).await.unwrap();
    assert_eq!(
        next_message(&mut work).await,
        (c.work_channel(), "r1".into())
    );
    let w = c.waiting(0, 1).await.unwrap().pop().unwrap();
    let e = claimed(c.claim(&w, "n1").await.unwrap());
    c.complete(&w, "n1", e, "answer", true).await.unwrap();
    assert_eq!(
        next_message(&mut answers).await,
        (c.hub_channel("hub-1"), "r1".into())
    );
    // A request put back from a lost node is announced as work again.
    c.enqueue(&request("r2", None, 0), 10).await.unwrap();
    assert_eq!(next_message(&mut work).await.1, "r2");
    let w = c.waiting(0, 1).await.unwrap().pop().unwrap();
    claimed(c.claim(&w, "n1").await.unwrap());
    assert!(c.reclaim_node("n1").await.unwrap().is_some());
    assert_eq!(next_message(&mut work).await.1, "requeued");
}

async fn events_are_recorded(f: &dyn Fixture) {
    let c = f.cluster("events").await;
    crate::conformance::event_log(c.as_ref()).await;
    // The session store appends to the same stream.
    let before = c.last_id().await.unwrap();
    let id = c
        .sessions()
        .append(crate::NewEvent::now("session.ended").session("s9"))
        .await
        .unwrap();
    let seen = c
        .read_after(before.as_deref(), 10, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, id);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_cluster_conforms() {
        run_all(&MemoryFixture::default()).await;
    }
}
