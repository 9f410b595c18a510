//! The event log of a standalone grid: a table in its SQLite file, trimmed
//! to the newest [`EVENTS_KEPT`] events.

use crate::events::{wait_for_more, Event, EventLog, NewEvent, EVENTS_KEPT};
use crate::{SqliteStore, StoreResult};
use async_trait::async_trait;
use rusqlite::{params, Row};
use std::collections::BTreeMap;
use std::time::Duration;

/// Every this many appends, events beyond what is kept are deleted.
const TRIM_EVERY: i64 = 256;

fn event(row: &Row) -> rusqlite::Result<Event> {
    let id: i64 = row.get(0)?;
    let fields: String = row.get(6)?;
    Ok(Event {
        id: id.to_string(),
        at: row.get(1)?,
        kind: row.get(2)?,
        session: row.get(3)?,
        node: row.get(4)?,
        owner: row.get(5)?,
        // A field map that does not parse loses its fields, not the event.
        fields: serde_json::from_str::<BTreeMap<String, String>>(&fields).unwrap_or_default(),
    })
}

impl SqliteStore {
    async fn events_after(&self, after: i64, limit: usize) -> StoreResult<Vec<Event>> {
        self.run("read events", move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, kind, session, node, owner, fields FROM events
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], event)?;
            rows.collect()
        })
        .await
    }
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, e: NewEvent) -> StoreResult<String> {
        let fields = serde_json::to_string(&e.fields).unwrap_or_else(|_| "{}".into());
        let id = self
            .run("append event", move |c| {
                c.prepare_cached(
                    "INSERT INTO events (at, kind, session, node, owner, fields)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![e.at, e.kind, e.session, e.node, e.owner, fields])?;
                let id = c.last_insert_rowid();
                if id % TRIM_EVERY == 0 {
                    c.execute(
                        "DELETE FROM events WHERE id <= ?1",
                        params![id - EVENTS_KEPT as i64],
                    )?;
                }
                Ok(id)
            })
            .await?;
        self.appended
            .send_modify(|last| *last = (*last).max(id as u64));
        Ok(id.to_string())
    }

    async fn read_after(
        &self,
        after: Option<&str>,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Event>> {
        let after: i64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
        let seen = *self.appended.borrow();
        let found = self.events_after(after, limit).await?;
        if !found.is_empty() || wait.is_zero() {
            return Ok(found);
        }
        wait_for_more(&self.appended, seen, wait).await;
        self.events_after(after, limit).await
    }

    async fn session_events(&self, id: &str, limit: usize) -> StoreResult<Vec<Event>> {
        let id = id.to_string();
        let mut events = self
            .run("session events", move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, at, kind, session, node, owner, fields FROM events
                     WHERE session = ?1 ORDER BY id DESC LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![id, limit as i64], event)?;
                rows.collect::<rusqlite::Result<Vec<Event>>>()
            })
            .await?;
        events.reverse();
        Ok(events)
    }

    async fn last_id(&self) -> StoreResult<Option<String>> {
        let last: Option<i64> = self
            .run("last event", |c| {
                c.query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
            })
            .await?;
        Ok(last.map(|id| id.to_string()))
    }
}
