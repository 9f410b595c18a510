//! The shared store suite against a real `redis-server`, started here on a free port.
#![cfg(feature = "redis")]

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
    use gridiron_domain::pool::{NodeProfile, Pool};
    use gridiron_store::cluster::{Beat, Cancelled, Claim, NodeInfo, QueuedRequest, RequestState};
    use gridiron_store::Cluster;
    use std::time::Duration;

    fn request(id: &str, pool: Option<&str>, pool_max: u32) -> QueuedRequest {
        QueuedRequest {
            id: id.into(),
            body: format!(r#"{{"n":"{id}"}}"#),
            pool: pool.map(str::to_string),
            pool_max,
            hub: "hub-1".into(),
            public_base: "http://grid".into(),
            created_at: 1,
        }
    }

    fn node(id: &str) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            url: format!("http://{id}:5555"),
            max_sessions: 2,
            stereotypes: vec![],
            profile: NodeProfile::default(),
            started_at: 1,
        }
    }

    async fn connect(server: &RedisServer, ns: &str) -> Cluster {
        let c = Cluster::connect(&server.url(), ns).await.unwrap();
        c.hub_heartbeat("hub-1", Duration::from_secs(30))
            .await
            .unwrap();
        c
    }

    #[tokio::test]
    async fn the_queue_is_fifo_bounded_and_claimed_once() {
        let server = RedisServer::start();
        let c = connect(&server, "fifo").await;
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
        assert_eq!(c.claim(&waiting[0], "n1").await.unwrap(), Claim::Claimed);
        assert_eq!(c.claim(&waiting[0], "n2").await.unwrap(), Claim::Gone);
        assert_eq!(c.queue_len().await.unwrap(), 4);
        assert_eq!(c.waiting(0, 1).await.unwrap()[0].id, "r1");
        // The answer reaches the hub once; a second completion is refused.
        assert!(c.complete(&waiting[0], "n1", "answer", true).await.unwrap());
        // A retry (its first reply was lost) is told the same; another node is refused.
        assert!(c.complete(&waiting[0], "n1", "answer", true).await.unwrap());
        assert!(!c.complete(&waiting[0], "n2", "again", true).await.unwrap());
        assert_eq!(c.waiting(2, 10).await.unwrap()[0].id, "r3");
        assert_eq!(
            c.request_state("r0").await.unwrap(),
            RequestState::Answered("answer".into())
        );
        assert_eq!(
            c.request_state("nosuch").await.unwrap(),
            RequestState::Missing
        );
    }

    #[tokio::test]
    async fn cancelling_depends_on_where_the_request_is() {
        let server = RedisServer::start();
        let c = connect(&server, "cancel").await;
        for id in ["a", "b", "c"] {
            c.enqueue(&request(id, None, 0), 10).await.unwrap();
        }
        assert_eq!(
            c.cancel("a", "client_gone", false).await.unwrap(),
            Cancelled::Removed
        );
        assert_eq!(c.request_state("a").await.unwrap(), RequestState::Cancelled);
        let w = c.waiting(0, 10).await.unwrap();
        assert_eq!(w[0].id, "b");
        c.claim(&w[0], "n1").await.unwrap();
        // A soft cancel (queue timeout) leaves a started request alone...
        assert_eq!(
            c.cancel("b", "queue_timeout", true).await.unwrap(),
            Cancelled::WhileStarting
        );
        // ...a hard one withdraws it, and the node's answer is then refused.
        assert_eq!(
            c.cancel("b", "client_gone", false).await.unwrap(),
            Cancelled::WhileStarting
        );
        assert!(!c.complete(&w[0], "n1", "late", true).await.unwrap());
        c.claim(&w[1], "n1").await.unwrap();
        c.complete(&w[1], "n1", "done", true).await.unwrap();
        assert_eq!(
            c.cancel("c", "client_gone", false).await.unwrap(),
            Cancelled::Answered("done".into())
        );
        assert_eq!(
            c.cancel("zzz", "client_gone", false).await.unwrap(),
            Cancelled::Missing
        );
    }

    #[tokio::test]
    async fn pools_cap_concurrency_until_sessions_end() {
        let server = RedisServer::start();
        let c = connect(&server, "pools").await;
        let pool = Pool {
            name: "web".into(),
            max_concurrency: Some(1),
            ..Default::default()
        };
        c.put_pool(&pool).await.unwrap();
        assert_eq!(c.pool("web").await.unwrap(), Some(pool.clone()));
        c.enqueue(&request("p1", Some("web"), 1), 10).await.unwrap();
        c.enqueue(&request("p2", Some("web"), 1), 10).await.unwrap();
        let w = c.waiting(0, 10).await.unwrap();
        assert_eq!(c.claim(&w[0], "n1").await.unwrap(), Claim::Claimed);
        assert_eq!(c.claim(&w[1], "n2").await.unwrap(), Claim::PoolFull);
        assert!(c.complete(&w[0], "n1", "ok", true).await.unwrap());
        c.add_session("n1", "s1", "p1", Some("web")).await.unwrap();
        assert_eq!(c.pools().await.unwrap(), vec![(pool, 1)]);
        assert_eq!(c.claim(&w[1], "n2").await.unwrap(), Claim::PoolFull);
        assert_eq!(c.route("s1").await.unwrap().as_deref(), Some("n1"));
        c.remove_session("n1", "s1").await.unwrap();
        assert_eq!(c.route("s1").await.unwrap(), None);
        assert_eq!(c.claim(&w[1], "n2").await.unwrap(), Claim::Claimed);
        // A failed start frees the place at once.
        assert!(c.complete(&w[1], "n2", "error", false).await.unwrap());
        assert_eq!(c.pools().await.unwrap()[0].1, 0);
        assert!(c.delete_pool("web").await.unwrap());
        assert!(!c.delete_pool("web").await.unwrap());
    }

    #[tokio::test]
    async fn silent_nodes_are_reclaimed_and_cannot_come_back() {
        let server = RedisServer::start();
        let c = connect(&server, "nodes").await;
        let ttl = Duration::from_millis(300);
        c.register_node(&node("n1"), ttl).await.unwrap();
        c.register_node(&node("n2"), Duration::from_secs(30))
            .await
            .unwrap();
        c.enqueue(&request("r1", None, 0), 10).await.unwrap();
        c.enqueue(&request("r2", None, 0), 10).await.unwrap();
        let w = c.waiting(0, 10).await.unwrap();
        c.claim(&w[0], "n1").await.unwrap();
        c.claim(&w[1], "n1").await.unwrap();
        c.complete(&w[1], "n1", "ok", true).await.unwrap();
        c.add_session("n1", "s1", "r2", None).await.unwrap();
        assert_eq!(c.reclaim_node("n1").await.unwrap(), None, "still alive");
        assert_eq!(
            c.heartbeat("n1", 1, ttl).await.unwrap(),
            Beat::Alive { draining: false }
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(
            c.reclaim_node("n1").await.unwrap(),
            Some(vec!["s1".to_string()])
        );
        // What n1 was starting is back in the queue, in its place.
        assert_eq!(c.waiting(0, 10).await.unwrap()[0].id, "r1");
        assert_eq!(c.route("s1").await.unwrap(), None);
        assert_eq!(c.heartbeat("n1", 0, ttl).await.unwrap(), Beat::Lost);
        let nodes = c.nodes().await.unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].info.id, "n2");
        assert!(c.drain_node("n2").await.unwrap());
        assert!(!c.drain_node("n1").await.unwrap());
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
            c.heartbeat("n2", 0, Duration::from_secs(30)).await.unwrap(),
            Beat::Alive { draining: true }
        );
        assert_eq!(c.heartbeat("n9", 0, ttl).await.unwrap(), Beat::Unknown);
        c.remove_node("n2").await.unwrap();
        assert!(c.nodes().await.unwrap().is_empty());
        // Leaving frees the node's routes and claims.
        c.register_node(&node("n3"), Duration::from_secs(30))
            .await
            .unwrap();
        c.enqueue(&request("r3", None, 0), 10).await.unwrap();
        let r3 = c.waiting(0, 10).await.unwrap().pop().unwrap();
        assert_eq!(c.claim(&r3, "n3").await.unwrap(), Claim::Claimed);
        c.add_session("n3", "s3", "r9", None).await.unwrap();
        c.remove_node("n3").await.unwrap();
        assert!(c.nodes().await.unwrap().is_empty());
        assert_eq!(c.route("s3").await.unwrap(), None);
        assert!(c.waiting(0, 10).await.unwrap().iter().any(|w| w.id == "r3"));
    }

    #[tokio::test]
    async fn requests_of_silent_hubs_are_dropped() {
        let server = RedisServer::start();
        let c = Cluster::connect(&server.url(), "hubs").await.unwrap();
        c.hub_heartbeat("hub-1", Duration::from_millis(600))
            .await
            .unwrap();
        c.hub_heartbeat("hub-2", Duration::from_secs(30))
            .await
            .unwrap();
        c.enqueue(&request("r1", None, 0), 10).await.unwrap();
        let mut other = request("r2", None, 0);
        other.hub = "hub-2".into();
        c.enqueue(&other, 10).await.unwrap();
        // hub-1 also has an answer it never delivered.
        c.enqueue(&request("r3", None, 0), 10).await.unwrap();
        let r3 = c.waiting(0, 10).await.unwrap().pop().unwrap();
        assert_eq!(r3.id, "r3");
        c.claim(&r3, "n1").await.unwrap();
        assert!(c.complete(&r3, "n1", "answer-3", true).await.unwrap());
        assert_eq!(c.forget_dead_hubs().await.unwrap(), (0, vec![]));
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert_eq!(
            c.forget_dead_hubs().await.unwrap(),
            (1, vec!["answer-3".to_string()])
        );
        let w = c.waiting(0, 10).await.unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].id, "r2");
        // An answer is taken once.
        c.claim(&w[0], "n1").await.unwrap();
        assert!(c.complete(&w[0], "n1", "answer-2", true).await.unwrap());
        assert_eq!(
            c.take_answer("hub-2", "r2").await.unwrap().as_deref(),
            Some("answer-2")
        );
        assert_eq!(c.take_answer("hub-2", "r2").await.unwrap(), None);
        assert!(c
            .try_lock("gc", "hub-2", Duration::from_secs(5))
            .await
            .unwrap());
        assert!(!c
            .try_lock("gc", "hub-3", Duration::from_secs(5))
            .await
            .unwrap());
    }
}

