//! A grid's shared state in Redis. Every step that must not interleave with
//! another process runs as one Lua script (in `src/lua`); each request
//! script stores a transition of [`gridiron_domain::request::step`], and the
//! Rust side maps its reply to a typed result. Key names come from [`Keys`].

use super::{
    place, session_value, Cancelled, Claim, Cluster, Completion, Ended, NodeInfo, NodeState,
    QueuedRequest, RequestState, Started, Waiting, FINISHED_TTL,
};
use crate::redis_events::RedisEventLog;
use crate::redis_store::err;
use crate::{ErrorKind, RedisStore, Store, StoreError, StoreResult};
use async_trait::async_trait;
use gridiron_domain::pool::Pool;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::mpsc;

use super::keys::Keys;

macro_rules! script {
    ($name:ident, $file:literal) => {
        pub(super) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

script!(ENQUEUE, "enqueue.lua");
script!(CLAIM, "claim.lua");
script!(COMPLETE, "complete.lua");
script!(CANCEL, "cancel.lua");
script!(TAKE_ANSWER, "take_answer.lua");
script!(REGISTER, "register.lua");
script!(HEARTBEAT, "heartbeat.lua");
script!(ADD_SESSION, "add_session.lua");
script!(REMOVE_SESSION, "remove_session.lua");
script!(RECLAIM, "reclaim.lua");
script!(FORGET_HUB, "forget_hub.lua");

/// How often a script whose keys depend on data is tried again when the data
/// changed between the read and the script, before giving up with a conflict.
pub(super) const ATTEMPTS: usize = 8;

/// `body, pool, pool_max, base, hub, owner, key_max, created` of a request hash. Numbers are
/// read as text and parsed after, so one bad value cannot fail the whole page.
type WaitingRow = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Handle on a grid's shared state in Redis. Cheap to clone.
#[derive(Clone)]
pub struct RedisCluster {
    /// For subscriptions, which need connections of their own.
    client: redis::Client,
    /// Shared by every command; reconnects by itself.
    pub(super) conn: ConnectionManager,
    pub(super) keys: Keys,
    ns: String,
    /// The grid's event stream, shared with its session store.
    events: Arc<RedisEventLog>,
}

/// The key whose session limit counts for `w`: its owner if that key has a
/// limit, `""` (a set nothing is added to) otherwise.
fn limited_key(w: &Waiting) -> &str {
    if w.key_max > 0 {
        &w.owner
    } else {
        ""
    }
}

pub(super) fn ms(d: Duration) -> u64 {
    (d.as_millis() as u64).max(1)
}

pub(super) fn conflict(op: &'static str) -> StoreError {
    StoreError::new(
        op,
        ErrorKind::Conflict,
        "the data kept changing while the step was prepared",
    )
}

impl RedisCluster {
    /// Connects to `url`; keys live under `namespace`. Reconnects by itself.
    pub async fn connect(url: &str, namespace: &str) -> StoreResult<Self> {
        let client = redis::Client::open(url).map_err(err("connect"))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let conn = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(err("connect"))?;
        let events = RedisEventLog::new(client.clone(), conn.clone(), Keys::new(namespace));
        Ok(RedisCluster {
            events: Arc::new(events),
            client,
            conn,
            keys: Keys::new(namespace),
            ns: namespace.to_string(),
        })
    }

    pub(super) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// `complete.lua`, with a started session's route and the node's load
    /// recorded first when `started` is given.
    async fn complete_with(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        started: bool,
        session: Option<&Started<'_>>,
    ) -> StoreResult<Completion> {
        let k = &self.keys;
        // The hub's alive key depends on the request's record: start from
        // the hub the node read, and follow the script if it names another.
        let mut hub = w.hub.clone();
        for _ in 0..ATTEMPTS {
            let mut script = COMPLETE.prepare_invoke();
            script
                .key(k.request(&w.id))
                .key(k.node_claims(node))
                .key(k.pool_running(w.pool.as_deref().unwrap_or("")))
                .key(k.hub_alive(&hub))
                .key(k.key_running(limited_key(w)))
                .arg(&w.id)
                .arg(node)
                .arg(epoch)
                .arg(answer)
                .arg(if started { "1" } else { "0" })
                .arg(ms(FINISHED_TTL))
                .arg(&hub)
                .arg(k.hub_channel(&hub))
                .arg(k.work_channel());
            if let Some(s) = session {
                let pool = w.pool.as_deref().filter(|p| !p.is_empty());
                let key = s.key.filter(|k| !k.is_empty());
                script
                    .key(k.node_sessions(node))
                    .key(k.route(s.sid))
                    .key(k.node(node))
                    .key(k.node_alive(node))
                    .arg(s.sid)
                    .arg(session_value(&w.id, pool, key))
                    .arg(pool.map(|_| place(&w.id, node)).unwrap_or_default())
                    .arg(key.map(|_| place(&w.id, node)).unwrap_or_default())
                    .arg(s.used)
                    .arg(ms(s.ttl));
            }
            let reply: Vec<String> = script
                .invoke_async(&mut self.conn())
                .await
                .map_err(err("complete"))?;
            match reply.first().map(String::as_str) {
                Some("delivered") => return Ok(Completion::Delivered),
                Some("gone") => return Ok(Completion::Gone),
                Some("fenced") => return Ok(Completion::Fenced),
                Some("hub") => hub = reply.get(1).cloned().unwrap_or_default(),
                _ => {
                    return Err(StoreError::new(
                        "complete",
                        ErrorKind::Malformed,
                        format!("unexpected reply {reply:?}"),
                    ))
                }
            }
        }
        Err(conflict("complete"))
    }
}

crate::events::delegate_event_log!(RedisCluster, events);

#[async_trait]
impl Cluster for RedisCluster {
    fn sessions(&self) -> Arc<dyn Store> {
        Arc::new(RedisStore::from_parts(
            self.conn.clone(),
            self.ns.clone(),
            self.events.clone(),
        ))
    }

    fn work_channel(&self) -> String {
        self.keys.work_channel()
    }

    fn hub_channel(&self, hub: &str) -> String {
        self.keys.hub_channel(hub)
    }

    fn subscribe(&self, channels: Vec<String>) -> mpsc::UnboundedReceiver<(String, String)> {
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

    async fn enqueue(&self, r: &QueuedRequest, max_queue: usize) -> StoreResult<Option<u64>> {
        let k = &self.keys;
        let seq: i64 = ENQUEUE
            .key(k.queue())
            .key(k.seq())
            .key(k.request(&r.id))
            .key(k.hub_requests(&r.hub))
            .key(k.key_rounds())
            .key(k.round())
            .arg(&r.id)
            .arg(max_queue)
            .arg(k.work_channel())
            .arg(&r.owner)
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
            .arg("owner")
            .arg(&r.owner)
            .arg("key_max")
            .arg(r.key_max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("enqueue"))?;
        Ok((seq > 0).then_some(seq as u64))
    }

    async fn waiting(&self, offset: usize, limit: usize) -> StoreResult<Vec<Waiting>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = self
            .conn()
            .zrange(
                self.keys.queue(),
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
            pipe.cmd("HMGET").arg(self.keys.request(id)).arg(&[
                "body", "pool", "pool_max", "base", "hub", "owner", "key_max", "created",
            ]);
        }
        let rows: Vec<WaitingRow> = pipe
            .query_async(&mut self.conn())
            .await
            .map_err(err("waiting"))?;
        Ok(ids
            .into_iter()
            .zip(rows)
            .filter_map(|(id, (body, pool, max, base, hub, owner, key_max, created))| {
                let Some(body) = body else {
                    tracing::warn!(request = %id, "skipping a queued request without a body");
                    return None;
                };
                let pool_max = match max.map(|m| m.parse::<u32>()) {
                    None => 0,
                    Some(Ok(m)) => m,
                    Some(Err(_)) => {
                        tracing::warn!(request = %id, "skipping a queued request with a malformed pool_max");
                        return None;
                    }
                };
                let key_max = match key_max.map(|m| m.parse::<u32>()) {
                    None => 0,
                    Some(Ok(m)) => m,
                    Some(Err(_)) => {
                        tracing::warn!(request = %id, "skipping a queued request with a malformed key_max");
                        return None;
                    }
                };
                Some(Waiting {
                    id,
                    body,
                    pool: pool.filter(|p| !p.is_empty()),
                    pool_max,
                    public_base: base.unwrap_or_default(),
                    hub: hub.unwrap_or_default(),
                    owner: owner.unwrap_or_default(),
                    key_max,
                    // Only shown to operators (time waited): a bad value is not worth a skip.
                    created_at: created.and_then(|c| c.parse().ok()).unwrap_or(0),
                })
            })
            .collect())
    }

    async fn queue_len(&self) -> StoreResult<usize> {
        self.conn()
            .zcard(self.keys.queue())
            .await
            .map_err(err("queue_len"))
    }

    async fn claim(&self, w: &Waiting, node: &str) -> StoreResult<Claim> {
        let k = &self.keys;
        let (n, epoch): (i64, String) = CLAIM
            .key(k.request(&w.id))
            .key(k.queue())
            .key(k.node_claims(node))
            .key(k.pool_running(w.pool.as_deref().unwrap_or("")))
            .key(k.node(node))
            .key(k.key_running(limited_key(w)))
            .key(k.round())
            .arg(&w.id)
            .arg(node)
            .arg(w.pool_max)
            .arg(w.key_max)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("claim"))?;
        Ok(match n {
            1 => Claim::Claimed {
                epoch: epoch.parse().map_err(|_| {
                    StoreError::new("claim", ErrorKind::Malformed, format!("epoch {epoch:?}"))
                })?,
            },
            -1 => Claim::PoolFull,
            -2 => Claim::KeyFull,
            _ => Claim::Gone,
        })
    }

    async fn complete(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        started: bool,
    ) -> StoreResult<Completion> {
        self.complete_with(w, node, epoch, answer, started, None)
            .await
    }

    async fn complete_started(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        s: &Started<'_>,
    ) -> StoreResult<Completion> {
        self.complete_with(w, node, epoch, answer, true, Some(s))
            .await
    }

    async fn cancel(&self, rid: &str, reason: &str, soft: bool) -> StoreResult<Cancelled> {
        let (state, answer): (String, String) = CANCEL
            .key(self.keys.request(rid))
            .key(self.keys.queue())
            .arg(rid)
            .arg(reason)
            .arg(ms(FINISHED_TTL))
            .arg(if soft { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("cancel"))?;
        Ok(match state.as_str() {
            "starting" => Cancelled::WhileStarting,
            "done" => Cancelled::Answered(answer),
            "missing" => Cancelled::Missing,
            // Removed now, or already over: nothing runs for it.
            _ => Cancelled::Removed,
        })
    }

    async fn request_state(&self, rid: &str) -> StoreResult<RequestState> {
        let (state, answer): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.keys.request(rid))
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

    async fn take_answer(&self, hub: &str, rid: &str) -> StoreResult<Option<String>> {
        TAKE_ANSWER
            .key(self.keys.request(rid))
            .key(self.keys.hub_requests(hub))
            .arg(rid)
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("take_answer"))
    }

    async fn close_request(&self, hub: &str, rid: &str) -> StoreResult<()> {
        self.conn()
            .srem(self.keys.hub_requests(hub), rid)
            .await
            .map_err(err("close_request"))
    }

    async fn register_node(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()> {
        self.register(info, ttl).await
    }

    async fn heartbeat(&self, node: &str, used: usize, ttl: Duration) -> StoreResult<super::Beat> {
        self.beat(node, used, ttl).await
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeState>> {
        self.list_nodes().await
    }

    async fn drain_node(&self, node: &str) -> StoreResult<bool> {
        self.drain(node).await
    }

    async fn remove_node(&self, node: &str) -> StoreResult<()> {
        self.reclaim(node, true).await.map(drop)
    }

    async fn reclaim_node(&self, node: &str) -> StoreResult<Option<Vec<String>>> {
        self.reclaim(node, false).await
    }

    async fn add_session(
        &self,
        node: &str,
        sid: &str,
        rid: &str,
        pool: Option<&str>,
        key: Option<&str>,
    ) -> StoreResult<()> {
        self.add_route(node, sid, rid, pool, key).await
    }

    async fn remove_session(&self, node: &str, sid: &str) -> StoreResult<()> {
        self.remove_route(node, sid, None).await
    }

    async fn end_session(&self, node: &str, e: &Ended<'_>) -> StoreResult<()> {
        self.remove_route(node, e.sid, Some(e)).await
    }

    async fn route(&self, sid: &str) -> StoreResult<Option<String>> {
        self.conn()
            .get(self.keys.route(sid))
            .await
            .map_err(err("route"))
    }

    async fn hub_heartbeat(&self, hub: &str, ttl: Duration) -> StoreResult<bool> {
        let (added,): (i64,) = redis::pipe()
            .sadd(self.keys.hubs(), hub)
            .set_options(
                self.keys.hub_alive(hub),
                "1",
                redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ms(ttl))),
            )
            .ignore()
            .query_async(&mut self.conn())
            .await
            .map_err(err("hub_heartbeat"))?;
        Ok(added == 0)
    }

    async fn remove_hub(&self, hub: &str) -> StoreResult<()> {
        redis::pipe()
            .srem(self.keys.hubs(), hub)
            .del(&[self.keys.hub_alive(hub), self.keys.hub_requests(hub)])
            .exec_async(&mut self.conn())
            .await
            .map_err(err("remove_hub"))
    }

    async fn forget_dead_hubs(&self) -> StoreResult<(usize, Vec<String>)> {
        self.forget_hubs().await
    }

    async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        let set: Option<String> = self
            .conn()
            .set_options(
                self.keys.lock(name),
                holder,
                redis::SetOptions::default()
                    .conditional_set(redis::ExistenceCheck::NX)
                    .with_expiration(redis::SetExpiry::PX(ms(ttl))),
            )
            .await
            .map_err(err("try_lock"))?;
        Ok(set.is_some())
    }

    async fn put_pool(&self, pool: &Pool) -> StoreResult<()> {
        self.store_pool(pool).await
    }

    async fn pool(&self, name: &str) -> StoreResult<Option<Pool>> {
        self.read_pool(name).await
    }

    async fn pools(&self) -> StoreResult<Vec<(Pool, usize)>> {
        self.list_pools().await
    }

    async fn delete_pool(&self, name: &str) -> StoreResult<bool> {
        let (removed, _): (i64, i64) = redis::pipe()
            .atomic()
            .srem(self.keys.pools(), name)
            .del(self.keys.pool(name))
            .query_async(&mut self.conn())
            .await
            .map_err(err("delete_pool"))?;
        Ok(removed == 1)
    }
}
