//! The embedded store: one SQLite file, owned by one thread.
//!
//! SQLite connections are not shareable across threads without locking, and
//! its calls block; a dedicated thread that runs queued jobs in order keeps
//! the async runtime free and gives the write ordering the trait promises.

use crate::{
    ApiKey, ErrorKind, NewSession, Role, SessionFilter, SessionRecord, SessionStats, Store,
    StoreError, StoreResult,
};
use async_trait::async_trait;
use gridiron_domain::EndReason;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;
use std::path::Path;
use std::sync::mpsc;
use tokio::sync::oneshot;

mod artifacts;
mod webhooks;

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Session records in a SQLite file (WAL mode).
pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
    /// The id of the last event appended; readers waiting for events watch it.
    pub(crate) appended: tokio::sync::watch::Sender<u64>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id             TEXT PRIMARY KEY,
    state          TEXT NOT NULL,
    browser        TEXT NOT NULL,
    requested_caps TEXT NOT NULL,
    granted_caps   TEXT,
    grid_options   TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    ended_at       INTEGER,
    end_reason     TEXT,
    command_count  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sessions_created ON sessions(created_at);
CREATE INDEX IF NOT EXISTS sessions_started ON sessions(started_at);
CREATE INDEX IF NOT EXISTS sessions_ended ON sessions(ended_at);
CREATE INDEX IF NOT EXISTS sessions_state ON sessions(state);
CREATE TABLE IF NOT EXISTS api_keys (
    name         TEXT PRIMARY KEY,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL,
    max_sessions INTEGER,
    rate         REAL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    session TEXT,
    node    TEXT,
    owner   TEXT,
    fields  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events(session);
";

/// Brings a database made by an older version up to date: sessions gained
/// the key that owns them.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_owner = conn
        .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'owner'")?
        .exists([])?;
    if !has_owner {
        conn.execute_batch("ALTER TABLE sessions ADD COLUMN owner TEXT")?;
    }
    Ok(())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path`.
    pub fn open(path: &Path) -> StoreResult<Self> {
        let err = |e: rusqlite::Error| {
            StoreError::new("open", kind(&e), format!("{}: {e}", path.display()))
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(webhooks::SCHEMA).map_err(err)?;
        conn.execute_batch(artifacts::SCHEMA).map_err(err)?;
        migrate(&conn).map_err(err)?;
        Ok(Self::spawn(conn))
    }

    /// A private in-memory database, for tests.
    pub fn in_memory() -> StoreResult<Self> {
        let err = |e: rusqlite::Error| StoreError::new("open", kind(&e), e.to_string());
        let conn = Connection::open_in_memory().map_err(err)?;
        conn.execute_batch(SCHEMA).map_err(err)?;
        conn.execute_batch(webhooks::SCHEMA).map_err(err)?;
        conn.execute_batch(artifacts::SCHEMA).map_err(err)?;
        migrate(&conn).map_err(err)?;
        Ok(Self::spawn(conn))
    }

    fn spawn(mut conn: Connection) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("gridiron-sqlite".into())
            .spawn(move || {
                // Ends when the store (the only sender) is dropped.
                for job in rx {
                    job(&mut conn);
                }
            })
            .expect("spawn the sqlite thread");
        SqliteStore {
            jobs: tx,
            appended: tokio::sync::watch::Sender::new(0),
        }
    }

    pub(crate) async fn run<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> StoreResult<T> {
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::new(op, ErrorKind::Unavailable, "the store thread has stopped");
        self.jobs
            .send(Box::new(move |c| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|e| StoreError::new(op, kind(&e), e.to_string()))
    }
}

/// Busy or locked databases free up; bad column data stays bad; the rest is a bug.
fn kind(e: &rusqlite::Error) -> ErrorKind {
    use rusqlite::ffi::ErrorCode;
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) =>
        {
            ErrorKind::Unavailable
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::IntegralValueOutOfRange(..) => ErrorKind::Malformed,
        _ => ErrorKind::Failed,
    }
}

fn json_col(row: &Row, idx: usize) -> rusqlite::Result<Value> {
    let s: Option<String> = row.get(idx)?;
    Ok(s.and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null))
}

const COLUMNS: &str = "id, state, browser, requested_caps, granted_caps, grid_options, created_at, started_at, ended_at, end_reason, command_count, owner";

fn record(row: &Row) -> rusqlite::Result<SessionRecord> {
    let reason: Option<String> = row.get(9)?;
    let count: i64 = row.get(10)?;
    Ok(SessionRecord {
        id: row.get(0)?,
        state: row.get(1)?,
        browser: row.get(2)?,
        requested_caps: json_col(row, 3)?,
        granted_caps: json_col(row, 4)?,
        grid_options: json_col(row, 5)?,
        created_at: row.get(6)?,
        started_at: row.get(7)?,
        ended_at: row.get(8)?,
        end_reason: reason.as_deref().and_then(EndReason::parse),
        command_count: count.max(0) as u64,
        owner: row.get(11)?,
    })
}

/// The counts of [`Store::session_stats`], narrowed by `owner`: sessions
/// started since `?1` and how many of them run (one row), then sessions
/// ended since `?1` by end reason. The indexes are named: left to itself,
/// SQLite may prefer another one and read every record ever kept.
fn stats_sql(owner: &str) -> [String; 2] {
    [
        format!(
            "SELECT COUNT(*), COALESCE(SUM(ended_at IS NULL), 0) FROM sessions
             INDEXED BY sessions_started WHERE started_at >= ?1{owner}"
        ),
        format!(
            "SELECT end_reason, COUNT(*) FROM sessions INDEXED BY sessions_ended
             WHERE ended_at >= ?1{owner} GROUP BY end_reason"
        ),
    ]
}

fn api_key(row: &Row) -> rusqlite::Result<ApiKey> {
    let role: String = row.get(1)?;
    let max: Option<i64> = row.get(3)?;
    Ok(ApiKey {
        name: row.get(0)?,
        // An unknown role grants the least.
        role: Role::parse(&role).unwrap_or(Role::User),
        token_hash: row.get(2)?,
        max_sessions: max.map(|m| m.clamp(0, u32::MAX as i64) as u32),
        rate: row.get(4)?,
        created_at: row.get(5)?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, s: NewSession, queued: bool) -> StoreResult<()> {
        let state = if queued { "queued" } else { "provisioning" };
        self.run("insert", move |c| {
            c.execute(
                "INSERT INTO sessions (id, state, browser, requested_caps, grid_options, created_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    s.id,
                    state,
                    s.browser,
                    s.requested_caps.to_string(),
                    s.grid_options.to_string(),
                    s.created_at,
                    s.owner
                ],
            )
            .map(drop)
        })
        .await
    }

    async fn mark_running(&self, id: &str, granted: Value, started_at: i64) -> StoreResult<()> {
        let id = id.to_string();
        self.run("mark_running", move |c| {
            c.execute(
                "UPDATE sessions SET state = 'running', granted_caps = ?2, started_at = ?3
                 WHERE id = ?1 AND state IN ('queued', 'provisioning')",
                params![id, granted.to_string(), started_at],
            )
            .map(drop)
        })
        .await
    }

    async fn mark_ended(
        &self,
        id: &str,
        reason: EndReason,
        ended_at: i64,
        command_count: u64,
    ) -> StoreResult<()> {
        let id = id.to_string();
        self.run("mark_ended", move |c| {
            c.execute(
                "UPDATE sessions SET state = 'ended', end_reason = ?2, ended_at = ?3, command_count = ?4
                 WHERE id = ?1 AND state != 'ended'",
                params![id, reason.as_str(), ended_at, command_count as i64],
            )
            .map(drop)
        })
        .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        let id = id.to_string();
        self.run("get", move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"),
                params![id],
                record,
            )
            .optional()
        })
        .await
    }

    async fn list(&self, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        self.run("list", move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM sessions ORDER BY created_at DESC, rowid DESC LIMIT ?1"
            ))?;
            let rows = stmt.query_map(params![limit as i64], record)?;
            rows.collect()
        })
        .await
    }

    async fn query(&self, filter: &SessionFilter, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        let f = filter.clone();
        self.run("query", move |c| {
            // The indexed columns narrow the scan in SQL; names and labels
            // (inside the options' JSON) are matched on the rows read.
            let mut sql = format!("SELECT {COLUMNS} FROM sessions WHERE 1 = 1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            let mut arg = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
                args.push(v);
                sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
            };
            if let Some(s) = &f.state {
                arg(&mut sql, " AND state = ?", s.clone().into());
            }
            if let Some(b) = &f.browser {
                arg(&mut sql, " AND browser = ?", b.clone().into());
            }
            match f.owner.as_deref() {
                Some("") => sql.push_str(" AND owner IS NULL"),
                Some(o) => arg(&mut sql, " AND owner = ?", o.to_string().into()),
                None => {}
            }
            if let Some(t) = f.created_after {
                arg(&mut sql, " AND created_at >= ?", t.into());
            }
            if let Some(t) = f.created_before {
                arg(&mut sql, " AND created_at < ?", t.into());
            }
            if let Some(cur) = &f.cursor {
                arg(&mut sql, " AND created_at <= ?", cur.at.into());
            }
            if let Some(pattern) = f.q.as_deref().and_then(search_pattern) {
                // Narrows a search to the rows whose text holds it (LIKE
                // ignores ASCII case, as the search does); `matches` below
                // decides on each.
                arg(
                    &mut sql,
                    " AND (id LIKE ? ESCAPE '\\' OR grid_options LIKE ? ESCAPE '\\' \
                     OR owner LIKE ? ESCAPE '\\' OR browser LIKE ? ESCAPE '\\')",
                    pattern.into(),
                );
            }
            sql.push_str(" ORDER BY created_at DESC, id DESC");
            let mut stmt = c.prepare(&sql)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args))?;
            let mut out = Vec::new();
            while out.len() < limit {
                let Some(row) = rows.next()? else { break };
                let r = record(row)?;
                if f.matches(&r.facts()) {
                    out.push(r);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn close_unfinished(&self, reason: EndReason, ended_at: i64) -> StoreResult<usize> {
        self.run("close_unfinished", move |c| {
            c.execute(
                "UPDATE sessions SET state = 'ended', end_reason = ?1, ended_at = ?2 WHERE state != 'ended'",
                params![reason.as_str(), ended_at],
            )
        })
        .await
    }

    async fn end_elsewhere(&self, id: &str, reason: EndReason, ended_at: i64) -> StoreResult<bool> {
        let id = id.to_string();
        self.run("end_elsewhere", move |c| {
            c.execute(
                "UPDATE sessions SET state = 'ended', end_reason = ?2, ended_at = ?3
                 WHERE id = ?1 AND state != 'ended'",
                params![id, reason.as_str(), ended_at],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn prune(&self, older_than: i64) -> StoreResult<usize> {
        self.run("prune", move |c| {
            c.execute(
                "DELETE FROM sessions WHERE state = 'ended' AND COALESCE(ended_at, created_at) < ?1",
                params![older_than],
            )
        })
        .await
    }

    async fn session_stats(&self, since: i64, owner: Option<&str>) -> StoreResult<SessionStats> {
        let owner = owner.map(str::to_string);
        self.run("session_stats", move |c| {
            // Counted in place: each range reads its index, and only one row
            // per end reason comes back.
            let mut args: Vec<rusqlite::types::Value> = vec![since.into()];
            let who = match owner {
                None => "",
                Some(o) if o.is_empty() => " AND owner IS NULL",
                Some(o) => {
                    args.push(o.into());
                    " AND owner = ?2"
                }
            };
            let [started, ended] = stats_sql(who);
            let count = |v: i64| v.max(0) as u64;
            let mut stats = SessionStats::default();
            let (n, running): (i64, i64) =
                c.query_row(&started, rusqlite::params_from_iter(args.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            (stats.started, stats.running) = (count(n), count(running));
            let mut stmt = c.prepare(&ended)?;
            let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
            while let Some(row) = rows.next()? {
                let reason: Option<String> = row.get(0)?;
                let reason = reason.unwrap_or_else(|| "unknown".into());
                *stats.ended.entry(reason).or_default() += count(row.get(1)?);
            }
            Ok(stats)
        })
        .await
    }

    async fn unfinished_ids(&self) -> StoreResult<Vec<String>> {
        self.run("unfinished_ids", |c| {
            let mut stmt = c.prepare("SELECT id FROM sessions WHERE state != 'ended'")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn create_key(&self, k: ApiKey) -> StoreResult<bool> {
        self.run("create_key", move |c| {
            c.execute(
                "INSERT OR IGNORE INTO api_keys (name, role, token_hash, max_sessions, rate, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    k.name,
                    k.role.as_str(),
                    k.token_hash,
                    k.max_sessions.map(i64::from),
                    k.rate,
                    k.created_at
                ],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKey>> {
        self.run("keys", |c| {
            let mut stmt = c.prepare(
                "SELECT name, role, token_hash, max_sessions, rate, created_at FROM api_keys ORDER BY name",
            )?;
            let rows = stmt.query_map([], api_key)?;
            rows.collect()
        })
        .await
    }

    async fn revoke_key(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_string();
        self.run("revoke_key", move |c| {
            c.execute("DELETE FROM api_keys WHERE name = ?1", params![name])
                .map(|n| n == 1)
        })
        .await
    }
}

/// The `LIKE` pattern that finds rows holding search `q` as text: only for
/// a printable ASCII search without `"` or `\` (what JSON writes as is and
/// `LIKE` folds as the search does); `None` scans every row.
fn search_pattern(q: &str) -> Option<String> {
    let plain = q.chars().all(|c| c.is_ascii_graphic() || c == ' ') && !q.contains(['"', '\\']);
    plain.then(|| {
        let escaped = q.replace('%', "\\%").replace('_', "\\_");
        format!("%{escaped}%")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_narrow_in_sql_only_where_like_agrees_with_them() {
        assert_eq!(search_pattern("Checkout").as_deref(), Some("%Checkout%"));
        assert_eq!(search_pattern("50%_off").as_deref(), Some("%50\\%\\_off%"));
        assert_eq!(search_pattern("say \"hi\""), None, "JSON escapes quotes");
        assert_eq!(search_pattern("caf\u{e9}"), None, "LIKE folds ASCII only");
    }

    #[tokio::test]
    async fn in_memory_store_conforms() {
        let s = SqliteStore::in_memory().unwrap();
        crate::conformance::run_all(&s).await;
        crate::webhook_conformance::run_all(&s).await;
        crate::webhook_conformance::fan_out(&s).await;
    }

    /// Stats read the start and end time indexes, not the whole table.
    #[tokio::test]
    async fn stats_read_the_time_indexes() {
        let s = SqliteStore::in_memory().unwrap();
        let plans = s
            .run("plan", |c| {
                let mut plans = Vec::new();
                for sql in stats_sql(" AND owner = ?2") {
                    let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                    let rows = stmt.query_map(params![0, "a"], |r| r.get::<_, String>(3))?;
                    plans.push(rows.collect::<rusqlite::Result<Vec<_>>>()?.join("; "));
                }
                Ok(plans)
            })
            .await
            .unwrap();
        assert!(plans[0].contains("sessions_started"), "{plans:?}");
        assert!(plans[1].contains("sessions_ended"), "{plans:?}");
    }

    #[tokio::test]
    async fn file_store_conforms_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gridiron.db");
        {
            let s = SqliteStore::open(&path).unwrap();
            crate::conformance::run_all(&s).await;
        }
        let s = SqliteStore::open(&path).unwrap();
        // The last check pruned the older records; this one was kept.
        let r = s.get("recent").await.unwrap().unwrap();
        assert_eq!(r.end_reason, Some(EndReason::Quit));
        assert_eq!(r.ended_at, Some(60_000));
    }
}
