//! The artifact index of [`SqliteStore`]: one table.

use super::SqliteStore;
use crate::artifacts::{ArtifactIndex, ArtifactRecord};
use crate::StoreResult;
use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Row};

/// The artifact table; created with the rest of the schema.
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS artifacts (
    session      TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    owner        TEXT,
    created_at   INTEGER NOT NULL,
    node         TEXT NOT NULL,
    location     TEXT NOT NULL,
    PRIMARY KEY (session, name)
);
CREATE INDEX IF NOT EXISTS artifacts_created ON artifacts(created_at);
";

const COLUMNS: &str = "session, name, size, content_type, owner, created_at, node, location";

fn record(row: &Row) -> rusqlite::Result<ArtifactRecord> {
    let size: i64 = row.get(2)?;
    Ok(ArtifactRecord {
        session: row.get(0)?,
        name: row.get(1)?,
        size: size.max(0) as u64,
        content_type: row.get(3)?,
        owner: row.get(4)?,
        created_at: row.get(5)?,
        node: row.get(6)?,
        location: row.get(7)?,
    })
}

#[async_trait]
impl ArtifactIndex for SqliteStore {
    async fn put_artifact(&self, a: &ArtifactRecord) -> StoreResult<()> {
        let a = a.clone();
        self.run("put_artifact", move |c| {
            c.execute(
                &format!("INSERT OR REPLACE INTO artifacts ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                params![
                    a.session,
                    a.name,
                    a.size.min(i64::MAX as u64) as i64,
                    a.content_type,
                    a.owner,
                    a.created_at,
                    a.node,
                    a.location
                ],
            )
            .map(|_| ())
        })
        .await
    }

    async fn artifact(&self, session: &str, name: &str) -> StoreResult<Option<ArtifactRecord>> {
        let (session, name) = (session.to_string(), name.to_string());
        self.run("artifact", move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM artifacts WHERE session = ?1 AND name = ?2"),
                params![session, name],
                record,
            )
            .optional()
        })
        .await
    }

    async fn session_artifacts(&self, session: &str) -> StoreResult<Vec<ArtifactRecord>> {
        let session = session.to_string();
        self.run("session_artifacts", move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM artifacts WHERE session = ?1 ORDER BY name"
            ))?;
            let rows = st.query_map(params![session], record)?;
            rows.collect()
        })
        .await
    }

    async fn all_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>> {
        self.run("all_artifacts", move |c| {
            let mut st = c.prepare(&format!(
                "SELECT {COLUMNS} FROM artifacts ORDER BY created_at, session, name"
            ))?;
            let rows = st.query_map([], record)?;
            rows.collect()
        })
        .await
    }

    async fn remove_artifact(&self, session: &str, name: &str) -> StoreResult<bool> {
        let (session, name) = (session.to_string(), name.to_string());
        self.run("remove_artifact", move |c| {
            c.execute(
                "DELETE FROM artifacts WHERE session = ?1 AND name = ?2",
                params![session, name],
            )
            .map(|n| n > 0)
        })
        .await
    }
}
