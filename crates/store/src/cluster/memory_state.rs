//! The maps behind [`super::MemoryCluster`], laid out like the Redis keys,
//! and the steps several operations share.

use super::{parse_session_value, place, NodeInfo, FINISHED_TTL, LOST_TTL};
use gridiron_domain::pool::Pool;
use gridiron_domain::request::{step, Event, Phase};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The channel nodes hear of new work on.
pub(super) const WORK: &str = "work";

/// A request's record.
pub(super) struct Req {
    pub(super) phase: Phase,
    /// Its place in the queue (see [`super::fair_round`]), kept when a lost
    /// node's claim puts it back.
    pub(super) score: u64,
    pub(super) body: String,
    pub(super) pool: Option<String>,
    pub(super) pool_max: u32,
    /// Its key's concurrency limit (0: none).
    pub(super) key_max: u32,
    pub(super) hub: String,
    pub(super) base: String,
    /// The API key that asked for it.
    pub(super) owner: String,
    /// Unix ms when its hub received it.
    pub(super) created_at: i64,
    pub(super) answer: Option<String>,
    /// Finished records are forgotten after a while.
    pub(super) expires: Option<Instant>,
}

/// A node's record. `info` is `None` for a node declared lost that the
/// store never saw register (its data was lost meanwhile).
#[derive(Default)]
pub(super) struct NodeRec {
    pub(super) info: Option<NodeInfo>,
    pub(super) used: usize,
    pub(super) draining: bool,
    pub(super) lost: bool,
    pub(super) epoch: u64,
    /// Its heartbeat TTL, to tell the age of its last beat.
    pub(super) ttl: Duration,
    /// A lost node is remembered for a while, so it learns it was lost.
    pub(super) expires: Option<Instant>,
}

type Subscriber = (Vec<String>, mpsc::UnboundedSender<(String, String)>);

#[derive(Default)]
pub(super) struct State {
    pub(super) seq: u64,
    /// The last registration epoch handed out.
    pub(super) epoch: u64,
    /// Waiting requests by score, then id (as a Redis sorted set orders them).
    pub(super) queue: BTreeSet<(u64, String)>,
    /// The highest round a node claimed from (see [`super::fair_round`]).
    pub(super) round: u64,
    /// The round each API key's last request got.
    pub(super) key_rounds: HashMap<String, u64>,
    pub(super) requests: HashMap<String, Req>,
    /// Ids of nodes taking part (not lost, not gone).
    pub(super) nodes: BTreeSet<String>,
    pub(super) node: HashMap<String, NodeRec>,
    pub(super) node_alive: HashMap<String, Instant>,
    /// Requests each node is starting.
    pub(super) claims: HashMap<String, BTreeSet<String>>,
    /// Sessions each node runs: id -> `"rid pool[ key]"`.
    pub(super) node_sessions: HashMap<String, BTreeMap<String, String>>,
    pub(super) routes: HashMap<String, String>,
    pub(super) hubs: BTreeSet<String>,
    pub(super) hub_alive: HashMap<String, Instant>,
    /// Requests each hub still owes its clients an answer to.
    pub(super) hub_requests: HashMap<String, BTreeSet<String>>,
    pub(super) pools: BTreeMap<String, Pool>,
    /// Places taken in each pool.
    pub(super) running: HashMap<String, BTreeSet<String>>,
    /// Places taken among each API key's sessions (keys with a limit).
    pub(super) key_running: HashMap<String, BTreeSet<String>>,
    pub(super) locks: HashMap<String, Instant>,
    /// Grid-wide counters and published gauges (see [`super::metrics`]).
    pub(super) metrics: super::metrics::MemoryMetrics,
    pub(super) subscribers: Vec<Subscriber>,
}

impl State {
    /// Drops what has expired by `now`, as Redis would have.
    pub(super) fn expire(&mut self, now: Instant) {
        let live = |t: &Instant| *t > now;
        self.node_alive.retain(|_, t| live(t));
        self.hub_alive.retain(|_, t| live(t));
        self.locks.retain(|_, t| live(t));
        self.requests
            .retain(|_, r| r.expires.as_ref().is_none_or(live));
        self.node.retain(|_, n| n.expires.as_ref().is_none_or(live));
    }

    pub(super) fn publish(&mut self, channel: &str, message: &str) {
        self.subscribers.retain(|(channels, tx)| {
            !channels.iter().any(|c| c == channel)
                || tx.send((channel.to_string(), message.to_string())).is_ok()
        });
    }

    pub(super) fn unqueue(&mut self, rid: &str) {
        self.queue.retain(|(_, id)| id != rid);
    }

    /// Frees a pool place; whether there was one.
    fn free_place(&mut self, pool: Option<&str>, rid: &str, node: &str) -> bool {
        pool.and_then(|p| self.running.get_mut(p))
            .is_some_and(|set| set.remove(&place(rid, node)))
    }

    /// Frees an API key's place; whether there was one.
    fn free_key_place(&mut self, key: Option<&str>, rid: &str, node: &str) -> bool {
        key.and_then(|k| self.key_running.get_mut(k))
            .is_some_and(|set| set.remove(&place(rid, node)))
    }

    /// Frees a request's pool and key places; whether one was freed (then
    /// the caller announces work: a request of that pool or key may wait
    /// for it on another node).
    pub(super) fn free_places(
        &mut self,
        pool: Option<&str>,
        key: Option<&str>,
        rid: &str,
        node: &str,
    ) -> bool {
        self.free_place(pool, rid, node) | self.free_key_place(key, rid, node)
    }

    /// Sets a request's phase; final phases are kept for [`FINISHED_TTL`].
    pub(super) fn set(&mut self, rid: &str, phase: Phase, now: Instant) {
        if let Some(r) = self.requests.get_mut(rid) {
            if phase.is_final() || matches!(phase, Phase::Answered(_)) {
                r.expires = Some(now + FINISHED_TTL);
            }
            r.phase = phase;
        }
    }

    /// Mirrors `reclaim.lua`.
    pub(super) fn reclaim(
        &mut self,
        node: &str,
        leaving: bool,
        now: Instant,
    ) -> Option<Vec<String>> {
        if !leaving && self.node_alive.contains_key(node) {
            return None;
        }
        let (mut requeued, mut freed) = (0, false);
        for rid in self.claims.remove(node).unwrap_or_default() {
            let Some(r) = self.requests.get_mut(&rid) else {
                continue;
            };
            let pool = r.pool.clone();
            let key = (r.key_max > 0).then(|| r.owner.clone());
            let lost = Event::NodeLost { node: node.into() };
            if let Ok(next) = step(Some(&r.phase), &lost) {
                r.phase = next;
                let score = r.score;
                self.queue.insert((score, rid.clone()));
                requeued += 1;
            }
            freed |= self.free_places(pool.as_deref(), key.as_deref(), &rid, node);
        }
        let mut out = Vec::new();
        for (sid, v) in self.node_sessions.remove(node).unwrap_or_default() {
            self.routes.remove(&sid);
            let (rid, pool, key) = parse_session_value(&v);
            freed |= self.free_places(pool, key, rid, node);
            out.push(sid);
        }
        self.nodes.remove(node);
        if leaving {
            self.node.remove(node);
            self.node_alive.remove(node);
        } else {
            let rec = self.node.entry(node.to_string()).or_default();
            rec.lost = true;
            rec.expires = Some(now + LOST_TTL);
        }
        if requeued > 0 {
            self.publish(WORK, "requeued");
        } else if freed {
            self.publish(WORK, "freed");
        }
        Some(out)
    }
}
