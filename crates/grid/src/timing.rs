//! The grid's fixed timings, in one place.

use std::time::Duration;

/// While sessions run, how often the reaper looks for browsers that died
/// while their driver lives (their exit sets a flag; nothing wakes the reaper).
pub const BROWSER_CHECK: Duration = Duration::from_secs(1);
/// How long shutdown lets session starts under way finish before ending sessions.
pub const SHUTDOWN_START_GRACE: Duration = Duration::from_secs(15);
/// At the end of shutdown, how long the tasks still running get to finish.
pub const TASKS_GRACE: Duration = Duration::from_secs(5);
/// How long the driver may take to close its browser on quit.
pub const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// After a closed window, how long the driver gets to close a browser left
/// with none before the grid checks whether it did.
pub const WINDOW_CLOSE_SETTLE: Duration = Duration::from_millis(200);
/// After a failed command, how long (and how often) the grid looks for the
/// driver's death, which may not have been reaped yet.
pub const CRASH_SETTLE: Duration = Duration::from_millis(500);
/// The pause between two looks within [`CRASH_SETTLE`].
pub const CRASH_SETTLE_STEP: Duration = Duration::from_millis(20);
/// First pause between attempts to remove session directories; doubles each time.
pub const DIR_REMOVE_BACKOFF: Duration = Duration::from_millis(50);
/// Attempts to remove session directories before giving up.
pub const DIR_REMOVE_ATTEMPTS: u32 = 5;
/// How long connecting to a driver may take: a peer that drops packets fails
/// fast instead of after the operating system's timeout.
pub const DRIVER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle pooled connection to a driver is kept.
pub const DRIVER_POOL_IDLE: Duration = Duration::from_secs(60);
/// How long a client's machine may be silent before its TCP connection is
/// probed; with [`KEEPALIVE_INTERVAL`] and [`KEEPALIVE_RETRIES`], a client that
/// vanished without closing its sockets is noticed within about a minute.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
/// The pause between two keepalive probes.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// Unanswered keepalive probes before the connection is dropped.
pub const KEEPALIVE_RETRIES: u32 = 3;
/// After shutdown has ended every session, how long requests still in flight get.
pub const SERVE_GRACE: Duration = Duration::from_secs(3);
/// How long reaching a driver's or node's websocket may take.
pub const TUNNEL_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A store call slower than this counts as an outage (heartbeats may have
/// expired meanwhile).
pub const SLOW_STORE: Duration = Duration::from_secs(1);
/// How often a hub renews its heartbeat and runs a collection round.
pub const HUB_TICK: Duration = Duration::from_millis(500);
/// How long one hub holds the collector's lock: a little less than a tick.
pub const COLLECTOR_LOCK: Duration = Duration::from_millis(450);
/// After a store outage, the least time a hub waits before declaring
/// anything lost (at least one heartbeat TTL).
pub const MIN_SETTLE: Duration = Duration::from_secs(2);
/// How often a waiting request looks for its answer in case an announcement
/// was lost with a connection.
pub const ANSWER_RECHECK: Duration = Duration::from_secs(5);
/// Past the queue deadline, how often a hub looks whether a node's start ended.
pub const START_RECHECK: Duration = Duration::from_millis(250);
/// How long a hub trusts its copy of the node list for routing.
pub const NODE_CACHE: Duration = Duration::from_millis(500);
/// How often a hub looks again for a session's route while the store settles.
pub const ROUTE_RECHECK: Duration = Duration::from_millis(100);
/// How often a node looks at the queue without being told of work (announcements
/// lost while the store was away, pool places freed elsewhere).
pub const QUEUE_RECHECK: Duration = Duration::from_millis(500);
/// Bounds of a node's heartbeat period (a quarter of its TTL).
pub const NODE_BEAT_MIN: Duration = Duration::from_millis(100);
/// See [`NODE_BEAT_MIN`].
pub const NODE_BEAT_MAX: Duration = Duration::from_secs(2);
/// How long a node retries a store write that must not be lost, and the
/// first and longest pause between tries.
pub const STORE_RETRY_FOR: Duration = Duration::from_secs(10);
/// See [`STORE_RETRY_FOR`].
pub const STORE_RETRY_FIRST: Duration = Duration::from_millis(50);
/// See [`STORE_RETRY_FOR`].
pub const STORE_RETRY_MAX: Duration = Duration::from_secs(1);
/// How long the server waits before accepting again after an accept failed
/// for a reason other than the client (out of file descriptors).
/// How often records of sessions ended longer ago than `--retention` are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// How often each hub and node adds its new counts to the grid-wide metrics.
pub const METRICS_FLUSH: Duration = Duration::from_secs(1);
/// How long a hub's published gauges (tunnels open) count without being
/// published again: a hub that died drops out of the sum within it.
pub const METRICS_GAUGE_TTL: Duration = Duration::from_secs(5);
/// How long a session whose start's answer may not have reached its client
/// (the store lost it while it was stored) waits to be used before it ends:
/// a client that got the answer sends its first command at once.
pub const CLAIM_GRACE: Duration = Duration::from_secs(10);
