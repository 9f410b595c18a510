//! What a hub does in the background: heartbeats, and (one hub at a time)
//! collecting what silent nodes and hubs left behind.

use super::queueing::session_of;
use super::Hub;
use gridiron_domain::events;
use gridiron_domain::EndReason;
use gridiron_store::now_ms;
use gridiron_store::NewEvent;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tracing::warn;

use crate::timing::{COLLECTOR_LOCK, HUB_TICK, MIN_SETTLE, SLOW_STORE};

impl Hub {
    /// Renews this hub's heartbeat, in a task of its own so that a long
    /// collection round never makes a live hub look dead.
    pub(super) async fn heartbeat(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HUB_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.leaving.load(Ordering::SeqCst) {
                return;
            }
            let asked = Instant::now();
            let beat = self
                .cluster
                .hub_heartbeat(&self.cfg.id, self.cfg.heartbeat_ttl)
                .await;
            match beat {
                Err(e) => {
                    warn!(error = %e, "hub heartbeat failed");
                    self.store_failed();
                }
                Ok(false) if !self.leaving.load(Ordering::SeqCst) => {
                    // Registered at start, so the store lost its data: nodes are
                    // announcing their sessions again.
                    warn!("the store no longer knew this hub; waiting for nodes to re-announce");
                    self.store_failed();
                }
                Ok(_) => {}
            }
            if asked.elapsed() > SLOW_STORE {
                // The store stalled: heartbeats may have expired meanwhile.
                self.store_failed();
            }
        }
    }

    /// Notes a failed store call: the collector waits for a full TTL of
    /// working store before declaring anything lost again.
    pub(super) fn store_failed(&self) {
        *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Whether the store has worked long enough that every live node and hub
    /// has heartbeated since (after an outage all heartbeats have expired).
    pub(super) fn store_settled(&self) -> bool {
        let since = *self.healthy_since.lock().unwrap_or_else(|e| e.into_inner());
        since.elapsed() > self.cfg.heartbeat_ttl.max(MIN_SETTLE)
    }

    /// One hub at a time declares silent nodes lost and drops requests of
    /// silent hubs.
    pub(super) async fn collect(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HUB_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rounds = 0u64;
        loop {
            tick.tick().await;
            if self.leaving.load(Ordering::SeqCst) {
                return;
            }
            rounds += 1;
            if rounds.is_multiple_of(120) {
                // Routes of sessions that ended elsewhere are read again when needed.
                self.routes().clear();
            }
            if !self.store_settled() {
                continue;
            }
            let asked = Instant::now();
            match self
                .cluster
                .try_lock("gc", &self.cfg.id, COLLECTOR_LOCK)
                .await
            {
                Ok(true) if asked.elapsed() > SLOW_STORE => {
                    self.store_failed();
                    continue;
                }
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    self.store_failed();
                    continue;
                }
            }
            if let Err(e) = self.collect_once(rounds.is_multiple_of(20)).await {
                warn!(error = %e, "garbage collection failed");
                self.store_failed();
            }
        }
    }

    async fn collect_once(&self, deep: bool) -> Result<(), gridiron_store::StoreError> {
        for node in self.cluster.nodes().await? {
            if node.alive {
                continue;
            }
            let Some(sessions) = self.cluster.reclaim_node(&node.info.id).await? else {
                continue;
            };
            warn!(node = %node.info.id, sessions = sessions.len(), "node lost: no heartbeat");
            self.emit(
                NewEvent::now(events::NODE_LOST)
                    .node(&node.info.id)
                    .with("sessions", sessions.len()),
            );
            for sid in sessions {
                self.routes().remove(&sid);
                let ended = self
                    .store
                    .end_elsewhere(&sid, EndReason::NodeLost, now_ms())
                    .await?;
                if ended {
                    self.metrics.session_ended(EndReason::NodeLost);
                    let owner = self.store.get(&sid).await?.and_then(|r| r.owner);
                    self.emit(
                        NewEvent::now(events::SESSION_ENDED)
                            .session(&sid)
                            .node(&node.info.id)
                            .owner(owner.as_deref())
                            .with("reason", EndReason::NodeLost.as_str()),
                    );
                }
            }
        }
        let (forgotten, orphans) = self.cluster.forget_dead_hubs().await?;
        if forgotten > 0 {
            warn!(
                forgotten,
                orphans = orphans.len(),
                "forgot hubs that stopped heartbeating, with their requests"
            );
        }
        for answer in orphans {
            // Started for a client whose hub died before answering it.
            if let Some(sid) = session_of(&answer) {
                self.delete_session(&sid, EndReason::ClientGone).await;
            }
        }
        if deep {
            self.end_sessions_without_node().await?;
        }
        Ok(())
    }

    /// Sessions recorded as running or starting that no node runs (their node
    /// died between recording and routing) end as `node_lost`.
    async fn end_sessions_without_node(&self) -> Result<(), gridiron_store::StoreError> {
        let grace = (self.cfg.start_timeout + self.cfg.heartbeat_ttl).as_millis() as i64;
        for sid in self.store.unfinished_ids().await? {
            if self.cluster.route(&sid).await?.is_some() {
                continue;
            }
            let Some(rec) = self.store.get(&sid).await? else {
                continue;
            };
            if rec.end_reason.is_none() && now_ms() - rec.created_at > grace {
                warn!(session = %sid, "session has no node; ending it");
                if self
                    .store
                    .end_elsewhere(&sid, EndReason::NodeLost, now_ms())
                    .await?
                {
                    self.metrics.session_ended(EndReason::NodeLost);
                }
            }
        }
        Ok(())
    }
}
