//! Where Gridiron keeps session records.
//!
//! [`Store`] is the one interface; [`SqliteStore`] is the embedded default.
//! [`conformance`] holds the test suite every implementation must pass.
//! [`Cluster`] is the shared state of a scaled-out grid (queue, nodes,
//! routes, hubs, pools, events); [`cluster_conformance`] is its suite.

pub mod artifacts;
pub mod cluster;
pub mod cluster_conformance;
pub mod cluster_conformance_metrics;
pub mod cluster_conformance_steps;
pub mod conformance;
pub mod events;
mod memory;
#[cfg(feature = "redis")]
mod redis_events;
#[cfg(feature = "redis")]
mod redis_store;
mod sqlite;
mod sqlite_events;
pub mod webhook_conformance;
pub mod webhooks;

pub use artifacts::{ArtifactIndex, ArtifactRecord};
#[cfg(feature = "redis")]
pub use cluster::RedisCluster;
pub use cluster::{Cluster, MemoryCluster};
pub use events::{Event, EventLog, NewEvent};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use sqlite::SqliteStore;
pub use webhooks::WebhookStore;

use async_trait::async_trait;
use gridiron_domain::api::SessionFacts;
pub use gridiron_domain::api::SessionFilter;
pub use gridiron_domain::auth::{ApiKey, Role};
use gridiron_domain::EndReason;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// What kind of failure a [`StoreError`] is, which says whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The store could not be reached or did not answer in time (connection
    /// lost, server restarting, thread gone): the same call may succeed later.
    Unavailable,
    /// The store answered with data that does not make sense (bad JSON, a
    /// record missing fields, a reply of the wrong shape): retrying reads the same.
    Malformed,
    /// Concurrent writers kept changing what the operation depends on; it
    /// gave up after a few attempts and may succeed when tried again.
    Conflict,
    /// The store refused the operation (a script or SQL error): a bug or a
    /// misconfiguration, not worth retrying.
    Failed,
}

/// A store operation failed; carries which operation, what kind of failure and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// The operation that failed (`insert`, `get`, ...).
    pub op: &'static str,
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The underlying cause.
    pub message: String,
}

impl StoreError {
    /// An error of `kind` in `op`.
    pub fn new(op: &'static str, kind: ErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            op,
            kind,
            message: message.into(),
        }
    }

    /// Whether the same call may succeed if tried again.
    pub fn retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Conflict)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "store {} failed: {}", self.op, self.message)
    }
}

impl std::error::Error for StoreError {}

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// A session as the grid first records it, when its request is admitted.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// The grid's session id, the one clients see.
    pub id: String,
    /// Browser it will run (`chrome`, `firefox`).
    pub browser: String,
    /// The capabilities exactly as requested.
    pub requested_caps: Value,
    /// Parsed `gridiron:options`.
    pub grid_options: Value,
    /// Unix milliseconds.
    pub created_at: i64,
    /// The API key that created it; `None` on a grid without keys.
    pub owner: Option<String>,
}

/// Everything the store knows about one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The grid's session id.
    pub id: String,
    /// `queued`, `provisioning`, `running` or `ended`.
    pub state: String,
    /// Browser name.
    pub browser: String,
    /// Requested capabilities.
    pub requested_caps: Value,
    /// Capabilities the driver granted (null until running).
    pub granted_caps: Value,
    /// Grid options.
    pub grid_options: Value,
    /// Unix ms when admitted.
    pub created_at: i64,
    /// Unix ms when the driver answered.
    pub started_at: Option<i64>,
    /// Unix ms when it ended.
    pub ended_at: Option<i64>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// Commands proxied to the driver.
    pub command_count: u64,
    /// The API key that created it; `None` on a grid without keys.
    pub owner: Option<String>,
}

impl SessionRecord {
    /// What a [`SessionFilter`] looks at.
    pub fn facts(&self) -> SessionFacts<'_> {
        SessionFacts {
            id: &self.id,
            state: &self.state,
            browser: &self.browser,
            owner: self.owner.as_deref(),
            grid_options: &self.grid_options,
            created_at: self.created_at,
        }
    }
}

/// What happened to sessions since a time (see [`Store::session_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Sessions whose browser started at or after the time.
    pub started: u64,
    /// Of those, the ones running now.
    pub running: u64,
    /// Sessions that ended at or after the time (whenever they started, or
    /// never: a request that timed out in the queue), by end reason (`quit`,
    /// `idle_timeout`, ...).
    pub ended: BTreeMap<String, u64>,
}

