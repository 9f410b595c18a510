//! Shared state of a scaled-out grid in Redis: the queue of new-session
//! requests, nodes and their heartbeats, session routes and work pools.
//!
//! Layout under the namespace `NS`:
//! - `NS:seq` request counter; `NS:queue` waiting request ids by sequence;
//!   `NS:req:RID` a hash per request (`state` waiting|claimed|done|delivered|cancelled).
//! - `NS:nodes` ids of live nodes; `NS:node:ID` its description, `NS:node:ID:alive`
//!   its heartbeat (expires after the TTL), `NS:node:ID:claims` requests it is
//!   starting, `NS:node:ID:sessions` its sessions (id -> "request pool").
//! - `NS:route:SID` the node of a running session.
//! - `NS:hubs`, `NS:hub:ID:alive` hubs and their heartbeats, `NS:hub:ID:requests`
//!   the requests hub `ID` still owes an answer to its clients; hub `ID` hears
//!   answers to its requests on channel `NS:hub:ID`; nodes hear of new work on `NS:work`.
//! - `NS:pools`, `NS:pool:NAME` pool definitions; `NS:pool:NAME:running` the
//!   places taken in the pool, `REQUEST@NODE` (a request requeued from a lost
//!   node and started elsewhere takes a place of its own).
//!
//! - `NS:events` a stream of lifecycle events (queued, started, ended with its
//!   reason, node up, lost and down), the newest ~10,000 kept.
//!
//! Every step that must not interleave with another process runs as one Lua script.

use crate::{StoreError, StoreResult};
use gridiron_domain::pool::{NodeProfile, Pool};
use gridiron_domain::Stereotype;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::mpsc;

fn err(op: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |e| StoreError {
        op,
        message: e.to_string(),
    }
}

/// `body, pool, pool_max, base` of a request hash.
type WaitingRow = (Option<String>, Option<String>, Option<u32>, Option<String>);

/// Roughly how many events the stream keeps.
const EVENTS_KEPT: usize = 10_000;

/// How long finished request records are kept, for late readers.
const FINISHED_TTL_MS: u64 = 600_000;

/// Handle on a grid's shared state in Redis. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: redis::Client,
    conn: ConnectionManager,
    ns: String,
}

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
}

/// A request at the head of the queue, as a node sees it.
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
}

/// What a claim attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// The request is this node's to start.
    Claimed,
    /// Another node took it, its client left, or this node is draining.
    Gone,
    /// Its pool already runs as many sessions as it may.
    PoolFull,
}

/// Where a request stands when its hub stops waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// It was still waiting and has left the queue.
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

