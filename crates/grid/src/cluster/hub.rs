//! The hub role: accepts W3C clients, queues new-session requests in the
//! shared store for nodes to claim, routes session commands and websockets
//! to the owning node, and collects what lost nodes and hubs left behind.

use super::{decode_answer, parse_cdp_query, CDP_KEY, SECRET_HEADER};
use crate::http::{self, GridErrorResponse};
use crate::manager::DriverClient;
use crate::proxy::{copy_headers, read_body};
use crate::routes::{
    request_base, session_path, shape, unknown_command, version_document, Endpoints,
};
use crate::tunnel;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use axum::routing::{any, get, post};
use axum::Router;
use gridiron_domain::capabilities::{parse_new_session, select};
use gridiron_domain::pool::{apply_defaults, node_accepts};
use gridiron_domain::{BrowserKind, EndReason, ErrorCode, GridError, GridOptions, Origin};
use gridiron_store::cluster::{Cancelled, NodeState, QueuedRequest, RequestState};
use gridiron_store::{now_ms, Cluster, NewSession, Store};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

/// A store call slower than this counts as an outage.
const SLOW_STORE: Duration = Duration::from_secs(1);

/// How a hub behaves.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Unique id of this hub process.
    pub id: String,
    /// Requests that may wait in the shared queue; more are refused at once.
    pub max_queue: usize,
    /// How long a request may wait for a node.
    pub queue_timeout: Duration,
    /// How long a node may take to start a claimed request.
    pub start_timeout: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The URL clients use to reach the grid; `None` to derive it per request.
    pub public_url: Option<String>,
    /// Shared with the nodes.
    pub secret: String,
    /// A hub whose heartbeat is older than this is gone (its queued requests too).
    pub heartbeat_ttl: Duration,
}

/// A hub: stateless apart from caches; any number may run side by side.
pub struct Hub {
    cfg: HubConfig,
    cluster: Arc<dyn Cluster>,
    store: Arc<dyn Store>,
    client: DriverClient,
    /// Wakes the request waiting for each answer.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Session id -> node URL, so commands need no store read.
    routes: Mutex<HashMap<String, String>>,
    /// The registered nodes, refreshed at most every half second.
    nodes: tokio::sync::Mutex<(Option<Instant>, Vec<NodeState>)>,
    /// Set once the hub is leaving: no more heartbeats.
    leaving: AtomicBool,
    /// Since when the store has answered without failing.
    healthy_since: Mutex<Instant>,
}

impl Hub {
    /// Starts a hub over `cluster`: listens for answers, heartbeats, collects garbage.
    pub async fn start(cluster: Arc<dyn Cluster>, cfg: HubConfig) -> Result<Arc<Self>, String> {
        cluster
            .hub_heartbeat(&cfg.id, cfg.heartbeat_ttl)
            .await
            .map_err(|e| e.to_string())?;
        let hub = Arc::new(Hub {
            store: cluster.sessions(),
            client: crate::manager::driver_client(),
            cfg,
            cluster,
            waiters: Mutex::default(),
            routes: Mutex::default(),
            nodes: tokio::sync::Mutex::new((None, Vec::new())),
            leaving: AtomicBool::new(false),
            healthy_since: Mutex::new(Instant::now()),
        });
        tokio::spawn(hub.clone().listen());
        tokio::spawn(hub.clone().heartbeat());
        tokio::spawn(hub.clone().collect());
        info!(hub = %hub.cfg.id, "hub started");
        Ok(hub)
    }

    /// The hub's router: the same routes as a standalone grid's.
    pub fn router(self: Arc<Self>) -> Router {
        shape(Endpoints {
            status: get(status),
            new_session: post(new_session),
            session: any(session_command),
            cdp: get(cdp_session),
            json_version: get(json_version),
        })
        .with_state(self)
    }

