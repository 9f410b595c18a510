//! The hub role: accepts W3C clients through the one front end, queues
//! new-session requests in the shared store for nodes to claim, routes
//! session commands and websockets to the owning node, and collects what lost
//! nodes and hubs left behind.

mod artifacts;
mod collector;
mod control;
mod metrics;
mod queueing;
mod routing;
mod status;

use crate::auth::Caller;
use crate::backend::{Backend, FrontConfig, Located, NotRunning, SessionSummary};
use crate::tasks::Tasks;
use async_trait::async_trait;
use bytes::Bytes;
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::{BrowserKind, EndReason, ErrorCode, GridError, Origin};
use gridiron_store::cluster::NodeState;
use gridiron_store::{Cluster, NewEvent, Store};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{info, warn};

/// How a hub behaves. Its `Debug` leaves the cluster secret out.
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
    /// Shared with the nodes; keys the signature of every request to them.
    pub secret: super::ClusterSecret,
    /// A hub whose heartbeat is older than this is gone (its queued requests too).
    pub heartbeat_ttl: Duration,
    /// What the operator lets clients choose beyond the launch policy
    /// (`--allow-binary`, `--allow-arg`); nothing by default.
    pub launch_allowances: gridiron_domain::launch_policy::LaunchAllowances,
    /// Refuse requests without an API key even while no key exists.
    pub require_auth: bool,
    /// PEM CA certificates trusted for `https://` nodes, besides the
    /// system's roots (for nodes with certificates of a private CA).
    pub node_ca_file: Option<std::path::PathBuf>,
    /// Origins whose web pages may call the grid; others are refused.
    pub allowed_origins: Vec<String>,
    /// Largest new-session request (`POST /session` body, `/cdp` query), in bytes.
    pub max_new_session_bytes: usize,
    /// The bucket the grid's artifacts are stored in (`--artifacts-url`), if
    /// any; without one, nodes keep them and the hub forwards to them.
    pub artifacts_url: Option<String>,
}

/// A hub: stateless apart from caches; any number may run side by side.
pub struct Hub {
    cfg: HubConfig,
    cluster: Arc<dyn Cluster>,
    store: Arc<dyn Store>,
    client: crate::tls::NodeClient,
    /// How `https://` nodes are verified, for commands and tunnels.
    tls: Arc<rustls::ClientConfig>,
    /// Wakes the request waiting for each answer.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    /// Session id -> its node's URL and its owner, so commands need no store read.
    routes: Mutex<HashMap<String, routing::Route>>,
    /// The registered nodes, refreshed at most every half second.
    nodes: tokio::sync::Mutex<(Option<Instant>, Vec<NodeState>)>,
    /// Set once the hub is leaving: no more heartbeats.
    leaving: AtomicBool,
    /// Since when the store has answered without failing.
    healthy_since: Mutex<Instant>,
    /// Where this hub's lifecycle events go: the grid's event stream.
    events: crate::events::EventSink,
    /// The grid's event stream, followed live.
    feed: crate::events::EventFeed,
    /// Every task this hub spawns; leaving stops and awaits them.
    tasks: Tasks,
    /// This hub, for handing out from `&self` (tunnel owners, remote sessions).
    this: std::sync::Weak<Hub>,
    /// The API keys clients present, shared by every hub through the store.
    keyring: Arc<crate::auth::Keyring>,
    /// Body limits, public URL and allowed origins, as every request reads them.
    front: FrontConfig,
    /// What this hub counts; with every other hub's and node's, the grid's metrics.
    metrics: Arc<crate::metrics::Metrics>,
    /// The artifact bucket, read directly (`--artifacts-url`).
    artifacts: Option<Arc<crate::artifacts::Artifacts>>,
}

