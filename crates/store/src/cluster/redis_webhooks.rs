//! Webhook state in Redis, shared by every hub: subscriptions, deliveries
//! and their leases, delivery logs. Steps that must not interleave run as
//! the `webhook_*.lua` scripts; key names come from [`Keys`].

use super::keys::Keys;
use crate::events::Event;
use crate::redis_store::err;
use crate::webhooks::{
    disabled_entry, Leased, LogEntry, NewDelivery, Recorded, Webhook, WebhookStore, DONE_KEPT_MS,
    LOG_KEPT,
};
use crate::{ErrorKind, RedisStore, StoreError, StoreResult};
use async_trait::async_trait;
use gridiron_domain::webhooks::{Next, Streak};
use redis::{AsyncCommands, Script};
use std::collections::HashMap;
use std::sync::LazyLock;

macro_rules! script {
    ($name:ident, $file:literal) => {
        static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!(concat!("../lua/", $file))));
    };
}

script!(CREATE, "webhook_create.lua");
script!(ENQUEUE, "webhook_enqueue.lua");
script!(LEASE, "webhook_lease.lua");
script!(RECORD, "webhook_record.lua");
script!(DROP, "webhook_drop.lua");

/// The consumer group that fans the event stream out to webhooks.
const GROUP: &str = "webhooks";

/// A stream entry as `XREADGROUP` and `XAUTOCLAIM` return it.
type Entry = (String, Vec<String>);

/// Whether `e` says the consumer group does not exist (new stream, or Redis lost its data).
fn no_group(e: &redis::RedisError) -> bool {
    e.code() == Some("NOGROUP")
}

fn events_of(entries: Vec<Entry>) -> Vec<Event> {
    entries
        .into_iter()
        .filter_map(|(id, flat)| crate::redis_events::parse(id, flat))
        .collect()
}

/// The subscription a delivery belongs to: its id is `WEBHOOK.EVENT`, and
/// subscription ids hold no dots.
fn webhook_of(delivery: &str) -> &str {
    delivery.split_once('.').map_or(delivery, |(w, _)| w)
}

fn malformed(op: &'static str, what: &str) -> StoreError {
    StoreError::new(op, ErrorKind::Malformed, what.to_string())
}

/// A subscription from its hash; `None` if the hash is empty or its definition unreadable.
fn from_hash(id: &str, h: &HashMap<String, String>) -> Option<Webhook> {
    let mut w: Webhook = serde_json::from_str(h.get("def")?).ok()?;
    let num = |k: &str| h.get(k).and_then(|v| v.parse::<i64>().ok());
    w.id = id.to_string();
    w.disabled = h.get("disabled").cloned();
    w.disabled_at = num("disabled_at");
    w.failures = num("failures").unwrap_or(0).clamp(0, u32::MAX as i64) as u32;
    w.failing_since = num("failing_since");
    Some(w)
}

/// A log line from its `seq:json` form.
fn log_line(raw: &str) -> Option<LogEntry> {
    let (seq, json) = raw.split_once(':')?;
    let mut e: LogEntry = serde_json::from_str(json).ok()?;
    e.seq = seq.parse().ok()?;
    Some(e)
}

impl RedisStore {
    fn hook_keys(&self) -> Keys {
        Keys::new(&self.ns)
    }

    /// Creates the fan-out group, starting after the newest event.
    async fn create_group(&self) -> StoreResult<()> {
        let made: redis::RedisResult<()> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.hook_keys().events())
            .arg(GROUP)
            .arg("$")
            .arg("MKSTREAM")
            .query_async(&mut self.conn.clone())
            .await;
        match made {
            Err(e) if e.code() != Some("BUSYGROUP") => Err(err("fan-out group")(e)),
            _ => Ok(()),
        }
    }

    /// Disables or deletes a subscription with its pending deliveries.
    async fn drop_webhook(
        &self,
        op: &'static str,
        mode: &str,
        id: &str,
        reason: &str,
        at: i64,
    ) -> StoreResult<bool> {
        let k = self.hook_keys();
        let mut conn = self.conn.clone();
        let pending: Vec<String> = conn
            .smembers(k.webhook_pending(id))
            .await
            .map_err(err(op))?;
        let entry = serde_json::to_string(&disabled_entry(reason, at)).unwrap_or_default();
        let mut inv = DROP.prepare_invoke();
        inv.key(k.webhook(id))
            .key(k.webhook_pending(id))
            .key(k.webhooks_due())
            .key(k.webhook_log(id))
            .key(k.webhook_log_seq(id))
            .key(k.webhooks());
        for d in &pending {
            inv.key(k.webhook_delivery(d));
        }
        inv.arg(mode)
            .arg(id)
            .arg(reason)
            .arg(at)
            .arg(entry)
            .arg(LOG_KEPT)
            .arg(DONE_KEPT_MS);
        for d in &pending {
            inv.arg(d);
        }
        let n: i64 = inv.invoke_async(&mut conn).await.map_err(err(op))?;
        Ok(n == 1)
    }
}

