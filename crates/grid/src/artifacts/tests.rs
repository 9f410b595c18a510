//! The artifact storage through the one front end of a standalone grid, over
//! real HTTP, on the stand-in provisioner: files a session leaves in its
//! outbox are stored when it ends, listed, streamed with Range, removed, and
//! reachable only by the session's owner.

use crate::config::GridConfig;
use crate::driver_client::{driver_client, DriverClient};
use crate::manager::Manager;
use crate::testing::StandinProvisioner;
use axum::body::Body;
use axum::http::{Method, Request};
use gridiron_domain::auth::Role;
use gridiron_store::{ArtifactIndex, MemoryStore};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

/// A grid with API keys served on `127.0.0.1:0`.
struct Grid {
    m: Arc<Manager>,
    url: String,
    store: Arc<MemoryStore>,
    standin: Arc<StandinProvisioner>,
    http: DriverClient,
    data_dir: tempfile::TempDir,
}

/// An HTTP answer, its body as bytes.
struct Answer {
    status: u16,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

impl Grid {
    async fn start() -> Grid {
        Grid::start_with(|_| {}).await
    }

    async fn start_with(tune: impl FnOnce(&mut GridConfig)) -> Grid {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = GridConfig::with_defaults(2, data_dir.path().to_path_buf());
        config.prewarm = false;
        tune(&mut config);
        let store = Arc::new(MemoryStore::new());
        let standin = StandinProvisioner::new();
        let m = Manager::start(config, store.clone(), standin.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(crate::serve_app(
            listener,
            crate::router(m.clone()),
            std::future::pending(),
        ));
        Grid {
            m,
            url,
            store,
            standin,
            http: driver_client(),
            data_dir,
        }
    }

    async fn key(&self, name: &str, role: Role) -> String {
        let token = format!("token-{name}-{}", uuid::Uuid::new_v4().simple());
        crate::testing::make_key(self.store.as_ref(), name, role, token).await
    }

    async fn call(&self, method: Method, path: &str, token: &str, range: Option<&str>) -> Answer {
        let body = if method == Method::POST {
            json!({"capabilities": {"alwaysMatch": {}}}).to_string()
        } else {
            String::new()
        };
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {token}"));
        if let Some(r) = range {
            req = req.header("range", r);
        }
        let resp = self
            .http
            .request(req.body(Body::from(body)).unwrap())
            .await
            .expect("the grid answers");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.into_body().collect().await.unwrap().to_bytes(),
        }
    }

