//! The event log: every lifecycle event of a grid, kept in order under a
//! monotonic id for a bounded time, so observers can follow it live and pick
//! up after a disconnection where they left off.
//!
//! A standalone grid keeps it in its SQLite file; a scaled-out grid in the
//! Redis stream every hub and node appends to. [`MemoryEventLog`] is the
//! in-memory one of the memory stores.

use crate::StoreResult;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// How many events a log keeps; older ones are dropped as new ones come.
pub const EVENTS_KEPT: usize = 50_000;

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Its id in the log: later events have greater ids
    /// (see [`gridiron_domain::events::id_order`]).
    pub id: String,
    /// Unix ms when it happened.
    pub at: i64,
    /// Its type (`session.started`, ...: [`gridiron_domain::events`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// The session it concerns.
    pub session: Option<String>,
    /// The node it concerns.
    pub node: Option<String>,
    /// The API key whose session or request it concerns.
    pub owner: Option<String>,
    /// What else there is to say (`reason`, `request`, `commands`, ...).
    pub fields: BTreeMap<String, String>,
}

impl Event {
    /// What the event is about, as filters and visibility rules see it.
    pub fn subject(&self) -> gridiron_domain::events::Subject<'_> {
        gridiron_domain::events::Subject {
            kind: &self.kind,
            session: self.session.as_deref(),
            node: self.node.as_deref(),
            owner: self.owner.as_deref(),
        }
    }

    /// The value of field `name`, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// An event to append: everything but its id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEvent {
    /// Unix ms when it happened.
    pub at: i64,
    /// Its type.
    pub kind: String,
    /// The session it concerns.
    pub session: Option<String>,
    /// The node it concerns.
    pub node: Option<String>,
    /// The API key whose session or request it concerns.
    pub owner: Option<String>,
    /// Other fields.
    pub fields: BTreeMap<String, String>,
}

impl NewEvent {
    /// An event of `kind` happening now.
    pub fn now(kind: &str) -> NewEvent {
        NewEvent {
            at: crate::now_ms(),
            kind: kind.to_string(),
            ..NewEvent::default()
        }
    }

    /// About session `id`.
    pub fn session(mut self, id: &str) -> Self {
        self.session = Some(id.to_string());
        self
    }

    /// About node `id`.
    pub fn node(mut self, id: &str) -> Self {
        self.node = Some(id.to_string());
        self
    }

    /// Belonging to API key `owner` (`None`: no key).
    pub fn owner(mut self, owner: Option<&str>) -> Self {
        self.owner = owner.map(str::to_string);
        self
    }

    /// With field `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl ToString) -> Self {
        self.fields.insert(name.to_string(), value.to_string());
        self
    }

    /// The recorded event, under `id`.
    pub fn recorded(self, id: String) -> Event {
        Event {
            id,
            at: self.at,
            kind: self.kind,
            session: self.session,
            node: self.node,
            owner: self.owner,
            fields: self.fields,
        }
    }
}

/// An append-only log of events with monotonic ids.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends `event`; returns its id.
    async fn append(&self, event: NewEvent) -> StoreResult<String>;

    /// Up to `limit` events after `after` (from the oldest kept if `None`),
    /// oldest first. When there is none yet, waits up to `wait` for one.
    async fn read_after(
        &self,
        after: Option<&str>,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Event>>;

    /// The id of the newest event, if any.
    async fn last_id(&self) -> StoreResult<Option<String>>;

    /// The kept events about session `id`, oldest first, at most the last `limit`.
    async fn session_events(&self, id: &str, limit: usize) -> StoreResult<Vec<Event>>;
}

