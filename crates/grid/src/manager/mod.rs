//! The session manager: admits requests, queues them for slots, starts
//! sessions through the provisioner, ends them (on quit, timeout, crash,
//! shutdown) and records every step in the store.
//!
//! One concern per file: [`admission`] (validation, slots, queue),
//! [`launch`] (starting WebDriver and CDP sessions, registering them),
//! [`ending`] (ends and crash checks), [`records`] (the store),
//! [`shutdown`] (shutdown, recovery, file cleanup), [`status`] (`/status`)
//! and [`reaper`] (the timeout watcher).

mod admission;
mod ending;
mod launch;
mod reaper;
mod records;
mod shutdown;
mod status;
#[cfg(test)]
mod tests;
mod waitlist;
mod warm;

pub(crate) use admission::requested_capabilities;
pub use shutdown::{recover, recover_processes};
// The hub reaches its nodes with the same client.
pub(crate) use crate::driver_client::{driver_client, DriverClient};

use crate::backend::SessionSummary;
use crate::config::GridConfig;
use crate::driver_client::{self, DriverError};
use crate::session::Session;
use crate::slots::Slots;
use crate::tasks::Tasks;
use gridiron_domain::events;
use gridiron_domain::lifecycle::Timeouts;
use gridiron_domain::{BrowserKind, EndReason, GridOptions, Stereotype};
use gridiron_provision::Provisioner;
use gridiron_store::NewEvent;
use gridiron_store::Store;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, RwLock, Weak};
use tokio::sync::watch;

/// Owns every session of this grid.
pub struct Manager {
    /// Settings.
    pub config: GridConfig,
    /// Where every session's life is recorded.
    pub(crate) store: Arc<dyn Store>,
    /// Starts the sessions' processes.
    provisioner: Arc<dyn Provisioner>,
    /// What the configured browsers offer, in preference order.
    catalog: Vec<Stereotype>,
    /// Capacity and the waiting line.
    slots: Arc<Slots>,
    /// The running sessions by grid id.
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    /// Sessions that have ended but whose end is not yet in the store, with
    /// why and whose: until it is, this is what answers for them.
    ending: std::sync::Mutex<HashMap<String, (EndReason, Option<String>)>>,
    /// Pooled connections to the drivers.
    pub client: DriverClient,
    /// Set when shutdown begins: new work is refused.
    shutting_down: AtomicBool,
    /// Turns `true` when shutdown has finished; later callers wait on it.
    shut_down: watch::Sender<bool>,
    /// Sessions being started right now; shutdown waits for it to reach 0.
    starting: watch::Sender<usize>,
    /// Told the id of every session that has ended (a node unlists it).
    end_listener: OnceLock<EndListener>,
    /// Every task this grid spawns; shutdown stops and awaits them.
    pub(crate) tasks: Tasks,
    /// Where lifecycle events go: the store's event log.
    events: crate::events::EventSink,
    /// Writes session records in lifecycle order, off the request path.
    records: records::RecordWriter,
    /// The event log, followed live.
    feed: crate::events::EventFeed,
    /// The node this manager runs the sessions of, as events name it.
    node_id: OnceLock<String>,
    /// This manager, for handing out from `&self` (the router's session lookups).
    this: Weak<Manager>,
    /// The API keys its front end checks (a node's front end trusts its hubs instead).
    pub(crate) keyring: Arc<crate::auth::Keyring>,
    /// Body limits, public URL and allowed origins, as every request reads them.
    pub(crate) front: crate::backend::FrontConfig,
    /// What this grid counts for `/metrics`.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
    /// The requests waiting for a slot, for the control plane to list and cancel.
    pub(crate) waitlist: waitlist::WaitList,
    /// Unix ms when this manager started (the `local` node's start).
    pub(crate) started_at_ms: i64,
    /// Sessions started ahead of demand (`--warm`).
    warm: warm::WarmPool,
    /// Where the sessions' artifacts are kept.
    pub(crate) artifacts: Arc<crate::artifacts::Artifacts>,
    /// Set once the artifact keeper runs.
    pub(crate) artifact_keeper: OnceLock<()>,
}

/// Told the id of each session that ends, and why.
type EndListener = Box<dyn Fn(&str, EndReason) + Send + Sync>;

/// Counts a session start for as long as it lives.
struct Starting(watch::Sender<usize>);