mod pool_places {
    use super::RedisServer;
    use gridiron_store::cluster::{Claim, QueuedRequest};
    use gridiron_store::Cluster;
    use std::time::Duration;

    #[tokio::test]
    async fn a_stale_node_cannot_free_the_place_of_a_request_requeued_elsewhere() {
        let server = RedisServer::start();
        let c = Cluster::connect(&server.url(), "places").await.unwrap();
        c.hub_heartbeat("hub", Duration::from_secs(30))
            .await
            .unwrap();
        let r = QueuedRequest {
            id: "r".into(),
            body: "{}".into(),
            pool: Some("web".into()),
            pool_max: 1,
            hub: "hub".into(),
            public_base: String::new(),
            created_at: 1,
        };
        c.enqueue(&r, 10).await.unwrap();
        let w = c.waiting(0, 1).await.unwrap().pop().unwrap();
        assert_eq!(c.claim(&w, "stale").await.unwrap(), Claim::Claimed);
        // "stale" is declared lost; the request goes back and "fresh" takes it.
        assert!(c.reclaim_node("stale").await.unwrap().is_some());
        assert_eq!(c.claim(&w, "fresh").await.unwrap(), Claim::Claimed);
        // The stale node's late failure report frees nothing of "fresh".
        assert!(!c.complete(&w, "stale", "error", false).await.unwrap());
        assert_eq!(c.pools().await.unwrap(), vec![]);
        c.put_pool(&gridiron_domain::pool::Pool {
            name: "web".into(),
            max_concurrency: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
        assert_eq!(c.pools().await.unwrap()[0].1, 1);
        assert!(c.complete(&w, "fresh", "ok", true).await.unwrap());
        c.add_session("fresh", "s", "r", Some("web")).await.unwrap();
        assert_eq!(c.pools().await.unwrap()[0].1, 1);
        c.remove_session("fresh", "s").await.unwrap();
        assert_eq!(c.pools().await.unwrap()[0].1, 0);
    }
}