impl Hub {
    /// Starts a hub over `cluster`: listens for answers, heartbeats, collects garbage.
    pub async fn start(cluster: Arc<dyn Cluster>, cfg: HubConfig) -> Result<Arc<Self>, String> {
        let tls = crate::tls::client_config(cfg.node_ca_file.as_deref())?;
        let metrics = crate::metrics::Metrics::new();
        // Every call to the shared state is timed, wherever it is made.
        let cluster = crate::metrics::timed::TimedCluster::wrap(cluster, metrics.clone());
        cluster
            .hub_heartbeat(&cfg.id, cfg.heartbeat_ttl)
            .await
            .map_err(|e| e.to_string())?;
        let tasks = Tasks::default();
        let artifacts = match cfg.artifacts_url.as_deref() {
            Some(url) => Some(crate::artifacts::Artifacts::new(
                crate::artifacts::backend_for(Some(url), std::path::Path::new("."))?,
                cluster.sessions(),
            )),
            None => None,
        };
        let hub = Arc::new_cyclic(|this| Hub {
            artifacts,
            metrics,
            events: crate::events::EventSink::start(cluster.clone(), &tasks),
            feed: crate::events::EventFeed::new(cluster.clone(), tasks.clone()),
            keyring: crate::auth::Keyring::new(cluster.sessions(), cfg.require_auth),
            front: FrontConfig::new(
                cfg.max_body_bytes,
                cfg.max_new_session_bytes,
                cfg.public_url.clone(),
                cfg.allowed_origins.clone(),
            ),
            store: cluster.sessions(),
            client: crate::tls::node_client(tls.clone()),
            tls,
            cfg,
            cluster,
            waiters: Mutex::default(),
            routes: Mutex::default(),
            nodes: tokio::sync::Mutex::new((None, Vec::new())),
            leaving: AtomicBool::new(false),
            healthy_since: Mutex::new(Instant::now()),
            this: this.clone(),
            tasks,
        });
        hub.tasks.spawn_until_stopped(hub.clone().listen());
        hub.tasks.spawn_until_stopped(hub.clone().heartbeat());
        hub.tasks.spawn_until_stopped(hub.clone().collect());
        crate::metrics::flush::spawn(
            &hub.tasks,
            hub.metrics.clone(),
            hub.cluster.clone(),
            Some(hub.cfg.id.clone()),
        );
        info!(hub = %hub.cfg.id, "hub started");
        Ok(hub)
    }

