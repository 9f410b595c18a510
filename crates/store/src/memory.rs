//! Session records in memory: the store of [`crate::MemoryCluster`], for tests
//! of code above the store that must also see the store lose its data.

use crate::events::MemoryEventLog;
use crate::{ApiKey, NewSession, SessionFilter, SessionRecord, Store, StoreResult};
use async_trait::async_trait;
use gridiron_domain::EndReason;
use serde_json::Value;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

mod artifacts;
mod webhooks;

/// The last insertion number, and records by id with the number they were
/// inserted under (the tie-break of [`Store::list`] between equal creation times).
type Records = (u64, HashMap<String, (u64, SessionRecord)>);

/// Session records in a map. Writes apply at once, so the order of one
/// caller's writes is kept as the trait requires.
#[derive(Default)]
pub struct MemoryStore {
    records: Mutex<Records>,
    keys: Mutex<BTreeMap<String, ApiKey>>,
    /// Webhook subscriptions, deliveries and logs.
    hooks: Mutex<webhooks::Hooks>,
    /// The artifact index.
    artifacts: Mutex<artifacts::Artifacts>,
    events: MemoryEventLog,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Forgets every record, as a store restarted without its data would.
    pub fn clear(&self) {
        self.lock().1.clear();
        self.key_map().clear();
        *self.hooks() = webhooks::Hooks::default();
        self.artifact_map().clear();
        self.events.clear();
    }

    fn key_map(&self) -> MutexGuard<'_, BTreeMap<String, ApiKey>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn artifact_map(&self) -> MutexGuard<'_, artifacts::Artifacts> {
        self.artifacts.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        // A panic while holding the lock leaves no half-made record behind.
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut SessionRecord) -> bool) -> bool {
        self.lock().1.get_mut(id).is_some_and(|(_, r)| f(r))
    }
}

fn end(r: &mut SessionRecord, reason: EndReason, at: i64, commands: Option<u64>) -> bool {
    if r.state == "ended" {
        return false;
    }
    r.state = "ended".into();
    r.end_reason = Some(reason);
    r.ended_at = Some(at);
    if let Some(c) = commands {
        r.command_count = c;
    }
    true
}

crate::events::delegate_event_log!(MemoryStore, events);

#[async_trait]
impl Store for MemoryStore {
    async fn insert(&self, s: NewSession, queued: bool) -> StoreResult<()> {
        let mut g = self.lock();
        g.0 += 1;
        let order = g.0;
        let record = SessionRecord {
            id: s.id.clone(),
            state: if queued { "queued" } else { "provisioning" }.into(),
            browser: s.browser,
            requested_caps: s.requested_caps,
            granted_caps: Value::Null,
            grid_options: s.grid_options,
            created_at: s.created_at,
            started_at: None,
            ended_at: None,
            end_reason: None,
            command_count: 0,
            owner: s.owner,
        };
        g.1.insert(s.id, (order, record));
        Ok(())
    }

    async fn mark_running(&self, id: &str, granted: Value, started_at: i64) -> StoreResult<()> {
        self.update(id, |r| {
            if matches!(r.state.as_str(), "queued" | "provisioning") {
                r.state = "running".into();
                r.granted_caps = granted;
                r.started_at = Some(started_at);
            }
            true
        });
        Ok(())
    }

    async fn mark_ended(
        &self,
        id: &str,
        reason: EndReason,
        ended_at: i64,
        command_count: u64,
    ) -> StoreResult<()> {
        self.update(id, |r| end(r, reason, ended_at, Some(command_count)));
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        Ok(self.lock().1.get(id).map(|(_, r)| r.clone()))
    }

    async fn list(&self, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        let g = self.lock();
        let mut all: Vec<&(u64, SessionRecord)> = g.1.values().collect();
        all.sort_by_key(|(order, r)| std::cmp::Reverse((r.created_at, *order)));
        Ok(all
            .into_iter()
            .take(limit)
            .map(|(_, r)| r.clone())
            .collect())
    }

    async fn query(&self, filter: &SessionFilter, limit: usize) -> StoreResult<Vec<SessionRecord>> {
        let g = self.lock();
        let mut all: Vec<&SessionRecord> =
            g.1.values()
                .map(|(_, r)| r)
                .filter(|r| filter.matches(&r.facts()))
                .collect();
        all.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        Ok(all.into_iter().take(limit).cloned().collect())
    }

    async fn close_unfinished(&self, reason: EndReason, ended_at: i64) -> StoreResult<usize> {
        let mut g = self.lock();
        Ok(g.1
            .values_mut()
            .map(|(_, r)| end(r, reason, ended_at, None))
            .filter(|ended| *ended)
            .count())
    }

    async fn end_elsewhere(&self, id: &str, reason: EndReason, ended_at: i64) -> StoreResult<bool> {
        Ok(self.update(id, |r| end(r, reason, ended_at, None)))
    }

    async fn prune(&self, older_than: i64) -> StoreResult<usize> {
        let mut g = self.lock();
        let before = g.1.len();
        g.1.retain(|_, (_, r)| {
            !(r.state == "ended" && r.ended_at.unwrap_or(r.created_at) < older_than)
        });
        Ok(before - g.1.len())
    }

    async fn unfinished_ids(&self) -> StoreResult<Vec<String>> {
        let g = self.lock();
        Ok(g.1
            .values()
            .filter(|(_, r)| r.state != "ended")
            .map(|(_, r)| r.id.clone())
            .collect())
    }

    async fn create_key(&self, key: ApiKey) -> StoreResult<bool> {
        let mut keys = self.key_map();
        if keys.contains_key(&key.name) {
            return Ok(false);
        }
        keys.insert(key.name.clone(), key);
        Ok(true)
    }

    async fn keys(&self) -> StoreResult<Vec<ApiKey>> {
        Ok(self.key_map().values().cloned().collect())
    }

    async fn revoke_key(&self, name: &str) -> StoreResult<bool> {
        Ok(self.key_map().remove(name).is_some())
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn memory_store_conforms() {
        crate::conformance::run_all(&super::MemoryStore::new()).await;
        crate::webhook_conformance::run_all(&super::MemoryStore::new()).await;
        crate::webhook_conformance::fan_out(&super::MemoryStore::new()).await;
    }

    /// The default stats read page after page: more records than one page
    /// holds, some on the same millisecond, are each counted once.
    #[tokio::test]
    async fn default_stats_count_every_page() {
        use crate::{NewSession, Store};
        let s = super::MemoryStore::new();
        for i in 0..1203 {
            let new = NewSession {
                id: format!("s{i:05}"),
                browser: "chrome".into(),
                requested_caps: serde_json::json!({}),
                grid_options: serde_json::json!({}),
                created_at: 1_000 + i / 3,
                owner: None,
            };
            s.insert(new, false).await.unwrap();
            s.mark_running(&format!("s{i:05}"), serde_json::json!({}), 1_000 + i / 3)
                .await
                .unwrap();
        }
        let stats = s.session_stats(1_000, None).await.unwrap();
        assert_eq!((stats.started, stats.running), (1203, 1203));
    }
}
