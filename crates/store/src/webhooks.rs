//! Webhook subscriptions, their pending deliveries and their delivery logs.
//!
//! A delivery is one event for one subscription, made once however often the
//! event is fanned out (its id is [`delivery_id`]). Senders take due
//! deliveries under a lease ([`WebhookStore::take_due`]): while the lease
//! runs nobody else takes the delivery; a sender that dies loses it when it
//! runs out, and the delivery is due again. The rules (backoff, giving up,
//! disabling) are [`gridiron_domain::webhooks`]'; the store keeps the state.

use crate::events::Event;
use crate::StoreResult;
use async_trait::async_trait;
use gridiron_domain::webhooks::{Next, Streak};
use serde::{Deserialize, Serialize};

/// How many entries each subscription's delivery log keeps (oldest go first).
pub const LOG_KEPT: usize = 500;

/// How long a finished delivery is remembered (so that an event fanned out
/// twice is not delivered twice), in ms.
pub const DONE_KEPT_MS: i64 = 24 * 3_600_000;

/// A webhook subscription. Its `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id (`wh_` and random hex).
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Event types wanted (known types, `prefix.*`, or `*`).
    pub events: Vec<String>,
    /// The signing secret; never shown after creation.
    pub secret: String,
    /// The API key that made it (`None` on a grid without keys).
    pub owner: Option<String>,
    /// Whether its maker was an admin (gets every event) or a user key
    /// (gets its own sessions' events only).
    pub admin: bool,
    /// Unix ms when it was made.
    pub created_at: i64,
    /// Why it was disabled, if it was.
    pub disabled: Option<String>,
    /// Unix ms when it was disabled.
    pub disabled_at: Option<i64>,
    /// Its current run of failed attempts.
    pub failures: u32,
    /// Unix ms of the first failure of that run.
    pub failing_since: Option<i64>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &"***")
            .field("owner", &self.owner)
            .field("admin", &self.admin)
            .field("created_at", &self.created_at)
            .field("disabled", &self.disabled)
            .field("disabled_at", &self.disabled_at)
            .field("failures", &self.failures)
            .field("failing_since", &self.failing_since)
            .finish()
    }
}

impl Webhook {
    /// Its run of failed attempts.
    pub fn streak(&self) -> Streak {
        Streak {
            failures: self.failures,
            since: self.failing_since,
        }
    }
}

/// The id of the delivery of event `event_id` to subscription `webhook`.
pub fn delivery_id(webhook: &str, event_id: &str) -> String {
    format!("{webhook}.{event_id}")
}

/// A delivery to make: one event for one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The subscription.
    pub webhook: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The JSON body to POST.
    pub body: String,
}

impl NewDelivery {
    /// Its id.
    pub fn id(&self) -> String {
        delivery_id(&self.webhook, &self.event_id)
    }
}

/// A delivery a sender holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    /// The delivery's id.
    pub id: String,
    /// The subscription.
    pub webhook: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The JSON body to POST.
    pub body: String,
    /// This attempt's number (1 for the first; a lease lost with its sender counts).
    pub attempt: u32,
    /// Unix ms of the first attempt.
    pub first_at: i64,
    /// Proves the lease is still this sender's when it records the outcome.
    pub token: String,
}

/// One line of a subscription's delivery log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Its place in the log (greater is newer); set by the store.
    pub seq: u64,
    /// The delivery's id.
    pub delivery: String,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The attempt's number (0 for a line that is not an attempt: `disabled`).
    pub attempt: u32,
    /// Unix ms when the attempt ended.
    pub at: i64,
    /// How long it took, in ms.
    pub duration_ms: u64,
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// Why there was no answer, or why the subscription was disabled.
    pub error: Option<String>,
    /// `delivered`, `retrying`, `failed` (given up) or `disabled`.
    pub result: String,
}

/// What recording an attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Recorded; the subscription's run of failures is now this.
    Done(Streak),
    /// The lease had run out and someone else took the delivery, or the
    /// subscription is gone: nothing was recorded.
    LeaseLost,
}

