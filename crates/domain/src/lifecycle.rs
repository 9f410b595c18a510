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
}

impl EndReason {
    /// Every reason, for parsing and listing.
    pub const ALL: [EndReason; 10] = [
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
}
