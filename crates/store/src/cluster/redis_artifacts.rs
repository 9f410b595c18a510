//! The artifact index in Redis, shared by every hub and node:
//! `NS:artifact:SID` a hash per session (name -> the record as JSON) and
//! `NS:artifacts` the set of `SID` with artifacts. Each write is one
//! `MULTI`, so the two never disagree for long enough to matter to a reader.

use crate::artifacts::{oldest_first, ArtifactIndex, ArtifactRecord};
use crate::redis_store::err;
use crate::{RedisStore, StoreResult};
use async_trait::async_trait;
use redis::AsyncCommands;
use std::collections::HashMap;

impl RedisStore {
    fn artifact_key(&self, session: &str) -> String {
        format!("{}:artifact:{session}", self.ns)
    }

    fn artifact_sessions(&self) -> String {
        format!("{}:artifacts", self.ns)
    }
}

/// The records of one session's hash; unreadable entries are skipped.
fn parse(h: HashMap<String, String>) -> Vec<ArtifactRecord> {
    let mut v: Vec<ArtifactRecord> = h
        .into_values()
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

#[async_trait]
impl ArtifactIndex for RedisStore {
    async fn put_artifact(&self, a: &ArtifactRecord) -> StoreResult<()> {
        let json = serde_json::to_string(a).unwrap_or_default();
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .hset(self.artifact_key(&a.session), &a.name, json)
            .sadd(self.artifact_sessions(), &a.session)
            .query_async::<()>(&mut conn)
            .await
            .map_err(err("put_artifact"))
    }

    async fn artifact(&self, session: &str, name: &str) -> StoreResult<Option<ArtifactRecord>> {
        let mut conn = self.conn.clone();
        let json: Option<String> = conn
            .hget(self.artifact_key(session), name)
            .await
            .map_err(err("artifact"))?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    async fn session_artifacts(&self, session: &str) -> StoreResult<Vec<ArtifactRecord>> {
        let mut conn = self.conn.clone();
        let h: HashMap<String, String> = conn
            .hgetall(self.artifact_key(session))
            .await
            .map_err(err("session_artifacts"))?;
        Ok(parse(h))
    }

    async fn all_artifacts(&self) -> StoreResult<Vec<ArtifactRecord>> {
        let mut conn = self.conn.clone();
        let sessions: Vec<String> = conn
            .smembers(self.artifact_sessions())
            .await
            .map_err(err("all_artifacts"))?;
        let mut all = Vec::new();
        for s in sessions {
            let h: HashMap<String, String> = conn
                .hgetall(self.artifact_key(&s))
                .await
                .map_err(err("all_artifacts"))?;
            all.extend(parse(h));
        }
        oldest_first(&mut all);
        Ok(all)
    }

    async fn remove_artifact(&self, session: &str, name: &str) -> StoreResult<bool> {
        let mut conn = self.conn.clone();
        let key = self.artifact_key(session);
        let removed: i64 = conn
            .hdel(&key, name)
            .await
            .map_err(err("remove_artifact"))?;
        let left: i64 = conn.hlen(&key).await.map_err(err("remove_artifact"))?;
        if left == 0 {
            // A session without artifacts leaves the set (a racing put adds it back).
            let _: i64 = conn
                .srem(self.artifact_sessions(), session)
                .await
                .map_err(err("remove_artifact"))?;
            let still: i64 = conn.hlen(&key).await.map_err(err("remove_artifact"))?;
            if still > 0 {
                let _: i64 = conn
                    .sadd(self.artifact_sessions(), session)
                    .await
                    .map_err(err("remove_artifact"))?;
            }
        }
        Ok(removed > 0)
    }
}
