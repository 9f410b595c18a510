//! The shared store suite against a real `redis-server`, started here on a free port.
#![cfg(feature = "redis-server-tests")]

use gridiron_store::{NewSession, RedisStore, Store};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start_on(port: u16, dir: tempfile::TempDir) -> RedisServer {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/install-deps)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child,
            port,
            _dir: dir,
        }
    }

    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::start_on(port, tempfile::tempdir().unwrap())
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server and starts it again on the same port and data.
    fn restart(mut self) -> RedisServer {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        Self::start_on(self.port, dir)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn redis_store_conforms() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "conformance")
        .await
        .unwrap();
    gridiron_store::conformance::run_all(&store).await;
}

#[tokio::test]
async fn redis_webhooks_conform() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "webhooks")
        .await
        .unwrap();
    gridiron_store::webhook_conformance::run_all(&store).await;
    gridiron_store::webhook_conformance::fan_out(&store).await;
}

#[tokio::test]
async fn each_event_is_fanned_out_by_one_hub_and_a_dead_hubs_events_by_another() {
    use gridiron_store::webhooks::WebhookStore;
    use gridiron_store::{EventLog, NewEvent};
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "fanout").await.unwrap();
    let long = Duration::from_secs(3600);
    assert!(store
        .events_to_fan_out("a", 10, long)
        .await
        .unwrap()
        .is_empty());
    let e1 = store.append(NewEvent::now("node.up")).await.unwrap();
    let e2 = store.append(NewEvent::now("node.up")).await.unwrap();
    let a = store.events_to_fan_out("a", 1, long).await.unwrap();
    let b = store.events_to_fan_out("b", 10, long).await.unwrap();
    assert_eq!(a.iter().map(|e| &e.id).collect::<Vec<_>>(), [&e1]);
    assert_eq!(b.iter().map(|e| &e.id).collect::<Vec<_>>(), [&e2]);
    store.events_fanned_out("a", &[e1]).await.unwrap();
    // Hub b dies before confirming e2: nobody gets it while it may still
    // be working on it, then hub a does.
    assert!(store
        .events_to_fan_out("a", 10, long)
        .await
        .unwrap()
        .is_empty());
    let taken = store
        .events_to_fan_out("a", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(taken.iter().map(|e| &e.id).collect::<Vec<_>>(), [&e2]);
    store.events_fanned_out("a", &[e2]).await.unwrap();
    assert!(store
        .events_to_fan_out("a", 10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    // Consumers left behind are pruned once idle long enough, not before.
    let now = gridiron_store::now_ms();
    assert_eq!(store.prune_deliveries(now - 3_600_000).await.unwrap(), 0);
    assert_eq!(store.prune_deliveries(now + 3_600_000).await.unwrap(), 2);
    assert_eq!(store.prune_deliveries(now + 3_600_000).await.unwrap(), 0);
}

#[tokio::test]
async fn namespaces_do_not_see_each_other() {
    let server = RedisServer::start();
    let a = RedisStore::connect(&server.url(), "a").await.unwrap();
    let b = RedisStore::connect(&server.url(), "b").await.unwrap();
    a.insert(
        NewSession {
            id: "x".into(),
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
    assert!(a.get("x").await.unwrap().is_some());
    assert!(b.get("x").await.unwrap().is_none());
    assert_eq!(
        b.close_unfinished(gridiron_domain::EndReason::Shutdown, 2)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_store_recovers_after_redis_restarts() {
    let server = RedisServer::start();
    let store = RedisStore::connect(&server.url(), "restart").await.unwrap();
    let new = |id: &str| NewSession {
        id: id.into(),
        browser: "chrome".into(),
        requested_caps: serde_json::json!({}),
        grid_options: serde_json::json!({}),
        created_at: 1,
        owner: None,
    };
    store.insert(new("before"), false).await.unwrap();
    let server = server.restart();
    // The first calls may fail while the connection is re-established; none may hang.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), store.get("before")).await;
        if let Ok(Ok(Some(r))) = attempt {
            assert_eq!(r.state, "provisioning", "data survived (append-only file)");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "store did not recover: {attempt:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    store.insert(new("after"), false).await.unwrap();
    assert!(store.get("after").await.unwrap().is_some());
    drop(server);
}

mod cluster_state {
    use super::RedisServer;
    use async_trait::async_trait;
    use gridiron_store::cluster::{Cluster, Keys, NodeInfo, QueuedRequest, RedisCluster};
    use gridiron_store::cluster_conformance::{run_all, Fixture};
    use std::sync::Arc;
    use std::time::Duration;

    /// Each check in a namespace of its own; silence is the heartbeat key deleted.
    struct RedisFixture {
        server: RedisServer,
    }

    impl RedisFixture {
        async fn del(&self, key: String) {
            let client = redis::Client::open(self.server.url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let _: i64 = redis::cmd("DEL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
    }

    #[async_trait]
    impl Fixture for RedisFixture {
        async fn cluster(&self, name: &str) -> Arc<dyn Cluster> {
            Arc::new(
                RedisCluster::connect(&self.server.url(), name)
                    .await
                    .unwrap(),
            )
        }
        async fn silence_node(&self, name: &str, node: &str) {
            self.del(Keys::new(name).node_alive(node)).await;
        }
        async fn silence_hub(&self, name: &str, hub: &str) {
            self.del(Keys::new(name).hub_alive(hub)).await;
        }
    }

    #[tokio::test]
    async fn redis_cluster_conforms() {
        run_all(&RedisFixture {
            server: RedisServer::start(),
        })
        .await;
    }

    #[tokio::test]
    async fn heartbeats_expire_after_their_ttl() {
        let server = RedisServer::start();
        let c = RedisCluster::connect(&server.url(), "ttl").await.unwrap();
        let info = NodeInfo {
            id: "n1".into(),
            url: "http://n1:5555".into(),
            max_sessions: 1,
            stereotypes: vec![],
            profile: Default::default(),
            started_at: 1,
        };
        c.register_node(&info, Duration::from_millis(200))
            .await
            .unwrap();
        c.hub_heartbeat("hub-1", Duration::from_millis(200))
            .await
            .unwrap();
        assert_eq!(c.reclaim_node("n1").await.unwrap(), None);
        assert_eq!(c.forget_dead_hubs().await.unwrap(), (0, vec![]));
        // Redis expires the keys itself: wait until it has.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while c.nodes().await.unwrap()[0].alive {
            assert!(
                std::time::Instant::now() < deadline,
                "heartbeat never expired"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(c.reclaim_node("n1").await.unwrap(), Some(vec![]));
        assert_eq!(c.forget_dead_hubs().await.unwrap(), (1, vec![]));
    }

    #[tokio::test]
    async fn malformed_entries_are_skipped() {
        let server = RedisServer::start();
        let c = RedisCluster::connect(&server.url(), "bad").await.unwrap();
        let keys = Keys::new("bad");
        let good = NodeInfo {
            id: "good".into(),
            url: "http://good:5555".into(),
            max_sessions: 1,
            stereotypes: vec![],
            profile: Default::default(),
            started_at: 1,
        };
        c.register_node(&good, Duration::from_secs(30))
            .await
            .unwrap();
        let request = |id: &str| QueuedRequest {
            id: id.into(),
            body: "{}".into(),
            pool: None,
            pool_max: 0,
            hub: "hub".into(),
            public_base: String::new(),
            created_at: 1,
            owner: String::new(),
            key_max: 0,
        };
        c.enqueue(&request("ok"), 10).await.unwrap();
        c.enqueue(&request("broken"), 10).await.unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let () = redis::pipe()
            .sadd(keys.nodes(), "bad")
            .hset(keys.node("bad"), "info", "{not json")
            .hdel(keys.request("broken"), "body")
            .set(keys.pool("web"), "[1,2")
            .sadd(keys.pools(), "web")
            .query_async(&mut conn)
            .await
            .unwrap();
        let nodes = c.nodes().await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].info.id, "good");
        let waiting = c.waiting(0, 10).await.unwrap();
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].id, "ok");
        assert_eq!(c.pool("web").await.unwrap(), None);
        assert!(c.pools().await.unwrap().is_empty());

        // Malformed numbers skip their entry, not the whole read.
        c.enqueue(&request("counted"), 10).await.unwrap();
        c.enqueue(&request("capped"), 10).await.unwrap();
        let () = redis::pipe()
            .hset(keys.node("good"), "used", "many")
            .hset(keys.request("counted"), "pool_max", "-x")
            .hset(keys.request("capped"), "key_max", "1.5")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(c.nodes().await.unwrap().is_empty());
        let waiting = c.waiting(0, 10).await.unwrap();
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        assert_eq!(waiting[0].id, "ok");
    }

    #[tokio::test]
    async fn records_of_an_earlier_version_are_read() {
        let server = RedisServer::start();
        let keys = Keys::new("earlier");
        let c = RedisCluster::connect(&server.url(), "earlier")
            .await
            .unwrap();
        c.hub_heartbeat("hub", Duration::from_secs(30))
            .await
            .unwrap();
        let client = redis::Client::open(server.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let request = QueuedRequest {
            id: "r1".into(),
            body: "{}".into(),
            pool: None,
            pool_max: 0,
            hub: "hub".into(),
            public_base: String::new(),
            created_at: 1,
            owner: String::new(),
            key_max: 0,
        };
        c.enqueue(&request, 10).await.unwrap();
        // Sessions recorded as "rid pool", a request without a score or key limit.
        let () = redis::pipe()
            .hdel(keys.request("r1"), &["score", "key_max"])
            .hset(keys.node_sessions("n1"), "s0", "r0 web")
            .set(keys.route("s0"), "n1")
            .hset(keys.node_sessions("n2"), "s9", "r9 web")
            .set(keys.route("s9"), "n2")
            .sadd(keys.pool_running("web"), &["r0@n1", "r9@n2"])
            .query_async(&mut conn)
            .await
            .unwrap();
        let w = c.waiting(0, 1).await.unwrap().pop().unwrap();
        assert_eq!(w.key_max, 0);
        c.remove_session("n2", "s9").await.unwrap();
        assert_eq!(c.route("s9").await.unwrap(), None);
        assert!(matches!(
            c.claim(&w, "n1").await.unwrap(),
            gridiron_store::cluster::Claim::Claimed { .. }
        ));
        assert_eq!(
            c.reclaim_node("n1").await.unwrap(),
            Some(vec!["s0".to_string()])
        );
        let running: usize = redis::cmd("SCARD")
            .arg(keys.pool_running("web"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(running, 0, "both places were freed");
        let back = c.waiting(0, 1).await.unwrap();
        assert_eq!(back[0].id, "r1", "requeued in its place by its sequence");
    }

    #[tokio::test]
    async fn an_unreachable_store_is_worth_retrying() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = match RedisCluster::connect(&format!("redis://127.0.0.1:{port}/"), "x").await {
            Err(e) => e,
            Ok(_) => panic!("nothing listens on port {port}"),
        };
        assert_eq!(e.kind, gridiron_store::ErrorKind::Unavailable);
        assert!(e.retryable());
    }
}
