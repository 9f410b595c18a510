//! Admission: a new-session request is validated, matched against the
//! catalog, and waits in line for a slot. Starting itself is in `launch`.

use super::records::Write;
use super::Manager;
use crate::auth::Caller;
use crate::session::Session;
use crate::slots::NoSlot;
use crate::timeline::Timeline;
use bytes::Bytes;
use gridiron_domain::capabilities::{
    for_record, parse_new_session, select, RECORDED_CAPABILITIES_LIMIT,
};
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::events;
use gridiron_domain::launch_policy::{check_request, check_switches};
use gridiron_domain::queue::Refusal;
use gridiron_domain::{BrowserKind, EndReason, GridError, GridOptions, Origin};
use gridiron_store::NewEvent;
use gridiron_store::{now_ms, NewSession};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::info;

impl Manager {
    /// Handles `POST /session` on a grid without keys: see [`Manager::new_session_for`].
    pub async fn new_session(
        self: &Arc<Self>,
        body: Bytes,
        public_base: String,
    ) -> Result<Value, GridError> {
        self.new_session_for(body, public_base, &Caller::open())
            .await
    }

    /// Handles `POST /session` for `caller`: validates, waits for a slot (in
    /// the caller's turn, within its key's session limit), starts the driver,
    /// and returns the W3C response body. The session belongs to the caller's key.
    pub async fn new_session_for(
        self: &Arc<Self>,
        body: Bytes,
        public_base: String,
        caller: &Caller,
    ) -> Result<Value, GridError> {
        self.new_session_as(body, public_base, caller, None).await
    }

    /// [`Manager::new_session_for`], for the request named `request` (a
    /// node's, claimed from the shared queue; `None`: named here).
    pub async fn new_session_as(
        self: &Arc<Self>,
        body: Bytes,
        public_base: String,
        caller: &Caller,
        request_id: Option<String>,
    ) -> Result<Value, GridError> {
        // Parsed once; the request owns what it needs from here on.
        let body: Value = serde_json::from_slice(&body)
            .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
        let request = parse_new_session(&body)?;
        // Before anything is queued or started: the client never chooses
        // what runs on this host (on a node, the body comes from the store).
        check_request(&request, &self.config.launch_allowances)?;
        let selection = select(&request, &self.catalog)?;
        let options = GridOptions::from_capabilities(&selection.merged)?;
        let requested = for_record(requested_capabilities(body), RECORDED_CAPABILITIES_LIMIT);
        let browser = self.catalog[selection.stereotype]
            .kind
            .driver_browser_name();
        let (mut place, mut cancel) = self.waitlist.place(browser, caller.key.clone());
        let rid = place.id.clone();
        let named = request_id.as_deref().unwrap_or(&rid);
        let timeline = Timeline::starting("requested", Some(json!({ "request": named })));
        let mut waiting = QueuedRequest {
            id: rid.clone(),
            m: self.clone(),
            browser,
            requested,
            options: options.to_json(),
            since: now_ms(),
            queued: false,
            owner: caller.key.clone(),
        };
        // A warm session started with exactly what this request's driver would
        // receive serves it; the request still takes a slot of its own below.
        // From here until it has asked for its slot, no warm session takes one.
        let arrival = self.slots.arrival();
        let warm = self.take_warm(&selection);
        self.make_room();
        let (group, limit) = slot_group(caller);
        let asked_at = std::time::Instant::now();
        let acquire = self
            .slots
            .acquire_as(group, limit, self.config.queue_timeout, |position| {
                // Warm sessions never make a request wait.
                self.warm.give_way();
                waiting.queued = true;
                timeline.step("queued", Some(json!({ "position": position })));
                place.listed();
                info!(position, "new session request queued");
                self.emit(
                    NewEvent::now(events::REQUEST_QUEUED)
                        .owner(caller.key.as_deref())
                        .with("request", &waiting.id)
                        .with("browser", waiting.browser)
                        .with("position", position),
                );
            });
        let permit = tokio::select! {
            p = acquire => p,
            Ok(()) = &mut cancel => {
                waiting.record(EndReason::DeletedByApi);
                return Err(cancelled(&rid));
            }
        };
        drop(place);
        drop(arrival);
        let permit = match permit {
            Ok(p) => {
                waiting.queued = false;
                timeline.step("slot_granted", Some(json!({ "slot": p.index })));
                self.slot_granted(asked_at);
                if warm.is_some() {
                    // The taken warm session's slot is this request's now: start another.
                    self.warm.changed();
                }
                p
            }
            Err(e) => {
                if e == NoSlot::TimedOut {
                    waiting.record(EndReason::QueueTimeout);
                }
                waiting.queued = false;
                return Err(self.no_slot_error(e));
            }
        };
        // Starting runs in its own task so a client that leaves mid-start
        // cannot cancel it half-way; the task tears down what it cannot hand over.
        let requested = std::mem::take(&mut waiting.requested);
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        let asked = super::launch::Asked {
            requested,
            public_base,
            owner: caller.key.clone(),
            request: request_id.unwrap_or(rid),
            timeline,
        };
        self.tasks.spawn(async move {
            me.launch_webdriver(permit, selection, options, asked, tx, warm)
                .await;
        });
        rx.await.unwrap_or_else(|_| Err(interrupted()))
    }

    /// Starts a CDP-only session on a grid without keys: see [`Manager::new_cdp_session_for`].
    pub async fn new_cdp_session(
        self: &Arc<Self>,
        request: CdpRequest,
    ) -> Result<Arc<Session>, GridError> {
        self.new_cdp_session_for(request, &Caller::open()).await
    }

