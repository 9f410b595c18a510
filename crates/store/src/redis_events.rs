//! The event log of a scaled-out grid: a Redis stream every hub and node
//! appends to, trimmed to about [`EVENTS_KEPT`] entries. Stream ids
//! (`ms-seq`) are the event ids.

use crate::cluster::keys::Keys;
use crate::events::{Event, EventLog, NewEvent, EVENTS_KEPT};
use crate::redis_store::err;
use crate::StoreResult;
use async_trait::async_trait;
use redis::aio::{ConnectionManager, MultiplexedConnection};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::Mutex;

/// The names of an entry's own fields; every other field is one of the event's `fields`.
const OWN: [&str; 5] = ["type", "at", "session", "node", "owner"];

/// Appends an event, and lists a session's event under the session.
static APPEND: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/append_event.lua")));

/// Event ids listed per session, at most (a session's timeline).
const SESSION_EVENTS_KEPT: usize = 500;

/// How long a session's list of events is kept after its last event.
const SESSION_EVENTS_TTL: Duration = Duration::from_secs(24 * 3600);

/// An entry as `XREAD` returns it: its id and its flat field/value list.
type Entry = (String, Vec<String>);

/// An `XREAD` reply: per stream, its name and entries (`None`: nothing new).
type Reply = Option<Vec<(String, Vec<Entry>)>>;

/// A grid's event stream.
pub struct RedisEventLog {
    /// Opens the connection blocking reads wait on.
    client: redis::Client,
    /// Shared with the rest of the store, for appends and plain reads.
    conn: ConnectionManager,
    /// Blocking reads hold a connection of their own, as `XREAD BLOCK`
    /// would hold up every other command queued behind it.
    blocking: Mutex<Option<MultiplexedConnection>>,
    /// The stream's key (`keys.events()`, made once).
    key: String,
    /// Names the per-session lists of event ids.
    keys: Keys,
}

impl RedisEventLog {
    /// The event stream of the grid whose keys are `keys`.
    pub(crate) fn new(client: redis::Client, conn: ConnectionManager, keys: Keys) -> Self {
        RedisEventLog {
            client,
            conn,
            blocking: Mutex::new(None),
            key: keys.events(),
            keys,
        }
    }

    fn xread(&self, after: &str, limit: usize, block: Option<Duration>) -> redis::Cmd {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT").arg(limit.max(1));
        if let Some(block) = block {
            cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64);
        }
        cmd.arg("STREAMS").arg(&self.key).arg(after);
        cmd
    }

    async fn blocking_read(
        &self,
        after: &str,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Event>> {
        let mut slot = self.blocking.lock().await;
        if slot.is_none() {
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_response_timeout(Some(wait + Duration::from_secs(5)));
            let conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(err("read events"))?;
            *slot = Some(conn);
        }
        let conn = slot.as_mut().expect("just connected");
        let reply: redis::RedisResult<Reply> =
            self.xread(after, limit, Some(wait)).query_async(conn).await;
        match reply {
            Ok(reply) => Ok(entries(reply)),
            Err(e) => {
                // A broken connection is opened anew by the next read.
                *slot = None;
                Err(err("read events")(e))
            }
        }
    }
}

/// The events of an `XREAD` reply of one stream.
fn entries(reply: Reply) -> Vec<Event> {
    reply
        .into_iter()
        .flatten()
        .flat_map(|(_, entries)| entries)
        .filter_map(|(id, flat)| parse(id, flat))
        .collect()
}

/// An event from a stream entry; `None` (logged) for an entry without a type or time.
pub(crate) fn parse(id: String, flat: Vec<String>) -> Option<Event> {
    let mut own: BTreeMap<&str, String> = BTreeMap::new();
    let mut fields = BTreeMap::new();
    for pair in flat.chunks_exact(2) {
        match OWN.iter().find(|k| **k == pair[0]) {
            Some(k) => {
                own.insert(k, pair[1].clone());
            }
            None => {
                fields.insert(pair[0].clone(), pair[1].clone());
            }
        }
    }
    let (Some(kind), Some(at)) = (
        own.remove("type"),
        own.remove("at").and_then(|a| a.parse().ok()),
    ) else {
        tracing::warn!(event = %id, "skipping a malformed event");
        return None;
    };
    Some(Event {
        id,
        at,
        kind,
        session: own.remove("session"),
        node: own.remove("node"),
        owner: own.remove("owner"),
        fields,
    })
}

#[async_trait]
impl EventLog for RedisEventLog {
    async fn append(&self, e: NewEvent) -> StoreResult<String> {
        let mut invocation = APPEND.key(&self.key);
        if let Some(session) = &e.session {
            invocation.key(self.keys.session_events(session));
        }
        invocation
            .arg(EVENTS_KEPT)
            .arg(SESSION_EVENTS_KEPT)
            .arg(SESSION_EVENTS_TTL.as_secs())
            .arg("type")
            .arg(&e.kind)
            .arg("at")
            .arg(e.at);
        for (name, value) in [
            ("session", &e.session),
            ("node", &e.node),
            ("owner", &e.owner),
        ] {
            if let Some(v) = value {
                invocation.arg(name).arg(v);
            }
        }
        for (k, v) in &e.fields {
            // A field named like one of the entry's own would be read back as it.
            if !OWN.contains(&k.as_str()) {
                invocation.arg(k).arg(v);
            }
        }
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(err("append event"))
    }

    async fn read_after(
        &self,
        after: Option<&str>,
        limit: usize,
        wait: Duration,
    ) -> StoreResult<Vec<Event>> {
        let after = after.unwrap_or("0");
        let reply: Reply = self
            .xread(after, limit, None)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err("read events"))?;
        let found = entries(reply);
        if !found.is_empty() || wait.is_zero() {
            return Ok(found);
        }
        self.blocking_read(after, limit, wait).await
    }

    async fn session_events(&self, id: &str, limit: usize) -> StoreResult<Vec<Event>> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> = redis::cmd("LRANGE")
            .arg(self.keys.session_events(id))
            .arg(-(limit.max(1) as i64))
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(err("session events"))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for event in &ids {
            pipe.cmd("XRANGE").arg(&self.key).arg(event).arg(event);
        }
        let found: Vec<Vec<Entry>> = pipe
            .query_async(&mut conn)
            .await
            .map_err(err("session events"))?;
        // Events trimmed from the stream since are gone from the timeline too.
        Ok(found
            .into_iter()
            .flatten()
            .filter_map(|(id, flat)| parse(id, flat))
            .collect())
    }

    async fn last_id(&self) -> StoreResult<Option<String>> {
        let last: Vec<Entry> = redis::cmd("XREVRANGE")
            .arg(&self.key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(err("last event"))?;
        Ok(last.into_iter().next().map(|(id, _)| id))
    }
}