    /// Leaves the grid cleanly: withdraws the requests still waiting here
    /// (ending sessions already started for them), then unregisters.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        let waiting: Vec<String> = self.waiters().keys().cloned().collect();
        for rid in waiting {
            let _ = self.withdraw(&rid).await;
        }
        let _ = self.cluster.remove_hub(&self.cfg.id).await;
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes waiters as answers are announced; after a reconnect (when
    /// announcements may have been missed) wakes them all to look.
    async fn listen(self: Arc<Self>) {
        let mut rx = self
            .cluster
            .subscribe(vec![self.cluster.hub_channel(&self.cfg.id)]);
        while let Some((channel, rid)) = rx.recv().await {
            let waiters = self.waiters();
            if channel.is_empty() {
                waiters.values().for_each(|n| n.notify_one());
            } else if let Some(n) = waiters.get(&rid) {
                n.notify_one();
            }
        }
    }

    /// Renews this hub's heartbeat, in a task of its own so that a long
    /// collection round never makes a live hub look dead.
    async fn heartbeat(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.leaving.load(Ordering::SeqCst) {
                return;
            }
            let asked = Instant::now();
            let beat = self
                .cluster
                .hub_heartbeat(&self.cfg.id, self.cfg.heartbeat_ttl)
                .await;
            if let Err(e) = beat {
                warn!(error = %e, "hub heartbeat failed");
                self.store_failed();
            } else if asked.elapsed() > SLOW_STORE {
                // The store stalled: heartbeats may have expired meanwhile.
                self.store_failed();
            }
        }
    }

    /// Notes a failed store call: the collector waits for a full TTL of
    /// working store before declaring anything lost again.
    fn store_failed(&self) {
        *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether the store has worked long enough that every live node and hub
    /// has heartbeated since (after an outage all heartbeats have expired).
    fn store_settled(&self) -> bool {
        let since = *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner());
        since.elapsed() > self.cfg.heartbeat_ttl.max(Duration::from_secs(2))
    }

