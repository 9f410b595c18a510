//! The session state machine and the timeout policy.
//!
//! `queued -> provisioning -> running -> terminating -> ended(reason)`; a
//! session can also end straight from `queued` or `provisioning`.

use std::time::Duration;

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The client deleted the session.
    Quit,
    /// No command arrived within the idle timeout.
    IdleTimeout,
    /// The session reached its maximum duration.
    MaxDuration,
    /// The client left before the session was handed over.
    ClientGone,
    /// The driver or browser process died.
    DriverCrashed,
    /// The node hosting the session stopped heartbeating.
    NodeLost,
    /// The driver or browser could not be started.
    FailedToStart,
    /// An operator deleted the session through the API.
    DeletedByApi,
    /// The request waited in the queue longer than allowed.
    QueueTimeout,
    /// The grid shut down (or found the session left over from a previous run).
    Shutdown,
    /// A command took longer than the grid's command timeout: the browser is
    /// stuck, so the session ends rather than hold its slot.
    CommandTimeout,
}

impl EndReason {
    /// Every reason, for parsing and listing.
    pub const ALL: [EndReason; 11] = [
        EndReason::Quit,
        EndReason::IdleTimeout,
        EndReason::MaxDuration,
        EndReason::ClientGone,
        EndReason::DriverCrashed,
        EndReason::NodeLost,
        EndReason::FailedToStart,
        EndReason::DeletedByApi,
        EndReason::QueueTimeout,
        EndReason::Shutdown,
        EndReason::CommandTimeout,
    ];

    /// The stored and logged name.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Quit => "quit",
            EndReason::IdleTimeout => "idle_timeout",
            EndReason::MaxDuration => "max_duration",
            EndReason::ClientGone => "client_gone",
            EndReason::DriverCrashed => "driver_crashed",
            EndReason::NodeLost => "node_lost",
            EndReason::FailedToStart => "failed_to_start",
            EndReason::DeletedByApi => "deleted_by_api",
            EndReason::QueueTimeout => "queue_timeout",
            EndReason::Shutdown => "shutdown",
            EndReason::CommandTimeout => "command_timeout",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Where a running session is in its life. (Before it runs, a request is
/// queued and then provisioning: those steps are the request's, recorded in
/// the store, and a session exists only once its browser answers.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// The client is using it.
    Running,
    /// Ending: processes are being stopped.
    Terminating(EndReason),
    /// Over.
    Ended(EndReason),
}

impl SessionState {
    /// The stored name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Running => "running",
            SessionState::Terminating(_) => "terminating",
            SessionState::Ended(_) => "ended",
        }
    }
}

/// Something that happens to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// Something asked the session to end.
    End(EndReason),
    /// Its processes are gone and its slot is returned.
    CleanedUp,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTransition {
    /// The state the session was in.
    pub from: SessionState,
    /// The event that does not apply to it.
    pub event: SessionEvent,
}

/// The one function that moves a session between states.
///
/// Ending is first-come: once terminating, later end requests are rejected so
/// the first recorded reason is the one kept.
pub fn transition(
    from: SessionState,
    event: SessionEvent,
) -> Result<SessionState, InvalidTransition> {
    use SessionEvent as E;
    use SessionState as S;
    let to = match (from, event) {
        (S::Running, E::End(r)) => S::Terminating(r),
        (S::Terminating(r), E::CleanedUp) => S::Ended(r),
        _ => return Err(InvalidTransition { from, event }),
    };
    Ok(to)
}

/// Timeouts that apply to one running session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest allowed gap between commands.
    pub idle: Duration,
    /// Longest allowed session life, if any.
    pub max_duration: Option<Duration>,
}

impl Timeouts {
    /// The timeouts of a session: what the client asked for, capped at the
    /// operator's. A client may shorten its session's life but never extend
    /// it past what the grid allows (the grid's idle timeout, and its maximum
    /// duration when it has one).
    pub fn capped(
        requested_idle: Option<Duration>,
        requested_max: Option<Duration>,
        grid_idle: Duration,
        grid_max: Option<Duration>,
    ) -> Timeouts {
        Timeouts {
            idle: requested_idle.map_or(grid_idle, |r| r.min(grid_idle)),
            max_duration: match (requested_max, grid_max) {
                (Some(r), Some(g)) => Some(r.min(g)),
                (r, g) => r.or(g),
            },
        }
    }
}

/// Decides whether a running session must end now because of a timeout.
///
/// `since_activity` is the time since the last command finished (or started, if
/// one is still running); a command in flight never counts as idle.
pub fn timeout_due(
    t: Timeouts,
    age: Duration,
    since_activity: Duration,
    in_flight: bool,
) -> Option<EndReason> {
    if t.max_duration.is_some_and(|m| age >= m) {
        return Some(EndReason::MaxDuration);
    }
    if !in_flight && since_activity >= t.idle {
        return Some(EndReason::IdleTimeout);
    }
    None
}

