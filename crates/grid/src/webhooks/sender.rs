//! Sending deliveries: signed POSTs under a lease, outcomes recorded.

use super::{ResultHook, WebhookSettings};
use crate::tasks::Tasks;
use crate::tls::NodeClient;
use axum::body::Body;
use axum::http::{header, Request};
use gridiron_domain::webhooks::{
    after_attempt, sign, Attempt, Next, DELIVERY_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
};
use gridiron_store::webhooks::{Leased, LogEntry, Recorded, Webhook, DONE_KEPT_MS};
use gridiron_store::{now_ms, Store};
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, Semaphore};

/// How long the loop waits after the store failed.
const STORE_PAUSE: Duration = Duration::from_secs(1);
/// Most of a receiver's answer read (so its connection can be reused); the
/// rest is dropped with the connection.
const ANSWER_READ: usize = 64 * 1024;
/// Longest error text kept in the log.
const ERROR_CHARS: usize = 300;

/// The sending side of a dispatcher.
pub(super) struct Sender {
    pub(super) store: Arc<dyn Store>,
    pub(super) client: NodeClient,
    pub(super) settings: WebhookSettings,
    /// This process, as leases name it.
    pub(super) holder: String,
    pub(super) on_result: Option<ResultHook>,
    /// Where attempts run: shutdown waits a little for those in flight.
    pub(super) tasks: Tasks,
}

/// A uniform draw in `[0, 1)` for the backoff's jitter.
fn jitter() -> f64 {
    let bits = getrandom::u64().unwrap_or(u64::MAX / 2) >> 11;
    bits as f64 / (1u64 << 53) as f64
}

fn short(mut s: String) -> String {
    gridiron_domain::text::cut(&mut s, ERROR_CHARS);
    s
}

