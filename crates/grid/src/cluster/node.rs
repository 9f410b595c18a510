//! The node role: pulls new-session requests it can serve from the shared
//! queue, starts them with its local [`Manager`], heartbeats, and drains.

use super::{encode_answer, CDP_KEY};
use crate::manager::Manager;
use crate::routes::parse_cdp_query;
use crate::store_retry::retry_store;
use crate::timing;
use bytes::Bytes;
use gridiron_domain::capabilities::{parse_new_session, select};
use gridiron_domain::events;
use gridiron_domain::pool::{node_accepts, NodeProfile};
use gridiron_domain::{BrowserKind, EndReason, GridError, GridOptions, Origin};
use gridiron_store::cluster::{Beat, Claim, Completion, Ended, NodeInfo, Started, Waiting};
use gridiron_store::{now_ms, Cluster, NewEvent};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tracing::{info, warn};

/// How a node joins the grid.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Unique id of this node process.
    pub id: String,
    /// The URL hubs reach this node at.
    pub advertise_url: String,
    /// A node whose heartbeat is older than this is lost.
    pub heartbeat_ttl: Duration,
    /// How long a drain waits for running sessions before ending them.
    pub drain_timeout: Duration,
    /// Pools and labels.
    pub profile: NodeProfile,
}

/// What a node starts for a queued request.
enum Job {
    /// A WebDriver session, from the request's body.
    WebDriver,
    /// A bare Chromium for a CDP client.
    Cdp(gridiron_domain::cdp::CdpRequest),
}

/// What a running session holds in the store: the request it was started
/// for, its pool, and the API key whose session limit it counts against.
type SessionPlaces = (String, Option<String>, Option<String>);

/// A node's membership in the grid.
pub struct NodeAgent {
    cfg: NodeConfig,
    cluster: Arc<dyn Cluster>,
    m: Arc<Manager>,
    /// Requests claimed whose start has not finished.
    starting: AtomicUsize,
    /// Running sessions: id -> (request id, pool).
    sessions: Mutex<HashMap<String, SessionPlaces>>,
    draining: AtomicBool,
    /// Set when the node is about to stop: it claims nothing more.
    stopping: AtomicBool,
    wake: Notify,
    drained: watch::Sender<bool>,
    /// Bumped whenever a session ends or a start finishes, so a drain waits
    /// for the node to become idle without polling.
    changed: watch::Sender<u64>,
    /// Orders heartbeats: each reads the slots in use while holding it, so a
    /// slower, older report can never overwrite a newer one.
    beating: tokio::sync::Mutex<()>,
}

impl NodeAgent {
    /// Registers the node and starts pulling work and heartbeating.
    pub async fn start(
        cluster: Arc<dyn Cluster>,
        m: Arc<Manager>,
        cfg: NodeConfig,
    ) -> Result<Arc<Self>, String> {
        // The grid's queue is the shared one: its waits are measured here,
        // at the claim, not in the manager's own slots.
        m.metrics.set_node();
        let cluster = crate::metrics::timed::TimedCluster::wrap(cluster, m.metrics.clone());
        let agent = Arc::new(NodeAgent {
            cfg,
            cluster,
            m: m.clone(),
            starting: AtomicUsize::new(0),
            sessions: Mutex::default(),
            draining: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            wake: Notify::new(),
            drained: watch::channel(false).0,
            changed: watch::channel(0).0,
            beating: tokio::sync::Mutex::new(()),
        });
        agent
            .cluster
            .register_node(&agent.info(), agent.cfg.heartbeat_ttl)
            .await
            .map_err(|e| e.to_string())?;
        let weak = Arc::downgrade(&agent);
        m.on_session_end(move |sid, reason| {
            if let Some(a) = weak.upgrade() {
                // The slot is free already: look at the queue now, not after
                // the store has heard of the end.
                a.wake.notify_one();
                let sid = sid.to_string();
                let tasks = a.m.tasks().clone();
                tasks.spawn(async move { a.session_ended(&sid, reason).await });
            }
        });
        let tasks = m.tasks();
        crate::metrics::flush::spawn(tasks, m.metrics.clone(), agent.cluster.clone(), None);
        tasks.spawn_until_stopped(agent.clone().pull());
        tasks.spawn_until_stopped(agent.clone().heartbeat());
        m.set_node_id(&agent.cfg.id);
        // Which local artifacts are this node's is known now.
        m.keep_artifacts();
        agent
            .event(NewEvent::now(events::NODE_UP).with("url", &agent.cfg.advertise_url))
            .await;
        info!(node = %agent.cfg.id, url = %agent.cfg.advertise_url, "node registered");
        Ok(agent)
    }