    /// Starts a CDP-only session for `caller`: a bare Chromium for a Puppeteer or Playwright
    /// client, with the same slots, queue, timeouts and records as WebDriver sessions.
    pub async fn new_cdp_session_for(
        self: &Arc<Self>,
        request: CdpRequest,
        caller: &Caller,
    ) -> Result<Arc<Session>, GridError> {
        check_switches("/cdp", &request.args, &self.config.launch_allowances)?;
        let install = self
            .catalog
            .iter()
            .position(|s| s.kind == BrowserKind::Chromium)
            .ok_or_else(|| {
                GridError::not_created(
                    Origin::Client,
                    "CDP sessions need Chromium, and this grid has none (see `gridiron doctor`)",
                )
            })?;
        let arrival = self.slots.arrival();
        self.make_room();
        let (group, limit) = slot_group(caller);
        let asked_at = std::time::Instant::now();
        let (mut place, mut cancel) = self.waitlist.place("chrome", caller.key.clone());
        let rid = place.id.clone();
        let acquire = self
            .slots
            .acquire_as(group, limit, self.config.queue_timeout, |position| {
                self.warm.give_way();
                place.listed();
                info!(position, "new CDP session request queued")
            });
        let permit = tokio::select! {
            p = acquire => p.map_err(|e| self.no_slot_error(e))?,
            Ok(()) = &mut cancel => return Err(cancelled(&rid)),
        };
        drop(place);
        drop(arrival);
        self.slot_granted(asked_at);
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        let owner = caller.key.clone();
        self.tasks.spawn(async move {
            let result = me.launch_cdp(permit, install, request, owner).await;
            if let Err(Ok(session)) = tx.send(result) {
                info!(session = %session.id, "client left before the session was handed over");
                me.end(&session.id, EndReason::ClientGone).await;
            }
        });
        rx.await.unwrap_or_else(|_| Err(interrupted()))
    }

    /// A request asked for a slot at `asked_at` and got it now: its queue
    /// wait, if this grid's queue is the grid's (a node's waits are the
    /// shared queue's, measured when it claims the request).
    fn slot_granted(&self, asked_at: std::time::Instant) {
        if self.metrics.local_queue() {
            self.metrics.queue_waited(asked_at.elapsed());
        }
    }

    /// The error for a request that got no slot.
    pub(super) fn no_slot_error(&self, e: NoSlot) -> GridError {
        let msg = match e {
            NoSlot::Refused(Refusal::QueueFull) => format!(
                "the queue is full ({} requests already waiting for a free slot); try again later",
                self.config.max_queue
            ),
            NoSlot::Refused(Refusal::ShuttingDown) | NoSlot::Closed => {
                "the grid is shutting down".to_string()
            }
            NoSlot::TimedOut => format!(
                "timed out after {:?} waiting in the queue for a free slot ({} slots, all busy)",
                self.config.queue_timeout, self.config.max_sessions
            ),
        };
        GridError::not_created(Origin::Grid, msg)
    }
}

/// The line of the slots queue a caller waits in (its key's; `""` for
/// none), and how many slots its key may hold at once.
fn slot_group(caller: &Caller) -> (&str, Option<usize>) {
    (
        caller.key.as_deref().unwrap_or(""),
        caller.max_sessions.map(|m| m as usize),
    )
}

/// The capabilities of a new-session body, taken out of it (the whole body if
/// it has none), for the session's record.
pub(crate) fn requested_capabilities(body: Value) -> Value {
    match body {
        Value::Object(mut m) => match m.remove("capabilities") {
            Some(c) => c,
            None => Value::Object(m),
        },
        other => other,
    }
}

/// The error of a request an operator cancelled while it waited.
fn cancelled(id: &str) -> GridError {
    GridError::not_created(
        Origin::Grid,
        format!("the request ({id}) was cancelled by an operator while it waited in the queue"),
    )
}

/// The error for a start whose task ended without an answer (it panicked).
fn interrupted() -> GridError {
    GridError::not_created(Origin::Grid, "session start was interrupted")
}

/// A request waiting in the queue. If it never gets a slot (it times out, or
/// its client leaves and the request future is dropped), a record says so.
struct QueuedRequest {
    /// Names the request while it waits (and its record, if it ends there).
    id: String,
    m: Arc<Manager>,
    browser: &'static str,
    requested: Value,
    options: Value,
    since: i64,
    /// Still waiting in line (no slot yet, not refused).
    queued: bool,
    /// The API key that asked.
    owner: Option<String>,
}

impl QueuedRequest {
    /// Writes the record of a request that ended in the queue.
    fn record(&mut self, reason: EndReason) {
        self.queued = false;
        let m = self.m.clone();
        self.m.emit(
            NewEvent::now(events::REQUEST_CANCELLED)
                .owner(self.owner.as_deref())
                .with("request", &self.id)
                .with("reason", reason.as_str()),
        );
        let new = NewSession {
            id: self.id.clone(),
            browser: self.browser.to_string(),
            requested_caps: std::mem::take(&mut self.requested),
            grid_options: std::mem::take(&mut self.options),
            created_at: self.since,
            owner: self.owner.clone(),
        };
        info!(request = %new.id, reason = reason.as_str(), "queued request ended");
        self.m.metrics.session_ended(reason);
        let id = new.id.clone();
        m.records.write(Write::Insert { new, queued: true });
        m.records.write(Write::Ended {
            id,
            reason,
            at: now_ms(),
            commands: 0,
        });
    }
}

impl Drop for QueuedRequest {
    fn drop(&mut self) {
        if self.queued {
            self.record(EndReason::ClientGone);
        }
    }
}
