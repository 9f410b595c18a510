//! What the one front end needs from a role. The router (`routes`) serves the
//! same W3C, CDP and status routes whether the sessions run in this process
//! (a standalone grid or a node: [`crate::Manager`]) or on nodes reached
//! through a shared store (a hub); the difference lives behind [`Backend`].

use crate::manager::Manager;
use crate::session::Session;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, Response};
use bytes::Bytes;
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::{EndReason, GridError};
use gridiron_store::{SessionRecord, Store};
use serde_json::Value;
use std::sync::Arc;

/// Settings the front end applies before a request reaches the backend.
#[derive(Debug, Clone)]
pub struct FrontConfig {
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The URL clients use to reach the grid; `None` to derive it per request.
    pub public_url: Option<String>,
    /// Origins whose web pages may call the grid (`*` for any); a request
    /// with another `Origin` header is refused.
    pub allowed_origins: Vec<String>,
    /// Largest new-session request (`POST /session` body, `/cdp` query), in bytes.
    pub max_new_session_bytes: usize,
}

impl FrontConfig {
    /// The front end's settings from a role's limits; built once, as every
    /// request reads them.
    pub fn new(
        max_body_bytes: usize,
        max_new_session_bytes: usize,
        public_url: Option<String>,
        allowed_origins: Vec<String>,
    ) -> Self {
        FrontConfig {
            max_body_bytes,
            public_url,
            allowed_origins,
            // The largest body of all bounds new sessions too.
            max_new_session_bytes: max_new_session_bytes.min(max_body_bytes),
        }
    }
}

/// Where a session is, as far as the front end must know to serve it.
pub enum Located {
    /// It runs in this process.
    Local {
        /// The manager that owns it.
        manager: Arc<Manager>,
        /// The session.
        session: Arc<Session>,
    },
    /// It runs on another process (a node), reached through this handle.
    Remote(Box<dyn RemoteSession>),
    /// It is not running: the store's record says whether it ended and why.
    NotRunning(NotRunning),
}

/// Why a session id does not lead to a running session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotRunning {
    /// No record of it.
    Unknown,
    /// It ended, for this reason.
    Ended(EndReason, Owner),
    /// A record says it started, but nothing runs it (its node is gone).
    Stranded(Owner),
}

/// The API key a session belongs to (`None`: made without a key).
pub type Owner = Option<String>;

impl NotRunning {
    /// Whose session it was, if the store knows it.
    pub fn owner(&self) -> Option<&str> {
        match self {
            NotRunning::Ended(_, owner) | NotRunning::Stranded(owner) => owner.as_deref(),
            NotRunning::Unknown => None,
        }
    }

    /// What the store's record of `id` says.
    pub async fn of(store: &dyn Store, id: &str) -> Result<Self, gridiron_store::StoreError> {
        Ok(match store.get(id).await? {
            None => NotRunning::Unknown,
            Some(SessionRecord {
                end_reason: Some(reason),
                owner,
                ..
            }) => NotRunning::Ended(reason, owner),
            Some(rec) => NotRunning::Stranded(rec.owner),
        })
    }

    /// As a process that runs its sessions itself sees it: a record without
    /// an end is a session being started or ended right now, not a stranded one.
    pub fn local(self) -> Self {
        match self {
            NotRunning::Stranded(_) => NotRunning::Unknown,
            other => other,
        }
    }

    /// The W3C error for a command sent to such a session.
    pub fn error(&self, id: &str) -> GridError {
        GridError::invalid_session(match self {
            NotRunning::Unknown => format!("no such session: {id}"),
            NotRunning::Ended(reason, _) => format!("session {id} has ended ({})", reason.as_str()),
            NotRunning::Stranded(_) => format!("session {id} is not running on any node"),
        })
    }
}

/// A session running elsewhere, as a hub reaches it.
#[async_trait]
pub trait RemoteSession: Send {
    /// Streams an HTTP command to the session's node and its answer back.
    async fn forward(self: Box<Self>, req: Request<Body>) -> Response<Body>;
    /// The API key that owns the session (`None` if none does).
    fn owner(&self) -> Option<&str>;
    /// Prepares `req` for a websocket tunnel to `path_and_query` on the node
    /// (authenticating it) and returns where to connect.
    fn tunnel_target(&self, req: &mut Request<Body>, path_and_query: &str)
        -> crate::tunnel::Target;
}

/// One running session, as lists and the API show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSummary {
    /// The grid's session id.
    pub id: String,
    /// `chrome` or `firefox`.
    pub browser: String,
    /// Unix ms when it started.
    pub started_at: i64,
    /// The name the client gave, if any.
    pub name: Option<String>,
    /// Which node runs it (`local` on a standalone grid).
    pub node: String,
}

