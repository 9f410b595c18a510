//! Shared state of a scaled-out grid: the queue of new-session requests,
//! nodes and their heartbeats, session routes, hubs, work pools and an event
//! stream.
//!
//! [`Cluster`] is the one interface. [`MemoryCluster`] keeps the state in
//! this process (tests of hubs and nodes); `RedisCluster` (feature `redis`)
//! shares it between processes. A request's life follows
//! [`gridiron_domain::request::step`] in both; the
//! [`crate::cluster_conformance`] suite checks they behave alike.

#[cfg(feature = "redis")]
pub(crate) mod keys;
mod memory;
mod memory_state;
#[cfg(test)]
mod memory_tests;
pub mod metrics;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "redis")]
mod redis_artifacts;
#[cfg(feature = "redis")]
mod redis_metrics;
#[cfg(feature = "redis")]
mod redis_nodes;
#[cfg(feature = "redis")]
mod redis_webhooks;

#[cfg(feature = "redis")]
pub use self::redis::RedisCluster;
#[cfg(feature = "redis")]
pub use keys::Keys;
pub use memory::MemoryCluster;
pub use metrics::ClusterMetrics;

use crate::events::EventLog;
use crate::{Store, StoreResult};
use async_trait::async_trait;
use gridiron_domain::pool::{NodeProfile, Pool};
use gridiron_domain::Stereotype;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long finished request records are kept, for late readers.
pub const FINISHED_TTL: Duration = Duration::from_secs(600);

/// How long a node declared lost stays known as lost (so that it learns it
/// was lost at its next heartbeat), before the store forgets it.
pub const LOST_TTL: Duration = Duration::from_secs(3600);

/// A new-session request as a hub puts it in the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedRequest {
    /// Request id.
    pub id: String,
    /// The new-session body, pool defaults applied.
    pub body: String,
    /// The pool it targets, if any.
    pub pool: Option<String>,
    /// That pool's concurrency limit (0: none).
    pub pool_max: u32,
    /// The hub holding the client's connection.
    pub hub: String,
    /// The grid's public base URL as the client sees it.
    pub public_base: String,
    /// Unix ms when the hub received it.
    pub created_at: i64,
    /// The API key that asked for it (`""` on a grid without keys): the
    /// node records it as the session's owner.
    pub owner: String,
    /// That key's concurrency limit (0: none): a node may not claim the
    /// request while the key runs as many sessions.
    pub key_max: u32,
}

/// A request in the queue, as a node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// Request id.
    pub id: String,
    /// The new-session body.
    pub body: String,
    /// Targeted pool.
    pub pool: Option<String>,
    /// That pool's concurrency limit (0: none).
    pub pool_max: u32,
    /// The grid's public base URL for the client.
    pub public_base: String,
    /// The hub waiting for the answer.
    pub hub: String,
    /// The API key that asked for it (`""` for none).
    pub owner: String,
    /// That key's concurrency limit (0: none).
    pub key_max: u32,
    /// Unix ms when its hub received it (0 if the store lacks it).
    pub created_at: i64,
}

/// What a claim attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The request is this node's to start, under the node's registration
    /// `epoch`: pass it to [`Cluster::complete`].
    Claimed {
        /// The registration the claim is held by.
        epoch: u64,
    },
    /// Another node took it, its client left, or this node is draining or
    /// was declared lost.
    Gone,
    /// Its pool already runs as many sessions as it may.
    PoolFull,
    /// The API key that asked for it already runs as many sessions as it may.
    KeyFull,
}

/// What completing a claimed request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The hub has (or already had) the answer.
    Delivered,
    /// Nobody takes the answer: the client left, or the store lost the
    /// request. The node ends the session it started (`client_gone`).
    Gone,
    /// The claim is no longer this node registration's: the node was
    /// declared lost meanwhile and the request went back to the queue. The
    /// node ends the session it started (`node_lost`).
    Fenced,
}

/// Where a request stands when its hub stops waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It was still waiting and has left the queue (or had already ended).
    Removed,
    /// A node is starting it; the node will tear the session down.
    WhileStarting,
    /// It was answered meanwhile: the answer.
    Answered(String),
    /// The store no longer knows it (it lost its data).
    Missing,
}