// KEYS: queue, seq, request, the hub's open requests. ARGV: rid, max queue,
// work channel, field/value pairs.
const ENQUEUE: &str = r#"
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -1 end
local seq = redis.call('INCR', KEYS[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'state', 'waiting', 'seq', seq, unpack(ARGV, 4))
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('SADD', KEYS[4], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return seq
"#;

// KEYS: request, queue, node claims, pool running set, node hash. ARGV: rid, node, pool max.
// A node asked to drain claims nothing, even before its next heartbeat.
const CLAIM: &str = r#"
if redis.call('HGET', KEYS[1], 'state') ~= 'waiting' then return 0 end
if redis.call('HGET', KEYS[5], 'draining') == '1' then return 0 end
local max = tonumber(ARGV[3])
if max > 0 and redis.call('SCARD', KEYS[4]) >= max then return -1 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'claimed', 'node', ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
if max > 0 then redis.call('SADD', KEYS[4], ARGV[1] .. '@' .. ARGV[2]) end
return 1
"#;

// KEYS: request, node claims, pool running set. ARGV: rid, node, answer,
// namespace, started ('1' if a session runs for it), ttl. Safe to repeat.
const COMPLETE: &str = r#"
local st = redis.call('HGET', KEYS[1], 'state')
local mine = redis.call('HGET', KEYS[1], 'node') == ARGV[2]
-- A retry after a lost reply: the answer was already handed over.
if st == 'done' and mine then return redis.call('HGET', KEYS[1], 'hub') end
redis.call('SREM', KEYS[2], ARGV[1])
if ARGV[5] ~= '1' then redis.call('SREM', KEYS[3], ARGV[1] .. '@' .. ARGV[2]) end
if st ~= 'claimed' or not mine then
  return false
end
local hub = redis.call('HGET', KEYS[1], 'hub')
if redis.call('EXISTS', ARGV[4] .. ':hub:' .. hub .. ':alive') == 0 then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', 'client_gone')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return false
end
redis.call('HSET', KEYS[1], 'state', 'done', 'answer', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PUBLISH', ARGV[4] .. ':hub:' .. hub, ARGV[1])
return hub
"#;

// KEYS: request, queue. ARGV: rid, reason, ttl, soft ('1': leave a request
// that a node is starting alone).
const CANCEL: &str = r#"
local st = redis.call('HGET', KEYS[1], 'state')
if not st then return {'missing', ''} end
if st == 'waiting' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'removed', ''}
end
if st == 'claimed' then
  if ARGV[4] == '1' then return {'starting', ''} end
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'starting', ''}
end
if st == 'done' then
  -- The hub takes the answer (to deliver it, or to end its session).
  redis.call('HSET', KEYS[1], 'state', 'delivered')
  return {'done', redis.call('HGET', KEYS[1], 'answer')}
end
return {st, ''}
"#;

// KEYS: node hash, alive key. ARGV: ttl ms, used slots.
const HEARTBEAT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HGET', KEYS[1], 'lost') == '1' then return -2 end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('HSET', KEYS[1], 'used', ARGV[2])
if redis.call('HGET', KEYS[1], 'draining') == '1' then return 1 end
return 0
"#;

// KEYS: node sessions, route. ARGV: sid, "rid pool", node, namespace.
// Safe to repeat (a node re-announces its sessions after the store lost them).
const ADD_SESSION: &str = r#"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
local rid, pool = string.match(ARGV[2], '^(%S*) ?(.*)$')
if pool and pool ~= '' then
  redis.call('SADD', ARGV[4] .. ':pool:' .. pool .. ':running', rid .. '@' .. ARGV[3])
end
return 1
"#;

// KEYS: node sessions, route. ARGV: sid, namespace, node.
const REMOVE_SESSION: &str = r#"
local v = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
if v then
  local rid, pool = string.match(v, '^(%S*) ?(.*)$')
  if pool and pool ~= '' then redis.call('SREM', ARGV[2] .. ':pool:' .. pool .. ':running', rid .. '@' .. ARGV[3]) end
end
return 1
"#;

// Declares a node lost if its heartbeat expired (or, with ARGV[3] = '1',
// removes a node that leaves): puts back what it was starting, frees its
// routes and pool places, and returns its session ids.
// KEYS: node hash, alive, nodes set, claims, sessions, queue, work channel. ARGV: node, namespace, leaving.
const RECLAIM: &str = r#"
if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[2]) == 1 then return false end
local ns = ARGV[2]
local requeued = 0
for _, rid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local rk = ns .. ':req:' .. rid
  local pool = redis.call('HGET', rk, 'pool')
  if pool and pool ~= '' then redis.call('SREM', ns .. ':pool:' .. pool .. ':running', rid .. '@' .. ARGV[1]) end
  if redis.call('HGET', rk, 'state') == 'claimed' and redis.call('HGET', rk, 'node') == ARGV[1] then
    redis.call('HSET', rk, 'state', 'waiting')
    redis.call('HDEL', rk, 'node')
    redis.call('ZADD', KEYS[6], redis.call('HGET', rk, 'seq'), rid)
    requeued = requeued + 1
  end
