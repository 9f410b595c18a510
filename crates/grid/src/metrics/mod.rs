//! The grid's metrics: counters and histograms kept in atomics (the command
//! path pays one relaxed increment, never a lock or a store call), rendered
//! at `/metrics` in the Prometheus text format, and in a cluster summed over
//! every hub and node through the shared state (see [`flush`]).
//!
//! Each event is counted once in the whole grid, where it happens: commands
//! and session starts and ends by the process running the session (a
//! standalone grid or a node), queue waits where the request leaves the
//! queue (a standalone grid's slots, or the node claiming it), sessions of
//! lost nodes and requests that never got a slot by the hub that records
//! them, tunnels by the process the client connected to.

pub mod flush;
mod render;
pub mod routes;
pub mod timed;
mod view;

pub use view::{MetricsView, NodeSlots, RunningSession};

use gridiron_domain::metrics::{bucket_index, HistogramCounts, STORE_BUCKETS_US, WAIT_BUCKETS_US};
use gridiron_domain::EndReason;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Counter names of a snapshot (see [`Metrics::snapshot`]); histograms are
/// `hist:NAME:b:INDEX` (one per bucket, not cumulative), `hist:NAME:sum_us`
/// and `hist:NAME:count`.
pub(crate) mod names {
    /// Commands proxied to drivers.
    pub const COMMANDS: &str = "commands";
    /// `ended:REASON`: sessions ended for that reason.
    pub const ENDED: &str = "ended:";
    /// `webhook:RESULT`: webhook deliveries with that result.
    pub const WEBHOOK: &str = "webhook:";
    /// Queue wait histogram.
    pub const QUEUE_WAIT: &str = "queue_wait";
    /// Session start latency histogram.
    pub const START: &str = "start";
    /// `store:OP`: store call latency histograms, per operation.
    pub const STORE: &str = "store:";
    /// Histogram prefix.
    pub const HIST: &str = "hist:";
}

/// A histogram of durations over fixed bucket bounds (microseconds).
pub struct Histogram {
    bounds: &'static [u64],
    /// One per bound, then `+Inf`; not cumulative.
    buckets: Box<[AtomicU64]>,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_us: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.buckets[bucket_index(self.bounds, us)].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot_into(&self, name: &str, out: &mut BTreeMap<String, u64>) {
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            if n > 0 {
                out.insert(format!("{}{name}:b:{i}", names::HIST), n);
            }
        }
        let count = self.count.load(Ordering::Relaxed);
        if count > 0 {
            let sum = self.sum_us.load(Ordering::Relaxed);
            out.insert(format!("{}{name}:sum_us", names::HIST), sum);
            out.insert(format!("{}{name}:count", names::HIST), count);
        }
    }
}

/// The counts of histogram `name` in a snapshot of counters.
pub(crate) fn histogram_of(
    counters: &BTreeMap<String, u64>,
    name: &str,
    bounds: &[u64],
) -> HistogramCounts {
    let get = |suffix: &str| {
        counters
            .get(&format!("{}{name}:{suffix}", names::HIST))
            .copied()
            .unwrap_or(0)
    };
    HistogramCounts {
        buckets: (0..=bounds.len()).map(|i| get(&format!("b:{i}"))).collect(),
        sum_us: get("sum_us"),
        count: get("count"),
    }
}