    /// One hub at a time declares silent nodes lost and drops requests of
    /// silent hubs.
    async fn collect(self: Arc<Self>) {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds = 0u64;
        loop {
            tick.tick().await;
            if self.leaving.load(Ordering::SeqCst) {
                return;
            }
            rounds += 1;
            if rounds.is_multiple_of(120) {
                // Routes of sessions that ended elsewhere are read again when needed.
                self.routes().clear();
            }
            if !self.store_settled() {
                continue;
            }
            let asked = Instant::now();
            match self
                .cluster
                .try_lock("gc", &self.cfg.id, Duration::from_millis(450))
                .await
            {
                Ok(true) if asked.elapsed() > SLOW_STORE => {
                    self.store_failed();
                    continue;
                }
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    self.store_failed();
                    continue;
                }
            }
            if let Err(e) = self.collect_once(rounds.is_multiple_of(20)).await {
                warn!(error = %e, "garbage collection failed");
                self.store_failed();
            }
        }
    }

    async fn collect_once(&self, deep: bool) -> Result<(), gridiron_store::StoreError> {
        for node in self.cluster.nodes().await? {
            if node.alive {
                continue;
            }
            let Some(sessions) = self.cluster.reclaim_node(&node.info.id).await? else {
                continue;
            };
            warn!(node = %node.info.id, sessions = sessions.len(), "node lost: no heartbeat");
            self.event("node_lost", &[("node", &node.info.id)]).await;
            for sid in sessions {
                self.routes().remove(&sid);
                self.store
                    .end_elsewhere(&sid, EndReason::NodeLost, now_ms())
                    .await?;
                self.event("ended", &[("session", &sid), ("reason", "node_lost")])
                    .await;
            }
        }
        let (forgotten, orphans) = self.cluster.forget_dead_hubs().await?;
        if forgotten > 0 {
            warn!(
                forgotten,
                orphans = orphans.len(),
                "forgot hubs that stopped heartbeating, with their requests"
            );
        }
        for answer in orphans {
            // Started for a client whose hub died before answering it.
            if let Some(sid) = session_of(&answer) {
                self.delete_session(&sid).await;
            }
        }
        if deep {
            self.end_sessions_without_node().await?;
        }
        Ok(())
    }

    /// Sessions recorded as running or starting that no node runs (their node
    /// died between recording and routing) end as `node_lost`.
    async fn end_sessions_without_node(&self) -> Result<(), gridiron_store::StoreError> {
        let grace = (self.cfg.start_timeout + self.cfg.heartbeat_ttl).as_millis() as i64;
        for sid in self.store.unfinished_ids().await? {
            if self.cluster.route(&sid).await?.is_some() {
                continue;
            }
            let Some(rec) = self.store.get(&sid).await? else {
                continue;
            };
            if rec.end_reason.is_none() && now_ms() - rec.created_at > grace {
                warn!(session = %sid, "session has no node; ending it");
                self.store
                    .end_elsewhere(&sid, EndReason::NodeLost, now_ms())
                    .await?;
            }
        }
        Ok(())
    }

    async fn nodes(&self, fresh: bool) -> Result<Vec<NodeState>, gridiron_store::StoreError> {
        let mut cache = self.nodes.lock().await;
        let stale = cache
            .0
            .is_none_or(|t| fresh || t.elapsed() > Duration::from_millis(500));
        if stale {
            *cache = (Some(Instant::now()), self.cluster.nodes().await?);
        }
        Ok(cache.1.clone())
    }

    /// Queues a new-session request and waits for a node's answer.
    async fn new_session(
        self: &Arc<Self>,
        mut body: Value,
        public_base: String,
    ) -> Result<Value, GridError> {
        let request = parse_new_session(&body)?;
        let options = GridOptions::from_capabilities(&request.always_match)?;
        // The pool decides defaults and the concurrency count before any
        // firstMatch entry is chosen, so it must be the same for all of them.
        for first in &request.first_match {
            if GridOptions::from_capabilities(first)?.pool.is_some() {
                return Err(GridError::invalid_argument(
                    "gridiron:options.pool must be set in alwaysMatch, not in firstMatch",
                ));
            }
        }
        let mut pool_max = 0;
        if let Some(name) = &options.pool {
            let pool = self.cluster.pool(name).await.map_err(store_down)?;
            let pool = pool.ok_or_else(|| {
                GridError::not_created(Origin::Client, format!("there is no pool named {name}"))
            })?;
            apply_defaults(&mut body, &pool);
            pool_max = pool.max_concurrency.unwrap_or(0);
        }
        let request = parse_new_session(&body)?;
        self.check_satisfiable(Wanted::WebDriver(&request)).await?;
        let requested = body.get("capabilities").cloned().unwrap_or(Value::Null);
        let queued = QueuedRequest {
            id: uuid::Uuid::new_v4().simple().to_string(),
            body: body.to_string(),
            pool: options.pool.clone(),
            pool_max,
            hub: self.cfg.id.clone(),
            public_base,
            created_at: now_ms(),
        };
        self.queue_and_wait(queued, requested, &options).await
    }

    /// Fails unless some live node that takes new sessions could serve the
    /// request; a node may have joined since the cached list was read, so the
    /// list is read again before refusing.
    async fn check_satisfiable(&self, wanted: Wanted<'_>) -> Result<(), GridError> {
        let verdict = self.satisfiable(wanted, false).await.map_err(store_down)?;
        if verdict.is_ok() {
            return verdict;
        }
        self.satisfiable(wanted, true).await.map_err(store_down)?
    }

    /// Puts a request in the shared queue and waits for a node's answer, the
    /// queue timeout, or the client leaving (the future being dropped).
    async fn queue_and_wait(
        self: &Arc<Self>,
        queued: QueuedRequest,
        requested: Value,
        options: &GridOptions,
    ) -> Result<Value, GridError> {
        let notify = Arc::new(Notify::new());
        self.waiters().insert(queued.id.clone(), notify.clone());
        let mut waiting = Waiter {
            hub: self.clone(),
            rid: queued.id.clone(),
            requested,
            options: options.to_json(),
            since: queued.created_at,
            pending: true,
            listed: true,
        };
        match self.cluster.enqueue(&queued, self.cfg.max_queue).await {
            Ok(Some(_)) => {
                self.event("queued", &[("request", &queued.id), ("hub", &self.cfg.id)])
                    .await
            }
            Ok(None) => {
                waiting.pending = false;
                waiting.listed = false;
                return Err(GridError::not_created(
                    Origin::Grid,
                    format!(
                        "the queue is full ({} requests already waiting); try again later",
                        self.cfg.max_queue
                    ),
                ));
            }
            Err(e) => {
                waiting.pending = false;
                return Err(store_down(e));
            }
        }
        let queue_deadline = tokio::time::Instant::now() + self.cfg.queue_timeout;
        let hard_deadline = queue_deadline + self.cfg.start_timeout;
        loop {
            // Answers are announced; looking now and then covers announcements
            // lost with a connection. Past the queue deadline only a node's
            // start is awaited, so look more often, but never in a tight loop.
            let wake = if tokio::time::Instant::now() < queue_deadline {
                queue_deadline.min(tokio::time::Instant::now() + Duration::from_secs(5))
            } else {
                tokio::time::Instant::now() + Duration::from_millis(250)
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            // Marked taken before the client hears of it: a hub that dies
            // before this leaves the session to the collector to end.
            if let Ok(Some(a)) = self.cluster.take_answer(&self.cfg.id, &queued.id).await {
                waiting.pending = false;
                waiting.listed = false;
                return decode_answer(&a);
            }
            let now = tokio::time::Instant::now();
            match self.cluster.request_state(&queued.id).await {
                // Answered just after the look above: take it at once.
                Ok(RequestState::Answered(_)) => notify.notify_one(),
                Ok(RequestState::Cancelled) => {
                    waiting.pending = false;
                    return Err(GridError::not_created(
                        Origin::Grid,
                        "the request was withdrawn from the queue",
                    ));
                }
                Ok(RequestState::Missing) if now >= queue_deadline => {
                    waiting.pending = false;
                    return Err(GridError::not_created(
                        Origin::Grid,
                        "the grid's store lost the request and it could not be queued again in time",
                    ));
                }
                Ok(RequestState::Missing) => {
                    // The store lost its data (restarted empty): queue it again.
                    warn!(request = %queued.id, "request lost by the store; queueing it again");
                    let _ = self.cluster.enqueue(&queued, self.cfg.max_queue).await;
                }
                Ok(RequestState::Pending) | Err(_) if now < queue_deadline => {}
                Ok(RequestState::Pending) => {
                    let hard = now >= hard_deadline;
                    match self
                        .cluster
                        .cancel(&queued.id, "queue_timeout", !hard)
                        .await
                    {
                        Ok(Cancelled::Answered(a)) => {
                            waiting.pending = false;
                            return decode_answer(&a);
                        }
                        Ok(Cancelled::WhileStarting) if !hard => {}
                        Ok(_) => {
                            waiting.record(EndReason::QueueTimeout);
                            return Err(GridError::not_created(
                                Origin::Grid,
                                format!(
                                    "timed out after {:?} waiting in the queue for a free slot on a node",
                                    self.cfg.queue_timeout
                                ),
                            ));
                        }
                        Err(_) => {}
                    }
                }
                Err(e) if now >= hard_deadline => {
                    waiting.pending = false;
                    return Err(store_down(e));
                }
                Err(_) => {}
            }
        }
    }

    /// `Ok` if some live node that takes new sessions could serve `wanted`;
    /// otherwise the error to answer with.
    async fn satisfiable(
        &self,
        wanted: Wanted<'_>,
        fresh: bool,
    ) -> Result<Result<(), GridError>, gridiron_store::StoreError> {
        let nodes = self.nodes(fresh).await?;
        let mut first_error = None;
        for n in nodes.iter().filter(|n| n.alive && !n.draining) {
            let fits = match wanted {
                Wanted::WebDriver(request) => match select(request, &n.info.stereotypes) {
                    Ok(sel) => GridOptions::from_capabilities(&sel.merged)
                        .is_ok_and(|o| node_accepts(&n.info.profile, &o)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        false
                    }
                },
                Wanted::Cdp(options) => {
                    n.info
                        .stereotypes
                        .iter()
                        .any(|s| s.kind == BrowserKind::Chromium)
                        && node_accepts(&n.info.profile, options)
                }
            };
            if fits {
                return Ok(Ok(()));
            }
        }
        Ok(Err(first_error.unwrap_or_else(|| {
            GridError::not_created(
                Origin::Client,
                "no node of this grid can run the requested capabilities (pool and node labels included)",
            )
        })))
    }

    /// Starts a CDP-only session on some node: the answer's session id.
    async fn new_cdp_session(
        self: &Arc<Self>,
        query: String,
        public_base: String,
    ) -> Result<String, GridError> {
        let request = parse_cdp_query(&query)?;
        self.check_satisfiable(Wanted::Cdp(&request.options))
            .await?;
        let queued = QueuedRequest {
            id: uuid::Uuid::new_v4().simple().to_string(),
            body: json!({ CDP_KEY: query }).to_string(),
            pool: None,
            pool_max: 0,
            hub: self.cfg.id.clone(),
            public_base,
            created_at: now_ms(),
        };
        let requested = json!({ "cdp": request.args });
        let v = self
            .queue_and_wait(queued, requested, &request.options)
            .await?;
        v["value"]["sessionId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                GridError::new(
                    ErrorCode::UnknownError,
                    Origin::Grid,
                    "the node's answer has no session id",
                )
            })
    }

    /// Records a lifecycle event; observers only, so failures are just logged.
    async fn event(&self, kind: &str, fields: &[(&str, &str)]) {
        if let Err(e) = self.cluster.event(kind, fields).await {
            warn!(error = %e, kind, "could not record an event");
        }
    }

    /// The URL of the node running session `sid`, if any.
    async fn node_url(&self, sid: &str) -> Result<Option<String>, gridiron_store::StoreError> {
        if let Some(url) = self.routes().get(sid) {
            return Ok(Some(url.clone()));
        }
        let Some(node) = self.cluster.route(sid).await? else {
            return Ok(None);
        };
        let find = |nodes: Vec<NodeState>| {
            nodes
                .into_iter()
                .find(|n| n.info.id == node)
                .map(|n| n.info.url)
        };
        let url = match find(self.nodes(false).await?) {
            Some(u) => Some(u),
            None => find(self.nodes(true).await?),
        };
        if let Some(u) = &url {
            self.routes().insert(sid.to_string(), u.clone());
        }
        Ok(url)
    }

    /// The answer for a session no node runs, saying why if the store knows.
    async fn not_running(&self, sid: &str, method: &Method, rest: &str) -> Response<Body> {
        match self.store.get(sid).await {
            Ok(Some(rec)) if rec.end_reason.is_some() => {
                if rest.is_empty() && method == Method::DELETE {
                    return http::ok(Value::Null);
                }
                let reason = rec.end_reason.map(|r| r.as_str()).unwrap_or_default();
                http::error(&GridError::invalid_session(format!(
                    "session {sid} has ended ({reason})"
                )))
            }
            Ok(Some(_)) => http::error(&GridError::invalid_session(format!(
                "session {sid} is not running on any node"
            ))),
            Ok(None) => http::error(&GridError::invalid_session(format!(
                "no such session: {sid}"
            ))),
            Err(e) => http::error(&store_error(e)),
        }
    }

    /// A node did not answer: if its heartbeat is gone the session is lost.
    async fn unreachable(&self, sid: &str, url: &str, e: String) -> Response<Body> {
        self.routes().remove(sid);
        let alive = self
            .nodes(true)
            .await
            .map(|ns| ns.iter().any(|n| n.info.url == url && n.alive))
            .unwrap_or(true);
        if alive {
            return http::error(&GridError::new(
                ErrorCode::UnknownError,
                Origin::Grid,
                format!("the node running session {sid} did not answer: {e}"),
            ));
        }
        let _ = self
            .store
            .end_elsewhere(sid, EndReason::NodeLost, now_ms())
            .await;
        http::error(&GridError::invalid_session(format!(
            "session {sid} has ended (node_lost): its node stopped heartbeating"
        )))
    }

    /// Streams a request to the node and its response back.
    async fn forward(&self, node_url: &str, req: Request<Body>) -> Result<Response<Body>, String> {
        let (parts, body) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let uri: Uri = format!("{node_url}{pq}")
            .parse()
            .map_err(|e| format!("bad node URL {node_url}: {e}"))?;
        let mut out = Request::builder()
            .method(parts.method)
            .uri(uri)
            .body(body)
            .map_err(|e| e.to_string())?;
        copy_headers(&parts.headers, out.headers_mut());
        self.sign(out.headers_mut());
        let resp = self.client.request(out).await.map_err(|e| e.to_string())?;
        Ok(resp.map(Body::new))
    }

    fn sign(&self, headers: &mut axum::http::HeaderMap) {
        if let Ok(v) = HeaderValue::from_str(&self.cfg.secret) {
            headers.insert(SECRET_HEADER, v);
        }
    }
}