impl Starting {
    fn new(counter: &watch::Sender<usize>) -> Self {
        counter.send_modify(|n| *n += 1);
        Starting(counter.clone())
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Manager {
    /// A manager over `provisioner`'s browsers, recording into `store`.
    /// Starts the timeout watcher.
    pub fn start(
        config: GridConfig,
        store: Arc<dyn Store>,
        provisioner: Arc<dyn Provisioner>,
    ) -> Arc<Self> {
        let metrics = crate::metrics::Metrics::new();
        // Every store call is timed, wherever it is made.
        let store = crate::metrics::timed::TimedStore::wrap(store, metrics.clone());
        let tasks = Tasks::default();
        let m = Arc::new_cyclic(|this| Manager {
            metrics,
            this: this.clone(),
            events: crate::events::EventSink::start(store.clone(), &tasks),
            records: records::RecordWriter::start(store.clone(), &tasks),
            feed: crate::events::EventFeed::new(store.clone(), tasks.clone()),
            node_id: OnceLock::new(),
            tasks,
            slots: Slots::new(config.max_sessions, config.max_queue),
            warm: warm::WarmPool::new(Manager::warm_targets(
                &provisioner.stereotypes(),
                &config,
                provisioner.chromium_sandbox(),
            )),
            catalog: provisioner.stereotypes(),
            artifacts: crate::artifacts::Artifacts::new(
                crate::artifacts::backend_for(config.artifacts_url.as_deref(), &config.data_dir)
                    .unwrap_or_else(|e| {
                        // The command line checked it; a library caller may not have.
                        tracing::error!(error = %e, "artifacts are kept in the data directory");
                        crate::artifacts::backend_for(None, &config.data_dir)
                            .expect("the local backend always builds")
                    }),
                store.clone(),
            ),
            artifact_keeper: OnceLock::new(),
            keyring: crate::auth::Keyring::new(store.clone(), config.require_auth),
            front: crate::backend::FrontConfig::new(
                config.max_body_bytes,
                config.max_new_session_bytes,
                config.public_url.clone(),
                config.allowed_origins.clone(),
            ),
            config,
            store,
            provisioner,
            sessions: RwLock::default(),
            ending: std::sync::Mutex::default(),
            client: driver_client(),
            shutting_down: AtomicBool::new(false),
            shut_down: watch::Sender::new(false),
            starting: watch::Sender::new(0),
            end_listener: OnceLock::new(),
            waitlist: waitlist::WaitList::default(),
            started_at_ms: gridiron_store::now_ms(),
        });
        m.tasks
            .spawn_until_stopped(reaper::watch_timeouts(Arc::downgrade(&m)));
        m.tasks
            .spawn_until_stopped(reaper::prune_records(Arc::downgrade(&m)));
        if m.warm.enabled() {
            m.tasks
                .spawn_until_stopped(warm::keep_warm(Arc::downgrade(&m)));
        }
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

    /// Ids of the running sessions.
    pub fn session_ids(&self) -> Vec<String> {
        self.all_sessions()
            .into_iter()
            .map(|s| s.id.clone())
            .collect()
    }

    fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// This manager as an `Arc` (it always lives in one).
    pub(crate) fn me(&self) -> Arc<Manager> {
        self.this.upgrade().expect("a manager lives in an Arc")
    }

    /// The tasks this grid runs (a node's agent runs its own among them).
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The grid's events, live.
    pub fn event_feed(&self) -> &crate::events::EventFeed {
        &self.feed
    }

    /// Names the node whose sessions this manager runs, in its events
    /// (`local` until then: a standalone grid is its own one node).
    pub fn set_node_id(&self, id: &str) {
        let _ = self.node_id.set(id.to_string());
    }

    /// The node this manager's sessions run on, as events and lists name it.
    pub fn node_id(&self) -> &str {
        self.node_id.get().map_or("local", String::as_str)
    }

    /// Records an event of this grid, about this node unless it names another.
    pub(crate) fn emit(&self, mut event: NewEvent) {
        if event.node.is_none() {
            event.node = Some(self.node_id().to_string());
        }
        self.events.emit(event);
    }

    /// Records that `session` is being used: it has run this many commands.
    pub(crate) fn activity(&self, session: &Session) {
        self.emit(
            NewEvent::now(events::SESSION_ACTIVITY)
                .session(&session.id)
                .owner(session.owner.as_deref())
                .with("commands", session.command_count()),
        );
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

    /// Slots free right now (a warm session's slot is free for any request).
    pub fn free_slots(&self) -> usize {
        self.slot_snapshot().0
    }

    /// Slots taken by sessions running or starting.
    pub fn slots_in_use(&self) -> usize {
        let (free, capacity, ..) = self.slot_snapshot();
        capacity.saturating_sub(free)
    }

    /// (free, capacity, waiting, ready) as clients see them: slots held by
    /// warm sessions count as free, since any request gets one at once.
    fn slot_snapshot(&self) -> (usize, usize, usize, bool) {
        let (free, capacity, waiting, ready) = self.slots.snapshot();
        let warm = self.warm.held();
        (
            (free + warm).min(capacity),
            capacity,
            waiting,
            ready || (warm > 0 && waiting == 0),
        )
    }

    /// Stops keeping sessions warm and ends the ready ones (a draining node).
    pub async fn stop_warm(&self) {
        self.warm.close().await;
    }

    /// Warm sessions ready to be taken right now.
    pub fn warm_ready(&self) -> usize {
        self.warm.ready()
    }

    /// The session records and API keys of this grid.
    pub(crate) fn store_handle(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Whether shutdown has begun.
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The browsers this manager can start.
    pub fn catalog(&self) -> &[Stereotype] {
        &self.catalog
    }

    /// The version of the Chromium this grid runs, if it has one.
    pub fn chromium_version(&self) -> Option<String> {
        self.catalog
            .iter()
            .find(|s| s.kind == BrowserKind::Chromium)
            .map(|s| s.version.clone())
    }

    /// `GET url` with the drivers' client, expecting JSON.
    pub async fn get_json(&self, url: &str) -> Result<(u16, Value), DriverError> {
        driver_client::get_json(&self.client, url).await
    }

    /// The effective timeouts of a session with these options.
    fn timeouts(&self, options: &GridOptions) -> Timeouts {
        // A client may shorten its session's timeouts, never extend them.
        Timeouts::capped(
            options.idle_timeout,
            options.session_timeout,
            self.config.idle_timeout,
            self.config.session_timeout,
        )
    }
}
