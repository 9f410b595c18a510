//! A grid's shared state in this process: one mutex over plain maps, laid
//! out like the Redis keys so both stores behave alike. Heartbeats and
//! record lifetimes use `tokio::time::Instant`, so tests may pause time.

use super::memory_state::{NodeRec, Req, State, WORK};
use super::{
    fair_round, fair_score, parse_session_value, place, session_value, Beat, Cancelled, Claim,
    Cluster, Completion, NodeInfo, NodeState, QueuedRequest, RequestState, Waiting,
    ARRIVALS_PER_ROUND,
};
use crate::{MemoryStore, Store, StoreResult};
use async_trait::async_trait;
use gridiron_domain::pool::Pool;
use gridiron_domain::request::{step, Event, Holder, Phase, Refusal, Standing};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A grid's shared state held in memory, for tests of hubs and nodes
/// without Redis. Besides [`Cluster`], it offers hooks to inject failures:
/// [`MemoryCluster::expire_node`], [`MemoryCluster::expire_hub`] and
/// [`MemoryCluster::clear`].
pub struct MemoryCluster {
    state: Mutex<State>,
    /// Session records, cleared with the rest by [`MemoryCluster::clear`].
    sessions: Arc<MemoryStore>,
}

impl Default for MemoryCluster {
    fn default() -> Self {
        MemoryCluster::new()
    }
}

impl MemoryCluster {
    /// An empty grid state.
    pub fn new() -> MemoryCluster {
        MemoryCluster {
            state: Mutex::default(),
            sessions: Arc::new(MemoryStore::new()),
        }
    }

    /// The state, with what has expired by now dropped.
    pub(super) fn lock(&self) -> (MutexGuard<'_, State>, Instant) {
        // A panic while holding the lock leaves the maps consistent: every
        // step changes them only after its checks.
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        g.expire(now);
        (g, now)
    }

    /// Lets `node`'s heartbeat expire now, as if it had gone silent.
    pub fn expire_node(&self, node: &str) {
        self.lock().0.node_alive.remove(node);
    }

    /// Lets `hub`'s heartbeat expire now, as if it had gone silent.
    pub fn expire_hub(&self, hub: &str) {
        self.lock().0.hub_alive.remove(hub);
    }

    /// Forgets everything, sessions included, as a store restarted without
    /// its data would; subscribers hear `("", "")`, as after a reconnection.
    pub fn clear(&self) {
        let (mut g, _) = self.lock();
        let subscribers = std::mem::take(&mut g.subscribers);
        *g = State::default();
        g.subscribers = subscribers;
        g.subscribers
            .retain(|(_, tx)| tx.send((String::new(), String::new())).is_ok());
        self.sessions.clear();
    }
}

fn ttl(now: Instant, d: Duration) -> Instant {
    now + d.max(Duration::from_millis(1))
}

crate::events::delegate_event_log!(MemoryCluster, sessions);

#[async_trait]
impl Cluster for MemoryCluster {
    fn sessions(&self) -> Arc<dyn Store> {
        self.sessions.clone()
    }

    fn work_channel(&self) -> String {
        WORK.into()
    }

    fn hub_channel(&self, hub: &str) -> String {
        format!("hub:{hub}")
    }