#[async_trait]
impl WebhookStore for RedisStore {
    async fn create_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let k = self.hook_keys();
        let def =
            serde_json::to_string(w).map_err(|e| malformed("create_webhook", &e.to_string()))?;
        let n: i64 = CREATE
            .key(k.webhook(&w.id))
            .key(k.webhooks())
            .arg(def)
            .arg(&w.id)
            .arg(w.created_at)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err("create_webhook"))?;
        Ok(n == 1)
    }

    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        let k = self.hook_keys();
        let mut conn = self.conn.clone();
        let ids: Vec<String> = conn
            .zrange(k.webhooks(), 0, -1)
            .await
            .map_err(err("webhooks"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hgetall(k.webhook(id));
        }
        let hashes: Vec<HashMap<String, String>> =
            pipe.query_async(&mut conn).await.map_err(err("webhooks"))?;
        Ok(ids
            .iter()
            .zip(hashes)
            .filter_map(|(id, h)| {
                let w = from_hash(id, &h);
                if w.is_none() && !h.is_empty() {
                    tracing::warn!(webhook = %id, "skipping a malformed webhook record");
                }
                w
            })
            .collect())
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        let h: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(self.hook_keys().webhook(id))
            .await
            .map_err(err("webhook"))?;
        Ok(from_hash(id, &h))
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        self.drop_webhook("delete_webhook", "delete", id, "", 0)
            .await
    }

    async fn disable_webhook(&self, id: &str, reason: &str, at: i64) -> StoreResult<bool> {
        self.drop_webhook("disable_webhook", "disable", id, reason, at)
            .await
    }

    async fn enqueue_deliveries(&self, ds: &[NewDelivery], now: i64) -> StoreResult<usize> {
        let k = self.hook_keys();
        let mut conn = self.conn.clone();
        let mut made = 0;
        for d in ds {
            let id = d.id();
            let n: i64 = ENQUEUE
                .key(k.webhook(&d.webhook))
                .key(k.webhook_delivery(&id))
                .key(k.webhooks_due())
                .key(k.webhook_pending(&d.webhook))
                .arg(&id)
                .arg(&d.webhook)
                .arg(&d.event_id)
                .arg(&d.event_type)
                .arg(&d.body)
                .arg(now)
                .invoke_async(&mut conn)
                .await
                .map_err(err("enqueue_deliveries"))?;
            made += n as usize;
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
        let k = self.hook_keys();
        let mut conn = self.conn.clone();
        let due: Vec<String> = conn
            .zrangebyscore_limit(k.webhooks_due(), "-inf", now, 0, limit as isize)
            .await
            .map_err(err("take_due"))?;
        let mut out = Vec::with_capacity(due.len());
        for id in due {
            let hook = webhook_of(&id);
            type Row = Option<(String, String, String, String, String, String, String)>;
            let row: Row = LEASE
                .key(k.webhooks_due())
                .key(k.webhook_delivery(&id))
                .key(k.webhook(hook))
                .key(k.webhook_pending(hook))
                .arg(&id)
                .arg(now)
                .arg(lease_ms)
                .arg(holder)
                .arg(DONE_KEPT_MS)
                .invoke_async(&mut conn)
                .await
                .map_err(err("take_due"))?;
            // Taken by another sender meanwhile, or dropped.
            let Some((webhook, event_id, event_type, body, attempts, first_at, token)) = row else {
                continue;
            };
            out.push(Leased {
                id,
                webhook,
                event_id,
                event_type,
                body,
                attempt: attempts
                    .parse()
                    .map_err(|_| malformed("take_due", "attempts"))?,
                first_at: first_at
                    .parse()
                    .map_err(|_| malformed("take_due", "first_at"))?,
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
        let k = self.hook_keys();
        let (mode, retry_at) = match next {
            Next::RetryAt(t) => ("retry", t),
            Next::Delivered | Next::Failed => ("done", 0),
        };
        let line = serde_json::to_string(entry).unwrap_or_default();
        let reply: Vec<redis::Value> = RECORD
            .key(k.webhook_delivery(&l.id))
            .key(k.webhooks_due())
            .key(k.webhook_pending(&l.webhook))
            .key(k.webhook(&l.webhook))
            .key(k.webhook_log(&l.webhook))
            .key(k.webhook_log_seq(&l.webhook))
            .arg(&l.id)
            .arg(&l.token)
            .arg(mode)
            .arg(retry_at)
            .arg(if next == Next::Delivered { "1" } else { "0" })
            .arg(entry.at)
            .arg(line)
            .arg(LOG_KEPT)
            .arg(DONE_KEPT_MS)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err("record_attempt"))?;
        let num = |v: Option<&redis::Value>| -> Option<i64> {
            match v? {
                redis::Value::Int(n) => Some(*n),
                redis::Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
                _ => None,
            }
        };
        if num(reply.first()) != Some(1) {
            return Ok(Recorded::LeaseLost);
        }
        Ok(Recorded::Done(Streak {
            failures: num(reply.get(1)).unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
            since: num(reply.get(2)),
        }))
    }

    async fn delivery_log(
        &self,
        webhook: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<LogEntry>> {
        // The log is bounded, so reading it whole is cheap.
        let raw: Vec<String> = self
            .conn
            .clone()
            .lrange(self.hook_keys().webhook_log(webhook), 0, -1)
            .await
            .map_err(err("delivery_log"))?;
        Ok(raw
            .iter()
            .filter_map(|r| log_line(r))
            .filter(|e| before.is_none_or(|b| e.seq < b))
            .take(limit)
            .collect())
    }

    async fn prune_deliveries(&self, older_than: i64) -> StoreResult<usize> {
        // Finished deliveries expire by themselves (DONE_KEPT_MS). What is
        // pruned here are the fan-out group's consumers that hubs left
        // behind: idle since before `older_than` and holding no event.
        let idle_at_least = crate::now_ms().saturating_sub(older_than);
        let key = self.hook_keys().events();
        let mut conn = self.conn.clone();
        let listed: redis::RedisResult<Vec<HashMap<String, redis::Value>>> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(&key)
            .arg(GROUP)
            .query_async(&mut conn)
            .await;
        let consumers = match listed {
            Ok(c) => c,
            // No stream or no group yet: nobody to prune.
            Err(e) if no_group(&e) || e.code() == Some("ERR") => return Ok(0),
            Err(e) => return Err(err("prune consumers")(e)),
        };
        let num = |c: &HashMap<String, redis::Value>, k: &str| match c.get(k) {
            Some(redis::Value::Int(n)) => Some(*n),
            _ => None,
        };
        let mut pruned = 0;
        for c in &consumers {
            let name = match c.get("name") {
                Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                Some(redis::Value::SimpleString(s)) => s.clone(),
                _ => continue,
            };
            let (Some(0), Some(idle)) = (num(c, "pending"), num(c, "idle")) else {
                continue;
            };
            if idle >= idle_at_least {
                let _: i64 = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(&key)
                    .arg(GROUP)
                    .arg(&name)
                    .query_async(&mut conn)
                    .await
                    .map_err(err("prune consumers"))?;
                pruned += 1;
            }
        }
        Ok(pruned)
    }

    async fn events_to_fan_out(
        &self,
        consumer: &str,
        limit: usize,
        reclaim_after: std::time::Duration,
    ) -> StoreResult<Vec<Event>> {
        let key = self.hook_keys().events();
        let mut conn = self.conn.clone();
        // Events a consumer read long ago and never confirmed: it died.
        let claimed: redis::RedisResult<(String, Vec<Entry>, redis::Value)> =
            redis::cmd("XAUTOCLAIM")
                .arg(&key)
                .arg(GROUP)
                .arg(consumer)
                .arg(reclaim_after.as_millis() as u64)
                .arg("0-0")
                .arg("COUNT")
                .arg(limit.max(1))
                .query_async(&mut conn)
                .await;
        match claimed {
            Err(e) if no_group(&e) => {
                self.create_group().await?;
                return Ok(Vec::new());
            }
            Err(e) => return Err(err("fan-out claim")(e)),
            Ok((_, entries, _)) if !entries.is_empty() => return Ok(events_of(entries)),
            Ok(_) => {}
        }
        type Reply = Option<Vec<(String, Vec<Entry>)>>;
        let read: redis::RedisResult<Reply> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(limit.max(1))
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query_async(&mut conn)
            .await;
        match read {
            Err(e) if no_group(&e) => {
                self.create_group().await?;
                Ok(Vec::new())
            }
            Err(e) => Err(err("fan-out read")(e)),
            Ok(reply) => Ok(events_of(
                reply
                    .into_iter()
                    .flatten()
                    .flat_map(|(_, entries)| entries)
                    .collect(),
            )),
        }
    }

    async fn events_fanned_out(&self, _consumer: &str, ids: &[String]) -> StoreResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let _: i64 = redis::cmd("XACK")
            .arg(self.hook_keys().events())
            .arg(GROUP)
            .arg(ids)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err("fan-out ack"))?;
        Ok(())
    }
}
