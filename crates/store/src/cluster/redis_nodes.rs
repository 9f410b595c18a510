//! The Redis side of nodes, sessions, hubs, pools and events. Steps whose
//! keys depend on data (a node's sessions, a hub's requests) read that data
//! first, pass every key to the script, and try again if the script finds
//! the data changed meanwhile.

use super::redis::{
    conflict, ms, RedisCluster, ADD_SESSION, ATTEMPTS, FORGET_HUB, HEARTBEAT, RECLAIM, REGISTER,
    REMOVE_SESSION,
};
use super::{
    parse_session_value, place, session_value, Beat, Ended, NodeInfo, NodeState, FINISHED_TTL,
    LOST_TTL,
};
use crate::redis_store::err;
use crate::{ErrorKind, StoreError, StoreResult};
use gridiron_domain::pool::Pool;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::time::Duration;

impl RedisCluster {
    pub(super) async fn register(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()> {
        let json = serde_json::to_string(info)
            .map_err(|e| StoreError::new("register_node", ErrorKind::Malformed, e.to_string()))?;
        let k = &self.keys;
        let _: String = REGISTER
            .key(k.node(&info.id))
            .key(k.node_alive(&info.id))
            .key(k.nodes())
            .key(k.epochs())
            .arg(&info.id)
            .arg(json)
            .arg(ms(ttl))
            .arg(crate::now_ms())
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("register_node"))?;
        Ok(())
    }