impl SessionStats {
    /// Counts record `r` in, for the window from `since` (Unix ms).
    pub fn count(&mut self, r: &SessionRecord, since: i64) {
        if r.started_at.is_some_and(|t| t >= since) {
            self.started += 1;
            self.running += u64::from(r.ended_at.is_none());
        }
        if r.ended_at.is_some_and(|t| t >= since) {
            let reason = r.end_reason.map_or("unknown", |e| e.as_str());
            *self.ended.entry(reason.to_string()).or_default() += 1;
        }
    }
}

/// How far before a window [`Store::session_stats`]'s default looks for
/// sessions that started or ended in it: sessions created longer before are
/// not counted by stores that count by reading records.
pub const STATS_LOOKBACK_MS: i64 = 24 * 3_600_000;

/// Records [`Store::session_stats`]'s default reads per query.
const STATS_PAGE: usize = 500;

/// Persistence for session records and the grid's events. Implementations
/// must keep the order of writes made by one caller, so that a read sees
/// every write issued before it.
#[async_trait]
pub trait Store: EventLog + WebhookStore + ArtifactIndex + Send + Sync + 'static {
    /// Records an admitted request (state `provisioning`, or `queued` if `queued`).
    async fn insert(&self, session: NewSession, queued: bool) -> StoreResult<()>;
    /// Records that the driver granted the session.
    async fn mark_running(&self, id: &str, granted_caps: Value, started_at: i64)
        -> StoreResult<()>;
    /// Records the end of a session; a second call for the same id keeps the first reason.
    async fn mark_ended(
        &self,
        id: &str,
        reason: EndReason,
        ended_at: i64,
        command_count: u64,
    ) -> StoreResult<()>;
    /// One session, if known.
    async fn get(&self, id: &str) -> StoreResult<Option<SessionRecord>>;
    /// The newest sessions first, at most `limit`.
    async fn list(&self, limit: usize) -> StoreResult<Vec<SessionRecord>>;
    /// The sessions `filter` keeps (see [`SessionFilter::matches`]), newest
    /// first with ties in descending id order (the order of API cursors), at most `limit`.
    async fn query(&self, filter: &SessionFilter, limit: usize) -> StoreResult<Vec<SessionRecord>>;
    /// Closes every record not yet ended (left by a process that died) with
    /// `reason`, and returns how many there were.
    async fn close_unfinished(&self, reason: EndReason, ended_at: i64) -> StoreResult<usize>;
    /// Ends a session recorded by another process (whose node was lost),
    /// keeping its command count; `false` if it had already ended or is unknown.
    async fn end_elsewhere(&self, id: &str, reason: EndReason, ended_at: i64) -> StoreResult<bool>;
    /// Ids of sessions not yet ended, in no particular order.
    async fn unfinished_ids(&self) -> StoreResult<Vec<String>>;
    /// Deletes the records of sessions that ended before `older_than` (Unix
    /// ms), so the store does not grow without bound (`--retention`); records
    /// not yet ended are kept whatever their age. Returns how many went.
    async fn prune(&self, older_than: i64) -> StoreResult<usize>;
    /// The sessions that started, and those that ended, at or after `since`
    /// (Unix ms), only `owner`'s if given (`Some("")`: those made without a
    /// key). The default reads the records created from
    /// [`STATS_LOOKBACK_MS`] before `since` through [`Store::query`], a page
    /// at a time; a store that can count where the records are should.
    async fn session_stats(&self, since: i64, owner: Option<&str>) -> StoreResult<SessionStats> {
        let mut filter = SessionFilter {
            created_after: Some(since.saturating_sub(STATS_LOOKBACK_MS)),
            owner: owner.map(str::to_string),
            ..SessionFilter::default()
        };
        let mut stats = SessionStats::default();
        loop {
            let page = self.query(&filter, STATS_PAGE).await?;
            page.iter().for_each(|r| stats.count(r, since));
            match page.last() {
                Some(last) if page.len() == STATS_PAGE => {
                    filter.cursor = Some(gridiron_domain::api::Cursor {
                        at: last.created_at,
                        id: last.id.clone(),
                    })
                }
                _ => return Ok(stats),
            }
        }
    }

    /// Adds an API key; `false` (and nothing changes) if one with its name exists.
    async fn create_key(&self, key: ApiKey) -> StoreResult<bool>;
    /// Every API key, by name.
    async fn keys(&self) -> StoreResult<Vec<ApiKey>>;
    /// Deletes the API key `name`; `false` if there was none.
    async fn revoke_key(&self, name: &str) -> StoreResult<bool>;
}

/// A new random API token: 32 bytes from the operating system, as 64 hex
/// characters (safe in URLs, headers and Basic auth). Only its hash is stored.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness from the system: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
