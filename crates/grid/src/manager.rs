//! The session manager: admits requests, queues them for slots, starts
//! sessions through the provisioner, ends them (on quit, timeout, crash,
//! shutdown) and records every step in the store.

use crate::backend::{GridEvent, SessionSummary};
use crate::config::GridConfig;
use crate::session::{Launched, Session};
use crate::slots::{NoSlot, SlotPermit, Slots};
use axum::body::Body;
use bytes::Bytes;
use gridiron_domain::capabilities::{
    driver_capabilities, parse_new_session, route_websockets, select, LaunchDefaults, Selection,
    WebSocketTargets,
};
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::lifecycle::{SessionEvent, Timeouts};
use gridiron_domain::public_url::websocket_base;
use gridiron_domain::queue::Refusal;
use gridiron_domain::{
    BrowserKind, EndReason, ErrorCode, GridError, GridOptions, Origin, Stereotype,
};
use gridiron_provision::{sweep, LocalProvisioner};
use gridiron_store::{now_ms, NewSession, Store};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{info, warn};

/// HTTP client used to talk to drivers (pooled keep-alive, no TLS).
pub type DriverClient = Client<HttpConnector, Body>;

/// A pooled keep-alive HTTP client without Nagle delays.
pub fn driver_client() -> DriverClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // A peer that drops packets fails fast instead of after the OS timeout.
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector)
}

/// Owns every session of this grid.
pub struct Manager {
    /// Settings.
    pub config: GridConfig,
    store: Arc<dyn Store>,
    provisioner: Arc<LocalProvisioner>,
    /// What the configured browsers offer, in preference order.
    catalog: Vec<Stereotype>,
    slots: Arc<Slots>,
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    /// Pooled connections to the drivers.
    pub client: DriverClient,
    shutting_down: AtomicBool,
    shut_down: AtomicBool,
    /// Sessions being started right now; shutdown waits for them.
    starting: Arc<AtomicUsize>,
    /// Told the id of every session that has ended (a node unlists it).
    end_listener: OnceLock<EndListener>,
    /// Lifecycle events, for whoever observes this grid.
    events: tokio::sync::broadcast::Sender<GridEvent>,
    /// This manager, for handing out from `&self` (the router's session lookups).
    this: Weak<Manager>,
}

/// Told the id of each session that ends, and why.
type EndListener = Box<dyn Fn(&str, EndReason) + Send + Sync>;

/// Counts a session start for as long as it lives.
struct Starting(Arc<AtomicUsize>);