end
redis.call('DEL', KEYS[4])
local out = {}
local sessions = redis.call('HGETALL', KEYS[5])
for i = 1, #sessions, 2 do
  out[#out + 1] = sessions[i]
  redis.call('DEL', ns .. ':route:' .. sessions[i])
  local rid, pool = string.match(sessions[i + 1], '^(%S*) ?(.*)$')
  if pool and pool ~= '' then redis.call('SREM', ns .. ':pool:' .. pool .. ':running', rid .. '@' .. ARGV[1]) end
end
redis.call('DEL', KEYS[5])
redis.call('SREM', KEYS[3], ARGV[1])
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1], KEYS[2])
else
  redis.call('HSET', KEYS[1], 'lost', '1')
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
if requeued > 0 then redis.call('PUBLISH', KEYS[7], 'requeued') end
return out
"#;

// Forgets a hub whose heartbeat expired: its clients were connected to it.
// Requests waiting or starting are withdrawn; answers it never delivered are
// returned, so their sessions can be ended.
// KEYS: hubs set, alive, queue, the hub's open requests. ARGV: hub, namespace, ttl.
const FORGET_HUB: &str = r#"
if redis.call('EXISTS', KEYS[2]) == 1 then return false end
local orphans = {}
for _, rid in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  local rk = ARGV[2] .. ':req:' .. rid
  local st = redis.call('HGET', rk, 'state')
  if st == 'waiting' or st == 'claimed' or st == 'done' then
    if st == 'done' then orphans[#orphans + 1] = redis.call('HGET', rk, 'answer') end
    redis.call('ZREM', KEYS[3], rid)
    redis.call('HSET', rk, 'state', 'cancelled', 'reason', 'client_gone')
    redis.call('PEXPIRE', rk, ARGV[3])
  end
end
redis.call('DEL', KEYS[4])
redis.call('SREM', KEYS[1], ARGV[1])
return orphans
"#;

// Hands an answer to its hub exactly once. KEYS: request, the hub's open
// requests. ARGV: rid.
const TAKE_ANSWER: &str = r#"
redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'done' then return false end
redis.call('HSET', KEYS[1], 'state', 'delivered')
return redis.call('HGET', KEYS[1], 'answer')
"#;

impl Cluster {
    /// Connects to `url`; keys live under `namespace`. Reconnects by itself.
    pub async fn connect(url: &str, namespace: &str) -> StoreResult<Self> {
        let client = redis::Client::open(url).map_err(err("connect"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(err("connect"))?;
        Ok(Cluster {
            client,
            conn,
            ns: namespace.to_string(),
        })
    }

    /// The session records of this grid, on the same connection.
    pub fn sessions(&self) -> crate::RedisStore {
        crate::RedisStore::from_parts(self.conn.clone(), self.ns.clone())
    }

    fn k(&self, rest: &str) -> String {
        format!("{}:{rest}", self.ns)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The channel nodes listen on for new work.
    pub fn work_channel(&self) -> String {
        self.k("work")
    }

    /// The channel hub `hub` hears answers on.
    pub fn hub_channel(&self, hub: &str) -> String {
        self.k(&format!("hub:{hub}"))
    }

    /// Subscribes to `channels`, resubscribing after connection loss. Each
    /// message arrives as (channel, payload); `("", "")` marks a (re)subscription,
    /// after which messages may have been missed.
    pub fn subscribe(&self, channels: Vec<String>) -> mpsc::UnboundedReceiver<(String, String)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = self.client.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while !tx.is_closed() {
                if let Ok(mut ps) = client.get_async_pubsub().await {
                    let mut ok = true;
                    for c in &channels {
                        ok &= ps.subscribe(c).await.is_ok();
                    }
                    if ok && tx.send((String::new(), String::new())).is_ok() {
                        let mut stream = ps.into_on_message();
                        while let Some(msg) = stream.next().await {
                            let payload = msg.get_payload::<String>().unwrap_or_default();
                            if tx
                                .send((msg.get_channel_name().to_string(), payload))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        rx
    }

    /// Puts a request at the back of the queue; `None` if the queue already
    /// holds `max_queue` requests. Re-enqueueing an id replaces its record.
    pub async fn enqueue(&self, r: &QueuedRequest, max_queue: usize) -> StoreResult<Option<u64>> {
        let seq: i64 = Script::new(ENQUEUE)
            .key(self.k("queue"))
            .key(self.k("seq"))
            .key(self.k(&format!("req:{}", r.id)))
            .key(self.k(&format!("hub:{}:requests", r.hub)))
            .arg(&r.id)
            .arg(max_queue)
            .arg(self.work_channel())
            .arg("body")
            .arg(&r.body)
            .arg("pool")
            .arg(r.pool.as_deref().unwrap_or(""))
            .arg("pool_max")
            .arg(r.pool_max)
            .arg("hub")
            .arg(&r.hub)
            .arg("base")
            .arg(&r.public_base)
            .arg("created")
            .arg(r.created_at)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("enqueue"))?;
        Ok((seq > 0).then_some(seq as u64))
    }

    /// Requests waiting, oldest first: at most `limit`, skipping the first `offset`.
    pub async fn waiting(&self, offset: usize, limit: usize) -> StoreResult<Vec<Waiting>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = self
            .conn()
            .zrange(
                self.k("queue"),
                offset as isize,
                (offset + limit) as isize - 1,
            )
            .await
            .map_err(err("waiting"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HMGET")
                .arg(self.k(&format!("req:{id}")))
                .arg(&["body", "pool", "pool_max", "base"]);
        }
        let rows: Vec<WaitingRow> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(err("waiting"))?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, (body, pool, max, base))| {
                Some(Waiting {
                    id,
                    body: body?,
                    pool: pool.filter(|p| !p.is_empty()),
                    pool_max: max.unwrap_or(0),
                    public_base: base.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Requests waiting in the queue.
    pub async fn queue_len(&self) -> StoreResult<usize> {
        self.conn()
            .zcard(self.k("queue"))
            .await
            .map_err(err("queue_len"))
    }

    /// Tries to take a waiting request for `node`.
    pub async fn claim(&self, w: &Waiting, node: &str) -> StoreResult<Claim> {
        let n: i64 = Script::new(CLAIM)
            .key(self.k(&format!("req:{}", w.id)))
            .key(self.k("queue"))
            .key(self.k(&format!("node:{node}:claims")))
            .key(self.pool_running(w.pool.as_deref().unwrap_or("")))
            .key(self.k(&format!("node:{node}")))
            .arg(&w.id)
            .arg(node)
            .arg(w.pool_max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("claim"))?;
        Ok(match n {
            1 => Claim::Claimed,
            -1 => Claim::PoolFull,
            _ => Claim::Gone,
        })
    }

    fn pool_running(&self, pool: &str) -> String {
        self.k(&format!("pool:{pool}:running"))
    }

    /// Hands a claimed request's answer to its hub. `started` says whether a
    /// session runs for it. Returns `false` if nobody takes the answer any
    /// more (the client left, or the claim was taken back): the caller ends
    /// the session it started.
    pub async fn complete(
        &self,
        w: &Waiting,
        node: &str,
        answer: &str,
        started: bool,
    ) -> StoreResult<bool> {
        let hub: Option<String> = Script::new(COMPLETE)
            .key(self.k(&format!("req:{}", w.id)))
            .key(self.k(&format!("node:{node}:claims")))
            .key(self.pool_running(w.pool.as_deref().unwrap_or("")))
            .arg(&w.id)
            .arg(node)
            .arg(answer)
            .arg(&self.ns)
            .arg(if started { "1" } else { "0" })
            .arg(FINISHED_TTL_MS)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("complete"))?;
        Ok(hub.is_some())
    }

    /// Withdraws a request whose hub gives up on it (`reason`: `queue_timeout`,
    /// `client_gone`). With `soft`, a request a node is starting is left to finish.
    pub async fn cancel(&self, rid: &str, reason: &str, soft: bool) -> StoreResult<Cancelled> {
        let (state, answer): (String, String) = Script::new(CANCEL)
            .key(self.k(&format!("req:{rid}")))
            .key(self.k("queue"))
            .arg(rid)
            .arg(reason)
            .arg(FINISHED_TTL_MS)
            .arg(if soft { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("cancel"))?;
        Ok(match state.as_str() {
            "removed" => Cancelled::Removed,
            "starting" => Cancelled::WhileStarting,
            "done" => Cancelled::Answered(answer),
            "missing" => Cancelled::Missing,
            // Already cancelled: nothing runs for it.
            _ => Cancelled::Removed,
        })
    }

    /// Where a request stands.
    pub async fn request_state(&self, rid: &str) -> StoreResult<RequestState> {
        let (state, answer): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.k(&format!("req:{rid}")))
            .arg(&["state", "answer"])
            .query_async(&mut self.conn())
            .await
            .map_err(err("request_state"))?;
        Ok(match (state.as_deref(), answer) {
            (None, _) => RequestState::Missing,
            (Some("done"), Some(a)) => RequestState::Answered(a),
            (Some("cancelled"), _) => RequestState::Cancelled,
            _ => RequestState::Pending,
        })
    }

    /// Registers (or re-registers) a node and starts its heartbeat.
    pub async fn register_node(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()> {
        let json = serde_json::to_string(info).map_err(|e| StoreError {
            op: "register_node",
            message: e.to_string(),
        })?;
        let key = self.k(&format!("node:{}", info.id));
        redis::pipe()
            .atomic()
            .del(&key)
            .hset_multiple(
                &key,
                &[("info", json.as_str()), ("used", "0"), ("draining", "0")],
            )
            .set_options(
                self.k(&format!("node:{}:alive", info.id)),
                "1",
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms(ttl))),
            )
            .sadd(self.k("nodes"), &info.id)
            .exec_async(&mut self.conn())
            .await
            .map_err(err("register_node"))
    }

    /// Renews a node's heartbeat for `ttl` and records its slots in use.
    pub async fn heartbeat(&self, node: &str, used: usize, ttl: Duration) -> StoreResult<Beat> {
        let n: i64 = Script::new(HEARTBEAT)
            .key(self.k(&format!("node:{node}")))
            .key(self.k(&format!("node:{node}:alive")))
            .arg(ttl_ms(ttl))
            .arg(used)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("heartbeat"))?;
        Ok(match n {
            -1 => Beat::Unknown,
            -2 => Beat::Lost,
            d => Beat::Alive { draining: d == 1 },
        })
    }

    /// Every registered node, live or not yet collected.
    pub async fn nodes(&self) -> StoreResult<Vec<NodeState>> {
        let ids: Vec<String> = self
            .conn()
            .smembers(self.k("nodes"))
            .await
            .map_err(err("nodes"))?;
        let mut out = Vec::new();
        for id in ids {
            let (info, used, draining): (Option<String>, Option<usize>, Option<String>) =
                redis::cmd("HMGET")
                    .arg(self.k(&format!("node:{id}")))
                    .arg(&["info", "used", "draining"])
                    .query_async(&mut self.conn())
                    .await
                    .map_err(err("nodes"))?;
            let alive: bool = self
                .conn()
                .exists(self.k(&format!("node:{id}:alive")))
                .await
                .map_err(err("nodes"))?;
            let Some(info) = info.and_then(|i| serde_json::from_str::<NodeInfo>(&i).ok()) else {
                continue;
            };
            out.push(NodeState {
                info,
                used: used.unwrap_or(0),
                draining: draining.as_deref() == Some("1"),
                alive,
            });
        }
        out.sort_by_key(|n| n.info.started_at);
        Ok(out)
    }

    /// Asks a node to drain; `false` if no such live node.
    pub async fn drain_node(&self, node: &str) -> StoreResult<bool> {
        let known: bool = self
            .conn()
            .sismember(self.k("nodes"), node)
            .await
            .map_err(err("drain_node"))?;
        if known {
            let _: () = self
                .conn()
                .hset(self.k(&format!("node:{node}")), "draining", "1")
                .await
                .map_err(err("drain_node"))?;
        }
        Ok(known)
    }

    /// Removes a node that leaves cleanly, with its routes, claims and pool places.
    pub async fn remove_node(&self, node: &str) -> StoreResult<()> {
        self.reclaim(node, true).await.map(drop)
    }

    /// Records that `node` runs session `sid` (started for request `rid`, in `pool`).
    pub async fn add_session(
        &self,
        node: &str,
        sid: &str,
        rid: &str,
        pool: Option<&str>,
    ) -> StoreResult<()> {
        let _: i64 = Script::new(ADD_SESSION)
            .key(self.k(&format!("node:{node}:sessions")))
            .key(self.k(&format!("route:{sid}")))
            .arg(sid)
            .arg(format!("{rid} {}", pool.unwrap_or("")))
            .arg(node)
            .arg(&self.ns)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("add_session"))?;
        Ok(())
    }

    /// Forgets the route and pool place of a session that ended on `node`.
    pub async fn remove_session(&self, node: &str, sid: &str) -> StoreResult<()> {
        let _: i64 = Script::new(REMOVE_SESSION)
            .key(self.k(&format!("node:{node}:sessions")))
            .key(self.k(&format!("route:{sid}")))
            .arg(sid)
            .arg(&self.ns)
            .arg(node)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("remove_session"))?;
        Ok(())
    }

    /// The node running session `sid`, if any.
    pub async fn route(&self, sid: &str) -> StoreResult<Option<String>> {
        self.conn()
            .get(self.k(&format!("route:{sid}")))
            .await
            .map_err(err("route"))
    }

    /// If `node`'s heartbeat has expired, declares it lost and returns the
    /// sessions it ran (the caller records their end); requests it was
    /// starting go back to the queue in their original place.
    pub async fn reclaim_node(&self, node: &str) -> StoreResult<Option<Vec<String>>> {
        self.reclaim(node, false).await
    }

    async fn reclaim(&self, node: &str, leaving: bool) -> StoreResult<Option<Vec<String>>> {
        Script::new(RECLAIM)
            .key(self.k(&format!("node:{node}")))
            .key(self.k(&format!("node:{node}:alive")))
            .key(self.k("nodes"))
            .key(self.k(&format!("node:{node}:claims")))
            .key(self.k(&format!("node:{node}:sessions")))
            .key(self.k("queue"))
            .key(self.work_channel())
            .arg(node)
            .arg(&self.ns)
            .arg(if leaving { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("reclaim_node"))
    }

    /// Renews hub `hub`'s heartbeat.
    pub async fn hub_heartbeat(&self, hub: &str, ttl: Duration) -> StoreResult<()> {
        redis::pipe()
            .sadd(self.k("hubs"), hub)
            .set_options(
                self.k(&format!("hub:{hub}:alive")),
                "1",
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms(ttl))),
            )
            .exec_async(&mut self.conn())
            .await
            .map_err(err("hub_heartbeat"))
    }

    /// Removes a hub that leaves cleanly.
    pub async fn remove_hub(&self, hub: &str) -> StoreResult<()> {
        redis::pipe()
            .srem(self.k("hubs"), hub)
            .del(&[
                self.k(&format!("hub:{hub}:alive")),
                self.k(&format!("hub:{hub}:requests")),
            ])
            .exec_async(&mut self.conn())
            .await
            .map_err(err("remove_hub"))
    }

    /// Forgets hubs whose heartbeat expired: withdraws their requests and
    /// returns the answers they never delivered (whose sessions nobody uses).
    pub async fn forget_dead_hubs(&self) -> StoreResult<(usize, Vec<String>)> {
        let hubs: Vec<String> = self
            .conn()
            .smembers(self.k("hubs"))
            .await
            .map_err(err("forget_dead_hubs"))?;
        let (mut forgotten, mut orphans) = (0, Vec::new());
        for hub in hubs {
            let answers: Option<Vec<String>> = Script::new(FORGET_HUB)
                .key(self.k("hubs"))
                .key(self.k(&format!("hub:{hub}:alive")))
                .key(self.k("queue"))
                .key(self.k(&format!("hub:{hub}:requests")))
                .arg(&hub)
                .arg(&self.ns)
                .arg(FINISHED_TTL_MS)
                .invoke_async(&mut self.conn())
                .await
                .map_err(err("forget_dead_hubs"))?;
            if let Some(a) = answers {
                forgotten += 1;
                orphans.extend(a);
            }
        }
        Ok((forgotten, orphans))
    }

    /// Takes the answer to `rid` for hub `hub`, once: `None` if there is none
    /// (any more). The hub must deliver it or end its session.
    pub async fn take_answer(&self, hub: &str, rid: &str) -> StoreResult<Option<String>> {
        Script::new(TAKE_ANSWER)
            .key(self.k(&format!("req:{rid}")))
            .key(self.k(&format!("hub:{hub}:requests")))
            .arg(rid)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("take_answer"))
    }

    /// Forgets that hub `hub` waits for `rid` (it gave up or got its answer).
    pub async fn close_request(&self, hub: &str, rid: &str) -> StoreResult<()> {
        self.conn()
            .srem(self.k(&format!("hub:{hub}:requests")), rid)
            .await
            .map_err(err("close_request"))
    }

    /// Takes the garbage collector's turn for `ttl` if no other hub holds it.
    pub async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let set: Option<String> = self
            .conn()
            .set_options(
                self.k(&format!("lock:{name}")),
                holder,
                redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(ttl_ms(ttl))),
            )
            .await
            .map_err(err("try_lock"))?;
        Ok(set.is_some())
    }

    /// Creates or replaces a pool.
    pub async fn put_pool(&self, pool: &Pool) -> StoreResult<()> {
        let json = serde_json::to_string(pool).map_err(|e| StoreError {
            op: "put_pool",
            message: e.to_string(),
        })?;
        redis::pipe()
            .atomic()
            .set(self.k(&format!("pool:{}", pool.name)), json)
            .sadd(self.k("pools"), &pool.name)
            .exec_async(&mut self.conn())
            .await
            .map_err(err("put_pool"))
    }

    /// One pool, if defined.
    pub async fn pool(&self, name: &str) -> StoreResult<Option<Pool>> {
        let json: Option<String> = self
            .conn()
            .get(self.k(&format!("pool:{name}")))
            .await
            .map_err(err("pool"))?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Every pool, by name, with the sessions each runs now.
    pub async fn pools(&self) -> StoreResult<Vec<(Pool, usize)>> {
        let mut names: Vec<String> = self
            .conn()
            .smembers(self.k("pools"))
            .await
            .map_err(err("pools"))?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(p) = self.pool(&name).await? {
                let running: usize = self
                    .conn()
                    .scard(self.pool_running(&name))
                    .await
                    .map_err(err("pools"))?;
                out.push((p, running));
            }
        }
        Ok(out)
    }

    /// Deletes a pool; `false` if it did not exist.
    pub async fn delete_pool(&self, name: &str) -> StoreResult<bool> {
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .srem(self.k("pools"), name)
            .del(self.k(&format!("pool:{name}")))
            .query_async(&mut self.conn())
            .await
            .map_err(err("delete_pool"))?;
        Ok(removed == 1)
    }

    /// Appends a lifecycle event (`kind` plus fields) to the event stream.
    /// Events are a record for observers: a failure is logged by the caller, never fatal.
    pub async fn event(&self, kind: &str, fields: &[(&str, &str)]) -> StoreResult<()> {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.k("events"))
            .arg("MAXLEN")
            .arg("~")
            .arg(EVENTS_KEPT)
            .arg("*")
            .arg("type")
            .arg(kind)
            .arg("at")
            .arg(crate::now_ms());
        for (k, v) in fields {
            cmd.arg(*k).arg(*v);
        }
        let _: String = cmd
            .query_async(&mut self.conn())
            .await
            .map_err(err("event"))?;
        Ok(())
    }
}

fn ttl_ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}
