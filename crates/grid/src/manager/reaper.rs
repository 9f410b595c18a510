//! The reaper: ends sessions whose timeouts are due or whose browser died,
//! and deletes records older than the retention period.

use super::Manager;
use crate::timing::{PRUNE_EVERY, REAPER_TICK};
use gridiron_domain::EndReason;
use std::sync::Weak;
use tracing::info;

/// Checks every session each [`REAPER_TICK`] until the manager is gone.
pub(super) async fn watch_timeouts(m: Weak<Manager>) {
    let mut tick = tokio::time::interval(REAPER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(m) = m.upgrade() else { return };
        for s in m.all_sessions() {
            let reason = match s.timeout_due() {
                Some(r) => {
                    info!(session = %s.id, reason = r.as_str(), "session timed out");
                    r
                }
                // A running command reports the browser's end itself, with the right reason.
                None if !s.command_running() && s.browser_gone() => EndReason::DriverCrashed,
                None => continue,
            };
            let ending = m.clone();
            m.tasks
                .spawn(async move { ending.end(&s.id, reason).await });
        }
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
