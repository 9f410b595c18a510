//! Store latency, measured at the edge: [`TimedStore`] and [`TimedCluster`]
//! wrap the store and the cluster state a role is given, and record how long
//! each call took under its operation's name. Call sites stay as they are.
//!
//! A method added to [`Store`] or [`Cluster`] gets one delegating line here.

use super::Metrics;
use async_trait::async_trait;
use gridiron_domain::pool::Pool;
use gridiron_domain::webhooks::Next;
use gridiron_domain::EndReason;
use gridiron_store::cluster::metrics::ProcessGauges;
use gridiron_store::cluster::{
    Beat, Cancelled, Claim, ClusterMetrics, Completion, Ended, NodeInfo, NodeState, QueuedRequest,
    RequestState, Started, Waiting,
};
use gridiron_store::webhooks::{Leased, LogEntry, NewDelivery, Recorded, Webhook};
use gridiron_store::{
    ApiKey, Cluster, Event, EventLog, NewEvent, NewSession, SessionFilter, SessionRecord,
    SessionStats, Store, StoreResult, WebhookStore,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Awaits `$call` and records its duration as store operation `$op`.
macro_rules! timed {
    ($self:ident, $op:literal, $call:expr) => {{
        let started = Instant::now();
        let r = $call.await;
        $self.metrics.store_call($op, started.elapsed());
        r
    }};
}

/// Implements [`EventLog`] for a timed wrapper: appends are timed; reads
/// are not, as they wait for new events by design.
macro_rules! timed_event_log {
    ($t:ty) => {
        #[async_trait]
        impl EventLog for $t {
            async fn append(&self, event: NewEvent) -> StoreResult<String> {
                timed!(self, "event_append", self.inner.append(event))
            }
            async fn read_after(
                &self,
                after: Option<&str>,
                limit: usize,
                wait: Duration,
            ) -> StoreResult<Vec<Event>> {
                self.inner.read_after(after, limit, wait).await
            }
            async fn last_id(&self) -> StoreResult<Option<String>> {
                timed!(self, "event_last_id", self.inner.last_id())
            }
            async fn session_events(&self, id: &str, limit: usize) -> StoreResult<Vec<Event>> {
                timed!(self, "session_events", self.inner.session_events(id, limit))
            }
        }
    };
}

timed_event_log!(TimedStore);
timed_event_log!(TimedCluster);

/// A [`Store`] whose calls are timed.
pub struct TimedStore {
    inner: Arc<dyn Store>,
    metrics: Arc<Metrics>,
}

impl TimedStore {
    /// `inner`, timed into `metrics`.
    pub fn wrap(inner: Arc<dyn Store>, metrics: Arc<Metrics>) -> Arc<dyn Store> {
        Arc::new(TimedStore { inner, metrics })
    }
}

#[async_trait]
impl Store for TimedStore {
    async fn insert(&self, session: NewSession, queued: bool) -> StoreResult<()> {
        timed!(self, "insert", self.inner.insert(session, queued))
    }
    async fn mark_running(&self, id: &str, caps: Value, started_at: i64) -> StoreResult<()> {
        timed!(
            self,
            "mark_running",
            self.inner.mark_running(id, caps, started_at)
        )
    }
    async fn mark_ended(
        &self,
        id: &str,
        reason: EndReason,
        ended_at: i64,
        command_count: u64,
    ) -> StoreResult<()> {
        timed!(
            self,
            "mark_ended",
            self.inner.mark_ended(id, reason, ended_at, command_count)
        )
    }
    async fn get(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        timed!(self, "get", self.inner.get(id))
    }
    async fn list(&self, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        timed!(self, "list", self.inner.list(limit))
    }
    async fn query(&self, filter: &SessionFilter, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        timed!(self, "query", self.inner.query(filter, limit))
    }
    async fn close_unfinished(&self, reason: EndReason, ended_at: i64) -> StoreResult<usize> {
        timed!(
            self,
            "close_unfinished",
            self.inner.close_unfinished(reason, ended_at)
        )
    }
    async fn end_elsewhere(&self, id: &str, reason: EndReason, ended_at: i64) -> StoreResult<bool> {
        timed!(
            self,
            "end_elsewhere",
            self.inner.end_elsewhere(id, reason, ended_at)
        )
    }
    async fn unfinished_ids(&self) -> StoreResult<Vec<String>> {
        timed!(self, "unfinished_ids", self.inner.unfinished_ids())
    }
    async fn prune(&self, older_than: i64) -> StoreResult<usize> {
        timed!(self, "prune", self.inner.prune(older_than))
    }
    async fn session_stats(&self, since: i64, owner: Option<&str>) -> StoreResult<SessionStats> {
        timed!(
            self,
            "session_stats",
            self.inner.session_stats(since, owner)
        )
    }
    async fn create_key(&self, key: ApiKey) -> StoreResult<bool> {
        timed!(self, "create_key", self.inner.create_key(key))
    }
    async fn keys(&self) -> StoreResult<Vec<ApiKey>> {
        timed!(self, "keys", self.inner.keys())
    }
    async fn revoke_key(&self, name: &str) -> StoreResult<bool> {
        timed!(self, "revoke_key", self.inner.revoke_key(name))
    }
}

/// A [`Cluster`] whose calls are timed (its session records too). The
/// metrics calls themselves are not: flushing every second would otherwise
/// always leave something new to flush.
pub struct TimedCluster {
    inner: Arc<dyn Cluster>,
    metrics: Arc<Metrics>,
}

impl TimedCluster {
    /// `inner`, timed into `metrics`.
    pub fn wrap(inner: Arc<dyn Cluster>, metrics: Arc<Metrics>) -> Arc<dyn Cluster> {
        Arc::new(TimedCluster { inner, metrics })
    }
}

#[async_trait]
impl ClusterMetrics for TimedCluster {
    async fn add_metrics(&self, deltas: &[(String, u64)]) -> StoreResult<()> {
        self.inner.add_metrics(deltas).await
    }
    async fn metric_totals(&self) -> StoreResult<BTreeMap<String, u64>> {
        self.inner.metric_totals().await
    }
    async fn put_gauges(&self, id: &str, g: &[(String, i64)], ttl: Duration) -> StoreResult<()> {
        self.inner.put_gauges(id, g, ttl).await
    }
    async fn gauges(&self) -> StoreResult<ProcessGauges> {
        self.inner.gauges().await
    }
}

#[async_trait]
impl Cluster for TimedCluster {
    fn sessions(&self) -> Arc<dyn Store> {
        TimedStore::wrap(self.inner.sessions(), self.metrics.clone())
    }
    fn work_channel(&self) -> String {
        self.inner.work_channel()
    }
    fn hub_channel(&self, hub: &str) -> String {
        self.inner.hub_channel(hub)
    }
    fn subscribe(&self, channels: Vec<String>) -> mpsc::UnboundedReceiver<(String, String)> {
        self.inner.subscribe(channels)
    }
    async fn enqueue(&self, r: &QueuedRequest, max_queue: usize) -> StoreResult<Option<u64>> {
        timed!(self, "enqueue", self.inner.enqueue(r, max_queue))
    }
    async fn waiting(&self, offset: usize, limit: usize) -> StoreResult<Vec<Waiting>> {
        timed!(self, "waiting", self.inner.waiting(offset, limit))
    }
    async fn queue_len(&self) -> StoreResult<usize> {
        timed!(self, "queue_len", self.inner.queue_len())
    }
    async fn claim(&self, w: &Waiting, node: &str) -> StoreResult<Claim> {
        timed!(self, "claim", self.inner.claim(w, node))
    }
    async fn complete(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        started: bool,
    ) -> StoreResult<Completion> {
        timed!(
            self,
            "complete",
            self.inner.complete(w, node, epoch, answer, started)
        )
    }
    async fn cancel(&self, rid: &str, reason: &str, soft: bool) -> StoreResult<Cancelled> {
        timed!(self, "cancel", self.inner.cancel(rid, reason, soft))
    }
    async fn request_state(&self, rid: &str) -> StoreResult<RequestState> {
        timed!(self, "request_state", self.inner.request_state(rid))
    }
    async fn take_answer(&self, hub: &str, rid: &str) -> StoreResult<Option<String>> {
        timed!(self, "take_answer", self.inner.take_answer(hub, rid))
    }
    async fn close_request(&self, hub: &str, rid: &str) -> StoreResult<()> {
        timed!(self, "close_request", self.inner.close_request(hub, rid))
    }
    async fn register_node(&self, info: &NodeInfo, ttl: Duration) -> StoreResult<()> {
        timed!(self, "register_node", self.inner.register_node(info, ttl))
    }
    async fn heartbeat(&self, node: &str, used: usize, ttl: Duration) -> StoreResult<Beat> {
        timed!(self, "heartbeat", self.inner.heartbeat(node, used, ttl))
    }
    async fn nodes(&self) -> StoreResult<Vec<NodeState>> {
        timed!(self, "nodes", self.inner.nodes())
    }
    async fn drain_node(&self, node: &str) -> StoreResult<bool> {
        timed!(self, "drain_node", self.inner.drain_node(node))
    }
    async fn remove_node(&self, node: &str) -> StoreResult<()> {
        timed!(self, "remove_node", self.inner.remove_node(node))
    }
    async fn reclaim_node(&self, node: &str) -> StoreResult<Option<Vec<String>>> {
        timed!(self, "reclaim_node", self.inner.reclaim_node(node))
    }
    async fn add_session(
        &self,
        node: &str,
        sid: &str,
        rid: &str,
        pool: Option<&str>,
        key: Option<&str>,
    ) -> StoreResult<()> {
        timed!(
            self,
            "add_session",
            self.inner.add_session(node, sid, rid, pool, key)
        )
    }
    async fn remove_session(&self, node: &str, sid: &str) -> StoreResult<()> {
        timed!(self, "remove_session", self.inner.remove_session(node, sid))
    }
    async fn complete_started(
        &self,
        w: &Waiting,
        node: &str,
        epoch: u64,
        answer: &str,
        s: &Started<'_>,
    ) -> StoreResult<Completion> {
        timed!(
            self,
            "complete",
            self.inner.complete_started(w, node, epoch, answer, s)
        )
    }
    async fn end_session(&self, node: &str, e: &Ended<'_>) -> StoreResult<()> {
        timed!(self, "remove_session", self.inner.end_session(node, e))
    }
    async fn route(&self, sid: &str) -> StoreResult<Option<String>> {
        timed!(self, "route", self.inner.route(sid))
    }
    async fn hub_heartbeat(&self, hub: &str, ttl: Duration) -> StoreResult<bool> {
        timed!(self, "hub_heartbeat", self.inner.hub_heartbeat(hub, ttl))
    }
    async fn remove_hub(&self, hub: &str) -> StoreResult<()> {
        timed!(self, "remove_hub", self.inner.remove_hub(hub))
    }
    async fn forget_dead_hubs(&self) -> StoreResult<(usize, Vec<String>)> {
        timed!(self, "forget_dead_hubs", self.inner.forget_dead_hubs())
    }
    async fn try_lock(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<bool> {
        timed!(self, "try_lock", self.inner.try_lock(name, holder, ttl))
    }
    async fn put_pool(&self, pool: &Pool) -> StoreResult<()> {
        timed!(self, "put_pool", self.inner.put_pool(pool))
    }
    async fn pool(&self, name: &str) -> StoreResult<Option<Pool>> {
        timed!(self, "pool", self.inner.pool(name))
    }
    async fn pools(&self) -> StoreResult<Vec<(Pool, usize)>> {
        timed!(self, "pools", self.inner.pools())
    }
    async fn delete_pool(&self, name: &str) -> StoreResult<bool> {
        timed!(self, "delete_pool", self.inner.delete_pool(name))
    }
}

/// The artifact index, timed like the rest of the store.
#[async_trait]
impl gridiron_store::ArtifactIndex for TimedStore {
    async fn put_artifact(&self, a: &gridiron_store::ArtifactRecord) -> StoreResult<()> {
        timed!(self, "put_artifact", self.inner.put_artifact(a))
    }
    async fn artifact(
        &self,
        session: &str,
        name: &str,
    ) -> StoreResult<Option<gridiron_store::ArtifactRecord>> {
        timed!(self, "artifact", self.inner.artifact(session, name))
    }
    async fn session_artifacts(
        &self,
        session: &str,
    ) -> StoreResult<Vec<gridiron_store::ArtifactRecord>> {
        timed!(
            self,
            "session_artifacts",
            self.inner.session_artifacts(session)
        )
    }
    async fn all_artifacts(&self) -> StoreResult<Vec<gridiron_store::ArtifactRecord>> {
        timed!(self, "all_artifacts", self.inner.all_artifacts())
    }
    async fn remove_artifact(&self, session: &str, name: &str) -> StoreResult<bool> {
        timed!(
            self,
            "remove_artifact",
            self.inner.remove_artifact(session, name)
        )
    }
}

/// Webhook state, timed like the rest of the store. The fan-out read is
/// timed too: unlike the event log's reads, it never waits.
#[async_trait]
impl WebhookStore for TimedStore {
    async fn create_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        timed!(self, "create_webhook", self.inner.create_webhook(w))
    }
    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        timed!(self, "webhooks", self.inner.webhooks())
    }
    async fn webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        timed!(self, "webhook", self.inner.webhook(id))
    }
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        timed!(self, "delete_webhook", self.inner.delete_webhook(id))
    }
    async fn disable_webhook(&self, id: &str, reason: &str, at: i64) -> StoreResult<bool> {
        timed!(
            self,
            "disable_webhook",
            self.inner.disable_webhook(id, reason, at)
        )
    }
    async fn enqueue_deliveries(&self, ds: &[NewDelivery], now: i64) -> StoreResult<usize> {
        timed!(
            self,
            "enqueue_deliveries",
            self.inner.enqueue_deliveries(ds, now)
        )
    }
    async fn take_due(
        &self,
        now: i64,
        limit: usize,
        lease_ms: u64,
        holder: &str,
    ) -> StoreResult<Vec<Leased>> {
        timed!(
            self,
            "take_due",
            self.inner.take_due(now, limit, lease_ms, holder)
        )
    }
    async fn record_attempt(
        &self,
        d: &Leased,
        next: Next,
        entry: &LogEntry,
    ) -> StoreResult<Recorded> {
        timed!(
            self,
            "record_attempt",
            self.inner.record_attempt(d, next, entry)
        )
    }
    async fn delivery_log(
        &self,
        webhook: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<LogEntry>> {
        timed!(
            self,
            "delivery_log",
            self.inner.delivery_log(webhook, before, limit)
        )
    }
    async fn prune_deliveries(&self, older_than: i64) -> StoreResult<usize> {
        timed!(
            self,
            "prune_deliveries",
            self.inner.prune_deliveries(older_than)
        )
    }
    async fn events_to_fan_out(
        &self,
        consumer: &str,
        limit: usize,
        reclaim_after: Duration,
    ) -> StoreResult<Vec<Event>> {
        timed!(
            self,
            "events_to_fan_out",
            self.inner.events_to_fan_out(consumer, limit, reclaim_after)
        )
    }
    async fn events_fanned_out(&self, consumer: &str, ids: &[String]) -> StoreResult<()> {
        timed!(
            self,
            "events_fanned_out",
            self.inner.events_fanned_out(consumer, ids)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridiron_store::MemoryStore;

    #[tokio::test]
    async fn each_call_is_timed_under_its_operation() {
        let m = Metrics::new();
        let s = TimedStore::wrap(Arc::new(MemoryStore::new()), m.clone());
        assert!(s.get("nope").await.unwrap().is_none());
        s.get("nope").await.unwrap();
        s.keys().await.unwrap();
        let snap = m.snapshot();
        assert_eq!(snap.get("hist:store:get:count"), Some(&2));
        assert_eq!(snap.get("hist:store:keys:count"), Some(&1));
    }
}
