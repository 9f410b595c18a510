//! From events to deliveries: one per event and matching subscription.

use super::WebhookSettings;
use gridiron_domain::webhooks::{payload, wants};
use gridiron_store::webhooks::{NewDelivery, Webhook};
use gridiron_store::{Event, Store, StoreResult};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How long the loop waits after the store failed.
const STORE_PAUSE: Duration = Duration::from_secs(1);

/// Fans events out until the task is stopped; `wake` tells the sender of new deliveries.
pub(super) async fn run(
    store: Arc<dyn Store>,
    settings: WebhookSettings,
    consumer: String,
    wake: Arc<Notify>,
) {
    loop {
        match round(store.as_ref(), &settings, &consumer).await {
            Ok(0) => tokio::time::sleep(settings.poll).await,
            Ok(_) => wake.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, "webhook fan-out failed; trying again");
                tokio::time::sleep(STORE_PAUSE).await;
            }
        }
    }
}

/// Fans out one batch of events; returns how many events there were (0: none waiting).
async fn round(
    store: &dyn Store,
    settings: &WebhookSettings,
    consumer: &str,
) -> StoreResult<usize> {
    let events = store
        .events_to_fan_out(consumer, settings.batch, settings.reclaim_after)
        .await?;
    if events.is_empty() {
        return Ok(0);
    }
    let hooks = store.webhooks().await?;
    let deliveries = deliveries_for(&hooks, &events);
    if !deliveries.is_empty() {
        store
            .enqueue_deliveries(&deliveries, gridiron_store::now_ms())
            .await?;
    }
    // Only now: a process that dies before this leaves the events to be
    // fanned out again, and making deliveries is idempotent.
    let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
    store.events_fanned_out(consumer, &ids).await?;
    Ok(events.len())
}

/// The deliveries `events` make for `hooks`: to each active subscription
/// that wants the event, may see it, and existed when it happened.
pub(super) fn deliveries_for(hooks: &[Webhook], events: &[Event]) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for e in events {
        let subject = e.subject();
        let mut body = None;
        for h in hooks {
            let wanted = h.disabled.is_none()
                && e.at >= h.created_at
                && wants(&h.events, h.admin, h.owner.as_deref(), &subject);
            if !wanted {
                continue;
            }
            let body = body
                .get_or_insert_with(|| {
                    payload(
                        &e.id,
                        &e.kind,
                        e.at,
                        e.session.as_deref(),
                        e.node.as_deref(),
                        &e.fields,
                    )
                })
                .clone();
            out.push(NewDelivery {
                webhook: h.id.clone(),
                event_id: e.id.clone(),
                event_type: e.kind.clone(),
                body,
            });
        }
    }
    out
}