/// A new session could not be created because the store failed.
fn store_down(e: gridiron_store::StoreError) -> GridError {
    GridError::not_created(
        Origin::Grid,
        format!("the grid's store is unavailable: {e}"),
    )
}

/// Any other request failed because the store failed.
fn store_error(e: gridiron_store::StoreError) -> GridError {
    GridError::new(
        ErrorCode::UnknownError,
        Origin::Grid,
        format!("the grid's store is unavailable: {e}"),
    )
}

/// The websocket URL of `path` on the node at `node_url`.
fn node_ws(node_url: &str, path: &str) -> String {
    format!("{}{path}", node_url.replacen("http://", "ws://", 1))
}

/// What a request needs from a node.
#[derive(Clone, Copy)]
enum Wanted<'a> {
    /// A WebDriver session with these capabilities.
    WebDriver(&'a gridiron_domain::capabilities::CapabilityRequest),
    /// A bare Chromium for a CDP client, with these options.
    Cdp(&'a GridOptions),
}

/// Ends a CDP-only session when its client's tunnel closes, however it closes.
struct CdpOwner {
    hub: Arc<Hub>,
    sid: String,
}

impl Drop for CdpOwner {
    fn drop(&mut self) {
        let (hub, sid) = (self.hub.clone(), std::mem::take(&mut self.sid));
        tokio::spawn(async move { hub.delete_session(&sid).await });
    }
}

/// A request the hub is waiting on. If it is dropped while still pending
/// (its client left), the request is withdrawn, or the session started for it ended.
struct Waiter {
    hub: Arc<Hub>,
    rid: String,
    requested: Value,
    options: Value,
    since: i64,
    /// Still waiting for an answer (its client is still there).
    pending: bool,
    /// Still among the store's open requests of this hub.
    listed: bool,
}

impl Waiter {
    /// Records a request that ended without a session.
    fn record(&mut self, reason: EndReason) {
        self.pending = false;
        let (hub, new) = (self.hub.clone(), self.take_record());
        tokio::spawn(async move { record_unserved(&hub, new, reason).await });
    }

    /// The record of this request, as a session that never started.
    fn take_record(&mut self) -> NewSession {
        NewSession {
            id: self.rid.clone(),
            browser: String::new(),
            requested_caps: std::mem::take(&mut self.requested),
            grid_options: std::mem::take(&mut self.options),
            created_at: self.since,
        }
    }
}

/// The session id in a node's successful answer.
fn session_of(answer: &str) -> Option<String> {
    let v = decode_answer(answer).ok()?;
    v["value"]["sessionId"].as_str().map(str::to_string)
}

/// Writes the record of a request that never got a session.
async fn record_unserved(hub: &Hub, new: NewSession, reason: EndReason) {
    let id = new.id.clone();
    let store = &hub.store;
    hub.event("ended", &[("request", &id), ("reason", reason.as_str())])
        .await;
    info!(request = %id, reason = reason.as_str(), "queued request ended");
    let _ = store.insert(new, true).await;
    let _ = store.mark_ended(&id, reason, now_ms(), 0).await;
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.hub.waiters().remove(&self.rid);
        if !self.pending {
            if self.listed {
                let (hub, rid) = (self.hub.clone(), self.rid.clone());
                tokio::spawn(async move {
                    let _ = hub.cluster.close_request(&hub.cfg.id, &rid).await;
                });
            }
            return;
        }
        let hub = self.hub.clone();
        let new = self.take_record();
        tokio::spawn(async move {
            let rid = new.id.clone();
            if let Ok(Cancelled::Removed) = hub.withdraw(&rid).await {
                record_unserved(&hub, new, EndReason::ClientGone).await;
            }
            let _ = hub.cluster.close_request(&hub.cfg.id, &rid).await;
        });
    }
}

