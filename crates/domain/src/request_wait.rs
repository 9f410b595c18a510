//! How a hub waits for the answer to a request it queued: what it does each
//! time it looks at the request, given what it saw and how long it has
//! waited. The hub only carries these decisions out.

use std::time::Duration;

/// How long a request may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    /// How long it may wait in the queue for a node.
    pub queue: Duration,
    /// How long, after that, a node that claimed it may take to start it.
    pub start: Duration,
}

impl WaitLimits {
    /// Whether the queue time is over after `waited`.
    pub fn queue_over(&self, waited: Duration) -> bool {
        waited >= self.queue
    }

    /// Whether even a start under way has had its time after `waited`.
    pub fn start_over(&self, waited: Duration) -> bool {
        waited >= self.queue.saturating_add(self.start)
    }
}

/// What the hub saw when it looked at its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Waiting in the queue, or being started by a node.
    Pending,
    /// A node answered it.
    Answered,
    /// It was cancelled (its client left, or it was withdrawn).
    Cancelled,
    /// The store does not know it (it lost its data).
    Missing,
    /// The store could not be read.
    StoreFailed,
}

/// What the hub does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep waiting for an announcement or the next look.
    Wait,
    /// Look for the answer again at once.
    TakeAnswer,
    /// Put the request in the queue again (the store lost it).
    Requeue,
    /// Cancel it for the queue timeout; `hard` also cancels a start under way.
    Cancel {
        /// Whether a node's start under way is cut off too.
        hard: bool,
    },
    /// Give up: the request was withdrawn.
    FailWithdrawn,
    /// Give up: the store lost the request and there is no time to queue it again.
    FailLost,
    /// Give up: the store has been failing past every deadline.
    FailStore,
}

/// The next step after seeing `seen`, having waited `waited` since queueing.
pub fn next(seen: Seen, waited: Duration, limits: WaitLimits) -> Next {
    let queue_over = limits.queue_over(waited);
    match seen {
        // Answered just after the hub looked for the answer: take it.
        Seen::Answered => Next::TakeAnswer,
        Seen::Cancelled => Next::FailWithdrawn,
        Seen::Missing if queue_over => Next::FailLost,
        Seen::Missing => Next::Requeue,
        Seen::Pending | Seen::StoreFailed if !queue_over => Next::Wait,
        Seen::Pending => Next::Cancel {
            hard: limits.start_over(waited),
        },
        Seen::StoreFailed if limits.start_over(waited) => Next::FailStore,
        Seen::StoreFailed => Next::Wait,
    }
}

/// Where a cancelled request stood, as the store answered the cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelSeen {
    /// It left the queue.
    Removed,
    /// A node is starting it (only a soft cancel leaves it so).
    WhileStarting,
    /// It had been answered meanwhile.
    Answered,
    /// The store does not know it.
    Missing,
    /// The cancel failed.
    StoreFailed,
}

/// What a cancel for the queue timeout leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCancel {
    /// The answer arrived in time after all: hand it to the client.
    Deliver,
    /// A node is starting it: wait for that start (until the hard deadline).
    Wait,
    /// The request timed out.
    TimedOut,
}

/// The outcome of cancelling for the queue timeout (`hard` as [`Next::Cancel`] said).
pub fn after_cancel(seen: CancelSeen, hard: bool) -> AfterCancel {
    match seen {
        CancelSeen::Answered => AfterCancel::Deliver,
        CancelSeen::WhileStarting if !hard => AfterCancel::Wait,
        // A failed cancel is tried again at the next look.
        CancelSeen::StoreFailed => AfterCancel::Wait,
        CancelSeen::WhileStarting | CancelSeen::Removed | CancelSeen::Missing => {
            AfterCancel::TimedOut
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: WaitLimits = WaitLimits {
        queue: Duration::from_secs(10),
        start: Duration::from_secs(5),
    };
    const ALL_SEEN: [Seen; 5] = [
        Seen::Pending,
        Seen::Answered,
        Seen::Cancelled,
        Seen::Missing,
        Seen::StoreFailed,
    ];

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn every_sighting_in_every_period() {
        // (seen, before the queue deadline, between the deadlines, past both)
        let table = [
            (
                Seen::Pending,
                Next::Wait,
                Next::Cancel { hard: false },
                Next::Cancel { hard: true },
            ),
            (
                Seen::Answered,
                Next::TakeAnswer,
                Next::TakeAnswer,
                Next::TakeAnswer,
            ),
            (
                Seen::Cancelled,
                Next::FailWithdrawn,
                Next::FailWithdrawn,
                Next::FailWithdrawn,
            ),
            (Seen::Missing, Next::Requeue, Next::FailLost, Next::FailLost),
            (Seen::StoreFailed, Next::Wait, Next::Wait, Next::FailStore),
        ];
        assert_eq!(table.len(), ALL_SEEN.len());
        for (seen, early, between, late) in table {
            assert_eq!(next(seen, secs(3), LIMITS), early, "{seen:?} early");
            assert_eq!(next(seen, secs(12), LIMITS), between, "{seen:?} between");
            assert_eq!(next(seen, secs(20), LIMITS), late, "{seen:?} late");
        }
    }

    #[test]
    fn deadlines_are_inclusive() {
        assert_eq!(next(Seen::Pending, secs(9), LIMITS), Next::Wait);
        assert_eq!(
            next(Seen::Pending, secs(10), LIMITS),
            Next::Cancel { hard: false }
        );
        assert_eq!(
            next(Seen::Pending, secs(15), LIMITS),
            Next::Cancel { hard: true }
        );
        assert_eq!(next(Seen::Missing, secs(10), LIMITS), Next::FailLost);
    }

    #[test]
    fn no_start_time_means_a_hard_cancel_at_the_queue_deadline() {
        let limits = WaitLimits {
            queue: secs(1),
            start: Duration::ZERO,
        };
        assert_eq!(
            next(Seen::Pending, secs(1), limits),
            Next::Cancel { hard: true }
        );
    }

    #[test]
    fn every_cancel_outcome() {
        let table = [
            (
                CancelSeen::Removed,
                AfterCancel::TimedOut,
                AfterCancel::TimedOut,
            ),
            (
                CancelSeen::WhileStarting,
                AfterCancel::Wait,
                AfterCancel::TimedOut,
            ),
            (
                CancelSeen::Answered,
                AfterCancel::Deliver,
                AfterCancel::Deliver,
            ),
            (
                CancelSeen::Missing,
                AfterCancel::TimedOut,
                AfterCancel::TimedOut,
            ),
            (
                CancelSeen::StoreFailed,
                AfterCancel::Wait,
                AfterCancel::Wait,
            ),
        ];
        for (seen, soft, hard) in table {
            assert_eq!(after_cancel(seen, false), soft, "{seen:?} soft");
            assert_eq!(after_cancel(seen, true), hard, "{seen:?} hard");
        }
    }
}