impl Starting {
    fn new(counter: &Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Starting(counter.clone())
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Manager {
    /// A manager over `provisioner`'s browsers, recording into `store`.
    /// Starts the timeout watcher.
    pub fn start(
        config: GridConfig,
        store: Arc<dyn Store>,
        provisioner: Arc<LocalProvisioner>,
    ) -> Arc<Self> {
        let client = driver_client();
        let catalog = provisioner
            .installs()
            .iter()
            .map(|i| i.stereotype.clone())
            .collect();
        let m = Arc::new_cyclic(|this| Manager {
            this: this.clone(),
            events: tokio::sync::broadcast::channel(crate::backend::EVENT_BUFFER).0,
            slots: Slots::new(config.max_sessions, config.max_queue),
            config,
            store,
            provisioner,
            catalog,
            sessions: RwLock::default(),
            client,
            shutting_down: AtomicBool::new(false),
            shut_down: AtomicBool::new(false),
            starting: Arc::default(),
            end_listener: OnceLock::new(),
        });
        tokio::spawn(watch_timeouts(Arc::downgrade(&m)));
        m
    }

    /// The running session with this grid id.
    pub fn session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    /// This manager as an `Arc` (it always lives in one).
    pub(crate) fn me(&self) -> Arc<Manager> {
        self.this.upgrade().expect("a manager lives in an Arc")
    }

    /// The store of session records.
    pub(crate) fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// Lifecycle events from now on.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<GridEvent> {
        self.events.subscribe()
    }

    /// Tells observers of an event; nobody listening is fine.
    fn emit(&self, kind: &str, fields: &[(&str, &str)]) {
        let _ = self.events.send(GridEvent::now(kind, fields));
    }

    /// The running sessions, oldest first.
    pub fn summaries(&self) -> Vec<SessionSummary> {
        let mut all: Vec<SessionSummary> = self
            .all_sessions()
            .iter()
            .map(|s| SessionSummary {
                id: s.id.clone(),
                browser: s.browser.clone(),
                started_at: s.started_at_ms,
                name: s.options.name.clone(),
                node: "local".into(),
            })
            .collect();
        all.sort_by_key(|s| s.started_at);
        all
    }

    /// Calls `f` with the id and end reason of every session that ends from now on (once set).
    pub fn on_session_end(&self, f: impl Fn(&str, EndReason) + Send + Sync + 'static) {
        let _ = self.end_listener.set(Box::new(f));
    }

    /// Slots free right now.
    pub fn free_slots(&self) -> usize {
        self.slots.snapshot().0
    }

    /// Slots taken by sessions running or starting.
    pub fn slots_in_use(&self) -> usize {
        let (free, capacity, ..) = self.slots.snapshot();
        capacity.saturating_sub(free)
    }

    /// The browsers this manager can start.
    pub fn catalog(&self) -> &[Stereotype] {
        &self.catalog
    }

    /// Ids of the running sessions.
    pub fn session_ids(&self) -> Vec<String> {
        self.all_sessions()
            .into_iter()
            .map(|s| s.id.clone())
            .collect()
    }

    /// Writes the records of running sessions the store no longer has (it
    /// lost its data). A session the store has as ended is ended here too:
    /// it never comes back.
    pub async fn rewrite_records(self: &Arc<Self>) {
        for s in self.all_sessions() {
            match self.store.get(&s.id).await {
                Ok(Some(rec)) => {
                    if let Some(reason) = rec.end_reason {
                        self.end(&s.id, reason).await;
                    }
                }
                Err(_) => {}
                Ok(None) => {
                    let new = NewSession {
                        id: s.id.clone(),
                        browser: s.browser.clone(),
                        requested_caps: Value::Null,
                        grid_options: s.options.to_json(),
                        created_at: s.started_at_ms,
                    };
                    self.record("insert", self.store.insert(new, false).await);
                    self.record(
                        "mark_running",
                        self.store
                            .mark_running(&s.id, Value::Null, s.started_at_ms)
                            .await,
                    );
                }
            }
        }
    }

    fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The error for a session id that is not running, saying why if the store knows.
    pub async fn unknown_session(&self, id: &str) -> GridError {
        crate::backend::NotRunning::of(self.store.as_ref(), id)
            .await
            .unwrap_or(crate::backend::NotRunning::Unknown)
            .local()
            .error(id)
    }

    /// Handles `POST /session`: validates, waits for a slot, starts the driver,
    /// and returns the W3C response body.
    pub async fn new_session(
        self: &Arc<Self>,
        body: Bytes,
        public_base: String,
    ) -> Result<Value, GridError> {
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
        let request = parse_new_session(&body)?;
        let selection = select(&request, &self.catalog)?;
        let options = GridOptions::from_capabilities(&selection.merged)?;
        let requested = body.get("capabilities").cloned().unwrap_or(body);
        let mut waiting = QueuedRequest {
            m: self.clone(),
            browser: self.catalog[selection.stereotype]
                .kind
                .driver_browser_name(),
            requested: requested.clone(),
            options: options.to_json(),
            since: now_ms(),
            queued: false,
        };
        let permit = self
            .slots
            .acquire(self.config.queue_timeout, |position| {
                waiting.queued = true;
                info!(position, "new session request queued");
                self.emit("queued", &[("position", &position.to_string())]);
            })
            .await;
        let permit = match permit {
            Ok(p) => {
                waiting.queued = false;
                p
            }
            Err(e) => {
                if e == NoSlot::TimedOut {
                    waiting.record(EndReason::QueueTimeout);
                }
                waiting.queued = false;
                return Err(self.no_slot_error(e));
            }
        };
        // Starting runs in its own task so a client that leaves mid-start
        // cannot cancel it half-way; the task tears down what it cannot hand over.
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        tokio::spawn(async move {
            me.provision(permit, selection, options, requested, public_base, tx)
                .await;
        });
        rx.await.unwrap_or_else(|_| {
            Err(GridError::new(
                ErrorCode::SessionNotCreated,
                Origin::Grid,
                "session start was interrupted",
            ))
        })
    }

    fn no_slot_error(&self, e: NoSlot) -> GridError {
        let msg = match e {
            NoSlot::Refused(Refusal::QueueFull) => format!(
                "the queue is full ({} requests already waiting for a free slot); try again later",
                self.config.max_queue
            ),
            NoSlot::Refused(Refusal::ShuttingDown) | NoSlot::Closed => {
                "the grid is shutting down".to_string()
            }
            NoSlot::TimedOut => format!(
                "timed out after {:?} waiting in the queue for a free slot ({} slots, all busy)",
                self.config.queue_timeout, self.config.max_sessions
            ),
        };
        GridError::not_created(Origin::Grid, msg)
    }

    async fn provision(
        self: Arc<Self>,
        permit: SlotPermit,
        selection: Selection,
        options: GridOptions,
        requested: Value,
        public_base: String,
        reply: oneshot::Sender<Result<Value, GridError>>,
    ) {
        let _starting = Starting::new(&self.starting);
        let stereotype = &self.catalog[selection.stereotype];
        let browser = stereotype.kind.driver_browser_name().to_string();
        let driver = match self.provisioner.start(selection.stereotype).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "driver failed to start");
                self.provisioner.replenish(selection.stereotype);
                let _ = reply.send(Err(GridError::not_created(
                    Origin::Driver,
                    format!("the {browser} driver failed to start: {e}"),
                )));
                return;
            }
        };
        let id = driver.session_id.clone();
        self.record_new(&id, &browser, requested, &options).await;
        info!(session = %id, browser = %browser, slot = permit.index, "session provisioning");
        let caps = driver_capabilities(
            &selection.merged,
            stereotype,
            &LaunchDefaults {
                headless: self.config.headless,
                profile_dir: driver.dir.join("profile").to_string_lossy().into_owned(),
            },
        );
        let body = json!({"capabilities": {"alwaysMatch": caps, "firstMatch": [{}]}});
        let answer = tokio::time::timeout(
            self.config.new_session_timeout,
            self.post_json(&format!("{}/session", driver.endpoint), &body),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the driver did not answer within {:?}",
                self.config.new_session_timeout
            ))
        });
        self.provisioner.replenish(selection.stereotype);
        let answer = answer
            .map_err(|e| (e, false))
            .and_then(|(status, v)| granted(status, v));
        let (driver_sid, mut value) = match answer {
            Ok(ok) => ok,
            Err((msg, bad_argument)) => {
                let output = driver.recent_output();
                driver.shutdown().await;
                drop(permit);
                self.record(
                    "mark_ended",
                    self.store
                        .mark_ended(&id, EndReason::FailedToStart, now_ms(), 0)
                        .await,
                );
                warn!(session = %id, error = %msg, "session failed to start");
                let detail = if output.is_empty() || msg.contains(&output) {
                    msg
                } else {
                    format!("{msg}; driver output: {output}")
                };
                let code = if bad_argument {
                    ErrorCode::InvalidArgument
                } else {
                    ErrorCode::SessionNotCreated
                };
                let _ = reply.send(Err(GridError::new(
                    code,
                    Origin::Driver,
                    format!("the {browser} driver could not start a session: {detail}"),
                )));
                return;
            }
        };
        value["sessionId"] = Value::String(id.clone());
        let mut targets = WebSocketTargets::default();
        if let Some(caps) = value.get_mut("capabilities").and_then(Value::as_object_mut) {
            targets = route_websockets(caps, &websocket_base(&public_base), &id);
        }
        let granted_caps = value.get("capabilities").cloned().unwrap_or(Value::Null);
        let timeouts = self.timeouts(&options);
        let launched = Launched {
            driver,
            permit,
            driver_session_id: driver_sid,
            browser,
            options,
            timeouts,
            started_at_ms: now_ms(),
            targets,
        };
        if let Err(e) = self.register(launched, granted_caps).await {
            let _ = reply.send(Err(e));
            return;
        }
        if reply.send(Ok(json!({ "value": value }))).is_err() {
            info!(session = %id, "client left before the session was handed over");
            self.end(&id, EndReason::ClientGone).await;
        }
    }

    fn timeouts(&self, options: &GridOptions) -> Timeouts {
        Timeouts {
            idle: options.idle_timeout.unwrap_or(self.config.idle_timeout),
            max_duration: options.session_timeout.or(self.config.session_timeout),
        }
    }

    /// Makes a launched session visible: listed, recorded as running, and
    /// watched for its process exiting.
    async fn register(
        self: &Arc<Self>,
        launched: Launched,
        granted_caps: Value,
    ) -> Result<Arc<Session>, GridError> {
        let exit = launched.driver.exit_watch();
        let session = Arc::new(Session::new(launched));
        // Known now, while the browser surely runs: a lookup after it died
        // would find nothing, and the crash would go unnoticed.
        session
            .browser_pid
            .get_or_init(|| gridiron_provision::browser_pid(session.driver_pid));
        let id = session.id.clone();
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), session.clone());
        self.record(
            "mark_running",
            self.store
                .mark_running(&id, granted_caps, session.started_at_ms)
                .await,
        );
        info!(session = %id, "session started");
        self.emit(
            "started",
            &[("session", &id), ("browser", &session.browser)],
        );
        let weak = Arc::downgrade(self);
        let watched = id.clone();
        tokio::spawn(async move {
            let mut exit = exit;
            let _ = exit.wait_for(Option::is_some).await;
            if let Some(m) = weak.upgrade() {
                m.end(&watched, EndReason::DriverCrashed).await;
            }
        });
        if self.shutting_down.load(Ordering::SeqCst) {
            self.end(&id, EndReason::Shutdown).await;
            return Err(self.no_slot_error(NoSlot::Closed));
        }
        Ok(session)
    }

    /// Starts a CDP-only session: a bare Chromium for a Puppeteer or Playwright
    /// client, with the same slots, queue, timeouts and records as WebDriver sessions.
    pub async fn new_cdp_session(
        self: &Arc<Self>,
        request: CdpRequest,
    ) -> Result<Arc<Session>, GridError> {
        let install = self
            .catalog
            .iter()
            .position(|s| s.kind == BrowserKind::Chromium)
            .ok_or_else(|| {
                GridError::not_created(
                    Origin::Client,
                    "CDP sessions need Chromium, and this grid has none (see `gridiron doctor`)",
                )
            })?;
        let permit = self
            .slots
            .acquire(self.config.queue_timeout, |position| {
                info!(position, "new CDP session request queued")
            })
            .await
            .map_err(|e| self.no_slot_error(e))?;
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        tokio::spawn(async move {
            let result = me.launch_cdp(permit, install, request).await;
            if let Err(Ok(session)) = tx.send(result) {
                info!(session = %session.id, "client left before the session was handed over");
                me.end(&session.id, EndReason::ClientGone).await;
            }
        });
        rx.await.unwrap_or_else(|_| {
            Err(GridError::not_created(
                Origin::Grid,
                "session start was interrupted",
            ))
        })
    }

    async fn launch_cdp(
        self: &Arc<Self>,
        permit: SlotPermit,
        install: usize,
        request: CdpRequest,
    ) -> Result<Arc<Session>, GridError> {
        let _starting = Starting::new(&self.starting);
        let headless = request.headless.unwrap_or(self.config.headless);
        let browser = self
            .provisioner
            .start_browser(install, request.args.clone(), headless)
            .await
            .map_err(|e| {
                GridError::not_created(Origin::Driver, format!("chromium failed to start: {e}"))
            })?;
        let id = browser.session_id.clone();
        let requested = json!({"cdp": request.args, "headless": headless});
        self.record_new(&id, "chrome", requested, &request.options)
            .await;
        // ws://127.0.0.1:PORT/devtools/browser/ID -> http://127.0.0.1:PORT
        let cdp_http = browser
            .endpoint
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .map(|hostport| format!("http://{hostport}"));
        let granted = json!({"browserName": "chrome", "webSocketDebuggerUrl": browser.endpoint});
        let launched = Launched {
            timeouts: self.timeouts(&request.options),
            driver: browser,
            permit,
            driver_session_id: String::new(),
            browser: "chrome".into(),
            options: request.options,
            started_at_ms: now_ms(),
            targets: WebSocketTargets {
                cdp_http,
                bidi: None,
            },
        };
        self.register(launched, granted).await
    }

    async fn post_json(&self, url: &str, body: &Value) -> Result<(u16, Value), String> {
        let req = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, crate::http::JSON)
            .body(Body::from(body.to_string()))
            .map_err(|e| e.to_string())?;
        self.json_request(req).await
    }

    /// `GET url`, expecting JSON.
    pub async fn get_json(&self, url: &str) -> Result<(u16, Value), String> {
        let req = hyper::Request::get(url)
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        self.json_request(req).await
    }

    /// The version of the Chromium this grid runs, if it has one.
    pub fn chromium_version(&self) -> Option<String> {
        self.catalog
            .iter()
            .find(|s| s.kind == BrowserKind::Chromium)
            .map(|s| s.version.clone())
    }

    async fn json_request(&self, req: hyper::Request<Body>) -> Result<(u16, Value), String> {
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("driver request failed: {e}"))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("driver response failed: {e}"))?
            .to_bytes();
        let v = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "driver answered status {status} with invalid JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        })?;
        Ok((status, v))
    }

    /// Records a session whose processes just started.
    async fn record_new(&self, id: &str, browser: &str, requested: Value, options: &GridOptions) {
        let new = NewSession {
            id: id.to_string(),
            browser: browser.to_string(),
            requested_caps: requested,
            grid_options: options.to_json(),
            created_at: now_ms(),
        };
        self.record("insert", self.store.insert(new, false).await);
    }

    fn record(&self, op: &str, r: Result<(), gridiron_store::StoreError>) {
        if let Err(e) = r {
            warn!(op, error = %e, "store write failed");
        }
    }

    /// Ends a session: stops its processes, returns its slot, records why.
    /// Only the first call for a session does anything.
    pub async fn end(self: &Arc<Self>, id: &str, reason: EndReason) {
        if let Some(session) = self.begin_end(id, reason) {
            self.finish_end(session, reason).await;
        }
    }

    /// First half of ending: claims the session for `reason` and unlists it, so
    /// new commands fail at once and no other end can start. `None` if it is
    /// not running or already ending.
    pub fn begin_end(&self, id: &str, reason: EndReason) -> Option<Arc<Session>> {
        let session = self.session(id)?;
        if !session.apply(SessionEvent::End(reason)) {
            return None;
        }
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        Some(session)
    }

    /// Second half of ending: stops the processes, returns the slot, records it.
    /// Runs in a task of its own, so a caller that is cancelled (its client hung
    /// up) cannot leave a session half ended.
    pub async fn finish_end(self: &Arc<Self>, session: Arc<Session>, reason: EndReason) {
        let m = self.clone();
        let _ = tokio::spawn(async move {
            if let Some((driver, permit)) = session.take_resources() {
                driver.shutdown().await;
                drop(permit);
            }
            session.apply(SessionEvent::CleanedUp);
            let commands = session.command_count();
            m.record(
                "mark_ended",
                m.store
                    .mark_ended(&session.id, reason, now_ms(), commands)
                    .await,
            );
            info!(session = %session.id, reason = reason.as_str(), commands, "session ended");
            m.emit(
                "ended",
                &[("session", &session.id), ("reason", reason.as_str())],
            );
            if let Some(f) = m.end_listener.get() {
                f(&session.id, reason);
            }
        })
        .await;
    }

    /// Whether the session's driver or browser process has died. Reads one or
    /// two `/proc` entries (the browser's pid is looked up when it registers).
    pub fn browser_gone(&self, session: &Session) -> bool {
        if !gridiron_provision::process_alive(session.driver_pid) {
            return true;
        }
        let pid = session
            .browser_pid
            .get_or_init(|| gridiron_provision::browser_pid(session.driver_pid));
        pid.is_some_and(|p| !gridiron_provision::process_alive(p))
    }

    /// Ends the session as `reason` if its browser has died; `true` if it had.
    pub async fn end_if_browser_gone(
        self: &Arc<Self>,
        session: &Session,
        reason: EndReason,
    ) -> bool {
        if !self.browser_gone(session) {
            return false;
        }
        warn!(session = %session.id, reason = reason.as_str(), "browser process is gone");
        self.end(&session.id, reason).await;
        true
    }

    /// Whether [`Manager::shutdown`] has finished.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down.load(Ordering::SeqCst)
    }

    /// Refuses new work, fails waiters, ends every session and stops every
    /// process this grid started.
    pub async fn shutdown(self: &Arc<Self>) {
        if self.shutting_down.swap(true, Ordering::SeqCst) {
            while !self.is_shut_down() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return;
        }
        self.slots.close();
        // Starts already under way finish first (and end themselves, seeing the
        // shutdown), so none is cut off half-way with processes running.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.starting.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut ends = tokio::task::JoinSet::new();
        for s in self.all_sessions() {
            let m = self.clone();
            ends.spawn(async move { m.end(&s.id, EndReason::Shutdown).await });
        }
        while ends.join_next().await.is_some() {}
        self.provisioner.close().await;
        // Anything still carrying our marker (a start that raced shutdown) goes too.
        let stray = sweep::kill_marked(&self.config.data_dir);
        if stray > 0 {
            warn!(stray, "killed processes left after ending sessions");
        }
        remove_session_dirs(&self.provisioner.sessions_dir());
        sweep::remove_tmp_dirs(&self.config.data_dir);
        self.shut_down.store(true, Ordering::SeqCst);
        info!("all sessions ended");
    }

    /// The `GET /status` value.
    pub fn status(&self, uri: &str) -> Value {
        let (free, capacity, waiting, ready) = self.slots.snapshot();
        let ready = ready && !self.shutting_down.load(Ordering::SeqCst) && !self.catalog.is_empty();
        let sessions = self.all_sessions();
        let stereotypes: Vec<Value> = self.catalog.iter().map(crate::http::stereotype).collect();
        let slots: Vec<Value> = (0..capacity)
            .map(|i| {
                let session = sessions.iter().find(|s| s.slot == i).map(|s| {
                    json!({
                        "sessionId": s.id,
                        "browserName": s.browser,
                        "startedAt": s.started_at_ms,
                        "name": s.options.name,
                        "commands": s.command_count(),
                    })
                });
                json!({
                    "id": format!("slot-{i}"),
                    "stereotype": stereotypes.first(),
                    "stereotypes": stereotypes,
                    "session": session,
                })
            })
            .collect();
        let message = if self.shutting_down.load(Ordering::SeqCst) {
            "Gridiron is shutting down".to_string()
        } else if self.catalog.is_empty() {
            "Gridiron found no browser it can run; see `gridiron doctor`".to_string()
        } else if ready {
            "Gridiron is ready to create new sessions".to_string()
        } else {
            format!("Gridiron is at capacity ({capacity} slots busy, {waiting} waiting)")
        };
        json!({
            "ready": ready,
            "message": message,
            "build": {"version": env!("CARGO_PKG_VERSION")},
            "maxSessions": capacity,
            "sessions": sessions.len(),
            "freeSlots": free,
            "queue": waiting,
            "nodes": [{
                "id": "local",
                "uri": uri,
                "availability": if self.shutting_down.load(Ordering::SeqCst) { "DOWN" } else { "UP" },
                "maxSessions": capacity,
                "slots": slots,
            }],
        })
    }
}

