//! Every Redis key and channel of a grid's shared state, built in one place.
//!
//! Layout under the namespace `NS`:
//! - `NS:seq` request counter; `NS:queue` waiting request ids by sequence;
//!   `NS:req:RID` a hash per request (`state` waiting|claimed|done|delivered|cancelled,
//!   `score` its place in the queue, and `node`, `epoch` of the registration
//!   holding its claim).
//! - `NS:nodes` ids of live nodes; `NS:node:ID` its description, `NS:node:ID:alive`
//!   its heartbeat (expires after the TTL), `NS:node:ID:claims` requests it is
//!   starting, `NS:node:ID:sessions` its sessions (id -> "request pool[ key]");
//!   `NS:epochs` the last registration epoch handed out.
//! - `NS:route:SID` the node of a running session.
//! - `NS:hubs`, `NS:hub:ID:alive` hubs and their heartbeats, `NS:hub:ID:requests`
//!   the requests hub `ID` still owes an answer to its clients; hub `ID` hears
//!   answers to its requests on channel `NS:hub:ID`; nodes hear of new work on `NS:work`.
//! - `NS:pools`, `NS:pool:NAME` pool definitions; `NS:pool:NAME:running` the
//!   places taken in the pool, `REQUEST@NODE`.
//! - `NS:key:NAME:running` the places taken among the sessions of API key
//!   `NAME` (keys with a session limit), `REQUEST@NODE`; `NS:keyrounds` the
//!   round each key's last request got, `NS:round` the highest round a node
//!   claimed from (see `fair_round`).
//! - `NS:lock:NAME` short-lived locks; `NS:events` a stream of lifecycle events.
//! - `NS:webhooks` subscription ids by creation time; `NS:webhook:ID` a hash
//!   per subscription (`def` its JSON, `disabled`, `disabled_at`, `failures`,
//!   `failing_since`), `NS:webhook:ID:pending` its pending deliveries,
//!   `NS:webhook:ID:log` its delivery log (`seq:json`, newest first) and
//!   `NS:webhook:ID:logseq` the log's counter; `NS:whd:DID` a hash per
//!   delivery, `NS:whdue` the deliveries due (or leased) by time. The
//!   consumer group `webhooks` on `NS:events` fans events out.
//! - `NS:artifacts` ids of sessions with indexed artifacts; `NS:artifact:SID`
//!   a hash per session (artifact name -> its record as JSON).
//! - `NS:metrics` grid-wide counters (name -> total); `NS:metrics:procs` ids of
//!   processes that published gauges, `NS:metrics:gauges:ID` those gauges (expire).
//!
//! Scripts get every key they touch in KEYS, never a namespace to build keys
//! from, so that they could run on Redis Cluster (given a hash tag in `NS`).

/// Key names under one namespace.
#[derive(Debug, Clone)]
pub struct Keys {
    ns: String,
}

impl Keys {
    /// Keys under `namespace`.
    pub fn new(namespace: &str) -> Keys {
        Keys {
            ns: namespace.to_string(),
        }
    }

    fn k(&self, rest: &str) -> String {
        format!("{}:{rest}", self.ns)
    }

