//! Webhook state of [`MemoryStore`]: subscriptions, deliveries and logs in maps.

use super::MemoryStore;
use crate::events::{Event, EventLog};
use crate::webhooks::newest_id;
use crate::webhooks::{Leased, LogEntry, NewDelivery, Recorded, Webhook, WebhookStore, LOG_KEPT};
use crate::StoreResult;
use async_trait::async_trait;
use gridiron_domain::webhooks::Next;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// One delivery and where it stands.
#[derive(Debug, Clone)]
struct Delivery {
    new: NewDelivery,
    /// Unix ms it is due (pending, or leased until then); `None` once finished.
    due_at: Option<i64>,
    /// When it finished.
    done_at: Option<i64>,
    attempts: u32,
    first_at: Option<i64>,
    token: Option<String>,
}

/// Every piece of webhook state.
#[derive(Default)]
pub(super) struct Hooks {
    /// Subscriptions, with the order they were made in.
    hooks: BTreeMap<String, (u64, Webhook)>,
    made: u64,
    deliveries: HashMap<String, Delivery>,
    logs: HashMap<String, VecDeque<LogEntry>>,
    seq: u64,
    /// The last event fanned out.
    cursor: Option<String>,
}

impl Hooks {
    fn log(&mut self, webhook: &str, entry: &LogEntry) {
        self.seq += 1;
        let log = self.logs.entry(webhook.to_string()).or_default();
        log.push_front(LogEntry {
            seq: self.seq,
            ..entry.clone()
        });
        log.truncate(LOG_KEPT);
    }

    fn drop_pending(&mut self, webhook: &str, at: i64) {
        for d in self.deliveries.values_mut() {
            if d.new.webhook == webhook && d.due_at.is_some() {
                d.due_at = None;
                d.done_at = Some(at);
                d.token = None;
            }
        }
    }
}