/// How long until [`timeout_due`] would first end the session, if nothing
/// changes meanwhile (no command starts or ends): `None` when no timeout can
/// come (a command runs and there is no maximum duration). A watcher sleeps
/// this long, and is woken early only when the session's activity moves its
/// deadline earlier (a command ending makes the idle clock start).
pub fn next_timeout(
    t: Timeouts,
    age: Duration,
    since_activity: Duration,
    in_flight: bool,
) -> Option<Duration> {
    let max = t.max_duration.map(|m| m.saturating_sub(age));
    let idle = (!in_flight).then(|| t.idle.saturating_sub(since_activity));
    match (max, idle) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a session nobody may have heard of must end now: its start's
/// answer may have been lost with the store's data, so it is kept until
/// `claim_by` (its age by then) for a client that has it, and ended then if
/// nothing used it. `None`: no doubt its client has it.
pub fn unclaimed_due(claim_by: Option<Duration>, age: Duration, used: bool) -> bool {
    claim_by.is_some_and(|g| !used && age >= g)
}

/// How long until [`unclaimed_due`] would end the session if nothing uses it.
pub fn unclaimed_in(claim_by: Option<Duration>, age: Duration, used: bool) -> Option<Duration> {
    claim_by.filter(|_| !used).map(|g| g.saturating_sub(age))
}

#[cfg(test)]
mod tests {
    use super::*;
    use EndReason as R;
    use SessionEvent as E;
    use SessionState as S;

    #[test]
    fn happy_path() {
        let s = transition(S::Running, E::End(R::Quit)).unwrap();
        assert_eq!(s, S::Terminating(R::Quit));
        assert_eq!(transition(s, E::CleanedUp).unwrap(), S::Ended(R::Quit));
    }

    #[test]
    fn first_end_reason_wins() {
        let s = transition(S::Running, E::End(R::DriverCrashed)).unwrap();
        assert!(transition(s, E::End(R::IdleTimeout)).is_err());
        assert_eq!(
            transition(s, E::CleanedUp).unwrap(),
            S::Ended(R::DriverCrashed)
        );
    }

    #[test]
    fn invalid_transitions_are_refused() {
        assert!(transition(S::Running, E::CleanedUp).is_err());
        assert!(transition(S::Ended(R::Quit), E::End(R::Quit)).is_err());
        assert!(transition(S::Ended(R::Quit), E::CleanedUp).is_err());
        assert!(transition(S::Terminating(R::Quit), E::End(R::IdleTimeout)).is_err());
    }

    #[test]
    fn reasons_round_trip() {
        for r in EndReason::ALL {
            assert_eq!(EndReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(EndReason::parse("nope"), None);
    }

    #[test]
    fn an_unconfirmed_session_ends_after_its_grace_unless_used() {
        let s = Duration::from_secs;
        assert!(
            !unclaimed_due(None, s(100), false),
            "a delivered session is never unclaimed"
        );
        assert!(!unclaimed_due(Some(s(10)), s(5), false));
        assert!(unclaimed_due(Some(s(10)), s(10), false));
        assert!(
            !unclaimed_due(Some(s(10)), s(60), true),
            "a used session was claimed"
        );
        assert_eq!(unclaimed_in(Some(s(10)), s(4), false), Some(s(6)));
        assert_eq!(unclaimed_in(Some(s(10)), s(4), true), None);
        assert_eq!(unclaimed_in(None, s(4), false), None);
    }

    #[test]
    fn timeout_policy() {
        let t = Timeouts {
            idle: Duration::from_secs(10),
            max_duration: Some(Duration::from_secs(60)),
        };
        let s = Duration::from_secs;
        assert_eq!(timeout_due(t, s(5), s(5), false), None);
        assert_eq!(timeout_due(t, s(20), s(10), false), Some(R::IdleTimeout));
        assert_eq!(
            timeout_due(t, s(20), s(30), true),
            None,
            "a running command is not idle"
        );
        assert_eq!(timeout_due(t, s(60), s(0), true), Some(R::MaxDuration));
        let no_max = Timeouts {
            max_duration: None,
            ..t
        };
        assert_eq!(timeout_due(no_max, s(100_000), s(1), false), None);
    }

    #[test]
    fn the_next_timeout_is_when_the_policy_first_says_so() {
        let s = Duration::from_secs;
        let t = Timeouts {
            idle: s(10),
            max_duration: Some(s(60)),
        };
        assert_eq!(next_timeout(t, s(5), s(5), false), Some(s(5)), "idle first");
        assert_eq!(next_timeout(t, s(55), s(0), false), Some(s(5)), "max first");
        assert_eq!(next_timeout(t, s(20), s(30), false), Some(s(0)), "overdue");
        assert_eq!(
            next_timeout(t, s(20), s(30), true),
            Some(s(40)),
            "busy: max only"
        );
        let no_max = Timeouts {
            max_duration: None,
            ..t
        };
        assert_eq!(
            next_timeout(no_max, s(99), s(0), true),
            None,
            "busy, no max"
        );
        // Whatever the clocks, the policy agrees: not due before, due at the time given.
        for age in 0..70 {
            for idle_for in 0..=age.min(15) {
                for busy in [false, true] {
                    let (age, idle_for) = (s(age), s(idle_for));
                    let Some(wait) = next_timeout(t, age, idle_for, busy) else {
                        continue;
                    };
                    if wait > Duration::ZERO {
                        assert_eq!(timeout_due(t, age, idle_for, busy), None);
                    }
                    assert!(timeout_due(t, age + wait, idle_for + wait, busy).is_some());
                }
            }
        }
    }

    #[test]
    fn clients_can_only_lower_the_grids_timeouts() {
        let s = Duration::from_secs;
        let t = |idle, max, grid_max| Timeouts::capped(idle, max, s(300), grid_max);
        assert_eq!(t(None, None, Some(s(3600))).idle, s(300));
        assert_eq!(t(Some(s(60)), None, None).idle, s(60));
        assert_eq!(t(Some(s(9999)), None, None).idle, s(300), "capped");
        assert_eq!(t(None, None, Some(s(3600))).max_duration, Some(s(3600)));
        assert_eq!(
            t(None, Some(s(60)), Some(s(3600))).max_duration,
            Some(s(60))
        );
        assert_eq!(
            t(None, Some(s(99_999)), Some(s(3600))).max_duration,
            Some(s(3600)),
            "capped"
        );
        assert_eq!(t(None, Some(s(60)), None).max_duration, Some(s(60)));
        assert_eq!(t(None, None, None).max_duration, None);
    }
}