impl Hub {
    /// Withdraws a request whose client is gone; a session already started
    /// for it is ended. Returns where the request stood.
    async fn withdraw(&self, rid: &str) -> Result<Cancelled, gridiron_store::StoreError> {
        let outcome = self.cluster.cancel(rid, "client_gone", false).await?;
        if let Cancelled::Answered(a) = &outcome {
            if let Some(sid) = session_of(a) {
                info!(session = %sid, "client left before the session was handed over");
                self.delete_session(&sid).await;
            }
        }
        Ok(outcome)
    }

    async fn delete_session(&self, sid: &str) {
        let Ok(Some(url)) = self.node_url(sid).await else {
            return;
        };
        let req = Request::delete(format!("/session/{sid}"))
            .body(Body::empty())
            .expect("valid request");
        if let Err(e) = self.forward(&url, req).await {
            warn!(session = %sid, error = %e, "could not end the session");
        }
        self.routes().remove(sid);
    }
}

async fn status(State(hub): State<Arc<Hub>>) -> Response<Body> {
    let (nodes, queue) = match (hub.nodes(false).await, hub.cluster.queue_len().await) {
        (Ok(n), Ok(q)) => (n, q),
        (Err(e), _) | (_, Err(e)) => {
            return http::ok(json!({
                "ready": false,
                "message": format!("Gridiron hub cannot reach its store: {e}"),
                "nodes": [],
            }))
        }
    };
    let usable = |n: &&NodeState| n.alive && !n.draining;
    let capacity: usize = nodes
        .iter()
        .filter(usable)
        .map(|n| n.info.max_sessions)
        .sum();
    let used: usize = nodes.iter().filter(usable).map(|n| n.used).sum();
    let free = capacity.saturating_sub(used);
    let ready = free > 0;
    let message = if ready {
        "Gridiron is ready to create new sessions".to_string()
    } else if capacity == 0 {
        "Gridiron has no node that takes new sessions".to_string()
    } else {
        format!("Gridiron is at capacity ({capacity} slots busy, {queue} waiting)")
    };
    let node_list: Vec<Value> = nodes
        .iter()
        .map(|n| {
            json!({
                "id": n.info.id,
                "uri": n.info.url,
                "availability": if !n.alive { "DOWN" } else if n.draining { "DRAINING" } else { "UP" },
                "maxSessions": n.info.max_sessions,
                "sessions": n.used,
                "stereotypes": n.info.stereotypes.iter().map(http::stereotype).collect::<Vec<_>>(),
                "pools": n.info.profile.pools,
                "labels": n.info.profile.labels,
            })
        })
        .collect();
    http::ok(json!({
        "ready": ready,
        "message": message,
        "build": {"version": env!("CARGO_PKG_VERSION")},
        "hub": hub.cfg.id,
        "maxSessions": capacity,
        "sessions": used,
        "freeSlots": free,
        "queue": queue,
        "nodes": node_list,
    }))
}