    pub(super) async fn beat(&self, node: &str, used: usize, ttl: Duration) -> StoreResult<Beat> {
        let n: i64 = HEARTBEAT
            .key(self.keys.node(node))
            .key(self.keys.node_alive(node))
            .arg(ms(ttl))
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

    pub(super) async fn list_nodes(&self) -> StoreResult<Vec<NodeState>> {
        let ids: Vec<String> = self
            .conn()
            .smembers(self.keys.nodes())
            .await
            .map_err(err("nodes"))?;
        let mut out = Vec::new();
        for id in ids {
            // `used` as text: a malformed count must not fail the whole list.
            type Row = (
                Option<String>,
                Option<String>,
                Option<String>,
                Option<String>,
            );
            let (info, used, draining, ttl): Row = redis::cmd("HMGET")
                .arg(self.keys.node(&id))
                .arg(&["info", "used", "draining", "ttl"])
                .query_async(&mut self.conn())
                .await
                .map_err(err("nodes"))?;
            // -2: no alive key (expired); otherwise its remaining ms.
            let left: i64 = self
                .conn()
                .pttl(self.keys.node_alive(&id))
                .await
                .map_err(err("nodes"))?;
            let alive = left != -2;
            let Some(info) = info else { continue };
            let info = match serde_json::from_str::<NodeInfo>(&info) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(node = %id, error = %e, "skipping a malformed node description");
                    continue;
                }
            };
            let used = match used.map(|u| u.parse::<usize>()) {
                None => 0,
                Some(Ok(u)) => u,
                Some(Err(_)) => {
                    tracing::warn!(node = %id, "skipping a node with a malformed slot count");
                    continue;
                }
            };
            out.push(NodeState {
                info,
                used,
                draining: draining.as_deref() == Some("1"),
                alive,
                heartbeat_age_ms: heartbeat_age(ttl.as_deref(), left),
            });
        }
        // Oldest first; ties by id, so every store lists them alike.
        out.sort_by(|a, b| (a.info.started_at, &a.info.id).cmp(&(b.info.started_at, &b.info.id)));
        Ok(out)
    }

    pub(super) async fn drain(&self, node: &str) -> StoreResult<bool> {
        let known: bool = self
            .conn()
            .sismember(self.keys.nodes(), node)
            .await
            .map_err(err("drain_node"))?;
        if known {
            let _: () = self
                .conn()
                .hset(self.keys.node(node), "draining", "1")
                .await
                .map_err(err("drain_node"))?;
        }
        Ok(known)
    }

    /// Declares `node` lost (or, `leaving`, removes it); see `reclaim.lua`.
    pub(super) async fn reclaim(
        &self,
        node: &str,
        leaving: bool,
    ) -> StoreResult<Option<Vec<String>>> {
        let op = if leaving {
            "remove_node"
        } else {
            "reclaim_node"
        };
        let k = &self.keys;
        for _ in 0..ATTEMPTS {
            let (claims, sessions): (Vec<String>, HashMap<String, String>) = redis::pipe()
                .smembers(k.node_claims(node))
                .hgetall(k.node_sessions(node))
                .query_async(&mut self.conn())
                .await
                .map_err(err(op))?;
            // Per claim: its pool, and its key if that key has a limit.
            let mut holds: Vec<(Option<String>, Option<String>, Option<String>)> = Vec::new();
            if !claims.is_empty() {
                let mut pipe = redis::pipe();
                for rid in &claims {
                    pipe.cmd("HMGET")
                        .arg(k.request(rid))
                        .arg(&["pool", "owner", "key_max"]);
                }
                holds = pipe.query_async(&mut self.conn()).await.map_err(err(op))?;
            }
            let mut s = RECLAIM.prepare_invoke();
            s.key(k.node(node))
                .key(k.node_alive(node))
                .key(k.nodes())
                .key(k.node_claims(node))
                .key(k.node_sessions(node))
                .key(k.queue());
            s.arg(node)
                .arg(if leaving { "1" } else { "0" })
                .arg(ms(LOST_TTL))
                .arg(k.work_channel())
                .arg(claims.len());
            for (rid, (pool, owner, key_max)) in claims.iter().zip(&holds) {
                let pool = pool.as_deref().unwrap_or("");
                let limited = key_max
                    .as_deref()
                    .and_then(|m| m.parse::<u64>().ok())
                    .is_some_and(|m| m > 0);
                let key = if limited {
                    owner.as_deref().unwrap_or("")
                } else {
                    ""
                };
                s.key(k.request(rid))
                    .key(k.pool_running(pool))
                    .key(k.key_running(key));
                s.arg(rid).arg(pool).arg(key);
            }
            s.arg(sessions.len());
            for (sid, v) in &sessions {
                let (_, pool, key) = parse_session_value(v);
                s.key(k.route(sid))
                    .key(k.pool_running(pool.unwrap_or("")))
                    .key(k.key_running(key.unwrap_or("")));
                s.arg(sid).arg(v);
            }
            let mut reply: Vec<String> = s.invoke_async(&mut self.conn()).await.map_err(err(op))?;
            match reply.first().map(String::as_str) {
                Some("alive") => return Ok(None),
                Some("done") => return Ok(Some(reply.split_off(1))),
                _ => {}
            }
        }
        Err(conflict(op))
    }

    pub(super) async fn add_route(
        &self,
        node: &str,
        sid: &str,
        rid: &str,
        pool: Option<&str>,
        key: Option<&str>,
    ) -> StoreResult<()> {
        let pool = pool.filter(|p| !p.is_empty());
        let key = key.filter(|k| !k.is_empty());
        let _: i64 = ADD_SESSION
            .key(self.keys.node_sessions(node))
            .key(self.keys.route(sid))
            .key(self.keys.pool_running(pool.unwrap_or("")))
            .key(self.keys.key_running(key.unwrap_or("")))
            .arg(sid)
            .arg(session_value(rid, pool, key))
            .arg(node)
            .arg(pool.map(|_| place(rid, node)).unwrap_or_default())
            .arg(key.map(|_| place(rid, node)).unwrap_or_default())
            .invoke_async(&mut self.conn())
            .await
            .map_err(err("add_session"))?;
        Ok(())
    }

    /// Forgets a session's route and places; with `ended`, the node's record
    /// of it is tried first (no read needed when it matches the store's) and
    /// the node's slots in use are recorded in the same step.
    pub(super) async fn remove_route(
        &self,
        node: &str,
        sid: &str,
        ended: Option<&Ended<'_>>,
    ) -> StoreResult<()> {
        let k = &self.keys;
        let mut known = ended.map(|e| session_value(e.rid, e.pool, e.key));
        for _ in 0..ATTEMPTS {
            let v = match known.take() {
                Some(v) => v,
                None => {
                    let v: Option<String> = self
                        .conn()
                        .hget(k.node_sessions(node), sid)
                        .await
                        .map_err(err("remove_session"))?;
                    v.unwrap_or_default()
                }
            };
            let (rid, pool, key) = parse_session_value(&v);
            let mut script = REMOVE_SESSION.prepare_invoke();
            script
                .key(k.node_sessions(node))
                .key(k.route(sid))
                .key(k.pool_running(pool.unwrap_or("")))
                .key(k.key_running(key.unwrap_or("")))
                .arg(sid)
                .arg(&v)
                .arg(pool.map(|_| place(rid, node)).unwrap_or_default())
                .arg(key.map(|_| place(rid, node)).unwrap_or_default())
                .arg(k.work_channel());
            if let Some(e) = ended {
                script
                    .key(k.node(node))
                    .key(k.node_alive(node))
                    .arg(e.used)
                    .arg(ms(e.ttl));
            }
            let reply: String = script
                .invoke_async(&mut self.conn())
                .await
                .map_err(err("remove_session"))?;
            if reply == "ok" {
                return Ok(());
            }
        }
        Err(conflict("remove_session"))
    }

    /// Forgets every hub whose heartbeat expired; see `forget_hub.lua`.
    pub(super) async fn forget_hubs(&self) -> StoreResult<(usize, Vec<String>)> {
        let op = "forget_dead_hubs";
        let k = &self.keys;
        let hubs: Vec<String> = self.conn().smembers(k.hubs()).await.map_err(err(op))?;
        let (mut forgotten, mut orphans) = (0, Vec::new());
        'hubs: for hub in hubs {
            for _ in 0..ATTEMPTS {
                let rids: Vec<String> = self
                    .conn()
                    .smembers(k.hub_requests(&hub))
                    .await
                    .map_err(err(op))?;
                let mut s = FORGET_HUB.prepare_invoke();
                s.key(k.hubs())
                    .key(k.hub_alive(&hub))
                    .key(k.queue())
                    .key(k.hub_requests(&hub));
                s.arg(&hub).arg(ms(FINISHED_TTL)).arg(rids.len());
                for rid in &rids {
                    s.key(k.request(rid));
                    s.arg(rid);
                }
                let mut reply: Vec<String> =
                    s.invoke_async(&mut self.conn()).await.map_err(err(op))?;
                match reply.first().map(String::as_str) {
                    Some("alive") => continue 'hubs,
                    Some("done") => {
                        forgotten += 1;
                        orphans.extend(reply.split_off(1));
                        continue 'hubs;
                    }
                    _ => {}
                }
            }
            return Err(conflict(op));
        }
        Ok((forgotten, orphans))
    }

    pub(super) async fn store_pool(&self, pool: &Pool) -> StoreResult<()> {
        let json = serde_json::to_string(pool)
            .map_err(|e| StoreError::new("put_pool", ErrorKind::Malformed, e.to_string()))?;
        redis::pipe()
            .atomic()
            .set(self.keys.pool(&pool.name), json)
            .sadd(self.keys.pools(), &pool.name)
            .exec_async(&mut self.conn())
            .await
            .map_err(err("put_pool"))
    }

    pub(super) async fn read_pool(&self, name: &str) -> StoreResult<Option<Pool>> {
        let json: Option<String> = self
            .conn()
            .get(self.keys.pool(name))
            .await
            .map_err(err("pool"))?;
        Ok(json.and_then(|j| match serde_json::from_str(&j) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::warn!(pool = %name, error = %e, "skipping a malformed pool definition");
                None
            }
        }))
    }

    pub(super) async fn list_pools(&self) -> StoreResult<Vec<(Pool, usize)>> {
        let mut names: Vec<String> = self
            .conn()
            .smembers(self.keys.pools())
            .await
            .map_err(err("pools"))?;
        names.sort();
        let mut out = Vec::new();
        for name in names {
            if let Some(p) = self.read_pool(&name).await? {
                let running: usize = self
                    .conn()
                    .scard(self.keys.pool_running(&name))
                    .await
                    .map_err(err("pools"))?;
                out.push((p, running));
            }
        }
        Ok(out)
    }
}

/// How long ago a node last beat: its TTL less what is left of its alive key
/// (both on the store's clock); `None` if it has expired or either is unknown.
fn heartbeat_age(ttl: Option<&str>, left_ms: i64) -> Option<u64> {
    let ttl: i64 = ttl?.parse().ok()?;
    (left_ms >= 0).then(|| (ttl - left_ms).max(0) as u64)
}
