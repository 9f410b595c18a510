//! The Redis store: session records shared by every process of a grid.
//!
//! Layout under a namespace `NS` (default `gridiron`):
//! `NS:session:ID` a hash per session, `NS:sessions` a sorted set of ids by
//! creation time, `NS:unfinished` the set of ids not yet ended, `NS:events` the event stream. Conditional
//! updates run as Lua scripts so they are atomic across processes.

use crate::cluster::keys::Keys;
use crate::redis_events::RedisEventLog;
use crate::{
    ApiKey, ErrorKind, NewSession, Role, SessionFilter, SessionRecord, Store, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use gridiron_domain::EndReason;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

/// How many records one round trip of [`Store::prune`] looks at.
const PRUNE_BATCH: usize = 500;

/// Session records in Redis.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: ConnectionManager,
    pub(crate) ns: String,
    /// The grid's event stream (shared with the cluster state's).
    events: Arc<RedisEventLog>,
}

/// Maps a Redis failure of `op` to a store error: connection trouble is worth
/// retrying, a reply of the wrong shape is not, nor is a refused command.
pub(crate) fn err(op: &'static str) -> impl Fn(redis::RedisError) -> StoreError {
    move |e| {
        use redis::{ErrorKind as K, RetryMethod};
        let kind = match e.kind() {
            K::UnexpectedReturnType | K::Parse => ErrorKind::Malformed,
            _ if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() => {
                ErrorKind::Unavailable
            }
            _ if matches!(e.retry_method(), RetryMethod::NoRetry) => ErrorKind::Failed,
            _ => ErrorKind::Unavailable,
        };
        StoreError::new(op, kind, e.to_string())
    }
}

// Moves a session forward only from the given states: KEYS[1] the hash,
// ARGV[1] new state, ARGV[2] comma-separated allowed states, then field/value pairs.
const ADVANCE: &str = r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local allowed = false
for s in string.gmatch(ARGV[2], '[^,]+') do
  if s == state then allowed = true end
end
if not allowed then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1
"#;

// Ends a session unless it already ended: KEYS[1] hash, KEYS[2] unfinished set,
// ARGV[1] id, ARGV[2] reason, ARGV[3] ended_at, ARGV[4] command count ('' keeps it).
const END: &str = r#"
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'ended' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'ended', 'end_reason', ARGV[2], 'ended_at', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'command_count', ARGV[4]) end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"#;

impl RedisStore {
    /// Connects to `url` (`redis://host:port/db`); keys live under `namespace`.
    /// The connection reconnects by itself after Redis restarts.
    pub async fn connect(url: &str, namespace: &str) -> StoreResult<Self> {
        let client = redis::Client::open(url).map_err(err("connect"))?;
        let conn = ConnectionManager::new(client.clone())
            .await
            .map_err(err("connect"))?;
        let events = RedisEventLog::new(client, conn.clone(), Keys::new(namespace));
        Ok(RedisStore {
            conn,
            ns: namespace.to_string(),
            events: Arc::new(events),
        })
    }

    /// A store on an existing connection and event stream (the cluster state's).
    pub(crate) fn from_parts(
        conn: ConnectionManager,
        ns: String,
        events: Arc<RedisEventLog>,
    ) -> Self {
        RedisStore { conn, ns, events }
    }

    fn key(&self, id: &str) -> String {
        format!("{}:session:{id}", self.ns)
    }

    fn index(&self) -> String {
        format!("{}:sessions", self.ns)
    }

    fn unfinished(&self) -> String {
        format!("{}:unfinished", self.ns)
    }

    fn api_keys(&self) -> String {
        format!("{}:apikeys", self.ns)
    }

    async fn advance(
        &self,
        op: &'static str,
        id: &str,
        to: &str,
        from: &str,
        fields: &[(&str, String)],
    ) -> StoreResult<()> {
        let script = Script::new(ADVANCE);
        let mut inv = script.key(self.key(id));
        inv.arg(to).arg(from);
        for (k, v) in fields {
            inv.arg(*k).arg(v);
        }
        let _: i64 = inv
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err(op))?;
        Ok(())
    }

    async fn end(
        &self,
        op: &'static str,
        id: &str,
        reason: EndReason,
        ended_at: i64,
        commands: Option<u64>,
    ) -> StoreResult<bool> {
        let n: i64 = Script::new(END)
            .key(self.key(id))
            .key(self.unfinished())
            .arg(id)
            .arg(reason.as_str())
            .arg(ended_at)
            .arg(commands.map(|c| c.to_string()).unwrap_or_default())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err(op))?;
        Ok(n == 1)
    }
}

