//! The grid's fixed timings, in one place.

use std::time::Duration;

/// How often the reaper looks for timed-out and crashed sessions.
pub const REAPER_TICK: Duration = Duration::from_millis(250);
/// How long shutdown lets session starts under way finish before ending sessions.
pub const SHUTDOWN_START_GRACE: Duration = Duration::from_secs(15);
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
