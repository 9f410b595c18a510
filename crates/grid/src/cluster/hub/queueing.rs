//! How a hub starts sessions: it checks that some node could serve the
//! request, puts it in the shared queue and waits for a node's answer, the
//! queue timeout, or its client leaving.

use super::{store_down, Hub};
use crate::auth::Caller;
use crate::cluster::{decode_answer, CDP_KEY};
use gridiron_domain::capabilities::{
    for_record, parse_new_session, select, RECORDED_CAPABILITIES_LIMIT,
};
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::events;
use gridiron_domain::launch_policy::{check_request, check_switches};
use gridiron_domain::pool::{apply_defaults, node_accepts};
use gridiron_domain::request_wait::{self, AfterCancel, CancelSeen, Next, Seen, WaitLimits};
use gridiron_domain::{BrowserKind, EndReason, ErrorCode, GridError, GridOptions, Origin};
use gridiron_store::cluster::{Cancelled, QueuedRequest, RequestState};
use gridiron_store::{now_ms, NewEvent, NewSession};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::{info, warn};

impl Hub {
    /// Queues a new-session request and waits for a node's answer.
    pub(super) async fn queue_session(
        self: &Arc<Self>,
        mut body: Value,
        public_base: String,
        caller: &Caller,
    ) -> Result<Value, GridError> {
        let mut request = parse_new_session(&body)?;
        let allow = &self.cfg.launch_allowances;
        // Refused at once, before the store or any node sees it.
        check_request(&request, allow)?;
        let options = GridOptions::from_capabilities(&request.always_match)?;
        // The pool decides defaults and the concurrency count before any
        // firstMatch entry is chosen, so it must be the same for all of them.
        for first in &request.first_match {
            if GridOptions::from_capabilities(first)?.pool.is_some() {
                return Err(GridError::invalid_argument(
                    "gridiron:options.pool must be set in alwaysMatch, not in firstMatch",
                ));
            }
        }
        let mut pool_max = 0;
        if let Some(name) = &options.pool {
            let pool = self.cluster.pool(name).await.map_err(store_down)?;
            let pool = pool.ok_or_else(|| {
                GridError::not_created(Origin::Client, format!("there is no pool named {name}"))
            })?;
            // A pool comes from the shared store: its arguments are checked
            // each time they are applied, not only when it was created.
            check_switches(&format!("pool {name}'s args"), &pool.args, allow)?;
            apply_defaults(&mut body, &pool);
            pool_max = pool.max_concurrency.unwrap_or(0);
            // The pool's defaults are part of the request now.
            request = parse_new_session(&body)?;
            check_request(&request, allow)?;
        }
        self.check_satisfiable(Wanted::WebDriver(&request)).await?;
        // The queue carries the body as text; the record keeps its capabilities.
        let text = body.to_string();
        let requested = for_record(
            crate::manager::requested_capabilities(body),
            RECORDED_CAPABILITIES_LIMIT,
        );
        let queued = QueuedRequest {
            id: uuid::Uuid::new_v4().simple().to_string(),
            body: text,
            pool: options.pool.clone(),
            pool_max,
            hub: self.cfg.id.clone(),
            public_base,
            created_at: now_ms(),
            owner: caller.key.clone().unwrap_or_default(),
            key_max: key_max(caller),
        };
        self.queue_and_wait(queued, requested, &options).await
    }

    /// Fails unless some live node that takes new sessions could serve the
    /// request; a node may have joined since the cached list was read, so the
    /// list is read again before refusing.
    async fn check_satisfiable(&self, wanted: Wanted<'_>) -> Result<(), GridError> {
        let verdict = self.satisfiable(wanted, false).await.map_err(store_down)?;
        if verdict.is_ok() {
            return verdict;
        }
        self.satisfiable(wanted, true).await.map_err(store_down)?
    }