/// A session record from its hash; `None` (and a warning) if it lacks its id
/// or state, `None` quietly if there is no hash at all.
fn record(h: HashMap<String, String>) -> Option<SessionRecord> {
    if h.is_empty() {
        return None;
    }
    if !(h.contains_key("id") && h.contains_key("state")) {
        tracing::warn!(fields = ?h.keys().collect::<Vec<_>>(), "skipping a malformed session record");
        return None;
    }
    let json = |k: &str| {
        h.get(k)
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null)
    };
    let int = |k: &str| h.get(k).and_then(|s| s.parse::<i64>().ok());
    Some(SessionRecord {
        id: h.get("id")?.clone(),
        state: h.get("state")?.clone(),
        browser: h.get("browser").cloned().unwrap_or_default(),
        requested_caps: json("requested_caps"),
        granted_caps: json("granted_caps"),
        grid_options: json("grid_options"),
        created_at: int("created_at").unwrap_or(0),
        started_at: int("started_at"),
        ended_at: int("ended_at"),
        end_reason: h.get("end_reason").and_then(|r| EndReason::parse(r)),
        command_count: int("command_count").unwrap_or(0).max(0) as u64,
        owner: h.get("owner").filter(|o| !o.is_empty()).cloned(),
    })
}

/// An API key as stored in the keys hash.
fn key_json(k: &ApiKey) -> String {
    serde_json::json!({
        "role": k.role.as_str(),
        "token_hash": k.token_hash,
        "max_sessions": k.max_sessions,
        "rate": k.rate,
        "created_at": k.created_at,
    })
    .to_string()
}

/// An API key from the keys hash; `None` (and a warning) if malformed.
fn key_from(name: String, v: &str) -> Option<ApiKey> {
    let j: Value = serde_json::from_str(v).ok()?;
    let key = ApiKey {
        role: j["role"]
            .as_str()
            .and_then(Role::parse)
            .unwrap_or(Role::User),
        token_hash: j["token_hash"].as_str()?.to_string(),
        max_sessions: j["max_sessions"]
            .as_u64()
            .map(|m| m.min(u32::MAX as u64) as u32),
        rate: j["rate"].as_f64(),
        created_at: j["created_at"].as_i64().unwrap_or(0),
        name,
    };
    Some(key)
}

crate::events::delegate_event_log!(RedisStore, events);

#[async_trait]
impl Store for RedisStore {
    async fn insert(&self, s: NewSession, queued: bool) -> StoreResult<()> {
        let key = self.key(&s.id);
        let fields = [
            ("id", s.id.clone()),
            (
                "state",
                if queued { "queued" } else { "provisioning" }.to_string(),
            ),
            ("browser", s.browser.clone()),
            ("requested_caps", s.requested_caps.to_string()),
            ("grid_options", s.grid_options.to_string()),
            ("created_at", s.created_at.to_string()),
            ("command_count", "0".to_string()),
            ("owner", s.owner.clone().unwrap_or_default()),
        ];
        redis::pipe()
            .atomic()
            .hset_multiple(&key, &fields)
            .zadd(self.index(), &s.id, s.created_at)
            .sadd(self.unfinished(), &s.id)
            .exec_async(&mut self.conn.clone())
            .await
            .map_err(err("insert"))
    }

    async fn mark_running(&self, id: &str, granted: Value, started_at: i64) -> StoreResult<()> {
        self.advance(
            "mark_running",
            id,
            "running",
            "queued,provisioning",
            &[
                ("granted_caps", granted.to_string()),
                ("started_at", started_at.to_string()),
            ],
        )
        .await
    }

    async fn mark_ended(
        &self,
        id: &str,
        reason: EndReason,
        ended_at: i64,
        command_count: u64,
    ) -> StoreResult<()> {
        self.end("mark_ended", id, reason, ended_at, Some(command_count))
            .await
            .map(drop)
    }

