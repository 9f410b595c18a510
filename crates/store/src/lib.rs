//! Where Gridiron keeps session records.
//!
//! [`Store`] is the one interface; [`SqliteStore`] is the embedded default.
//! [`conformance`] holds the test suite every implementation must pass.

#[cfg(feature = "redis")]
pub mod cluster;
pub mod conformance;
#[cfg(feature = "redis")]
mod redis_store;
mod sqlite;

#[cfg(feature = "redis")]
pub use cluster::Cluster;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;
pub use sqlite::SqliteStore;

use async_trait::async_trait;
use gridiron_domain::EndReason;
use serde_json::Value;
use std::fmt;

/// A store operation failed; carries which operation and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    /// The operation that failed (`insert`, `get`, ...).
    pub op: &'static str,
    /// The underlying cause.
    pub message: String,
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
}

/// Persistence for session records. Implementations must keep the order of
/// writes made by one caller, so that a read sees every write issued before it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Records an admitted request (state `provisioning`, or `queued` if `queued`).
    async fn insert(&self, session: NewSession, queued: bool) -> StoreResult<()>;
    /// Records that a queued request got its slot.
    async fn mark_provisioning(&self, id: &str) -> StoreResult<()>;
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
    /// Closes every record not yet ended (left by a process that died) with
    /// `reason`, and returns how many there were.
    async fn close_unfinished(&self, reason: EndReason, ended_at: i64) -> StoreResult<usize>;
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
