//! Builders for a scaled-out grid in one test process: hubs and nodes over
//! one [`MemoryCluster`], each served over real HTTP on `127.0.0.1:0` and
//! each in a "process" of its own (a thread with its own runtime) that a
//! test can freeze, as `SIGSTOP` would.

use crate::cluster::{node_router, Hub, HubConfig, NodeAgent, NodeConfig};
use crate::config::GridConfig;
use crate::driver_client::{driver_client, DriverClient};
use crate::manager::Manager;
use crate::testing::StandinProvisioner;
use axum::body::Body;
use axum::http::{Method, Request};
use gridiron_domain::pool::NodeProfile;
use gridiron_domain::EndReason;
use gridiron_store::{Cluster, MemoryCluster};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

/// The secret hubs and nodes share.
pub const SECRET: &str = "cluster-tests-secret";

/// How long `eventually` waits before failing a test.
pub const PATIENCE: Duration = Duration::from_secs(8);

/// Waits until `check` holds, polling; fails the test with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    crate::testing::eventually_within(PATIENCE, what, check).await
}

/// One role's "process": a thread running its own runtime. Every task the
/// role spawns (HTTP server, heartbeats, stand-in drivers) runs there, so
/// freezing or dropping that runtime stops the whole role at once.
pub struct Process {
    handle: Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Keeps a [`Process`] frozen until dropped.
pub struct Frozen(#[allow(dead_code)] std::sync::mpsc::Sender<()>);

impl Process {
    fn start(name: &str) -> Process {
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                handle_tx.send(rt.handle().clone()).expect("the test waits");
                rt.block_on(async {
                    let _ = stopped.await;
                });
                // Dropping the runtime drops every task of the role.
            })
            .expect("a thread");
        Process {
            handle: handle_rx.recv().expect("the runtime starts"),
            stop: Some(stop),
        }
    }

    /// Runs `f` inside this process and waits for its output.
    pub async fn run<F>(&self, f: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(f).await.expect("the task ran to its end")
    }

    /// Starts `f` inside this process without waiting for it.
    pub fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(f)
    }

    /// Stops every task of the process until the returned guard is dropped.
    pub async fn freeze(&self) -> Frozen {
        let (frozen_tx, frozen_rx) = tokio::sync::oneshot::channel();
        let (thaw_tx, thaw_rx) = std::sync::mpsc::channel::<()>();
        self.handle.spawn(async move {
            let _ = frozen_tx.send(());
            // Blocks the process's only thread: nothing else of it runs.
            let _ = thaw_rx.recv();
        });
        frozen_rx.await.expect("the process freezes");
        Frozen(thaw_tx)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Binds `127.0.0.1:0` and serves `app` there inside the current runtime; the URL.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(crate::serve_app(listener, app, std::future::pending()));
    url
}

/// A hub of the test grid.
pub struct TestHub {
    pub url: String,
    pub process: Process,
}

/// A node of the test grid: its agent, manager and stand-in browsers.
pub struct TestNode {
    pub agent: Arc<NodeAgent>,
    pub m: Arc<Manager>,
    pub standin: Arc<StandinProvisioner>,
    pub id: String,
    pub process: Process,
    _dir: tempfile::TempDir,
    /// Where the node itself listens (its advertised URL may be a proxy's).
    pub url: String,
}

impl TestNode {
    /// Whether this node runs session `sid`.
    pub fn runs(&self, sid: &str) -> bool {
        self.m.session(sid).is_some()
    }
}

/// Hubs and nodes sharing one in-memory cluster.
pub struct Grid {
    pub cluster: Arc<MemoryCluster>,
    pub client: Client,
    /// When set, nodes serve TLS with it (and advertise `https://`).
    pub node_tls: Option<Arc<rustls::ServerConfig>>,
}

impl Grid {
    pub fn new() -> Grid {
        Grid {
            cluster: Arc::new(MemoryCluster::new()),
            client: Client::new(),
            node_tls: None,
        }
    }

    /// A hub with test timings; `tune` adjusts them.
    pub async fn hub(&self, tune: impl FnOnce(&mut HubConfig)) -> TestHub {
        let id = format!("hub-{}", short_id());
        let mut cfg = HubConfig {
            id: id.clone(),
            max_queue: 100,
            queue_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(2),
            max_body_bytes: 1024 * 1024,
            public_url: None,
            secret: SECRET.into(),
            heartbeat_ttl: Duration::from_millis(1500),
            launch_allowances: Default::default(),
            require_auth: false,
            node_ca_file: None,
            allowed_origins: Vec::new(),
            max_new_session_bytes: 1024 * 1024,
            artifacts_url: None,
        };
        tune(&mut cfg);
        let process = Process::start(&id);
        let cluster: Arc<dyn Cluster> = self.cluster.clone();
        let url = process
            .run(async move {
                let hub = Hub::start(cluster, cfg).await.expect("the hub starts");
                serve(hub.router()).await
            })
            .await;
        TestHub { url, process }
    }