impl MemoryStore {
    pub(super) fn hooks(&self) -> std::sync::MutexGuard<'_, Hooks> {
        self.hooks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let mut g = self.hooks();
        if g.hooks.contains_key(&w.id) {
            return Ok(false);
        }
        g.made += 1;
        let made = g.made;
        g.hooks.insert(w.id.clone(), (made, w.clone()));
        Ok(true)
    }

    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let g = self.hooks();
        let mut all: Vec<&(u64, Webhook)> = g.hooks.values().collect();
        all.sort_by_key(|(made, w)| (w.created_at, *made));
        Ok(all.into_iter().map(|(_, w)| w.clone()).collect())
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        Ok(self.hooks().hooks.get(id).map(|(_, w)| w.clone()))
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        let mut g = self.hooks();
        if g.hooks.remove(id).is_none() {
            return Ok(false);
        }
        g.deliveries.retain(|_, d| d.new.webhook != id);
        g.logs.remove(id);
        Ok(true)
    }

    async fn disable_webhook(&self, id: &str, reason: &str, at: i64) -> StoreResult<bool> {
        let mut g = self.hooks();
        match g.hooks.get_mut(id) {
            Some((_, w)) if w.disabled.is_none() => {
                w.disabled = Some(reason.to_string());
                w.disabled_at = Some(at);
            }
            _ => return Ok(false),
        }
        g.drop_pending(id, at);
        g.log(id, &crate::webhooks::disabled_entry(reason, at));
        Ok(true)
    }

    async fn enqueue_deliveries(&self, ds: &[NewDelivery], now: i64) -> StoreResult<usize> {
        let mut g = self.hooks();
        let mut made = 0;
        for d in ds {
            let active = g
                .hooks
                .get(&d.webhook)
                .is_some_and(|(_, w)| w.disabled.is_none());
            if !active || g.deliveries.contains_key(&d.id()) {
                continue;
            }
            g.deliveries.insert(
                d.id(),
                Delivery {
                    new: d.clone(),
                    due_at: Some(now),
                    done_at: None,
                    attempts: 0,
                    first_at: None,
                    token: None,
                },
            );
            made += 1;
        }
        Ok(made)
    }

    async fn take_due(
        &self,
        now: i64,
        limit: usize,
        lease_ms: u64,
        holder: &str,
    ) -> StoreResult<Vec<Leased>> {
        let mut g = self.hooks();
        let mut due: Vec<(i64, String)> = g
            .deliveries
            .iter()
            .filter_map(|(id, d)| d.due_at.filter(|t| *t <= now).map(|t| (t, id.clone())))
            .collect();
        due.sort();
        let mut out = Vec::new();
        for (_, id) in due.into_iter().take(limit) {
            let Some(d) = g.deliveries.get_mut(&id) else {
                continue;
            };
            d.attempts += 1;
            let first_at = *d.first_at.get_or_insert(now);
            let token = format!("{holder}/{}", d.attempts);
            d.token = Some(token.clone());
            d.due_at = Some(now + lease_ms as i64);
            out.push(Leased {
                id,
                webhook: d.new.webhook.clone(),
                event_id: d.new.event_id.clone(),
                event_type: d.new.event_type.clone(),
                body: d.new.body.clone(),
                attempt: d.attempts,
                first_at,
                token,
            });
        }
        Ok(out)
    }

    async fn record_attempt(
        &self,
        l: &Leased,
        next: Next,
        entry: &LogEntry,
    ) -> StoreResult<Recorded> {
        let mut g = self.hooks();
        let held = g
            .deliveries
            .get(&l.id)
            .is_some_and(|d| d.due_at.is_some() && d.token.as_deref() == Some(&l.token));
        if !held || !g.hooks.contains_key(&l.webhook) {
            return Ok(Recorded::LeaseLost);
        }
        if let Some(d) = g.deliveries.get_mut(&l.id) {
            d.token = None;
            match next {
                Next::RetryAt(t) => d.due_at = Some(t),
                Next::Delivered | Next::Failed => {
                    d.due_at = None;
                    d.done_at = Some(entry.at);
                }
            }
        }
        let streak = match g.hooks.get_mut(&l.webhook) {
            Some((_, w)) => {
                let s = w.streak().after(next == Next::Delivered, entry.at);
                w.failures = s.failures;
                w.failing_since = s.since;
                s
            }
            None => return Ok(Recorded::LeaseLost),
        };
        g.log(&l.webhook, entry);
        Ok(Recorded::Done(streak))
    }

    async fn delivery_log(
        &self,
        webhook: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<LogEntry>> {
        let g = self.hooks();
        Ok(g.logs
            .get(webhook)
            .map(|log| {
                log.iter()
                    .filter(|e| before.is_none_or(|b| e.seq < b))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn prune_deliveries(&self, older_than: i64) -> StoreResult<usize> {
        let mut g = self.hooks();
        let before = g.deliveries.len();
        g.deliveries
            .retain(|_, d| d.done_at.is_none_or(|t| t >= older_than));
        Ok(before - g.deliveries.len())
    }

    async fn events_to_fan_out(
        &self,
        _consumer: &str,
        limit: usize,
        _reclaim_after: std::time::Duration,
    ) -> StoreResult<Vec<Event>> {
        let cursor = self.hooks().cursor.clone();
        let cursor = match cursor {
            Some(c) => c,
            None => {
                let last = self.events.last_id().await?.unwrap_or_else(|| "0".into());
                self.hooks().cursor.get_or_insert(last).clone()
            }
        };
        self.events
            .read_after(Some(&cursor), limit, std::time::Duration::ZERO)
            .await
    }

    async fn events_fanned_out(&self, _consumer: &str, ids: &[String]) -> StoreResult<()> {
        if let Some(newest) = newest_id(ids) {
            let mut g = self.hooks();
            let later = g.cursor.as_deref().is_none_or(|c| {
                gridiron_domain::events::id_order(newest, c) == std::cmp::Ordering::Greater
            });
            if later {
                g.cursor = Some(newest.clone());
            }
        }
        Ok(())
    }
}
