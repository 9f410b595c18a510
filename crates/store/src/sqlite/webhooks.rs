//! Webhook state of [`SqliteStore`]: subscriptions, deliveries, delivery logs.

use super::SqliteStore;
use crate::events::{Event, EventLog};
use crate::webhooks::newest_id;
use crate::webhooks::{
    disabled_entry, Leased, LogEntry, NewDelivery, Recorded, Webhook, WebhookStore, LOG_KEPT,
};
use crate::StoreResult;
use async_trait::async_trait;
use gridiron_domain::webhooks::{Next, Streak};
use rusqlite::{params, Connection, OptionalExtension, Row};

/// The webhook tables; created with the rest of the schema.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS webhooks (
    id            TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    events        TEXT NOT NULL,
    secret        TEXT NOT NULL,
    owner         TEXT,
    admin         INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      TEXT,
    disabled_at   INTEGER,
    failures      INTEGER NOT NULL DEFAULT 0,
    failing_since INTEGER
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id         TEXT PRIMARY KEY,
    webhook    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event_type TEXT NOT NULL,
    body       TEXT NOT NULL,
    due_at     INTEGER,
    done_at    INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    first_at   INTEGER,
    token      TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries(due_at);
CREATE INDEX IF NOT EXISTS webhook_deliveries_hook ON webhook_deliveries(webhook);
CREATE TABLE IF NOT EXISTS webhook_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook     TEXT NOT NULL,
    delivery    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event_type  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    result      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_log_hook ON webhook_log(webhook, seq);
CREATE TABLE IF NOT EXISTS webhook_cursor (
    consumer TEXT PRIMARY KEY,
    event_id TEXT NOT NULL
);
";

const HOOK_COLUMNS: &str = "id, url, events, secret, owner, admin, created_at, disabled, disabled_at, failures, failing_since";

fn hook(row: &Row) -> rusqlite::Result<Webhook> {
    let events: String = row.get(2)?;
    let failures: i64 = row.get(9)?;
    Ok(Webhook {
        id: row.get(0)?,
        url: row.get(1)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: row.get(3)?,
        owner: row.get(4)?,
        admin: row.get(5)?,
        created_at: row.get(6)?,
        disabled: row.get(7)?,
        disabled_at: row.get(8)?,
        failures: failures.clamp(0, u32::MAX as i64) as u32,
        failing_since: row.get(10)?,
    })
}

const LOG_COLUMNS: &str =
    "seq, delivery, event_id, event_type, attempt, at, duration_ms, status, error, result";

fn log_entry(row: &Row) -> rusqlite::Result<LogEntry> {
    let seq: i64 = row.get(0)?;
    let attempt: i64 = row.get(4)?;
    let duration: i64 = row.get(6)?;
    let status: Option<i64> = row.get(7)?;
    Ok(LogEntry {
        seq: seq.max(0) as u64,
        delivery: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        attempt: attempt.clamp(0, u32::MAX as i64) as u32,
        at: row.get(5)?,
        duration_ms: duration.max(0) as u64,
        status: status.and_then(|s| u16::try_from(s).ok()),
        error: row.get(8)?,
        result: row.get(9)?,
    })
}