/// Webhook state. Every method is one atomic step as far as other
/// processes sharing the store can tell.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Adds a subscription; `false` if one with its id exists.
    async fn create_webhook(&self, w: &Webhook) -> StoreResult<bool>;
    /// Every subscription, oldest first.
    async fn webhooks(&self) -> StoreResult<Vec<Webhook>>;
    /// One subscription.
    async fn webhook(&self, id: &str) -> StoreResult<Option<Webhook>>;
    /// Deletes a subscription with its pending deliveries and its log;
    /// `false` if there was none.
    async fn delete_webhook(&self, id: &str) -> StoreResult<bool>;
    /// Disables a subscription for `reason` at `at`: its pending deliveries
    /// are dropped and the log says why. `false` if it was unknown or
    /// disabled already.
    async fn disable_webhook(&self, id: &str, reason: &str, at: i64) -> StoreResult<bool>;

    /// Makes the deliveries not made before (by id), due at `now`, for
    /// subscriptions that exist and are active; returns how many were new.
    async fn enqueue_deliveries(&self, ds: &[NewDelivery], now: i64) -> StoreResult<usize>;
    /// Takes up to `limit` deliveries due at `now`, each under a lease of
    /// `lease_ms` held by `holder`: no one else gets them until the lease
    /// runs out (then they are due again).
    async fn take_due(
        &self,
        now: i64,
        limit: usize,
        lease_ms: u64,
        holder: &str,
    ) -> StoreResult<Vec<Leased>>;
    /// Records the attempt made under `d`'s lease: the delivery becomes
    /// delivered, failed or due again at `next`'s time, `entry` (seq
    /// ignored) joins the log, and the subscription's run of failures grows
    /// or ends.
    async fn record_attempt(
        &self,
        d: &Leased,
        next: Next,
        entry: &LogEntry,
    ) -> StoreResult<Recorded>;
    /// A subscription's log, newest first: at most `limit` entries with
    /// `seq` below `before` (all if `None`).
    async fn delivery_log(
        &self,
        webhook: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<LogEntry>>;
    /// Forgets finished deliveries that ended before `older_than` (unix ms)
    /// (in a cluster, where they expire by themselves: the fan-out group's
    /// consumers idle since then and holding nothing); returns how many.
    async fn prune_deliveries(&self, older_than: i64) -> StoreResult<usize>;

    /// Up to `limit` events of the grid's log that no process has fanned out
    /// yet, oldest first, for `consumer` (this process). A standalone store
    /// reads after its durable cursor; a cluster hands each event to one
    /// consumer of a group, and events a dead consumer held to another.
    /// The first call starts from the newest event: older ones predate
    /// every subscription. In a cluster, events another consumer read more
    /// than `reclaim_after` ago without confirming them come first.
    async fn events_to_fan_out(
        &self,
        consumer: &str,
        limit: usize,
        reclaim_after: std::time::Duration,
    ) -> StoreResult<Vec<Event>>;
    /// Marks events returned by [`WebhookStore::events_to_fan_out`] as fanned
    /// out (their deliveries are made), so they are not handed out again.
    async fn events_fanned_out(&self, consumer: &str, ids: &[String]) -> StoreResult<()>;
}

/// The id of the newest event among `ids` (in the order of event ids).
pub fn newest_id(ids: &[String]) -> Option<&String> {
    ids.iter()
        .max_by(|a, b| gridiron_domain::events::id_order(a, b))
}

/// The log line saying a subscription was disabled, and why.
pub fn disabled_entry(reason: &str, at: i64) -> LogEntry {
    LogEntry {
        seq: 0,
        delivery: String::new(),
        event_id: String::new(),
        event_type: String::new(),
        attempt: 0,
        at,
        duration_ms: 0,
        status: None,
        error: Some(reason.to_string()),
        result: "disabled".into(),
    }
}