    /// The hub's router: the one front end, over this hub.
    pub fn router(self: Arc<Self>) -> axum::Router {
        crate::routes::router(self)
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
        self.tasks.close(crate::timing::TASKS_GRACE).await;
        // What it counted since the last flush stays in the grid's totals.
        let _ = self.metrics.flush(self.cluster.as_ref()).await;
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, HashMap<String, routing::Route>> {
        self.routes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes waiters as answers are announced; after a reconnect (when
    /// announcements may have been missed) wakes them all to look.
    async fn listen(self: Arc<Self>) {
        let mut rx = self
            .cluster
            .subscribe(vec![self.cluster.hub_channel(&self.cfg.id)]);
        while let Some((channel, rid)) = rx.recv().await {
            if channel.is_empty() {
                // Reconnected: the store may have restarted and lost its data,
                // this hub's heartbeat with it. Renew it before waiters queue
                // their requests again: a node completing a request of a hub
                // the store does not know as alive drops the answer and ends
                // the session it started.
                self.store_failed();
                if !self.leaving.load(Ordering::SeqCst) {
                    let ttl = self.cfg.heartbeat_ttl;
                    if let Err(e) = self.cluster.hub_heartbeat(&self.cfg.id, ttl).await {
                        warn!(error = %e, "hub heartbeat failed");
                    }
                }
            }
            let waiters = self.waiters();
            if channel.is_empty() {
                waiters.values().for_each(|n| n.notify_one());
            } else if let Some(n) = waiters.get(&rid) {
                n.notify_one();
            }
        }
    }

    /// Records a lifecycle event in the grid's event stream.
    pub(crate) fn emit(&self, event: NewEvent) {
        self.events.emit(event);
    }

    /// Whether the store forgot this hub (it restarted without its data);
    /// if so, the store counts as unsettled from now, as after any outage.
    async fn store_lost_data(&self) -> bool {
        // A leaving hub has unregistered itself, and must stay so.
        if self.leaving.load(Ordering::SeqCst) {
            return false;
        }
        match self
            .cluster
            .hub_heartbeat(&self.cfg.id, self.cfg.heartbeat_ttl)
            .await
        {
            Ok(true) => false,
            Ok(false) => {
                warn!("the store no longer knew this hub; waiting for nodes to re-announce");
                self.store_failed();
                true
            }
            Err(_) => {
                self.store_failed();
                true
            }
        }
    }

    fn me(&self) -> Arc<Hub> {
        self.this.upgrade().expect("a hub lives in an Arc")
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

#[async_trait]
impl Backend for Hub {
    fn front(&self) -> &FrontConfig {
        &self.front
    }

    fn keyring(&self) -> Arc<crate::auth::Keyring> {
        self.keyring.clone()
    }

    async fn new_session(
        self: Arc<Self>,
        body: Bytes,
        public_base: String,
        caller: Caller,
    ) -> Result<Value, GridError> {
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
        self.queue_session(body, public_base, &caller).await
    }

    async fn new_cdp_session(
        self: Arc<Self>,
        request: CdpRequest,
        query: String,
        public_base: String,
        caller: Caller,
    ) -> Result<String, GridError> {
        self.queue_cdp_session(request, query, public_base, &caller)
            .await
    }

    async fn locate(&self, id: &str) -> Result<Located, GridError> {
        // A failing store may be one restarting empty: routes will be late.
        let failed = |e| {
            self.store_failed();
            store_error(e)
        };
        loop {
            if let Some(route) = self.node_route(id).await.map_err(failed)? {
                return Ok(Located::Remote(Box::new(routing::NodeSession {
                    hub: self.me(),
                    id: id.to_string(),
                    node_url: route.url,
                    owner: route.owner,
                })));
            }
            let why = NotRunning::of(self.store.as_ref(), id)
                .await
                .map_err(failed)?;
            // Just after the store came back (perhaps empty), nodes are still
            // announcing their sessions again: a missing route may only be
            // late. Wait for it rather than tell a client its session is gone.
            if matches!(why, NotRunning::Ended(..)) {
                return Ok(Located::NotRunning(why));
            }
            // The store may have come back empty a moment ago, before this
            // hub's next heartbeat would tell: a store that no longer knows
            // this hub lost its data, and the session may be announced again.
            if self.store_settled() && !self.store_lost_data().await {
                return Ok(Located::NotRunning(why));
            }
            tokio::time::sleep(crate::timing::ROUTE_RECHECK).await;
        }
    }

    async fn end_session(&self, id: &str, reason: EndReason) {
        self.delete_session(id, reason).await;
    }

    async fn sessions(&self) -> Result<Vec<SessionSummary>, GridError> {
        self.running_sessions().await.map_err(store_error)
    }

    async fn status(&self, _uri: &str) -> Value {
        self.status_value().await
    }

    async fn chromium_version(&self) -> Option<String> {
        self.nodes(false).await.ok().and_then(|ns| {
            ns.iter()
                .flat_map(|n| n.info.stereotypes.iter())
                .find(|s| s.kind == BrowserKind::Chromium)
                .map(|s| s.version.clone())
        })
    }

    fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    fn event_feed(&self) -> &crate::events::EventFeed {
        &self.feed
    }

    fn emit(&self, event: NewEvent) {
        Hub::emit(self, event)
    }

    fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    async fn metrics_view(&self) -> Result<crate::metrics::MetricsView, GridError> {
        self.grid_metrics().await.map_err(|e| {
            self.store_failed();
            store_error(e)
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    fn cluster(&self) -> Option<Arc<dyn Cluster>> {
        Some(self.cluster.clone())
    }

    fn artifacts(&self) -> Option<Arc<crate::artifacts::Artifacts>> {
        self.artifacts.clone()
    }

    async fn node_alive(&self, node: &str) -> bool {
        self.artifact_node_alive(node).await
    }

    async fn forward_to_node(
        &self,
        node: &str,
        req: axum::http::Request<axum::body::Body>,
    ) -> Option<axum::http::Response<axum::body::Body>> {
        self.forward_artifact_request(node, req).await
    }

    async fn artifacts_settled(&self, id: &str, patience: Duration) -> bool {
        self.artifacts_collected(id, patience).await
    }

    async fn session_node(&self, id: &str) -> Result<Option<String>, GridError> {
        self.cluster.route(id).await.map_err(store_error)
    }

    async fn waiting(&self) -> Result<Vec<crate::api::queue::QueueEntry>, GridError> {
        self.queue_entries().await
    }

    async fn cancel_waiting(&self, id: &str) -> Result<bool, GridError> {
        self.cancel_queued(id).await
    }

    async fn nodes(&self) -> Result<Vec<crate::api::nodes::NodeView>, GridError> {
        self.node_views().await
    }

    async fn drain_node(&self, id: &str) -> Result<bool, GridError> {
        self.cluster.drain_node(id).await.map_err(store_error)
    }
}