    async fn get(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        let h: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.key(id))
            .await
            .map_err(err("get"))?;
        Ok(record(h))
    }

    async fn list(&self, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = self
            .conn
            .clone()
            .zrevrange(self.index(), 0, limit as isize - 1)
            .await
            .map_err(err("list"))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(r) = self.get(&id).await? {
                out.push(r);
            }
        }
        Ok(out)
    }

    async fn query(&self, filter: &SessionFilter, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        // The index is scored by creation time: read it newest first from the
        // cursor (or time bound) down, in batches, keeping what the filter keeps.
        const BATCH: isize = 200;
        let max = match (filter.cursor.as_ref().map(|c| c.at), filter.created_before) {
            (Some(a), Some(b)) => a.min(b - 1),
            (Some(a), None) => a,
            (None, Some(b)) => b - 1,
            (None, None) => i64::MAX,
        };
        let min = filter.created_after.unwrap_or(i64::MIN);
        let mut out = Vec::new();
        let mut offset = 0;
        while out.len() < limit && max >= min {
            let ids: Vec<String> = self
                .conn
                .clone()
                .zrevrangebyscore_limit(self.index(), max, min, offset, BATCH)
                .await
                .map_err(err("query"))?;
            let n = ids.len();
            for id in ids {
                if let Some(r) = self.get(&id).await? {
                    if out.len() < limit && filter.matches(&r.facts()) {
                        out.push(r);
                    }
                }
            }
            if (n as isize) < BATCH {
                break;
            }
            offset += BATCH;
        }
        Ok(out)
    }

    async fn close_unfinished(&self, reason: EndReason, ended_at: i64) -> StoreResult<usize> {
        let ids: Vec<String> = self
            .conn
            .clone()
            .smembers(self.unfinished())
            .await
            .map_err(err("close_unfinished"))?;
        let mut closed = 0;
        for id in ids {
            if self
                .end("close_unfinished", &id, reason, ended_at, None)
                .await?
            {
                closed += 1;
            }
        }
        Ok(closed)
    }

    async fn end_elsewhere(&self, id: &str, reason: EndReason, ended_at: i64) -> StoreResult<bool> {
        self.end("end_elsewhere", id, reason, ended_at, None).await
    }

    async fn prune(&self, older_than: i64) -> StoreResult<usize> {
        // A session ends after it was created, so every record to delete is
        // among those created before the cutoff: the index finds them.
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrangebyscore(self.index(), "-inf", format!("({older_than}"))
            .await
            .map_err(err("prune"))?;
        let mut pruned = 0;
        for chunk in ids.chunks(PRUNE_BATCH) {
            let mut check = redis::pipe();
            for id in chunk {
                check
                    .cmd("HMGET")
                    .arg(self.key(id))
                    .arg(&["state", "ended_at", "created_at"]);
            }
            let fields: Vec<(Option<String>, Option<i64>, Option<i64>)> =
                check.query_async(&mut conn).await.map_err(err("prune"))?;
            let mut delete = redis::pipe();
            let mut deleting = false;
            for (id, (state, ended_at, created_at)) in chunk.iter().zip(fields) {
                let ended = state.as_deref() == Some("ended");
                let at = ended_at.or(created_at).unwrap_or(i64::MAX);
                // A record gone from its hash (deleted elsewhere) leaves only its index entry.
                if state.is_none() || (ended && at < older_than) {
                    delete.del(self.key(id)).ignore();
                    delete.zrem(self.index(), id).ignore();
                    pruned += usize::from(state.is_some());
                    deleting = true;
                }
            }
            if deleting {
                let () = delete.query_async(&mut conn).await.map_err(err("prune"))?;
            }
        }
        Ok(pruned)
    }

    async fn unfinished_ids(&self) -> StoreResult<Vec<String>> {
        self.conn
            .clone()
            .smembers(self.unfinished())
            .await
            .map_err(err("unfinished_ids"))
    }

    async fn create_key(&self, key: ApiKey) -> StoreResult<bool> {
        self.conn
            .clone()
            .hset_nx(self.api_keys(), &key.name, key_json(&key))
            .await
            .map_err(err("create_key"))
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKey>> {
        let all: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.api_keys())
            .await
            .map_err(err("keys"))?;
        let mut out: Vec<ApiKey> = all
            .into_iter()
            .filter_map(|(name, v)| {
                let k = key_from(name.clone(), &v);
                if k.is_none() {
                    tracing::warn!(key = %name, "skipping a malformed API key record");
                }
                k
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn revoke_key(&self, name: &str) -> StoreResult<bool> {
        let n: i64 = self
            .conn
            .clone()
            .hdel(self.api_keys(), name)
            .await
            .map_err(err("revoke_key"))?;
        Ok(n == 1)
    }
}
