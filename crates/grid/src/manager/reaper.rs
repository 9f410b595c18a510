//! The reaper: ends sessions whose timeouts are due or whose browser died,
//! and deletes records older than the retention period.

use super::Manager;
use crate::session::Alarm;
use crate::timing::{BROWSER_CHECK, PRUNE_EVERY};
use gridiron_domain::EndReason;
use std::sync::Weak;
use std::time::Duration;
use tracing::info;

/// Ends sessions whose timeouts are due, until the manager is gone. It
/// sleeps until the earliest timeout of all sessions, and is woken early
/// only when that may have come sooner: a session started, or a session's
/// last command or tunnel ended (its idle clock started). While sessions
/// run, it also looks every [`BROWSER_CHECK`] for browsers that died on their
/// own (a driver's death is watched by the kernel already).
pub(super) async fn watch_timeouts(m: Weak<Manager>) {
    let alarm = Alarm::new();
    match m.upgrade() {
        Some(m) => m.metrics.on_session_started(alarm.clone()),
        None => return,
    }
    loop {
        let Some(m) = m.upgrade() else { return };
        // Deadlines that move while the sessions are looked at ring the alarm.
        alarm.looking();
        let sessions = m.all_sessions();
        let mut next: Option<Duration> = (!sessions.is_empty()).then_some(BROWSER_CHECK);
        for s in sessions {
            s.watched_by(&alarm);
            let reason = match s.timeout_due() {
                Some(r) => {
                    info!(session = %s.id, reason = r.as_str(), "session timed out");
                    r
                }
                // A running command reports the browser's end itself, with the right reason.
                None if !s.command_running() && s.browser_gone() => EndReason::DriverCrashed,
                None => {
                    next = earliest(next, s.next_timeout());
                    continue;
                }
            };
            let ending = m.clone();
            m.tasks
                .spawn(async move { ending.end(&s.id, reason).await });
        }
        alarm.plan(next);
        // Not kept while asleep: the manager may go meanwhile.
        drop(m);
        alarm.sleep(next).await;
    }
}

/// The earlier of two optional waits.
fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Deletes the records of sessions that ended more than `retention` ago, at
/// start and every [`PRUNE_EVERY`], until the manager is gone.
pub(super) async fn prune_records(m: Weak<Manager>) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = m.upgrade() else { return };
        let retention = i64::try_from(m.config.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = gridiron_store::now_ms().saturating_sub(retention);
        match m.store.prune(cutoff).await {
            Ok(0) => {}
            Ok(n) => info!(
                records = n,
                "deleted records older than the retention period"
            ),
            Err(e) => tracing::warn!(error = %e, "deleting old records failed"),
        }
    }
}