/// Implements [`EventLog`] for a type by passing every call to its field
/// `$field` (an event log itself, or an `Arc` of one).
macro_rules! delegate_event_log {
    ($ty:ty, $field:ident) => {
        #[async_trait::async_trait]
        impl $crate::events::EventLog for $ty {
            async fn append(&self, event: $crate::events::NewEvent) -> $crate::StoreResult<String> {
                $crate::events::EventLog::append(&self.$field, event).await
            }

            async fn read_after(
                &self,
                after: Option<&str>,
                limit: usize,
                wait: std::time::Duration,
            ) -> $crate::StoreResult<Vec<$crate::events::Event>> {
                $crate::events::EventLog::read_after(&self.$field, after, limit, wait).await
            }

            async fn last_id(&self) -> $crate::StoreResult<Option<String>> {
                $crate::events::EventLog::last_id(&self.$field).await
            }

            async fn session_events(
                &self,
                id: &str,
                limit: usize,
            ) -> $crate::StoreResult<Vec<$crate::events::Event>> {
                $crate::events::EventLog::session_events(&self.$field, id, limit).await
            }
        }
    };
}
pub(crate) use delegate_event_log;

/// A shared log is the log.
#[async_trait]
impl<L: EventLog + ?Sized> EventLog for std::sync::Arc<L> {
    async fn append(&self, event: NewEvent) -> StoreResult<String> {
        (**self).append(event).await
    }

    async fn read_after(
        &self,
        after: Option<&str>,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Event>> {
        (**self).read_after(after, limit, wait).await
    }

    async fn last_id(&self) -> StoreResult<Option<String>> {
        (**self).last_id().await
    }

    async fn session_events(&self, id: &str, limit: usize) -> StoreResult<Vec<Event>> {
        (**self).session_events(id, limit).await
    }
}

/// Waits until `changed` moves past `seen`, or `wait` passes.
pub(crate) async fn wait_for_more(changed: &watch::Sender<u64>, seen: u64, wait: Duration) {
    let mut rx = changed.subscribe();
    let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n != seen)).await;
}

/// Events in memory, numbered from 1.
pub struct MemoryEventLog {
    events: Mutex<VecDeque<Event>>,
    /// The last id given out; observers wait on it.
    last: watch::Sender<u64>,
}

impl Default for MemoryEventLog {
    fn default() -> Self {
        MemoryEventLog {
            events: Mutex::default(),
            last: watch::Sender::new(0),
        }
    }
}

impl MemoryEventLog {
    fn events(&self) -> std::sync::MutexGuard<'_, VecDeque<Event>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every event (the ids go on from where they were).
    pub fn clear(&self) {
        self.events().clear();
    }

    fn after(&self, after: Option<&str>, limit: usize) -> Vec<Event> {
        let after: u64 = after.and_then(|a| a.parse().ok()).unwrap_or(0);
        let events = self.events();
        // Ids are consecutive, so the first wanted one is found by arithmetic.
        let first = events
            .front()
            .map_or(0, |e| e.id.parse::<u64>().unwrap_or(0));
        let skip = (after + 1).saturating_sub(first) as usize;
        events.iter().skip(skip).take(limit).cloned().collect()
    }
}

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn append(&self, event: NewEvent) -> StoreResult<String> {
        let mut events = self.events();
        let id = *self.last.borrow() + 1;
        if events.len() >= EVENTS_KEPT {
            events.pop_front();
        }
        events.push_back(event.recorded(id.to_string()));
        drop(events);
        self.last.send_replace(id);
        Ok(id.to_string())
    }

    async fn read_after(
        &self,
        after: Option<&str>,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Event>> {
        let seen = *self.last.borrow();
        let found = self.after(after, limit);
        if !found.is_empty() || wait.is_zero() {
            return Ok(found);
        }
        wait_for_more(&self.last, seen, wait).await;
        Ok(self.after(after, limit))
    }

    async fn last_id(&self) -> StoreResult<Option<String>> {
        let last = *self.last.borrow();
        Ok((last > 0).then(|| last.to_string()))
    }

    async fn session_events(&self, id: &str, limit: usize) -> StoreResult<Vec<Event>> {
        let events = self.events();
        let mut found: Vec<Event> = events
            .iter()
            .rev()
            .filter(|e| e.session.as_deref() == Some(id))
            .take(limit)
            .cloned()
            .collect();
        found.reverse();
        Ok(found)
    }
}