/// A request waiting in the queue. If it never gets a slot (it times out, or
/// its client leaves and the request future is dropped), a record says so.
struct QueuedRequest {
    m: Arc<Manager>,
    browser: &'static str,
    requested: Value,
    options: Value,
    since: i64,
    /// Still waiting in line (no slot yet, not refused).
    queued: bool,
}

impl QueuedRequest {
    /// Writes the record of a request that ended in the queue.
    fn record(&mut self, reason: EndReason) {
        self.queued = false;
        let m = self.m.clone();
        let new = NewSession {
            id: uuid::Uuid::new_v4().simple().to_string(),
            browser: self.browser.to_string(),
            requested_caps: std::mem::take(&mut self.requested),
            grid_options: std::mem::take(&mut self.options),
            created_at: self.since,
        };
        info!(request = %new.id, reason = reason.as_str(), "queued request ended");
        tokio::spawn(async move {
            let id = new.id.clone();
            m.record("insert", m.store.insert(new, true).await);
            m.record(
                "mark_ended",
                m.store.mark_ended(&id, reason, now_ms(), 0).await,
            );
        });
    }
}

impl Drop for QueuedRequest {
    fn drop(&mut self) {
        if self.queued {
            self.record(EndReason::ClientGone);
        }
    }
}

/// Checks a driver's new-session answer; returns the driver's session id and
/// the `value`, or the driver's message and whether it blamed the arguments.
fn granted(status: u16, v: Value) -> Result<(String, Value), (String, bool)> {
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    match value.get("sessionId").and_then(Value::as_str) {
        Some(sid) if status == 200 => Ok((sid.to_string(), value)),
        _ => Err((
            value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("driver answered status {status}: {v}")),
            value.get("error").and_then(Value::as_str) == Some("invalid argument"),
        )),
    }
}

