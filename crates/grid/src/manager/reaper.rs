//! The reaper: ends sessions whose timeouts are due or whose browser died.

use super::Manager;
use crate::timing::REAPER_TICK;
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