async fn new_session(
    State(hub): State<Arc<Hub>>,
    req: Request<Body>,
) -> Result<Response<Body>, GridErrorResponse> {
    let (parts, body) = read_body(req, hub.cfg.max_body_bytes).await?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
    let base = request_base(hub.cfg.public_url.as_deref(), &parts);
    let value = hub.new_session(body, base).await?;
    Ok(http::json(StatusCode::OK, &value))
}

async fn session_command(State(hub): State<Arc<Hub>>, mut req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some((sid, rest)) = session_path(&path) else {
        return unknown_command().await;
    };
    let url = match hub.node_url(sid).await {
        Ok(Some(url)) => url,
        Ok(None) => {
            let method = req.method().clone();
            return hub.not_running(sid, &method, rest).await;
        }
        Err(e) => return http::error(&store_error(e)),
    };
    if tunnel::is_upgrade(&req) {
        hub.sign(req.headers_mut());
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let target = node_ws(&url, pq);
        return tunnel::open(req, &target, (), || {}).await;
    }
    let quit = rest.is_empty() && req.method() == Method::DELETE;
    match hub.forward(&url, req).await {
        Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => http::error(&GridError::new(
            ErrorCode::UnknownError,
            Origin::Grid,
            "the node refused this hub: their cluster secrets differ",
        )),
        Ok(resp) => {
            if quit || resp.status() == StatusCode::NOT_FOUND {
                hub.routes().remove(sid);
            }
            resp
        }
        Err(e) => hub.unreachable(sid, &url, e).await,
    }
}