/// One process's metrics. Shared (`Arc`) by everything that counts.
pub struct Metrics {
    commands: AtomicU64,
    /// Indexed like [`EndReason::ALL`].
    ended: [AtomicU64; EndReason::ALL.len()],
    queue_wait: Histogram,
    start: Histogram,
    /// Store latency by operation; operations are few and fixed, so the
    /// map only grows at the first call of each.
    store: RwLock<HashMap<&'static str, Arc<Histogram>>>,
    /// Webhook deliveries by result (not on the command path).
    webhooks: Mutex<BTreeMap<String, u64>>,
    tunnels_open: AtomicI64,
    /// Whether this process's slot queue is the grid's queue (a standalone
    /// grid); a node's is not: its queue waits are measured at the claim.
    local_queue: AtomicBool,
    /// The grid-wide aggregation, for processes of a cluster.
    pub(crate) flushed: flush::Flushed,
    /// Rung at each session start: a started session is listed by then, and
    /// the timeout watcher, which sleeps until a deadline, looks at it.
    started_alarm: std::sync::OnceLock<Arc<crate::session::Alarm>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            commands: AtomicU64::new(0),
            ended: std::array::from_fn(|_| AtomicU64::new(0)),
            queue_wait: Histogram::new(WAIT_BUCKETS_US),
            start: Histogram::new(WAIT_BUCKETS_US),
            store: RwLock::default(),
            webhooks: Mutex::default(),
            tunnels_open: AtomicI64::new(0),
            local_queue: AtomicBool::new(true),
            flushed: flush::Flushed::default(),
            started_alarm: std::sync::OnceLock::new(),
        }
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Arc<Self> {
        Arc::new(Metrics::default())
    }

    /// A command was proxied to a driver.
    #[inline]
    pub fn command(&self) {
        self.commands.fetch_add(1, Ordering::Relaxed);
    }

    /// A session (or a request that never got one) ended for `reason`.
    pub fn session_ended(&self, reason: EndReason) {
        if let Some(i) = EndReason::ALL.iter().position(|r| *r == reason) {
            self.ended[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A session started, `took` after its slot was granted.
    pub fn session_started(&self, took: Duration) {
        self.start.observe(took);
        if let Some(alarm) = self.started_alarm.get() {
            alarm.ring();
        }
    }

    /// Rings `alarm` at every session start from now on (once set).
    pub(crate) fn on_session_started(&self, alarm: Arc<crate::session::Alarm>) {
        let _ = self.started_alarm.set(alarm);
    }

    /// A request got a slot after waiting `waited` in the grid's queue.
    pub fn queue_waited(&self, waited: Duration) {
        self.queue_wait.observe(waited);
    }

    /// Whether this process's own slot queue is the grid's queue.
    pub(crate) fn local_queue(&self) -> bool {
        self.local_queue.load(Ordering::Relaxed)
    }

    /// Marks this process as a node: its slot queue is not the grid's.
    pub(crate) fn set_node(&self) {
        self.local_queue.store(false, Ordering::Relaxed);
    }

    /// A store call `op` took `took`.
    pub fn store_call(&self, op: &'static str, took: Duration) {
        let found = self
            .store
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(op)
            .cloned();
        let h = match found {
            Some(h) => h,
            None => self
                .store
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .entry(op)
                .or_insert_with(|| Arc::new(Histogram::new(STORE_BUCKETS_US)))
                .clone(),
        };
        h.observe(took);
    }

    /// A webhook delivery attempt ended with `result` (`delivered`,
    /// `failed`, `disabled`, ...: a small fixed set chosen by the caller).
    pub fn webhook_delivery(&self, result: &str) {
        *self
            .webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(result.to_string())
            .or_default() += 1;
    }

    /// Counts a websocket tunnel as open for as long as the guard lives.
    pub fn tunnel(self: &Arc<Self>) -> TunnelOpen {
        self.tunnels_open.fetch_add(1, Ordering::Relaxed);
        TunnelOpen(self.clone())
    }

    /// Websocket tunnels open in this process now.
    pub fn tunnels_open(&self) -> i64 {
        self.tunnels_open.load(Ordering::Relaxed)
    }

    /// Every counter and histogram of this process since it started, by
    /// name (see [`names`]); zero values are left out.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let mut put = |k: String, v: u64| {
            if v > 0 {
                out.insert(k, v);
            }
        };
        put(
            names::COMMANDS.into(),
            self.commands.load(Ordering::Relaxed),
        );
        for (r, n) in EndReason::ALL.iter().zip(&self.ended) {
            put(
                format!("{}{}", names::ENDED, r.as_str()),
                n.load(Ordering::Relaxed),
            );
        }
        for (result, n) in self
            .webhooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            put(format!("{}{result}", names::WEBHOOK), *n);
        }
        self.queue_wait.snapshot_into(names::QUEUE_WAIT, &mut out);
        self.start.snapshot_into(names::START, &mut out);
        let store = self.store.read().unwrap_or_else(|e| e.into_inner());
        for (op, h) in store.iter() {
            h.snapshot_into(&format!("{}{op}", names::STORE), &mut out);
        }
        out
    }
}

/// An open tunnel, counted until dropped.
pub struct TunnelOpen(Arc<Metrics>);

impl Drop for TunnelOpen {
    fn drop(&mut self) {
        self.0.tunnels_open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_names_every_count() {
        let m = Metrics::new();
        assert!(m.snapshot().is_empty(), "nothing counted, nothing listed");
        m.command();
        m.command();
        m.session_ended(EndReason::Quit);
        m.session_ended(EndReason::IdleTimeout);
        m.session_ended(EndReason::Quit);
        m.webhook_delivery("delivered");
        m.queue_waited(Duration::from_millis(3));
        m.queue_waited(Duration::from_millis(700));
        m.session_started(Duration::from_secs(400));
        m.store_call("get", Duration::from_micros(150));
        let s = m.snapshot();
        let want = [
            ("commands", 2),
            ("ended:idle_timeout", 1),
            ("ended:quit", 2),
            ("hist:queue_wait:b:0", 1),
            ("hist:queue_wait:b:7", 1),
            ("hist:queue_wait:count", 2),
            ("hist:queue_wait:sum_us", 703_000),
            ("hist:start:b:15", 1),
            ("hist:start:count", 1),
            ("hist:start:sum_us", 400_000_000),
            ("hist:store:get:b:1", 1),
            ("hist:store:get:count", 1),
            ("hist:store:get:sum_us", 150),
            ("webhook:delivered", 1),
        ];
        let got: Vec<(&str, u64)> = s.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(got, want);
        let h = histogram_of(&s, "queue_wait", WAIT_BUCKETS_US);
        assert_eq!(h.count, 2);
        assert_eq!(h.buckets.len(), WAIT_BUCKETS_US.len() + 1);
        assert_eq!((h.buckets[0], h.buckets[7]), (1, 1));
    }

    #[test]
    fn tunnels_count_while_open() {
        let m = Metrics::new();
        let a = m.tunnel();
        let b = m.tunnel();
        assert_eq!(m.tunnels_open(), 2);
        drop(a);
        assert_eq!(m.tunnels_open(), 1);
        drop(b);
        assert_eq!(m.tunnels_open(), 0);
    }
}