/// A request's state as its hub polls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestState {
    /// Waiting or being started.
    Pending,
    /// Answered: the answer.
    Answered(String),
    /// Cancelled (timed out, or its client left).
    Cancelled,
    /// Unknown to the store.
    Missing,
}

/// A node as registered in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Unique per node process.
    pub id: String,
    /// Where hubs reach the node.
    pub url: String,
    /// Its slots.
    pub max_sessions: usize,
    /// Browsers it runs.
    pub stereotypes: Vec<Stereotype>,
    /// Pools and labels.
    pub profile: NodeProfile,
    /// Unix ms when it registered.
    pub started_at: i64,
}

/// A registered node and its current state.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// What it registered.
    pub info: NodeInfo,
    /// Slots in use at its last heartbeat.
    pub used: usize,
    /// Whether it is draining.
    pub draining: bool,
    /// Whether its heartbeat is current.
    pub alive: bool,
    /// Milliseconds since its last heartbeat (or registration), while it is
    /// current; `None` once it has expired or if the store cannot tell.
    pub heartbeat_age_ms: Option<u64>,
}

/// A session a node started for a request it claimed, and the node's load
/// with it: what [`Cluster::complete_started`] records before the answer.
#[derive(Debug, Clone, Copy)]
pub struct Started<'a> {
    /// The session's id.
    pub sid: &'a str,
    /// The API key whose session limit it counts against, if that key has one.
    pub key: Option<&'a str>,
    /// The node's slots in use, this session included.
    pub used: usize,
    /// The node's heartbeat TTL.
    pub ttl: Duration,
}

/// A session that ended on a node, as the node recorded it with
/// [`Cluster::add_session`], and the node's load without it: what
/// [`Cluster::end_session`] forgets and records.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    /// The session's id.
    pub sid: &'a str,
    /// The request it was started for.
    pub rid: &'a str,
    /// Its pool, if any.
    pub pool: Option<&'a str>,
    /// The API key whose session limit it counted against, if any.
    pub key: Option<&'a str>,
    /// The node's slots in use now.
    pub used: usize,
    /// The node's heartbeat TTL.
    pub ttl: Duration,
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Registered and current; `draining` if an operator asked it to drain.
    Alive {
        /// An operator asked the node to drain.
        draining: bool,
    },
    /// The node was declared lost: its sessions were ended elsewhere.
    Lost,
    /// The store does not know the node (it lost its data): register again.
    Unknown,
}

/// Handle on a grid's shared state. Every method is one atomic step as far
/// as other hubs and nodes can tell. Its [`EventLog`] is the grid's event
/// stream, the same one its [`Cluster::sessions`] store appends to;
/// grid-wide metrics are its [`ClusterMetrics`] part.
#[async_trait]
pub trait Cluster: EventLog + ClusterMetrics + Send + Sync {
    /// The session records of this grid.
    fn sessions(&self) -> Arc<dyn Store>;
    /// The channel nodes listen on for new work.
    fn work_channel(&self) -> String;
    /// The channel hub `hub` hears answers on.
    fn hub_channel(&self, hub: &str) -> String;
    /// Subscribes to `channels`, resubscribing after connection loss. Each
    /// message arrives as (channel, payload); `("", "")` marks a (re)subscription,
    /// after which messages may have been missed: look again.
    fn subscribe(&self, channels: Vec<String>) -> mpsc::UnboundedReceiver<(String, String)>;