/// `GET /cdp?...`: a fresh Chromium on some node for a CDP client (Puppeteer,
/// Playwright), tunnelled through this hub; it ends when the client disconnects.
async fn cdp_session(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    mut req: Request<Body>,
) -> Response<Body> {
    if !tunnel::is_upgrade(&req) {
        return http::error(&GridError::invalid_argument(
            "connect a CDP client (Puppeteer, Playwright) with a websocket to this URL",
        ));
    }
    let (parts, body) = req.into_parts();
    let base = request_base(hub.cfg.public_url.as_deref(), &parts);
    req = Request::from_parts(parts, body);
    let sid = match hub.new_cdp_session(query.unwrap_or_default(), base).await {
        Ok(sid) => sid,
        Err(e) => return http::error(&e),
    };
    // From here the owner ends the session however this request ends.
    let owner = CdpOwner {
        hub: hub.clone(),
        sid: sid.clone(),
    };
    let url = match hub.node_url(&sid).await {
        Ok(Some(url)) => url,
        _ => {
            return http::error(&GridError::not_created(
                Origin::Grid,
                "the node that started the browser is gone",
            ))
        }
    };
    hub.sign(req.headers_mut());
    let target = node_ws(&url, &format!("/session/{sid}/se/cdp"));
    tunnel::open(req, &target, owner, || {}).await
}

/// `GET /json/version`: lets `connectOverCDP("http://hub:4444")` find the websocket.
async fn json_version(State(hub): State<Arc<Hub>>, req: Request<Body>) -> Response<Body> {
    let (parts, _) = req.into_parts();
    let version = hub.nodes(false).await.ok().and_then(|ns| {
        ns.iter()
            .flat_map(|n| n.info.stereotypes.iter())
            .find(|s| s.kind == BrowserKind::Chromium)
            .map(|s| s.version.clone())
    });
    version_document(
        &request_base(hub.cfg.public_url.as_deref(), &parts),
        &parts,
        version,
    )
}