/// A role behind the one front end: a standalone grid, a node, or a hub.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Body limits and the public URL.
    fn front(&self) -> &FrontConfig;

    /// The API keys its front end checks.
    fn keyring(&self) -> Arc<crate::auth::Keyring>;

    /// `POST /session` by `caller`, who will own the session: the W3C
    /// response body (`{"value": {...}}`).
    async fn new_session(
        self: Arc<Self>,
        body: Bytes,
        public_base: String,
        caller: crate::auth::Caller,
    ) -> Result<Value, GridError>;

    /// `GET /cdp?...`: starts a bare Chromium for a CDP client (`query` is the
    /// raw query string `request` was parsed from, its token removed), owned
    /// by `caller`, and returns its session id.
    async fn new_cdp_session(
        self: Arc<Self>,
        request: CdpRequest,
        query: String,
        public_base: String,
        caller: crate::auth::Caller,
    ) -> Result<String, GridError>;

    /// Where session `id` runs, or why it does not.
    async fn locate(&self, id: &str) -> Result<Located, GridError>;

    /// Ends session `id` for `reason`, wherever it runs; nothing if it is not running.
    async fn end_session(&self, id: &str, reason: EndReason);

    /// The running sessions.
    async fn sessions(&self) -> Result<Vec<SessionSummary>, GridError>;

    /// The `GET /status` value; `uri` is this grid's address as the client sees it.
    async fn status(&self, uri: &str) -> Value;

    /// The version of the Chromium sessions would get, for `/json/version`.
    async fn chromium_version(&self) -> Option<String>;

    /// The tasks this role runs (tunnels and ends spawned by the front end among them).
    fn tasks(&self) -> &crate::tasks::Tasks;

    /// The grid's events: its log, followed live.
    fn event_feed(&self) -> &crate::events::EventFeed;

    /// Records an event of the grid (API calls that change it record theirs here).
    fn emit(&self, event: gridiron_store::NewEvent);

    // The control plane (`/api/v1`, see `crate::api`).

    /// The session records and API keys of this grid.
    fn store(&self) -> Arc<dyn Store>;

    /// The shared state of a scaled-out grid (where pools live); `None` on a
    /// standalone grid.
    fn cluster(&self) -> Option<Arc<dyn gridiron_store::Cluster>> {
        None
    }

    /// The artifact storage this role serves from itself; `None` where
    /// artifacts live only elsewhere (a hub's, on its nodes, unless the grid
    /// stores them in a bucket every process reads).
    fn artifacts(&self) -> Option<Arc<crate::artifacts::Artifacts>> {
        None
    }

    /// The node whose local artifacts this role holds itself (`local` on a
    /// standalone grid); `None` for a hub.
    fn own_node(&self) -> Option<String> {
        None
    }

    /// Whether node `node` is alive, so the artifacts it keeps can be reached.
    async fn node_alive(&self, node: &str) -> bool {
        self.own_node().as_deref() == Some(node)
    }

    /// Sends an artifact request to node `node`, which serves it from its
    /// own storage (signed, as every hub request); `None` if no such node lives.
    async fn forward_to_node(&self, _node: &str, _req: Request<Body>) -> Option<Response<Body>> {
        None
    }

    /// Waits up to `patience` until the artifacts of ended session `id` are
    /// collected; `true` once they are.
    async fn artifacts_settled(&self, id: &str, patience: std::time::Duration) -> bool;

    /// The node running session `id`, if it runs.
    async fn session_node(&self, id: &str) -> Result<Option<String>, GridError>;

    /// The new-session requests waiting for a slot, first in line first.
    async fn waiting(&self) -> Result<Vec<crate::api::queue::QueueEntry>, GridError>;

    /// Withdraws waiting request `id` (its client gets a W3C error); `false`
    /// if no such request waits any more.
    async fn cancel_waiting(&self, id: &str) -> Result<bool, GridError>;

    /// The nodes that run sessions (a standalone grid is one, `local`).
    async fn nodes(&self) -> Result<Vec<crate::api::nodes::NodeView>, GridError>;

    /// Asks node `id` to drain: no new sessions, running ones finish;
    /// `false` if there is no such live node.
    async fn drain_node(&self, id: &str) -> Result<bool, GridError>;

    /// This process's metrics, for whatever counts (webhook deliveries
    /// among them: `backend.metrics().webhook_delivery("delivered")`).
    fn metrics(&self) -> &Arc<crate::metrics::Metrics>;

    /// What `/metrics` and `/api/v1/scaling` report: this process's view on
    /// a standalone grid or a node, the whole grid's on a hub.
    async fn metrics_view(&self) -> Result<crate::metrics::MetricsView, GridError>;
}