/// Appends `e` to `webhook`'s log and drops what falls beyond [`LOG_KEPT`].
fn append_log(c: &Connection, webhook: &str, e: &LogEntry) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO webhook_log (webhook, delivery, event_id, event_type, attempt, at, duration_ms, status, error, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            webhook,
            e.delivery,
            e.event_id,
            e.event_type,
            e.attempt,
            e.at,
            e.duration_ms as i64,
            e.status,
            e.error,
            e.result
        ],
    )?;
    c.execute(
        "DELETE FROM webhook_log WHERE webhook = ?1 AND seq <= (
             SELECT seq FROM webhook_log WHERE webhook = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
        params![webhook, LOG_KEPT as i64],
    )?;
    Ok(())
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, w: &Webhook) -> StoreResult<bool> {
        let w = w.clone();
        self.run("create_webhook", move |c| {
            c.execute(
                &format!("INSERT OR IGNORE INTO webhooks ({HOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![
                    w.id,
                    w.url,
                    serde_json::to_string(&w.events).unwrap_or_default(),
                    w.secret,
                    w.owner,
                    w.admin,
                    w.created_at,
                    w.disabled,
                    w.disabled_at,
                    w.failures,
                    w.failing_since
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.run("webhooks", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {HOOK_COLUMNS} FROM webhooks ORDER BY created_at, rowid"
            ))?;
            let rows = stmt.query_map([], hook)?;
            rows.collect()
        })
        .await
    }

    async fn webhook(&self, id: &str) -> StoreResult<Option<Webhook>> {
        let id = id.to_string();
        self.run("webhook", move |c| {
            c.query_row(
                &format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = ?1"),
                params![id],
                hook,
            )
            .optional()
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_string();
        self.run("delete_webhook", move |c| {
            let tx = c.transaction()?;
            let n = tx.execute("DELETE FROM webhooks WHERE id = ?1", params![id])?;
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE webhook = ?1",
                params![id],
            )?;
            tx.execute("DELETE FROM webhook_log WHERE webhook = ?1", params![id])?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn disable_webhook(&self, id: &str, reason: &str, at: i64) -> StoreResult<bool> {
        let (id, reason) = (id.to_string(), reason.to_string());
        self.run("disable_webhook", move |c| {
            let tx = c.transaction()?;
            let n = tx.execute(
                "UPDATE webhooks SET disabled = ?2, disabled_at = ?3 WHERE id = ?1 AND disabled IS NULL",
                params![id, reason, at],
            )?;
            if n == 1 {
                tx.execute(
                    "UPDATE webhook_deliveries SET due_at = NULL, done_at = ?2, token = NULL
                     WHERE webhook = ?1 AND due_at IS NOT NULL",
                    params![id, at],
                )?;
                append_log(&tx, &id, &disabled_entry(&reason, at))?;
            }
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    async fn enqueue_deliveries(&self, ds: &[NewDelivery], now: i64) -> StoreResult<usize> {
        let ds = ds.to_vec();
        self.run("enqueue_deliveries", move |c| {
            let tx = c.transaction()?;
            let mut made = 0;
            for d in &ds {
                made += tx.execute(
                    "INSERT OR IGNORE INTO webhook_deliveries (id, webhook, event_id, event_type, body, due_at)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6
                     WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?2 AND disabled IS NULL)",
                    params![d.id(), d.webhook, d.event_id, d.event_type, d.body, now],
                )?;
            }
            tx.commit()?;
            Ok(made)
        })
        .await
    }

    async fn take_due(
        &self,
        now: i64,
        limit: usize,
        lease_ms: u64,
        holder: &str,
    ) -> StoreResult<Vec<Leased>> {
        let holder = holder.to_string();
        self.run("take_due", move |c| {
            let tx = c.transaction()?;
            let due: Vec<String> = {
                let mut stmt = tx.prepare(
                    "SELECT id FROM webhook_deliveries WHERE due_at IS NOT NULL AND due_at <= ?1
                     ORDER BY due_at, id LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![now, limit as i64], |r| r.get(0))?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            let mut out = Vec::with_capacity(due.len());
            for id in due {
                let leased = tx.query_row(
                    "UPDATE webhook_deliveries
                     SET attempts = attempts + 1, first_at = COALESCE(first_at, ?2),
                         due_at = ?3, token = ?4 || '/' || (attempts + 1)
                     WHERE id = ?1
                     RETURNING id, webhook, event_id, event_type, body, attempts, first_at, token",
                    params![id, now, now + lease_ms as i64, holder],
                    |r| {
                        let attempt: i64 = r.get(5)?;
                        Ok(Leased {
                            id: r.get(0)?,
                            webhook: r.get(1)?,
                            event_id: r.get(2)?,
                            event_type: r.get(3)?,
                            body: r.get(4)?,
                            attempt: attempt.clamp(0, u32::MAX as i64) as u32,
                            first_at: r.get(6)?,
                            token: r.get(7)?,
                        })
                    },
                )?;
                out.push(leased);
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    async fn record_attempt(
        &self,
        l: &Leased,
        next: Next,
        entry: &LogEntry,
    ) -> StoreResult<Recorded> {
        let (l, entry) = (l.clone(), entry.clone());
        self.run("record_attempt", move |c| {
            let tx = c.transaction()?;
            let (due_at, done_at) = match next {
                Next::RetryAt(t) => (Some(t), None),
                Next::Delivered | Next::Failed => (None, Some(entry.at)),
            };
            let n = tx.execute(
                "UPDATE webhook_deliveries SET due_at = ?3, done_at = ?4, token = NULL
                 WHERE id = ?1 AND token = ?2 AND due_at IS NOT NULL
                   AND EXISTS (SELECT 1 FROM webhooks WHERE id = webhook_deliveries.webhook)",
                params![l.id, l.token, due_at, done_at],
            )?;
            if n == 0 {
                return Ok(Recorded::LeaseLost);
            }
            let old = tx.query_row(
                "SELECT failures, failing_since FROM webhooks WHERE id = ?1",
                params![l.webhook],
                |r| {
                    let f: i64 = r.get(0)?;
                    Ok(Streak {
                        failures: f.clamp(0, u32::MAX as i64) as u32,
                        since: r.get(1)?,
                    })
                },
            )?;
            let streak = old.after(next == Next::Delivered, entry.at);
            tx.execute(
                "UPDATE webhooks SET failures = ?2, failing_since = ?3 WHERE id = ?1",
                params![l.webhook, streak.failures, streak.since],
            )?;
            append_log(&tx, &l.webhook, &entry)?;
            tx.commit()?;
            Ok(Recorded::Done(streak))
        })
        .await
    }

    async fn delivery_log(
        &self,
        webhook: &str,
        before: Option<u64>,
        limit: usize,
    ) -> StoreResult<Vec<LogEntry>> {
        let webhook = webhook.to_string();
        let before = before.map_or(i64::MAX, |b| b.min(i64::MAX as u64) as i64);
        self.run("delivery_log", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {LOG_COLUMNS} FROM webhook_log WHERE webhook = ?1 AND seq < ?2
                 ORDER BY seq DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(params![webhook, before, limit as i64], log_entry)?;
            rows.collect()
        })
        .await
    }

    async fn prune_deliveries(&self, older_than: i64) -> StoreResult<usize> {
        self.run("prune_deliveries", move |c| {
            c.execute(
                "DELETE FROM webhook_deliveries WHERE done_at IS NOT NULL AND done_at < ?1",
                params![older_than],
            )
        })
        .await
    }

    async fn events_to_fan_out(
        &self,
        _consumer: &str,
        limit: usize,
        _reclaim_after: std::time::Duration,
    ) -> StoreResult<Vec<Event>> {
        // One process owns a SQLite file: one cursor, whatever the consumer's name.
        let read = |c: &mut Connection| {
            c.query_row(
                "SELECT event_id FROM webhook_cursor WHERE consumer = 'fanout'",
                [],
                |r| r.get::<_, String>(0),
            )
            .optional()
        };
        let cursor = match self.run("fan-out cursor", read).await? {
            Some(c) => c,
            None => {
                let last = self.last_id().await?.unwrap_or_else(|| "0".into());
                self.run("fan-out cursor", move |c| {
                    c.execute(
                        "INSERT OR IGNORE INTO webhook_cursor (consumer, event_id) VALUES ('fanout', ?1)",
                        params![last],
                    )?;
                    read(c).map(Option::unwrap_or_default)
                })
                .await?
            }
        };
        self.read_after(Some(&cursor), limit, std::time::Duration::ZERO)
            .await
    }

    async fn events_fanned_out(&self, _consumer: &str, ids: &[String]) -> StoreResult<()> {
        let Some(newest) = newest_id(ids).cloned() else {
            return Ok(());
        };
        self.run("fan-out cursor", move |c| {
            c.execute(
                "UPDATE webhook_cursor SET event_id = ?1
                 WHERE consumer = 'fanout' AND CAST(event_id AS INTEGER) < CAST(?1 AS INTEGER)",
                params![newest],
            )
            .map(drop)
        })
        .await
    }
}
