//! Stand-ins for tests: a provisioner whose drivers are in-process fake W3C
//! drivers, so the manager (and what is built on it) runs in Rust tests
//! without a browser. Not for production use.

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use gridiron_domain::{BrowserKind, Stereotype};
use gridiron_provision::{DriverExit, ProvisionError, Provisioner, SessionHandle, SessionProcess};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::watch;

/// A stand-in provisioner: each "driver" is a fake W3C driver served in
/// this process on `127.0.0.1:0` (the answers of `gridiron-standin-driver`),
/// and each "browser" a flag that [`StandinProvisioner::crash`] clears.
/// It counts what it started and what is still alive, and can be told to
/// fail a start or to make starts slow.
pub struct StandinProvisioner {
    /// Where session directories would be; never created.
    sessions_dir: PathBuf,
    /// Counters and switches shared with the handles.
    shared: Arc<Shared>,
}

/// What the provisioner and its handles share.
#[derive(Default)]
struct Shared {
    /// Starts so far, successful or not.
    started: AtomicUsize,
    /// Processes not shut down yet, by session id.
    alive: Mutex<HashMap<String, Arc<StandinProcess>>>,
    /// The next start fails.
    fail_next: AtomicBool,
    /// How long each start takes.
    start_delay: Mutex<Duration>,
    /// Set by `close`: starts are refused.
    closed: AtomicBool,
}

impl StandinProvisioner {
    /// A stand-in offering one Chromium.
    pub fn new() -> Arc<Self> {
        let root = std::env::temp_dir().join(format!(
            "gridiron-standin-{}",
            uuid::Uuid::new_v4().simple()
        ));
        Arc::new(StandinProvisioner {
            sessions_dir: root.join("sessions"),
            shared: Arc::default(),
        })
    }

    /// The directory of the session with this (grid) id, as its process
    /// reports it; the stand-in never creates it, a test may.
    pub fn session_dir(&self, id: &str) -> PathBuf {
        self.sessions_dir.join(id)
    }

    /// Starts asked for so far (including failed ones).
    pub fn started(&self) -> usize {
        self.shared.started.load(Ordering::SeqCst)
    }

    /// Processes started and not shut down yet.
    pub fn alive(&self) -> usize {
        lock(&self.shared.alive).len()
    }

    /// Makes the next start fail as a driver that exited before listening.
    pub fn fail_next_start(&self) {
        self.shared.fail_next.store(true, Ordering::SeqCst);
    }

    /// Makes every start from now on take `delay`.
    pub fn set_start_delay(&self, delay: Duration) {
        *lock(&self.shared.start_delay) = delay;
    }

    /// "Kills" the browser of session `id`; `false` if it has no live process.
    pub fn crash(&self, id: &str) -> bool {
        match lock(&self.shared.alive).get(id) {
            Some(p) => {
                p.browser_killed.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Starts one fake process, serving the fake driver.
    async fn start(&self, cdp: bool) -> Result<SessionHandle, ProvisionError> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(ProvisionError::ShuttingDown);
        }
        self.shared.started.fetch_add(1, Ordering::SeqCst);
        let delay = *lock(&self.shared.start_delay);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if self.shared.fail_next.swap(false, Ordering::SeqCst) {
            return Err(ProvisionError::ExitedEarly {
                exit: Some(DriverExit {
                    code: Some(1),
                    signal: None,
                }),
                output: "the stand-in driver was told to fail".into(),
            });
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(ProvisionError::NoFreePort)?;
        let port = listener
            .local_addr()
            .map_err(ProvisionError::NoFreePort)?
            .port();
        let server = tokio::spawn(async move {
            let app = axum::Router::new().fallback(fake_driver);
            let _ = axum::serve(listener, app).await;
        });
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        let endpoint = if cdp {
            format!("ws://127.0.0.1:{port}/devtools/browser/{session_id}")
        } else {
            format!("http://127.0.0.1:{port}")
        };
        let (exit, _) = watch::channel(None);
        let process = Arc::new(StandinProcess {
            dir: self.sessions_dir.join(&session_id),
            session_id: session_id.clone(),
            endpoint,
            exit,
            browser_killed: AtomicBool::new(false),
            server: Mutex::new(Some(server)),
            shared: Arc::downgrade(&self.shared),
        });
        lock(&self.shared.alive).insert(session_id, process.clone());
        Ok(process)
    }
}

#[async_trait]
impl Provisioner for StandinProvisioner {
    fn stereotypes(&self) -> Vec<Stereotype> {
        vec![Stereotype {
            kind: BrowserKind::Chromium,
            version: gridiron_standin_driver::VERSION.into(),
            platform: "linux".into(),
            binary: "stand-in".into(),
        }]
    }

    async fn start_driver(&self, _browser: usize) -> Result<SessionHandle, ProvisionError> {
        self.start(false).await
    }

    async fn start_browser(
        &self,
        _browser: usize,
        _args: Vec<String>,
        _headless: bool,
    ) -> Result<SessionHandle, ProvisionError> {
        self.start(true).await
    }

    fn replenish(&self, _browser: usize) {}

    async fn close(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    fn sessions_dir(&self) -> PathBuf {
        self.sessions_dir.clone()
    }
}

/// One stand-in session process.
struct StandinProcess {
    session_id: String,
    endpoint: String,
    dir: PathBuf,
    /// Never set by the stand-in itself: its "driver" exits only when shut down.
    exit: watch::Sender<Option<DriverExit>>,
    /// Set by [`StandinProvisioner::crash`].
    browser_killed: AtomicBool,
    /// The fake driver's server task.
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// To leave the provisioner's list of live processes.
    shared: Weak<Shared>,
}

#[async_trait]
impl SessionProcess for StandinProcess {
    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn pid(&self) -> Option<i32> {
        None
    }

    fn exit_watch(&self) -> watch::Receiver<Option<DriverExit>> {
        self.exit.subscribe()
    }

    fn recent_output(&self) -> String {
        String::new()
    }

    async fn browser_started(&self) {}

    fn browser_gone(&self) -> bool {
        self.browser_killed.load(Ordering::SeqCst) || self.exit.borrow().is_some()
    }

    fn kill(&self) {
        // Like a SIGKILL of a real process group: gone at once, cleaned up later.
        if let Some(server) = lock(&self.server).take() {
            server.abort();
        }
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.alive).remove(&self.session_id);
        }
    }

    async fn shutdown(&self) {
        self.kill();
    }
}

/// Answers like chromedriver, through the stand-in driver's own answers.
async fn fake_driver(req: Request<Body>) -> Response<Body> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let (status, v) = gridiron_standin_driver::answer(&method, &path, &body);
    crate::http::json(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &v,
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until `check` holds, polling every 10 ms; fails the test with
/// `what` once `patience` has passed.
pub async fn eventually_within<F, Fut>(patience: std::time::Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + patience;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Stores API key `name` with `role` whose token is `token` (no limits), for
/// tests that call the grid as that key; returns the token.
pub async fn make_key(
    store: &dyn gridiron_store::Store,
    name: &str,
    role: gridiron_domain::auth::Role,
    token: String,
) -> String {
    let key = gridiron_domain::auth::ApiKey {
        name: name.into(),
        role,
        token_hash: gridiron_domain::auth::hash_token(&token),
        max_sessions: None,
        rate: None,
        created_at: 0,
    };
    assert!(store.create_key(key).await.unwrap(), "key {name} exists");
    token
}