    /// Starts a session of `token`, writes `files` into its outbox, quits it.
    async fn session_leaving(&self, token: &str, files: &[(&str, &[u8])]) -> String {
        let a = self.call(Method::POST, "/session", token, None).await;
        assert_eq!(a.status, 200);
        let id = a.json()["value"]["sessionId"].as_str().unwrap().to_string();
        let outbox = super::outbox(&self.standin.session_dir(&id));
        for (name, bytes) in files {
            let path = outbox.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let listed = self.list(&id, token).await;
        assert_eq!(listed["complete"], false, "a running session: {listed}");
        let quit = format!("/session/{id}");
        assert_eq!(
            self.call(Method::DELETE, &quit, token, None).await.status,
            200
        );
        // The grid keeps its own timeline of every session: removed, so each
        // test sees the files it left and nothing else.
        assert_eq!(self.list(&id, token).await["complete"], true);
        let timeline = format!("/api/v1/sessions/{id}/artifacts/timeline.json");
        assert_eq!(
            self.call(Method::DELETE, &timeline, token, None)
                .await
                .status,
            204
        );
        id
    }

    async fn list(&self, id: &str, token: &str) -> Value {
        let a = self
            .call(
                Method::GET,
                &format!("/api/v1/sessions/{id}/artifacts"),
                token,
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        a.json()
    }

    fn stored(&self, id: &str) -> PathBuf {
        self.data_dir.path().join("artifacts").join(id)
    }
}

#[tokio::test]
async fn an_ended_sessions_outbox_is_stored_listed_and_served() {
    let g = Grid::start().await;
    let token = g.key("alice", Role::User).await;
    let video: Vec<u8> = (0..=255u8).cycle().take(200_000).collect();
    let id = g
        .session_leaving(
            &token,
            &[("video.mp4", &video), ("downloads/r.csv", b"a,b\n")],
        )
        .await;
    // The list waits for the collection the quit started.
    let listed = g.list(&id, &token).await;
    assert_eq!(listed["complete"], true, "{listed}");
    assert_eq!(listed["sessionId"], id.as_str());
    let arts = listed["artifacts"].as_array().unwrap();
    let names: Vec<&str> = arts.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["downloads/r.csv", "video.mp4"]);
    assert_eq!(arts[1]["size"], 200_000);
    assert_eq!(arts[1]["contentType"], "video/mp4");
    assert_eq!(arts[1]["state"], "ready");
    assert!(arts[1]["created"].as_i64().unwrap() > 0);
    assert!(g.stored(&id).join("video.mp4").is_file());

    let path = format!("/api/v1/sessions/{id}/artifacts/video.mp4");
    let full = g.call(Method::GET, &path, &token, None).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body.as_ref(), video.as_slice());
    assert_eq!(full.headers["content-type"], "video/mp4");
    assert_eq!(full.headers["accept-ranges"], "bytes");
    let part = g
        .call(Method::GET, &path, &token, Some("bytes=1000-1999"))
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], "bytes 1000-1999/200000");
    assert_eq!(part.body.as_ref(), &video[1000..2000]);
    let tail = g.call(Method::GET, &path, &token, Some("bytes=-10")).await;
    assert_eq!((tail.status, tail.body.as_ref()), (206, &video[199_990..]));
    let past = g
        .call(Method::GET, &path, &token, Some("bytes=200000-"))
        .await;
    assert_eq!(past.status, 416);
    assert_eq!(past.headers["content-range"], "bytes */200000");
    let nested = format!("/api/v1/sessions/{id}/artifacts/downloads/r.csv");
    let csv = g.call(Method::GET, &nested, &token, None).await;
    assert_eq!((csv.status, csv.body.as_ref()), (200, b"a,b\n".as_slice()));

    let gone = g.call(Method::DELETE, &nested, &token, None).await;
    assert_eq!(gone.status, 204);
    assert_eq!(g.call(Method::GET, &nested, &token, None).await.status, 404);
    assert_eq!(
        g.list(&id, &token).await["artifacts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn another_keys_artifacts_do_not_exist_for_a_user_key() {
    let g = Grid::start().await;
    let alice = g.key("alice", Role::User).await;
    let bob = g.key("bob", Role::User).await;
    let admin = g.key("root", Role::Admin).await;
    let id = g.session_leaving(&alice, &[("driver.log", b"hello")]).await;
    let list = format!("/api/v1/sessions/{id}/artifacts");
    let one = format!("/api/v1/sessions/{id}/artifacts/driver.log");
    assert_eq!(g.call(Method::GET, &list, &bob, None).await.status, 404);
    assert_eq!(g.call(Method::GET, &one, &bob, None).await.status, 404);
    assert_eq!(g.call(Method::DELETE, &one, &bob, None).await.status, 404);
    assert_eq!(
        g.call(Method::GET, &one, &admin, None).await.body.as_ref(),
        b"hello"
    );
    assert_eq!(g.call(Method::GET, &one, &alice, None).await.status, 200);
}

#[tokio::test]
async fn names_that_leave_the_sessions_directory_are_refused() {
    let g = Grid::start().await;
    let alice = g.key("alice", Role::User).await;
    let id = g.session_leaving(&alice, &[("ok.txt", b"ok")]).await;
    assert_eq!(g.list(&id, &alice).await["complete"], true);
    // Something the attacker would like to read, next to the session's dir.
    std::fs::write(g.stored(&id).join("../secret.txt"), b"secret").unwrap();
    for name in [
        "..%2Fsecret.txt",
        "%2E%2E%2Fsecret.txt",
        "sub%2F..%2F..%2Fsecret.txt",
        "%2Fetc%2Fpasswd",
        "..%5Csecret.txt",
        "ok.txt%00",
    ] {
        let path = format!("/api/v1/sessions/{id}/artifacts/{name}");
        let a = g.call(Method::GET, &path, &alice, None).await;
        assert_eq!(
            a.status,
            400,
            "{name}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.headers["content-type"], "application/problem+json");
        let d = g.call(Method::DELETE, &path, &alice, None).await;
        assert_eq!(d.status, 400, "{name}");
    }
    // A session id that is a path is no session.
    let a = g.call(
        Method::GET,
        "/api/v1/sessions/..%2F..%2Fetc/artifacts/passwd",
        &alice,
        None,
    );
    assert_eq!(a.await.status, 404);
    assert!(g.stored(&id).join("../secret.txt").exists());
}

#[tokio::test]
async fn links_and_odd_files_in_an_outbox_are_not_stored() {
    let g = Grid::start().await;
    let alice = g.key("alice", Role::User).await;
    let a = g.call(Method::POST, "/session", &alice, None).await;
    let id = a.json()["value"]["sessionId"].as_str().unwrap().to_string();
    let outbox = super::outbox(&g.standin.session_dir(&id));
    std::fs::create_dir_all(&outbox).unwrap();
    let secret = g.data_dir.path().join("secret");
    std::fs::write(&secret, b"secret").unwrap();
    std::os::unix::fs::symlink(&secret, outbox.join("video.mp4")).unwrap();
    std::os::unix::fs::symlink(g.data_dir.path(), outbox.join("all")).unwrap();
    std::fs::write(outbox.join("real.txt"), b"real").unwrap();
    let quit = format!("/session/{id}");
    assert_eq!(
        g.call(Method::DELETE, &quit, &alice, None).await.status,
        200
    );
    let listed = g.list(&id, &alice).await;
    let names: Vec<&str> = listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["real.txt", "timeline.json"]);
    let path = format!("/api/v1/sessions/{id}/artifacts/video.mp4");
    assert_eq!(g.call(Method::GET, &path, &alice, None).await.status, 404);
}

fn names(listed: &Value) -> Vec<String> {
    listed["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_quota_removes_the_oldest_ended_artifacts_and_spares_running_sessions() {
    let g = Grid::start_with(|c| c.artifacts_max_bytes = Some(150)).await;
    let alice = g.key("alice", Role::User).await;
    let first = g.session_leaving(&alice, &[("a.bin", &[1; 100])]).await;
    assert_eq!(g.list(&first, &alice).await["complete"], true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = g.session_leaving(&alice, &[("b.bin", &[2; 100])]).await;
    assert_eq!(g.list(&second, &alice).await["complete"], true);
    // A running session with an artifact already stored (as a bucket shared
    // by nodes can hold), older than both.
    let a = g.call(Method::POST, "/session", &alice, None).await;
    let running = a.json()["value"]["sessionId"].as_str().unwrap().to_string();
    let src = g.data_dir.path().join("src");
    std::fs::write(&src, [3; 10]).unwrap();
    g.m.artifacts()
        .backend
        .put_file(&running, "c.bin", &src)
        .await
        .unwrap();
    let rec = gridiron_store::ArtifactRecord {
        session: running.clone(),
        name: "c.bin".into(),
        size: 10,
        content_type: "application/octet-stream".into(),
        owner: Some("alice".into()),
        created_at: 1,
        node: "local".into(),
        location: "local".into(),
    };
    g.store.put_artifact(&rec).await.unwrap();

    assert_eq!(g.m.sweep_artifacts().await.unwrap(), 1);
    assert!(names(&g.list(&first, &alice).await).is_empty());
    assert!(!g.stored(&first).join("a.bin").exists());
    assert_eq!(names(&g.list(&second, &alice).await), ["b.bin"]);
    assert_eq!(names(&g.list(&running, &alice).await), ["c.bin"]);
    // Within the quota now: nothing more goes.
    assert_eq!(g.m.sweep_artifacts().await.unwrap(), 0);
}

#[tokio::test]
async fn reconciliation_indexes_stray_files_and_drops_entries_without_files() {
    let g = Grid::start().await;
    let alice = g.key("alice", Role::User).await;
    let id = g
        .session_leaving(&alice, &[("kept.txt", b"k"), ("gone.txt", b"g")])
        .await;
    assert_eq!(g.list(&id, &alice).await["complete"], true);
    // The process died between storing a file and indexing it, and a file
    // vanished behind the grid's back.
    std::fs::write(g.stored(&id).join("stray.log"), b"stray").unwrap();
    std::fs::remove_file(g.stored(&id).join("gone.txt")).unwrap();
    assert_eq!(g.m.reconcile_artifacts().await.unwrap(), (1, 1));
    let listed = g.list(&id, &alice).await;
    assert_eq!(names(&listed), ["kept.txt", "stray.log"]);
    let stray = &listed["artifacts"][1];
    assert_eq!(
        (stray["size"].as_u64(), stray["contentType"].as_str()),
        (Some(5), Some("text/plain; charset=utf-8"))
    );
    // Indexed with the session's owner: alice reaches it.
    let path = format!("/api/v1/sessions/{id}/artifacts/stray.log");
    assert_eq!(
        g.call(Method::GET, &path, &alice, None).await.body.as_ref(),
        b"stray"
    );
    assert_eq!(g.m.reconcile_artifacts().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn a_node_adopts_its_data_dirs_files_and_leaves_other_nodes_entries() {
    let g = Grid::start().await;
    // A node gets a new id at each start; its data dir is the same.
    g.m.set_node_id("node-new");
    let entry = |session: &str, node: &str| gridiron_store::ArtifactRecord {
        session: session.into(),
        name: "video.mp4".into(),
        size: 4,
        content_type: "video/mp4".into(),
        owner: None,
        created_at: 10,
        node: node.into(),
        location: "local".into(),
    };
    std::fs::create_dir_all(g.stored("mine")).unwrap();
    std::fs::write(g.stored("mine").join("video.mp4"), b"mine").unwrap();
    g.store
        .put_artifact(&entry("mine", "node-old"))
        .await
        .unwrap();
    g.store
        .put_artifact(&entry("theirs", "node-other"))
        .await
        .unwrap();
    assert_eq!(g.m.reconcile_artifacts().await.unwrap(), (1, 0));
    let adopted = g
        .store
        .artifact("mine", "video.mp4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (adopted.node.as_str(), adopted.created_at),
        ("node-new", 10)
    );
    // Another node's entry is its own business (or lost with it).
    let theirs = g
        .store
        .artifact("theirs", "video.mp4")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(theirs.node, "node-other");
}

#[tokio::test]
async fn the_maximum_age_removes_old_artifacts_of_ended_sessions() {
    let g =
        Grid::start_with(|c| c.artifacts_max_age = Some(std::time::Duration::from_millis(1))).await;
    let alice = g.key("alice", Role::User).await;
    let id = g.session_leaving(&alice, &[("old.log", b"old")]).await;
    assert_eq!(g.list(&id, &alice).await["complete"], true);
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(g.m.sweep_artifacts().await.unwrap(), 1);
    assert!(names(&g.list(&id, &alice).await).is_empty());
    assert!(!g.stored(&id).join("old.log").exists());
}