impl Sender {
    /// Takes and sends due deliveries until the task is stopped; `wake`
    /// says new ones were made.
    pub(super) async fn run(self, wake: Arc<Notify>) {
        let this = Arc::new(self);
        let concurrency = this.settings.concurrency.max(1);
        let permits = Arc::new(Semaphore::new(concurrency));
        // Told each time an attempt ends and its permit is back.
        let freed = Arc::new(Notify::new());
        let lease_ms = this.settings.lease().as_millis() as u64;
        let mut pruned = Instant::now();
        loop {
            // Take only what can be sent now, so no lease runs out waiting,
            // and in batches: under load, wait for half the senders to be free.
            let want = (concurrency / 2).max(1);
            while permits.available_permits() < want {
                freed.notified().await;
            }
            let free = permits.available_permits();
            let due = match this
                .store
                .take_due(
                    now_ms(),
                    free.min(this.settings.batch),
                    lease_ms,
                    &this.holder,
                )
                .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "taking webhook deliveries failed; trying again");
                    tokio::time::sleep(STORE_PAUSE).await;
                    continue;
                }
            };
            if due.is_empty() {
                if pruned.elapsed() >= crate::timing::PRUNE_EVERY {
                    pruned = Instant::now();
                    if let Err(e) = this.store.prune_deliveries(now_ms() - DONE_KEPT_MS).await {
                        tracing::warn!(error = %e, "pruning webhook deliveries failed");
                    }
                }
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(this.settings.poll) => {}
                }
                continue;
            }
            // One read of the subscriptions for the whole batch.
            let hooks: HashMap<String, Arc<Webhook>> = match this.store.webhooks().await {
                Ok(all) => all
                    .into_iter()
                    .map(|w| (w.id.clone(), Arc::new(w)))
                    .collect(),
                Err(e) => {
                    // The leases run out and the deliveries are taken again.
                    tracing::warn!(error = %e, "reading webhooks failed; trying again");
                    tokio::time::sleep(STORE_PAUSE).await;
                    continue;
                }
            };
            for d in due {
                // Deleted meanwhile: its deliveries went with it.
                let Some(hook) = hooks.get(&d.webhook).cloned() else {
                    continue;
                };
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let me = this.clone();
                let freed = freed.clone();
                this.tasks.spawn(async move {
                    me.deliver(&hook, d).await;
                    drop(permit);
                    freed.notify_one();
                });
            }
        }
    }

    /// Makes one attempt of `d` to `hook` and records it.
    async fn deliver(&self, hook: &Webhook, d: Leased) {
        let policy = &self.settings.policy;
        let started = Instant::now();
        let (result, next) = if hook.disabled.is_some() {
            let r = Attempt::Error("the subscription is disabled".into());
            (r, Next::Failed)
        } else {
            let r = self.post(hook, &d).await;
            let next = after_attempt(policy, &r, d.attempt, d.first_at, now_ms(), jitter());
            (r, next)
        };
        let at = now_ms();
        let (status, error) = match &result {
            Attempt::Status(s) => (Some(*s), None),
            Attempt::Error(e) => (None, Some(e.clone())),
        };
        let entry = LogEntry {
            seq: 0,
            delivery: d.id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            attempt: d.attempt,
            at,
            duration_ms: started.elapsed().as_millis() as u64,
            status,
            error,
            result: next.as_str().to_string(),
        };
        match self.store.record_attempt(&d, next, &entry).await {
            Ok(Recorded::Done(streak)) => {
                self.tell(next.as_str());
                tracing::debug!(delivery = %d.id, attempt = d.attempt, result = next.as_str(), "webhook attempt");
                if next != Next::Delivered && streak.should_disable(policy, at) {
                    self.disable(hook, &streak.disable_reason(), at).await;
                }
            }
            Ok(Recorded::LeaseLost) => {
                tracing::debug!(delivery = %d.id, "webhook lease lost before the attempt was recorded");
            }
            Err(e) => {
                tracing::warn!(error = %e, delivery = %d.id, "recording a webhook attempt failed");
            }
        }
    }

    async fn disable(&self, hook: &Webhook, reason: &str, at: i64) {
        match self.store.disable_webhook(&hook.id, reason, at).await {
            Ok(true) => {
                tracing::warn!(webhook = %hook.id, reason, "webhook disabled");
                self.tell("disabled");
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, webhook = %hook.id, "disabling a webhook failed"),
        }
    }

    fn tell(&self, result: &str) {
        if let Some(hook) = &self.on_result {
            hook(result);
        }
    }

    /// POSTs `d` to `hook`'s URL, signed; only the signature depends on the secret.
    async fn post(&self, hook: &Webhook, d: &Leased) -> Attempt {
        let t = now_ms().div_euclid(1000);
        let req = Request::post(&hook.url)
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("Gridiron-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header(SIGNATURE_HEADER, sign(&hook.secret, t, d.body.as_bytes()))
            .header(EVENT_ID_HEADER, &d.event_id)
            .header(EVENT_TYPE_HEADER, &d.event_type)
            .header(DELIVERY_HEADER, &d.id)
            .body(Body::from(d.body.clone()));
        let req = match req {
            Ok(r) => r,
            Err(e) => return Attempt::Error(short(format!("bad request: {e}"))),
        };
        let exchange = async {
            let resp = self.client.request(req).await?;
            let status = resp.status().as_u16();
            // The answer is not used; reading a little lets the connection be reused.
            let _ = http_body_util::Limited::new(resp.into_body(), ANSWER_READ)
                .collect()
                .await;
            Ok::<u16, hyper_util::client::legacy::Error>(status)
        };
        match tokio::time::timeout(self.settings.attempt_timeout, exchange).await {
            Ok(Ok(status)) => Attempt::Status(status),
            Ok(Err(e)) => Attempt::Error(short(describe(&e))),
            Err(_) => Attempt::Error(format!(
                "no answer within {} s",
                self.settings.attempt_timeout.as_secs_f64()
            )),
        }
    }
}

/// A client error with its causes ("connection refused" is in the source).
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