    /// Puts a request at the back of the queue; `None` if the queue already
    /// holds `max_queue` requests. Re-enqueueing an id replaces its record.
    async fn enqueue(&self, r: &QueuedRequest, max_queue: usize) -> StoreResult<Option<u64>>;
    /// Requests waiting, in the order nodes should claim them (oldest first
    /// within each API key, keys taking turns; see [`fair_round`]): at most
    /// `limit`, skipping the first `offset`.
    async fn waiting(&self, offset: usize, limit: usize) -> StoreResult<Vec<Waiting>>;
    /// Requests waiting in the queue.
    async fn queue_len(&self) -> StoreResult<usize>;
    /// Tries to take a waiting request for `node`, under its current registration.
    async fn claim(&self, w: &Waiting, node: &str) -> StoreResult<Claim>;
    /// Hands a claimed request's answer to its hub. `epoch` is the one
    /// [`Cluster::claim`] returned; `started` says whether a session runs for
    /// it (if not, its pool place is freed at once). Safe to repeat.
    async fn complete(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        started: bool,
    ) -> StoreResult<Completion>;
    /// Withdraws a request whose hub gives up on it (`reason`: `queue_timeout`,
    /// `client_gone`). With `soft`, a request a node is starting is left to finish.
    async fn cancel(&self, rid: &str, reason: &str, soft: bool) -> StoreResult<Cancelled>;
    /// Where a request stands.
    async fn request_state(&self, rid: &str) -> StoreResult<RequestState>;
    /// Takes the answer to `rid` for hub `hub`, once: `None` if there is none
    /// (any more). The hub must deliver it or end its session.
    async fn take_answer(&self, hub: &str, rid: &str) -> StoreResult<Option<String>>;
    /// Forgets that hub `hub` waits for `rid` (it gave up or got its answer).
    async fn close_request(&self, hub: &str, rid: &str) -> StoreResult<()>;

    /// Registers (or re-registers) a node under a new epoch and starts its heartbeat.
    async fn register_node(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()>;
    /// Renews a node's heartbeat for `ttl` and records its slots in use.
    async fn heartbeat(&self, node: &str, used: usize, ttl: Duration) -> StoreResult<Beat>;
    /// Every registered node, live or not yet collected, oldest first (ties by id).
    async fn nodes(&self) -> StoreResult<Vec<NodeState>>;
    /// Asks a node to drain; `false` if no such live node.
    async fn drain_node(&self, node: &str) -> StoreResult<bool>;
    /// Removes a node that leaves cleanly, with its routes, claims and pool places.
    async fn remove_node(&self, node: &str) -> StoreResult<()>;
    /// If `node`'s heartbeat has expired, declares it lost and returns the
    /// sessions it ran (the caller records their end); requests it was
    /// starting go back to the queue in their original place.
    async fn reclaim_node(&self, node: &str) -> StoreResult<Option<Vec<String>>>;

    /// Records that `node` runs session `sid` (started for request `rid`, in
    /// `pool`, counted against API key `key`'s limit if it has one). Safe to
    /// repeat.
    async fn add_session(
        &self,
        node: &str,
        sid: &str,
        rid: &str,
        pool: Option<&str>,
        key: Option<&str>,
    ) -> StoreResult<()>;
    /// Forgets the route, pool place and key place of a session that ended on `node`.
    async fn remove_session(&self, node: &str, sid: &str) -> StoreResult<()>;
    /// For a request a session started for: [`Cluster::add_session`], the
    /// node's slots in use (as a [`Cluster::heartbeat`] would record them), then
    /// [`Cluster::complete`], in this order, so its hub never sees the answer
    /// before the session's route. A store that can does it in one step, so a
    /// node answers in one round trip. Safe to repeat.
    async fn complete_started(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        s: &Started<'_>,
    ) -> StoreResult<Completion> {
        self.add_session(node, s.sid, &w.id, w.pool.as_deref(), s.key)
            .await?;
        // Only a report of the load: what the heartbeat finds is the heartbeat's business.
        let _ = self.heartbeat(node, s.used, s.ttl).await;
        self.complete(w, node, epoch, answer, true).await
    }
    /// [`Cluster::remove_session`] of a session whose record the node knows,
    /// and the node's slots in use (as a [`Cluster::heartbeat`] would record
    /// them); a store that can does both in one step.
    async fn end_session(&self, node: &str, e: &Ended<'_>) -> StoreResult<()> {
        self.remove_session(node, e.sid).await?;
        let _ = self.heartbeat(node, e.used, e.ttl).await;
        Ok(())
    }
    /// The node running session `sid`, if any.
    async fn route(&self, sid: &str) -> StoreResult<Option<String>>;

    /// Renews hub `hub`'s heartbeat.
    /// Returns whether the store knew the hub already: `false` at its first
    /// heartbeat, and after the store lost its data.
    async fn hub_heartbeat(&self, hub: &str, ttl: Duration) -> StoreResult<bool>;
    /// Removes a hub that leaves cleanly.
    async fn remove_hub(&self, hub: &str) -> StoreResult<()>;
    /// Forgets hubs whose heartbeat expired: withdraws their requests and
    /// returns how many hubs, and the answers they never delivered (whose
    /// sessions nobody uses).
    async fn forget_dead_hubs(&self) -> StoreResult<(usize, Vec<String>)>;
    /// Takes lock `name` (the garbage collector's turn) for `ttl` if nobody holds it.
    async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool>;

    /// Creates or replaces a pool.
    async fn put_pool(&self, pool: &Pool) -> StoreResult<()>;
    /// One pool, if defined.
    async fn pool(&self, name: &str) -> StoreResult<Option<Pool>>;
    /// Every pool, by name, with the sessions each runs now.
    async fn pools(&self) -> StoreResult<Vec<(Pool, usize)>>;
    /// Deletes a pool; `false` if it did not exist.
    async fn delete_pool(&self, name: &str) -> StoreResult<bool>;
}

/// A place in a pool (or among an API key's sessions): the request it was
/// claimed for, and the node. A request requeued from a lost node and
/// started elsewhere takes a place of its own, so a late report of the lost
/// node frees nothing of the other's.
fn place(rid: &str, node: &str) -> String {
    format!("{rid}@{node}")
}

/// What a node's session record holds: `"rid pool"` (pool empty if none),
/// or `"rid pool key"` when the session holds a place among the sessions of
/// an API key with a limit. Records written before keys had places have two
/// fields and hold none.
fn session_value(rid: &str, pool: Option<&str>, key: Option<&str>) -> String {
    match key.filter(|k| !k.is_empty()) {
        Some(k) => format!("{rid} {} {k}", pool.unwrap_or("")),
        None => format!("{rid} {}", pool.unwrap_or("")),
    }
}

/// The request, pool and key of a session record made by [`session_value`].
fn parse_session_value(v: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rid, rest) = v.split_once(' ').unwrap_or((v, ""));
    let (pool, key) = rest.split_once(' ').unwrap_or((rest, ""));
    (
        rid,
        Some(pool).filter(|p| !p.is_empty()),
        Some(key).filter(|k| !k.is_empty()),
    )
}