    /// Puts a request in the shared queue and waits for a node's answer, the
    /// queue timeout, or the client leaving (the future being dropped).
    async fn queue_and_wait(
        self: &Arc<Self>,
        queued: QueuedRequest,
        requested: Value,
        options: &GridOptions,
    ) -> Result<Value, GridError> {
        let notify = Arc::new(Notify::new());
        self.waiters().insert(queued.id.clone(), notify.clone());
        let mut waiting = Waiter {
            hub: self.clone(),
            rid: queued.id.clone(),
            requested,
            options: options.to_json(),
            since: queued.created_at,
            owner: Some(queued.owner.clone()).filter(|o| !o.is_empty()),
            pending: true,
            listed: true,
        };
        match self.cluster.enqueue(&queued, self.cfg.max_queue).await {
            Ok(Some(position)) => self.emit(
                NewEvent::now(events::REQUEST_QUEUED)
                    .owner(waiting.owner.as_deref())
                    .with("request", &queued.id)
                    .with("position", position)
                    .with("hub", &self.cfg.id),
            ),
            Ok(None) => {
                waiting.pending = false;
                waiting.listed = false;
                return Err(GridError::not_created(
                    Origin::Grid,
                    format!(
                        "the queue is full ({} requests already waiting); try again later",
                        self.cfg.max_queue
                    ),
                ));
            }
            Err(e) => {
                waiting.pending = false;
                return Err(store_down(e));
            }
        }
        let limits = WaitLimits {
            queue: self.cfg.queue_timeout,
            start: self.cfg.start_timeout,
        };
        let queued_at = tokio::time::Instant::now();
        let mut last_error = None;
        loop {
            // Answers are announced; looking now and then covers announcements
            // lost with a connection. Past the queue deadline only a node's
            // start is awaited, so look more often, but never in a tight loop.
            let now = tokio::time::Instant::now();
            let wake = if limits.queue_over(now - queued_at) {
                now + crate::timing::START_RECHECK
            } else {
                (queued_at + limits.queue).min(now + crate::timing::ANSWER_RECHECK)
            };
            tokio::select! {
                _ = notify.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            // Marked taken before the client hears of it: a hub that dies
            // before this leaves the session to the collector to end.
            if let Ok(Some(a)) = self.cluster.take_answer(&self.cfg.id, &queued.id).await {
                waiting.pending = false;
                waiting.listed = false;
                return decode_answer(&a);
            }
            let seen = match self.cluster.request_state(&queued.id).await {
                Ok(RequestState::Pending) => Seen::Pending,
                Ok(RequestState::Answered(_)) => Seen::Answered,
                Ok(RequestState::Cancelled) => Seen::Cancelled,
                Ok(RequestState::Missing) => Seen::Missing,
                Err(e) => {
                    last_error = Some(e);
                    Seen::StoreFailed
                }
            };
            match request_wait::next(seen, queued_at.elapsed(), limits) {
                Next::Wait => {}
                Next::TakeAnswer => notify.notify_one(),
                Next::Requeue => {
                    // The store lost its data (restarted empty): queue it again.
                    warn!(request = %queued.id, "request lost by the store; queueing it again");
                    let _ = self.cluster.enqueue(&queued, self.cfg.max_queue).await;
                }
                Next::FailWithdrawn => {
                    waiting.pending = false;
                    return Err(GridError::not_created(
                        Origin::Grid,
                        "the request was withdrawn from the queue",
                    ));
                }
                Next::FailLost => {
                    waiting.pending = false;
                    return Err(GridError::not_created(
                        Origin::Grid,
                        "the grid's store lost the request and it could not be queued again in time",
                    ));
                }
                Next::FailStore => {
                    waiting.pending = false;
                    return Err(match last_error.take() {
                        Some(e) => store_down(e),
                        None => {
                            GridError::not_created(Origin::Grid, "the grid's store is unavailable")
                        }
                    });
                }
                Next::Cancel { hard } => {
                    let outcome = self
                        .cluster
                        .cancel(&queued.id, "queue_timeout", !hard)
                        .await;
                    let (seen, answer) = match outcome {
                        Ok(Cancelled::Removed) => (CancelSeen::Removed, None),
                        Ok(Cancelled::WhileStarting) => (CancelSeen::WhileStarting, None),
                        Ok(Cancelled::Answered(a)) => (CancelSeen::Answered, Some(a)),
                        Ok(Cancelled::Missing) => (CancelSeen::Missing, None),
                        Err(_) => (CancelSeen::StoreFailed, None),
                    };
                    match (request_wait::after_cancel(seen, hard), answer) {
                        (AfterCancel::Deliver, Some(a)) => {
                            waiting.pending = false;
                            return decode_answer(&a);
                        }
                        (AfterCancel::TimedOut, _) => {
                            waiting.record(EndReason::QueueTimeout);
                            return Err(GridError::not_created(
                                Origin::Grid,
                                format!(
                                    "timed out after {:?} waiting in the queue for a free slot on a node",
                                    self.cfg.queue_timeout
                                ),
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// `Ok` if some live node that takes new sessions could serve `wanted`;
    /// otherwise the error to answer with.
    async fn satisfiable(
        &self,
        wanted: Wanted<'_>,
        fresh: bool,
    ) -> Result<Result<(), GridError>, gridiron_store::StoreError> {
        let nodes = self.nodes(fresh).await?;
        let mut first_error = None;
        for n in nodes.iter().filter(|n| n.alive && !n.draining) {
            let fits = match wanted {
                Wanted::WebDriver(request) => match select(request, &n.info.stereotypes) {
                    Ok(sel) => GridOptions::from_capabilities(&sel.merged)
                        .is_ok_and(|o| node_accepts(&n.info.profile, &o)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        false
                    }
                },
                Wanted::Cdp(options) => {
                    n.info
                        .stereotypes
                        .iter()
                        .any(|s| s.kind == BrowserKind::Chromium)
                        && node_accepts(&n.info.profile, options)
                }
            };
            if fits {
                return Ok(Ok(()));
            }
        }
        Ok(Err(first_error.unwrap_or_else(|| {
            GridError::not_created(
                Origin::Client,
                "no node of this grid can run the requested capabilities (pool and node labels included)",
            )
        })))
    }

    /// Starts a CDP-only session on some node: the answer's session id.
    pub(super) async fn queue_cdp_session(
        self: &Arc<Self>,
        request: CdpRequest,
        query: String,
        public_base: String,
        caller: &Caller,
    ) -> Result<String, GridError> {
        check_switches("/cdp", &request.args, &self.cfg.launch_allowances)?;
        self.check_satisfiable(Wanted::Cdp(&request.options))
            .await?;
        let queued = QueuedRequest {
            id: uuid::Uuid::new_v4().simple().to_string(),
            body: json!({ CDP_KEY: query }).to_string(),
            pool: None,
            pool_max: 0,
            hub: self.cfg.id.clone(),
            public_base,
            created_at: now_ms(),
            owner: caller.key.clone().unwrap_or_default(),
            key_max: key_max(caller),
        };
        let requested = json!({ "cdp": request.args });
        let v = self
            .queue_and_wait(queued, requested, &request.options)
            .await?;
        v["value"]["sessionId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                GridError::new(
                    ErrorCode::UnknownError,
                    Origin::Grid,
                    "the node's answer has no session id",
                )
            })
    }
}

/// What a request needs from a node.
#[derive(Clone, Copy)]
enum Wanted<'a> {
    /// A WebDriver session with these capabilities.
    WebDriver(&'a gridiron_domain::capabilities::CapabilityRequest),
    /// A bare Chromium for a CDP client, with these options.
    Cdp(&'a GridOptions),
}

/// A request the hub is waiting on. If it is dropped while still pending
/// (its client left), the request is withdrawn, or the session started for it ended.
struct Waiter {
    hub: Arc<Hub>,
    rid: String,
    requested: Value,
    options: Value,
    since: i64,
    /// Still waiting for an answer (its client is still there).
    pending: bool,
    /// Still among the store's open requests of this hub.
    listed: bool,
    /// The API key that asked.
    owner: Option<String>,
}

impl Waiter {
    /// Records a request that ended without a session.
    fn record(&mut self, reason: EndReason) {
        self.pending = false;
        let (hub, new) = (self.hub.clone(), self.take_record());
        self.hub
            .tasks
            .spawn(async move { record_unserved(&hub, new, reason).await });
    }

    /// The record of this request, as a session that never started.
    fn take_record(&mut self) -> NewSession {
        NewSession {
            id: self.rid.clone(),
            browser: String::new(),
            requested_caps: std::mem::take(&mut self.requested),
            grid_options: std::mem::take(&mut self.options),
            created_at: self.since,
            owner: self.owner.clone(),
        }
    }
}

/// The session id in a node's successful answer.
pub(super) fn session_of(answer: &str) -> Option<String> {
    let v = decode_answer(answer).ok()?;
    v["value"]["sessionId"].as_str().map(str::to_string)
}

/// Writes the record of a request that never got a session.
async fn record_unserved(hub: &Hub, new: NewSession, reason: EndReason) {
    let id = new.id.clone();
    let store = &hub.store;
    hub.emit(
        NewEvent::now(events::REQUEST_CANCELLED)
            .owner(new.owner.as_deref())
            .with("request", &id)
            .with("reason", reason.as_str()),
    );
    info!(request = %id, reason = reason.as_str(), "queued request ended");
    hub.metrics.session_ended(reason);
    let _ = store.insert(new, true).await;
    let _ = store.mark_ended(&id, reason, now_ms(), 0).await;
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.hub.waiters().remove(&self.rid);
        if !self.pending {
            if self.listed {
                let (hub, rid) = (self.hub.clone(), self.rid.clone());
                self.hub.tasks.spawn(async move {
                    let _ = hub.cluster.close_request(&hub.cfg.id, &rid).await;
                });
            }
            return;
        }
        let hub = self.hub.clone();
        let new = self.take_record();
        self.hub.tasks.spawn(async move {
            let rid = new.id.clone();
            if let Ok(Cancelled::Removed) = hub.withdraw(&rid).await {
                record_unserved(&hub, new, EndReason::ClientGone).await;
            }
            let _ = hub.cluster.close_request(&hub.cfg.id, &rid).await;
        });
    }
}

impl Hub {
    /// Withdraws a request whose client is gone; a session already started
    /// for it is ended. Returns where the request stood.
    pub(super) async fn withdraw(
        &self,
        rid: &str,
    ) -> Result<Cancelled, gridiron_store::StoreError> {
        let outcome = self.cluster.cancel(rid, "client_gone", false).await?;
        if let Cancelled::Answered(a) = &outcome {
            if let Some(sid) = session_of(a) {
                info!(session = %sid, "client left before the session was handed over");
                self.delete_session(&sid, EndReason::ClientGone).await;
            }
        }
        Ok(outcome)
    }
}

/// The session limit a request counts against in the shared queue: its
/// key's `--max-sessions` (0: none, or no key).
fn key_max(caller: &Caller) -> u32 {
    if caller.key.is_some() {
        caller.max_sessions.unwrap_or(0)
    } else {
        0
    }
}
