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