    /// The request counter.
    pub fn seq(&self) -> String {
        self.k("seq")
    }
    /// Waiting request ids by sequence.
    pub fn queue(&self) -> String {
        self.k("queue")
    }
    /// A request's hash.
    pub fn request(&self, rid: &str) -> String {
        self.k(&format!("req:{rid}"))
    }
    /// Ids of nodes taking part.
    pub fn nodes(&self) -> String {
        self.k("nodes")
    }
    /// The last registration epoch handed out.
    pub fn epochs(&self) -> String {
        self.k("epochs")
    }
    /// A node's hash.
    pub fn node(&self, id: &str) -> String {
        self.k(&format!("node:{id}"))
    }
    /// A node's heartbeat, expiring after its TTL.
    pub fn node_alive(&self, id: &str) -> String {
        self.k(&format!("node:{id}:alive"))
    }
    /// Requests a node is starting.
    pub fn node_claims(&self, id: &str) -> String {
        self.k(&format!("node:{id}:claims"))
    }
    /// A node's sessions.
    pub fn node_sessions(&self, id: &str) -> String {
        self.k(&format!("node:{id}:sessions"))
    }
    /// The node of a running session.
    pub fn route(&self, sid: &str) -> String {
        self.k(&format!("route:{sid}"))
    }
    /// Ids of hubs.
    pub fn hubs(&self) -> String {
        self.k("hubs")
    }
    /// A hub's heartbeat.
    pub fn hub_alive(&self, id: &str) -> String {
        self.k(&format!("hub:{id}:alive"))
    }
    /// Requests a hub still owes its clients an answer to.
    pub fn hub_requests(&self, id: &str) -> String {
        self.k(&format!("hub:{id}:requests"))
    }
    /// The channel a hub hears answers on.
    pub fn hub_channel(&self, id: &str) -> String {
        self.k(&format!("hub:{id}"))
    }
    /// The channel nodes hear of new work on.
    pub fn work_channel(&self) -> String {
        self.k("work")
    }
    /// Names of pools.
    pub fn pools(&self) -> String {
        self.k("pools")
    }
    /// A pool's definition.
    pub fn pool(&self, name: &str) -> String {
        self.k(&format!("pool:{name}"))
    }
    /// Places taken in a pool (`pool_running("")` stands in where a script
    /// needs a key but the request has no pool).
    pub fn pool_running(&self, name: &str) -> String {
        self.k(&format!("pool:{name}:running"))
    }
    /// Places taken among an API key's sessions (`key_running("")` stands
    /// in where a script needs a key but the request's key has no limit).
    pub fn key_running(&self, name: &str) -> String {
        self.k(&format!("key:{name}:running"))
    }
    /// The round of the fair queue each key's last request got.
    pub fn key_rounds(&self) -> String {
        self.k("keyrounds")
    }
    /// The highest round of the fair queue a node claimed from.
    pub fn round(&self) -> String {
        self.k("round")
    }
    /// A lock.
    pub fn lock(&self, name: &str) -> String {
        self.k(&format!("lock:{name}"))
    }
    /// The event stream.
    pub fn events(&self) -> String {
        self.k("events")
    }

    /// The ids of session `sid`'s events in the event stream (its timeline).
    pub fn session_events(&self, sid: &str) -> String {
        self.k(&format!("events:session:{sid}"))
    }
    /// Webhook subscription ids by creation time.
    pub fn webhooks(&self) -> String {
        self.k("webhooks")
    }
    /// A webhook subscription's hash.
    pub fn webhook(&self, id: &str) -> String {
        self.k(&format!("webhook:{id}"))
    }
    /// A webhook subscription's pending deliveries.
    pub fn webhook_pending(&self, id: &str) -> String {
        self.k(&format!("webhook:{id}:pending"))
    }
    /// A webhook subscription's delivery log.
    pub fn webhook_log(&self, id: &str) -> String {
        self.k(&format!("webhook:{id}:log"))
    }
    /// The counter of a webhook subscription's delivery log.
    pub fn webhook_log_seq(&self, id: &str) -> String {
        self.k(&format!("webhook:{id}:logseq"))
    }
    /// A webhook delivery's hash.
    pub fn webhook_delivery(&self, id: &str) -> String {
        self.k(&format!("whd:{id}"))
    }
    /// Webhook deliveries due (or leased), by time.
    pub fn webhooks_due(&self) -> String {
        self.k("whdue")
    }
    /// Grid-wide counters.
    pub fn metrics(&self) -> String {
        self.k("metrics")
    }
    /// Ids of processes that published gauges.
    pub fn metric_procs(&self) -> String {
        self.k("metrics:procs")
    }
    /// The gauges process `id` published, expiring.
    pub fn metric_gauges(&self, id: &str) -> String {
        self.k(&format!("metrics:gauges:{id}"))
    }
}