/// How many arrivals a round of the fair queue orders (see [`fair_round`]).
pub const ARRIVALS_PER_ROUND: u64 = 1 << 20;

/// The queue's claim order is fair between API keys: start-time fair
/// queuing, one request per key per round.
///
/// A request's round is `max(now, last + 1)`: `last` is the round of its
/// key's previous request, `now` the highest round a node has claimed from
/// (0 at first). Its queue score is `round * ARRIVALS_PER_ROUND + seq mod
/// ARRIVALS_PER_ROUND` ([`fair_score`]): nodes claim by round, and within a
/// round in order of arrival. So a key's requests keep their order (each is
/// a round after the one before), a key that queues 500 requests spreads
/// them over 500 rounds, and another key's request enqueued meanwhile lands
/// in the current round: it waits for at most one request of each key, not
/// for all 500. A key that waited for nothing lately starts at the current
/// round, so past use is not held against it. With one key (or none, `""`),
/// or one request per key, the order is plain FIFO. A request put back by a
/// lost node keeps its score, hence its place. `enqueue.lua` and
/// `claim.lua` compute the same.
pub fn fair_round(now: u64, last: Option<u64>) -> u64 {
    last.map_or(now, |l| now.max(l + 1))
}

/// A request's queue score: its round, then its arrival (`seq`).
pub fn fair_score(round: u64, seq: u64) -> u64 {
    round * ARRIVALS_PER_ROUND + seq % ARRIVALS_PER_ROUND
}
