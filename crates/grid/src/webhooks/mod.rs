//! Webhook deliveries: each process that serves the API (a standalone grid,
//! every hub) runs a dispatcher of two loops.
//!
//! - [`fanout`] reads the event log and makes one delivery per matching
//!   subscription (a standalone grid from a durable cursor, a cluster from a
//!   Redis consumer group, so each event is fanned out by one hub).
//! - [`sender`] takes due deliveries under a lease, POSTs them signed, and
//!   records the outcome: delivered, retried later with backoff and jitter,
//!   given up, or the subscription disabled.
//!
//! Delivery is at least once: a sender that dies mid-attempt loses its lease
//! and the attempt is made again; receivers de-duplicate by event id.

mod fanout;
mod sender;
#[cfg(test)]
mod tests;

use crate::tasks::Tasks;
use gridiron_domain::webhooks::RetryPolicy;
use gridiron_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// Told the result of every delivery attempt (`delivered`, `retrying`,
/// `failed`, `disabled`), for metrics.
pub type ResultHook = Arc<dyn Fn(&str) + Send + Sync>;

/// How the dispatcher works.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Backoff, retry window and disable threshold.
    pub policy: RetryPolicy,
    /// How long one attempt may take before it counts as failed.
    pub attempt_timeout: Duration,
    /// How often the loops look for work when there was none.
    pub poll: Duration,
    /// Events or deliveries handled per round.
    pub batch: usize,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// In a cluster, how long an event read by a hub may stay unconfirmed
    /// before another hub fans it out instead (the first one died); a
    /// fan-out round takes far less.
    pub reclaim_after: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            policy: RetryPolicy::default(),
            attempt_timeout: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            batch: 100,
            concurrency: 32,
            reclaim_after: Duration::from_secs(30),
        }
    }
}

impl WebhookSettings {
    /// The settings with retries from `base_ms` (the schedule scaled to it,
    /// see [`RetryPolicy::with_base`]) and disabling after `disable_after`
    /// failures in a row.
    pub fn new(base_ms: u64, disable_after: u32) -> Self {
        let mut policy = RetryPolicy::with_base(base_ms);
        policy.disable_after = disable_after.max(1);
        let d = WebhookSettings::default();
        WebhookSettings {
            policy,
            // Short schedules (tests) look for due work as often as it falls due.
            poll: d.poll.min(Duration::from_millis(base_ms.max(10))),
            ..d
        }
    }

    /// How long a sender holds a delivery: its attempt's time and a margin.
    /// A sender that dies loses it after this and another one retries.
    fn lease(&self) -> Duration {
        self.attempt_timeout + Duration::from_secs(5)
    }
}

/// Starts the dispatcher of `role` (a standalone grid or a hub) among its
/// tasks, on its store, counting results in its metrics; `consumer` names
/// the process (a hub's id) in leases and the consumer group.
pub fn start_for(
    role: &dyn crate::Backend,
    settings: WebhookSettings,
    consumer: String,
) -> Result<(), String> {
    let metrics = role.metrics().clone();
    let on_result: ResultHook = Arc::new(move |result: &str| metrics.webhook_delivery(result));
    start(
        role.store(),
        role.tasks(),
        settings,
        consumer,
        Some(on_result),
    )
}

/// Starts the dispatcher of this process among `tasks`: `consumer` names the
/// process (a hub's id) in leases and the consumer group. The loops stop
/// when the tasks do.
pub fn start(
    store: Arc<dyn Store>,
    tasks: &Tasks,
    settings: WebhookSettings,
    consumer: String,
    on_result: Option<ResultHook>,
) -> Result<(), String> {
    let tls = crate::tls::client_config(None)?;
    let client = crate::tls::node_client(tls);
    let wake = Arc::new(tokio::sync::Notify::new());
    tasks.spawn_until_stopped(fanout::run(
        store.clone(),
        settings.clone(),
        consumer.clone(),
        wake.clone(),
    ));
    let sender = sender::Sender {
        store,
        client,
        settings,
        holder: consumer,
        on_result,
        tasks: tasks.clone(),
    };
    tasks.spawn_until_stopped(sender.run(wake));
    Ok(())
}