    /// This node's id.
    pub fn id(&self) -> &str {
        &self.cfg.id
    }

    fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.cfg.id.clone(),
            url: self.cfg.advertise_url.clone(),
            max_sessions: self.m.config.max_sessions,
            stereotypes: self.m.catalog().to_vec(),
            profile: self.cfg.profile.clone(),
            started_at: now_ms(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionPlaces>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for work and takes what fits.
    async fn pull(self: Arc<Self>) {
        let mut work = self.cluster.subscribe(vec![self.cluster.work_channel()]);
        loop {
            tokio::select! {
                m = work.recv() => if m.is_none() { return },
                _ = self.wake.notified() => {}
                // Only a safety net: new requests, requeued ones and pool or
                // key places freed anywhere are announced; this catches notices
                // lost while the store was away.
                _ = tokio::time::sleep(timing::QUEUE_RECHECK) => {}
            }
            // One look at the queue answers every notice that came meanwhile.
            while work.try_recv().is_ok() {}
            if !self.takes_work() {
                continue;
            }
            if let Err(e) = self.fill().await {
                warn!(error = %e, "could not read the queue");
            }
        }
    }

    fn free(&self) -> usize {
        self.m
            .free_slots()
            .saturating_sub(self.starting.load(Ordering::SeqCst))
    }

    /// Claims the first waiting requests (in the queue's order: oldest first
    /// per API key, keys taking turns) this node can serve while it has free
    /// slots, reading the queue a page at a time past what it cannot run.
    async fn fill(self: &Arc<Self>) -> Result<(), gridiron_store::StoreError> {
        const PAGE: usize = 64;
        let mut offset = 0;
        // Most looks end at the first requests: the first page is sized by
        // the free slots, so a busy queue is not read whole at every look.
        let mut limit = (self.free() * 2).clamp(4, PAGE);
        // Pools and keys found full in this pass: their further requests
        // are passed over without asking the store again (a place freed
        // meanwhile is seen at the next pass).
        let mut full_pools = HashSet::new();
        let mut full_keys = HashSet::new();
        while self.free() > 0 && self.takes_work() {
            let page = self.cluster.waiting(offset, limit).await?;
            let mut skipped = 0;
            for w in &page {
                if self.free() == 0 || !self.takes_work() {
                    return Ok(());
                }
                let pool_full =
                    w.pool_max > 0 && w.pool.as_ref().is_some_and(|p| full_pools.contains(p));
                let key_full = w.key_max > 0 && full_keys.contains(&w.owner);
                if pool_full || key_full {
                    skipped += 1;
                    continue;
                }
                let Some(job) = self.job(w) else {
                    skipped += 1;
                    continue;
                };
                match self.cluster.claim(w, &self.cfg.id).await? {
                    Claim::Claimed { epoch } => {
                        if w.created_at > 0 {
                            let waited = u64::try_from(now_ms() - w.created_at).unwrap_or(0);
                            self.m.metrics.queue_waited(Duration::from_millis(waited));
                        }
                        self.starting.fetch_add(1, Ordering::SeqCst);
                        self.m
                            .tasks()
                            .spawn(self.clone().run(w.clone(), job, epoch));
                    }
                    // Still waiting, so it keeps its place in the next page.
                    Claim::PoolFull => {
                        full_pools.extend(w.pool.clone());
                        skipped += 1;
                    }
                    Claim::KeyFull => {
                        full_keys.insert(w.owner.clone());
                        skipped += 1;
                    }
                    Claim::Gone => {}
                }
            }
            if page.len() < limit {
                return Ok(());
            }
            limit = PAGE;
            // Claimed and vanished requests left the queue: the next page
            // starts after the ones that stay.
            offset += skipped;
        }
        Ok(())
    }

    /// Whether the node may claim requests: not draining, not stopping.
    fn takes_work(&self) -> bool {
        !self.draining.load(Ordering::SeqCst) && !self.stopping.load(Ordering::SeqCst)
    }

    /// Stops claiming requests, before the node's sessions are ended.
    pub fn stop_taking_work(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// What this node would start for the request, if it has a browser for
    /// it and is in its pool and labels; `None` if it cannot run it.
    fn job(&self, w: &Waiting) -> Option<Job> {
        let body = serde_json::from_str::<Value>(&w.body).ok()?;
        if let Some(query) = body.get(CDP_KEY).and_then(Value::as_str) {
            let chromium = self
                .m
                .catalog()
                .iter()
                .any(|s| s.kind == BrowserKind::Chromium);
            let request = parse_cdp_query(query).ok()?;
            return (chromium && node_accepts(&self.cfg.profile, &request.options))
                .then_some(Job::Cdp(request));
        }
        let request = parse_new_session(&body).ok()?;
        let selection = select(&request, self.m.catalog()).ok()?;
        GridOptions::from_capabilities(&selection.merged)
            .is_ok_and(|o| node_accepts(&self.cfg.profile, &o))
            .then_some(Job::WebDriver)
    }

    /// Starts a claimed request's session and hands the answer to its hub;
    /// `epoch` is the registration the claim is held by.
    async fn run(self: Arc<Self>, w: Waiting, job: Job, epoch: u64) {
        // The hub checked the key; the session is recorded as its.
        let owner = crate::auth::Caller::owner(&w.owner);
        let mut result = match job {
            Job::Cdp(request) => self.m.new_cdp_session_for(request, &owner).await.map(|s| {
                json!({"value": {"sessionId": s.id, "capabilities": {"browserName": "chrome"}}})
            }),
            Job::WebDriver => {
                self.m
                    .new_session_as(
                        Bytes::from(w.body.clone()),
                        w.public_base.clone(),
                        &owner,
                        Some(w.id.clone()),
                    )
                    .await
            }
        };
        let sid = result
            .as_ref()
            .ok()
            .and_then(|v| v["value"]["sessionId"].as_str())
            .map(str::to_string);
        self.starting.fetch_sub(1, Ordering::SeqCst);
        self.load_changed();
        let completion = match &sid {
            Some(sid) => match self.answer_started(&w, epoch, sid, &result).await {
                Some(c) => c,
                None => {
                    // Hubs could never reach it: better no session than a lost one.
                    self.m.end(sid, EndReason::FailedToStart).await;
                    result = Err(GridError::not_created(
                        Origin::Grid,
                        "the node could not record the session in the store",
                    ));
                    self.answer_failed(&w, epoch, &owner, &result).await
                }
            },
            None => self.answer_failed(&w, epoch, &owner, &result).await,
        };
        let started = result.is_ok();
        match (completion, &sid, started) {
            (Completion::Delivered, _, _) | (_, None, _) | (_, _, false) => {}
            (Completion::Gone, Some(sid), true) => {
                info!(session = %sid, "nobody waits for the session any more");
                self.m.end(sid, EndReason::ClientGone).await;
            }
            // The node was declared lost while starting it: the request went
            // back to the queue and is served elsewhere.
            (Completion::Fenced, Some(sid), true) => {
                info!(session = %sid, "the claim was taken back; ending the session");
                self.m.end(sid, EndReason::NodeLost).await;
            }
        }
        self.wake.notify_one();
    }

    /// Records a started session's route and the node's load, then hands
    /// the answer to its hub, in one store step (retried); `None` if the
    /// store could not be reached.
    async fn answer_started(
        &self,
        w: &Waiting,
        epoch: u64,
        sid: &str,
        result: &Result<Value, GridError>,
    ) -> Option<Completion> {
        let key = (w.key_max > 0).then(|| w.owner.clone());
        self.lock()
            .insert(sid.to_string(), (w.id.clone(), w.pool.clone(), key.clone()));
        let answer = encode_answer(result);
        // Set when an attempt's outcome is unknown (the store went away
        // mid-call): the answer may have reached the hub already.
        let unsure = AtomicBool::new(false);
        let completion = retry_store("complete", || async {
            // The load is read and written under the heartbeats' turn, so an
            // older report never overwrites a newer one.
            let _one_at_a_time = self.beating.lock().await;
            let started = Started {
                sid,
                key: key.as_deref(),
                used: self.m.slots_in_use(),
                ttl: self.cfg.heartbeat_ttl,
            };
            let r = self
                .cluster
                .complete_started(w, &self.cfg.id, epoch, &answer, &started)
                .await;
            if r.is_err() {
                unsure.store(true, Ordering::SeqCst);
            }
            r
        })
        .await
        .ok()?;
        let kept = kept_when_unsure(completion, unsure.load(Ordering::SeqCst));
        if kept != completion {
            info!(session = %sid, "the store lost the request while its answer was stored; keeping the session until its client uses it");
            if let Some(s) = self.m.session(sid) {
                s.expect_claim(crate::timing::CLAIM_GRACE);
            }
        }
        Some(kept)
    }

    /// Records why a request got no session and hands its hub the error.
    async fn answer_failed(
        &self,
        w: &Waiting,
        epoch: u64,
        owner: &crate::auth::Caller,
        result: &Result<Value, GridError>,
    ) -> Completion {
        // The session's start and end are recorded by the manager; a
        // request that got none ends here.
        if let Err(e) = result {
            self.event(
                NewEvent::now(events::REQUEST_CANCELLED)
                    .owner(owner.key.as_deref())
                    .with("request", &w.id)
                    .with("reason", EndReason::FailedToStart.as_str())
                    .with("error", &e.message),
            )
            .await;
        }
        self.report_usage().await;
        let answer = encode_answer(result);
        retry_store("complete", || {
            self.cluster
                .complete(w, &self.cfg.id, epoch, &answer, false)
        })
        .await
        .unwrap_or(Completion::Gone)
    }

    async fn session_ended(&self, sid: &str, _reason: EndReason) {
        let places = self.lock().remove(sid);
        match places {
            Some((rid, pool, key)) => {
                let _one_at_a_time = self.beating.lock().await;
                let ended = Ended {
                    sid,
                    rid: &rid,
                    pool: pool.as_deref(),
                    key: key.as_deref(),
                    used: self.m.slots_in_use(),
                    ttl: self.cfg.heartbeat_ttl,
                };
                if let Err(e) = self.cluster.end_session(&self.cfg.id, &ended).await {
                    warn!(session = %sid, error = %e, "could not remove the session's route");
                }
            }
            None => self.report_usage().await,
        }
        self.load_changed();
        self.wake.notify_one();
        if self.draining.load(Ordering::SeqCst) && self.idle() {
            let _ = self.drained.send(true);
        }
    }

    /// Records a lifecycle event of this node (observers only: a failure is logged).
    async fn event(&self, event: NewEvent) {
        let kind = event.kind.clone();
        if let Err(e) = self.cluster.append(event.node(&self.cfg.id)).await {
            warn!(error = %e, kind, "could not record an event");
        }
    }

    /// Publishes the slots in use now, so hubs' status is current between heartbeats.
    async fn report_usage(&self) {
        let _ = self.beat().await;
    }

    /// Heartbeats with the slots in use now, one heartbeat at a time.
    async fn beat(&self) -> gridiron_store::StoreResult<Beat> {
        let _one_at_a_time = self.beating.lock().await;
        self.cluster
            .heartbeat(&self.cfg.id, self.m.slots_in_use(), self.cfg.heartbeat_ttl)
            .await
    }

    /// Tells a waiting drain that the node's load changed.
    fn load_changed(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn idle(&self) -> bool {
        self.m.slots_in_use() == 0 && self.starting.load(Ordering::SeqCst) == 0
    }

    /// Renews the heartbeat; reacts to drain requests and to a store that
    /// lost the node (declared lost, or restarted without its data).
    async fn heartbeat(self: Arc<Self>) {
        let ttl = self.cfg.heartbeat_ttl;
        let every = (ttl / 4).clamp(timing::NODE_BEAT_MIN, timing::NODE_BEAT_MAX);
        loop {
            tokio::time::sleep(every).await;
            if self.m.is_shut_down() {
                return;
            }
            match self.beat().await {
                Ok(Beat::Alive { draining }) => {
                    if draining && !self.draining.load(Ordering::SeqCst) {
                        info!("drain requested");
                        self.m.tasks().spawn_until_stopped(self.clone().drain());
                    }
                }
                Ok(Beat::Lost) => {
                    // Its sessions were ended elsewhere; they must not come back.
                    warn!("this node was declared lost; ending its sessions and rejoining");
                    for sid in self.m.session_ids() {
                        self.m.end(&sid, EndReason::NodeLost).await;
                    }
                    self.rejoin().await;
                }
                Ok(Beat::Unknown) => {
                    warn!("the store no longer knows this node; registering again");
                    // A session whose answer went with the store's data may
                    // never reach its client (its hub queues the request
                    // again): one not used yet must be used soon, or it ends.
                    for sid in self.m.session_ids() {
                        if let Some(s) = self.m.session(&sid).filter(|s| !s.used()) {
                            s.expect_claim(crate::timing::CLAIM_GRACE);
                        }
                    }
                    self.rejoin().await;
                    self.m.rewrite_records().await;
                    let sessions: Vec<_> = self
                        .lock()
                        .iter()
                        .filter(|(s, _)| self.m.session(s).is_some())
                        .map(|(s, places)| (s.clone(), places.clone()))
                        .collect();
                    for (sid, (rid, pool, key)) in sessions {
                        let _ = self
                            .cluster
                            .add_session(&self.cfg.id, &sid, &rid, pool.as_deref(), key.as_deref())
                            .await;
                    }
                }
                Err(e) => warn!(error = %e, "heartbeat failed"),
            }
        }
    }

    async fn rejoin(&self) {
        if let Err(e) = self
            .cluster
            .register_node(&self.info(), self.cfg.heartbeat_ttl)
            .await
        {
            warn!(error = %e, "could not register again");
        }
        if self.draining.load(Ordering::SeqCst) {
            let _ = self.cluster.drain_node(&self.cfg.id).await;
        }
    }

    /// Stops taking work, waits (up to the drain timeout) for running
    /// sessions to finish, then reports the node drained.
    pub async fn drain(self: Arc<Self>) {
        if self.draining.swap(true, Ordering::SeqCst) {
            // Already draining (asked through the store): wait for that drain.
            self.drained().await;
            return;
        }
        info!(sessions = self.m.slots_in_use(), "draining");
        // A draining node starts nothing more, warm sessions included.
        self.m.stop_warm().await;
        self.event(NewEvent::now(events::NODE_DRAINED)).await;
        if let Err(e) = self.cluster.drain_node(&self.cfg.id).await {
            warn!(error = %e, "could not mark the node draining");
        }
        // Subscribed before the first look, so no change between the look
        // and the wait is missed.
        let mut changes = self.changed.subscribe();
        let idle = async {
            while !self.idle() {
                if changes.changed().await.is_err() {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(self.cfg.drain_timeout, idle).await;
        let _ = self.drained.send(true);
    }

    /// Resolves once a drain has finished.
    pub async fn drained(&self) {
        let mut rx = self.drained.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Leaves the grid: call after the manager has shut down.
    pub async fn leave(&self) {
        if let Err(e) = self.cluster.remove_node(&self.cfg.id).await {
            warn!(error = %e, "could not unregister the node");
        }
        // What it counted since the last flush stays in the grid's totals.
        let _ = self.m.metrics.flush(self.cluster.as_ref()).await;
        self.event(NewEvent::now(events::NODE_DOWN)).await;
        info!(node = %self.cfg.id, "node left the grid");
    }
}

/// What a started session's completion means for it. A store that lost its
/// data while the answer was being stored says nobody waits, but the client
/// may hold the answer already: such a session is kept, never killed under a
/// client that has it (it ends if nothing uses it within
/// [`crate::timing::CLAIM_GRACE`]).
fn kept_when_unsure(completion: Completion, unsure: bool) -> Completion {
    match completion {
        Completion::Gone if unsure => Completion::Delivered,
        c => c,
    }
}

#[cfg(test)]
mod completion_tests {
    use super::*;

    #[test]
    fn a_session_whose_answer_may_have_reached_its_client_is_kept() {
        assert_eq!(
            kept_when_unsure(Completion::Gone, true),
            Completion::Delivered
        );
        assert_eq!(kept_when_unsure(Completion::Gone, false), Completion::Gone);
        assert_eq!(
            kept_when_unsure(Completion::Fenced, true),
            Completion::Fenced
        );
        assert_eq!(
            kept_when_unsure(Completion::Delivered, true),
            Completion::Delivered
        );
    }
}