/// Removes every session directory; retries briefly, as a process killed a
/// moment ago may still be writing its last files.
fn remove_session_dirs(dir: &std::path::Path) {
    for attempt in 0..5 {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut left = false;
        for e in entries.flatten() {
            left |= std::fs::remove_dir_all(e.path()).is_err();
        }
        if !left {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50 << attempt));
    }
}

/// Prepares a data directory left by an earlier process: kills its leftover
/// processes and removes session files.
pub fn recover_processes(data_dir: &std::path::Path) {
    let killed = sweep::kill_marked(data_dir);
    if killed > 0 {
        warn!(killed, "killed processes left by a previous grid process");
    }
    remove_session_dirs(&data_dir.join("sessions"));
    sweep::remove_tmp_dirs(data_dir);
}

/// [`recover_processes`], then closes the unfinished records of a store that
/// only this grid writes to.
pub async fn recover(data_dir: &std::path::Path, store: &dyn Store) -> usize {
    recover_processes(data_dir);
    match store.close_unfinished(EndReason::Shutdown, now_ms()).await {
        Ok(n) => {
            if n > 0 {
                info!(
                    closed = n,
                    "closed session records left by a previous grid process"
                );
            }
            n
        }
        Err(e) => {
            warn!(error = %e, "could not close unfinished session records");
            0
        }
    }
}

async fn watch_timeouts(m: Weak<Manager>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = m.upgrade() else { return };
        for s in m.all_sessions() {
            let reason = match s.timeout_due() {
                Some(r) => {
                    info!(session = %s.id, reason = r.as_str(), "session timed out");
                    r
                }
                // A running command reports the browser's end itself, with the right reason.
                None if !s.command_running() && m.browser_gone(&s) => EndReason::DriverCrashed,
                None => continue,
            };
            let m = m.clone();
            tokio::spawn(async move { m.end(&s.id, reason).await });
        }
    }
}