    fn subscribe(&self, channels: Vec<String>) -> mpsc::UnboundedReceiver<(String, String)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send((String::new(), String::new()));
        self.lock().0.subscribers.push((channels, tx));
        rx
    }

    async fn enqueue(&self, r: &QueuedRequest, max_queue: usize) -> StoreResult<Option<u64>> {
        let (mut g, _) = self.lock();
        if g.queue.len() >= max_queue {
            return Ok(None);
        }
        g.seq += 1;
        let seq = g.seq;
        g.unqueue(&r.id);
        let round = fair_round(g.round, g.key_rounds.get(&r.owner).copied());
        g.key_rounds.insert(r.owner.clone(), round);
        let score = fair_score(round, seq);
        let phase = step(None, &Event::Enqueue).expect("a request can always be enqueued");
        g.requests.insert(
            r.id.clone(),
            Req {
                phase,
                score,
                body: r.body.clone(),
                pool: r.pool.clone().filter(|p| !p.is_empty()),
                pool_max: r.pool_max,
                key_max: r.key_max,
                hub: r.hub.clone(),
                base: r.public_base.clone(),
                owner: r.owner.clone(),
                created_at: r.created_at,
                answer: None,
                expires: None,
            },
        );
        g.queue.insert((score, r.id.clone()));
        g.hub_requests
            .entry(r.hub.clone())
            .or_default()
            .insert(r.id.clone());
        g.publish(WORK, &r.id);
        Ok(Some(seq))
    }

    async fn waiting(&self, offset: usize, limit: usize) -> StoreResult<Vec<Waiting>> {
        let (g, _) = self.lock();
        Ok(g.queue
            .iter()
            .map(|(_, id)| id)
            .skip(offset)
            .take(limit)
            .filter_map(|id| {
                let r = g.requests.get(id)?;
                Some(Waiting {
                    id: id.clone(),
                    body: r.body.clone(),
                    pool: r.pool.clone(),
                    pool_max: r.pool_max,
                    public_base: r.base.clone(),
                    hub: r.hub.clone(),
                    owner: r.owner.clone(),
                    key_max: r.key_max,
                    created_at: r.created_at,
                })
            })
            .collect())
    }

    async fn queue_len(&self) -> StoreResult<usize> {
        Ok(self.lock().0.queue.len())
    }

    async fn claim(&self, w: &Waiting, node: &str) -> StoreResult<Claim> {
        let (mut g, _) = self.lock();
        let (standing, epoch) = match g.node.get(node) {
            Some(n) if n.lost => (Standing::Lost, n.epoch),
            Some(n) if n.draining => (Standing::Draining, n.epoch),
            Some(n) => (Standing::Active, n.epoch),
            None => (Standing::Active, 0),
        };
        let pool = w.pool.as_deref().unwrap_or("");
        let taken = g.running.get(pool).map_or(0, BTreeSet::len);
        let key_taken = g.key_running.get(&w.owner).map_or(0, BTreeSet::len);
        let event = Event::Claim {
            by: Holder::new(node, epoch),
            standing,
            pool_full: w.pool_max > 0 && taken >= w.pool_max as usize,
            key_full: w.key_max > 0 && key_taken >= w.key_max as usize,
        };
        let Some(r) = g.requests.get_mut(&w.id) else {
            return Ok(Claim::Gone);
        };
        match step(Some(&r.phase), &event) {
            Ok(next) => {
                r.phase = next;
                let score = r.score;
                g.round = g.round.max(score / ARRIVALS_PER_ROUND);
                g.unqueue(&w.id);
                g.claims
                    .entry(node.to_string())
                    .or_default()
                    .insert(w.id.clone());
                if w.pool_max > 0 {
                    g.running
                        .entry(pool.to_string())
                        .or_default()
                        .insert(place(&w.id, node));
                }
                if w.key_max > 0 {
                    g.key_running
                        .entry(w.owner.clone())
                        .or_default()
                        .insert(place(&w.id, node));
                }
                Ok(Claim::Claimed { epoch })
            }
            Err(Refusal::PoolFull) => Ok(Claim::PoolFull),
            Err(Refusal::KeyFull) => Ok(Claim::KeyFull),
            Err(_) => Ok(Claim::Gone),
        }
    }

    async fn complete(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        started: bool,
    ) -> StoreResult<Completion> {
        let (mut g, now) = self.lock();
        if let Some(c) = g.claims.get_mut(node) {
            c.remove(&w.id);
        }
        if !started {
            let key = (w.key_max > 0).then_some(w.owner.as_str());
            if g.free_places(w.pool.as_deref(), key, &w.id, node) {
                g.publish(WORK, "freed");
            }
        }
        let Some(r) = g.requests.get(&w.id) else {
            return Ok(Completion::Gone);
        };
        let hub = r.hub.clone();
        let event = Event::Complete {
            by: Holder::new(node, epoch),
            hub_alive: g.hub_alive.contains_key(&hub),
        };
        let was_claimed = matches!(r.phase, Phase::Claimed(_));
        match step(Some(&r.phase), &event) {
            // A retry after a lost reply: the answer was already handed over.
            Ok(_) if !was_claimed => Ok(Completion::Delivered),
            Ok(next @ Phase::Answered(_)) => {
                g.set(&w.id, next, now);
                if let Some(r) = g.requests.get_mut(&w.id) {
                    r.answer = Some(answer.to_string());
                }
                g.publish(&format!("hub:{hub}"), &w.id);
                Ok(Completion::Delivered)
            }
            Ok(next) => {
                g.set(&w.id, next, now);
                Ok(Completion::Gone)
            }
            Err(Refusal::NotHolder) => Ok(Completion::Fenced),
            Err(_) => Ok(Completion::Gone),
        }
    }

    async fn cancel(&self, rid: &str, reason: &str, soft: bool) -> StoreResult<Cancelled> {
        let (mut g, now) = self.lock();
        let event = Event::Cancel {
            reason: reason.into(),
            hard: !soft,
        };
        let Some(r) = g.requests.get(rid) else {
            return Ok(Cancelled::Missing);
        };
        let (prev, answer) = (r.phase.clone(), r.answer.clone());
        match (prev, step(Some(&r.phase), &event)) {
            (Phase::Waiting, Ok(next)) => {
                g.unqueue(rid);
                g.set(rid, next, now);
                Ok(Cancelled::Removed)
            }
            (Phase::Claimed(_), Ok(next)) => {
                g.set(rid, next, now);
                Ok(Cancelled::WhileStarting)
            }
            (_, Err(Refusal::Starting)) => Ok(Cancelled::WhileStarting),
            (Phase::Answered(_), Ok(next)) => {
                g.set(rid, next, now);
                Ok(Cancelled::Answered(answer.unwrap_or_default()))
            }
            // Already over: nothing runs for it.
            _ => Ok(Cancelled::Removed),
        }
    }

    async fn request_state(&self, rid: &str) -> StoreResult<RequestState> {
        let (g, _) = self.lock();
        Ok(match g.requests.get(rid) {
            None => RequestState::Missing,
            Some(r) => match (&r.phase, &r.answer) {
                (Phase::Answered(_), Some(a)) => RequestState::Answered(a.clone()),
                (Phase::Cancelled { .. }, _) => RequestState::Cancelled,
                _ => RequestState::Pending,
            },
        })
    }

    async fn take_answer(&self, hub: &str, rid: &str) -> StoreResult<Option<String>> {
        let (mut g, now) = self.lock();
        if let Some(set) = g.hub_requests.get_mut(hub) {
            set.remove(rid);
        }
        let Some(r) = g.requests.get(rid) else {
            return Ok(None);
        };
        let answer = r.answer.clone();
        match step(Some(&r.phase), &Event::Take) {
            Ok(next) => {
                g.set(rid, next, now);
                Ok(answer)
            }
            Err(_) => Ok(None),
        }
    }

    async fn close_request(&self, hub: &str, rid: &str) -> StoreResult<()> {
        if let Some(set) = self.lock().0.hub_requests.get_mut(hub) {
            set.remove(rid);
        }
        Ok(())
    }

    async fn register_node(&self, info: &NodeInfo, ttl_: Duration) -> StoreResult<()> {
        let (mut g, now) = self.lock();
        // Above every epoch before, even those of a store that lost its data.
        g.epoch = (g.epoch + 1).max(crate::now_ms() as u64);
        let epoch = g.epoch;
        g.node.insert(
            info.id.clone(),
            NodeRec {
                info: Some(info.clone()),
                epoch,
                ttl: ttl_,
                ..NodeRec::default()
            },
        );
        g.node_alive.insert(info.id.clone(), ttl(now, ttl_));
        g.nodes.insert(info.id.clone());
        Ok(())
    }

    async fn heartbeat(&self, node: &str, used: usize, ttl_: Duration) -> StoreResult<Beat> {
        let (mut g, now) = self.lock();
        let Some(n) = g.node.get_mut(node) else {
            return Ok(Beat::Unknown);
        };
        if n.lost {
            return Ok(Beat::Lost);
        }
        n.used = used;
        n.ttl = ttl_;
        let draining = n.draining;
        g.node_alive.insert(node.to_string(), ttl(now, ttl_));
        Ok(Beat::Alive { draining })
    }

    async fn nodes(&self) -> StoreResult<Vec<NodeState>> {
        let (g, now) = self.lock();
        let mut out: Vec<NodeState> = g
            .nodes
            .iter()
            .filter_map(|id| {
                let n = g.node.get(id)?;
                Some(NodeState {
                    info: n.info.clone()?,
                    used: n.used,
                    draining: n.draining,
                    alive: g.node_alive.contains_key(id),
                    heartbeat_age_ms: g.node_alive.get(id).map(|until| {
                        let left = until.saturating_duration_since(now);
                        n.ttl.saturating_sub(left).as_millis() as u64
                    }),
                })
            })
            .collect();
        // Oldest first; ties by id, so every store lists them alike.
        out.sort_by(|a, b| (a.info.started_at, &a.info.id).cmp(&(b.info.started_at, &b.info.id)));
        Ok(out)
    }

    async fn drain_node(&self, node: &str) -> StoreResult<bool> {
        let (mut g, _) = self.lock();
        if !g.nodes.contains(node) {
            return Ok(false);
        }
        g.node.entry(node.to_string()).or_default().draining = true;
        Ok(true)
    }

    async fn remove_node(&self, node: &str) -> StoreResult<()> {
        let (mut g, now) = self.lock();
        g.reclaim(node, true, now);
        Ok(())
    }

    async fn reclaim_node(&self, node: &str) -> StoreResult<Option<Vec<String>>> {
        let (mut g, now) = self.lock();
        Ok(g.reclaim(node, false, now))
    }

    async fn add_session(
        &self,
        node: &str,
        sid: &str,
        rid: &str,
        pool: Option<&str>,
        key: Option<&str>,
    ) -> StoreResult<()> {
        let (mut g, _) = self.lock();
        let pool = pool.filter(|p| !p.is_empty());
        let key = key.filter(|k| !k.is_empty());
        g.node_sessions
            .entry(node.to_string())
            .or_default()
            .insert(sid.to_string(), session_value(rid, pool, key));
        g.routes.insert(sid.to_string(), node.to_string());
        if let Some(p) = pool {
            g.running
                .entry(p.to_string())
                .or_default()
                .insert(place(rid, node));
        }
        if let Some(k) = key {
            g.key_running
                .entry(k.to_string())
                .or_default()
                .insert(place(rid, node));
        }
        Ok(())
    }

    async fn remove_session(&self, node: &str, sid: &str) -> StoreResult<()> {
        let (mut g, _) = self.lock();
        let v = g.node_sessions.get_mut(node).and_then(|s| s.remove(sid));
        g.routes.remove(sid);
        if let Some(v) = v {
            let (rid, pool, key) = parse_session_value(&v);
            if g.free_places(pool, key, rid, node) {
                g.publish(WORK, "freed");
            }
        }
        Ok(())
    }

    async fn route(&self, sid: &str) -> StoreResult<Option<String>> {
        Ok(self.lock().0.routes.get(sid).cloned())
    }

    async fn hub_heartbeat(&self, hub: &str, ttl_: Duration) -> StoreResult<bool> {
        let (mut g, now) = self.lock();
        let added = g.hubs.insert(hub.to_string());
        g.hub_alive.insert(hub.to_string(), ttl(now, ttl_));
        Ok(!added)
    }

    async fn remove_hub(&self, hub: &str) -> StoreResult<()> {
        let (mut g, _) = self.lock();
        g.hubs.remove(hub);
        g.hub_alive.remove(hub);
        g.hub_requests.remove(hub);
        Ok(())
    }

    async fn forget_dead_hubs(&self) -> StoreResult<(usize, Vec<String>)> {
        let (mut g, now) = self.lock();
        let dead: Vec<String> = g
            .hubs
            .iter()
            .filter(|h| !g.hub_alive.contains_key(*h))
            .cloned()
            .collect();
        let mut orphans = Vec::new();
        for hub in &dead {
            for rid in g.hub_requests.remove(hub).unwrap_or_default() {
                let Some(r) = g.requests.get(&rid) else {
                    continue;
                };
                let answered = matches!(r.phase, Phase::Answered(_));
                let answer = r.answer.clone();
                if let Ok(next) = step(Some(&r.phase), &Event::HubLost) {
                    orphans.extend(answer.filter(|_| answered));
                    g.unqueue(&rid);
                    g.set(&rid, next, now);
                }
            }
            g.hubs.remove(hub);
        }
        Ok((dead.len(), orphans))
    }

    async fn try_lock(&self, name: &str, _holder: &str, ttl_: Duration) -> StoreResult<bool> {
        let (mut g, now) = self.lock();
        if g.locks.contains_key(name) {
            return Ok(false);
        }
        g.locks.insert(name.to_string(), ttl(now, ttl_));
        Ok(true)
    }

    async fn put_pool(&self, pool: &Pool) -> StoreResult<()> {
        self.lock().0.pools.insert(pool.name.clone(), pool.clone());
        Ok(())
    }

    async fn pool(&self, name: &str) -> StoreResult<Option<Pool>> {
        Ok(self.lock().0.pools.get(name).cloned())
    }

    async fn pools(&self) -> StoreResult<Vec<(Pool, usize)>> {
        let (g, _) = self.lock();
        Ok(g.pools
            .values()
            .map(|p| (p.clone(), g.running.get(&p.name).map_or(0, BTreeSet::len)))
            .collect())
    }

    async fn delete_pool(&self, name: &str) -> StoreResult<bool> {
        Ok(self.lock().0.pools.remove(name).is_some())
    }
}