    /// A node with `slots` slots and a short heartbeat TTL; `tune` adjusts its config.
    pub async fn node(&self, slots: usize, tune: impl FnOnce(&mut NodeConfig)) -> TestNode {
        let id = format!("node-{}", short_id());
        let mut cfg = NodeConfig {
            id: id.clone(),
            advertise_url: String::new(),
            heartbeat_ttl: Duration::from_millis(400),
            drain_timeout: Duration::from_secs(5),
            profile: NodeProfile::default(),
        };
        tune(&mut cfg);
        let dir = tempfile::tempdir().unwrap();
        let mut grid = GridConfig::with_defaults(slots, dir.path().to_path_buf());
        grid.prewarm = false;
        // A node never queues: it only takes requests it has a free slot for.
        grid.max_queue = slots;
        let standin = StandinProvisioner::new();
        let process = Process::start(&id);
        let cluster: Arc<dyn Cluster> = self.cluster.clone();
        let provisioner = standin.clone();
        let tls = self.node_tls.clone();
        let (agent, m, url) = process
            .run(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let scheme = if tls.is_some() { "https" } else { "http" };
                let url = format!("{scheme}://{}", listener.local_addr().unwrap());
                // A test may advertise a proxy in front of the node instead.
                if cfg.advertise_url.is_empty() {
                    cfg.advertise_url = url.clone();
                }
                let m = Manager::start(grid, cluster.sessions(), provisioner);
                let agent = NodeAgent::start(cluster, m.clone(), cfg)
                    .await
                    .expect("the node registers");
                let app = node_router(m.clone(), SECRET);
                match tls {
                    Some(tls) => tokio::spawn(crate::serve_app_tls(
                        listener,
                        tls,
                        app,
                        std::future::pending(),
                        crate::ServeLimits::default(),
                    )),
                    None => tokio::spawn(crate::serve_app(listener, app, std::future::pending())),
                };
                (agent, m, url)
            })
            .await;
        TestNode {
            agent,
            m,
            standin,
            id,
            process,
            _dir: dir,
            url,
        }
    }

    /// Requests waiting in the shared queue.
    pub async fn queued(&self) -> usize {
        self.cluster.queue_len().await.unwrap()
    }

    /// The end reason the store has for session (or request) `id`.
    pub async fn end_reason(&self, id: &str) -> Option<EndReason> {
        let store = self.cluster.sessions();
        store.get(id).await.unwrap().and_then(|r| r.end_reason)
    }

    /// How many records in the store ended for `reason`.
    pub async fn ended_for(&self, reason: EndReason) -> usize {
        let store = self.cluster.sessions();
        let all = store.list(1000).await.unwrap();
        all.iter().filter(|r| r.end_reason == Some(reason)).count()
    }

    /// Whether the cluster lists `node` as live (and not lost).
    pub async fn node_alive(&self, node: &str) -> bool {
        let nodes = self.cluster.nodes().await.unwrap();
        nodes.iter().any(|n| n.info.id == node && n.alive)
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// A W3C client over HTTP.
#[derive(Clone)]
pub struct Client {
    http: DriverClient,
}

/// An HTTP answer: status and JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The W3C error code, if the answer is an error.
    pub fn error(&self) -> &str {
        self.body["value"]["error"].as_str().unwrap_or("")
    }

    /// The W3C error message.
    pub fn message(&self) -> &str {
        self.body["value"]["message"].as_str().unwrap_or("")
    }

    /// The session id of a new-session answer; fails the test otherwise.
    pub fn session_id(&self) -> String {
        assert_eq!(self.status, 200, "{:?}", self.body);
        self.body["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string()
    }
}

/// A new-session body asking for `always` in `alwaysMatch`.
pub fn caps(always: Value) -> Value {
    json!({"capabilities": {"alwaysMatch": always}})
}

impl Client {
    pub fn new() -> Client {
        Client {
            http: driver_client(),
        }
    }

    /// Sends `method` to `url` with an optional JSON body.
    pub async fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Answer {
        self.call_as(method, url, body, None).await
    }

    /// Sends `method` to `url` with an optional JSON body and API key token.
    pub async fn call_as(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Answer {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let mut req = Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = req.body(body).unwrap();
        let resp = self.http.request(req).await.expect("the grid answers");
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer { status, body }
    }

    /// `POST /session` on the hub at `hub` (a URL).
    pub async fn new_session(&self, hub: &str, always: Value) -> Answer {
        let body = caps(always);
        self.call(Method::POST, &format!("{hub}/session"), Some(&body))
            .await
    }

    /// A command to session `sid` through the hub at `hub`.
    pub async fn command(&self, hub: &str, sid: &str) -> Answer {
        self.call(Method::GET, &format!("{hub}/session/{sid}/title"), None)
            .await
    }

    /// `DELETE /session/{sid}` through the hub at `hub`.
    pub async fn quit(&self, hub: &str, sid: &str) -> Answer {
        self.call(Method::DELETE, &format!("{hub}/session/{sid}"), None)
            .await
    }

    /// Starts a new-session request in a task of its own.
    pub fn spawn_new_session(&self, hub: &str, always: Value) -> tokio::task::JoinHandle<Answer> {
        let (client, hub) = (self.clone(), hub.to_string());
        tokio::spawn(async move { client.new_session(&hub, always).await })
    }
}

/// Sends a new-session request over a raw connection and returns the
/// connection unread: dropping it is a client leaving.
pub async fn send_new_session(hub: &str) -> tokio::net::TcpStream {
    let addr = hub.trim_start_matches("http://");
    let body = caps(json!({})).to_string();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /session HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    stream
}
