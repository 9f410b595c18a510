//! Appending events without making the grid wait for the store: events go
//! into a queue that one task writes to the log in order, so that one
//! process's events keep the order they happened in.

use crate::tasks::Tasks;
use gridiron_store::{EventLog, NewEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::warn;

/// Events waiting to be written, at most; beyond, new ones are dropped (and
/// logged) rather than let a store outage grow the grid's memory.
const PENDING: usize = 10_000;

/// Where a role's code hands its events.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<NewEvent>,
}

impl EventSink {
    /// A sink writing to `log` from a task of `tasks`. The task writes what
    /// is pending when the tasks are stopped, then ends.
    pub fn start(log: Arc<dyn EventLog>, tasks: &Tasks) -> EventSink {
        let (tx, mut rx) = mpsc::channel::<NewEvent>(PENDING);
        let stopping = tasks.clone();
        tasks.spawn(async move {
            loop {
                let event = tokio::select! {
                    biased;
                    event = rx.recv() => event,
                    _ = stopping.stopped() => None,
                };
                let Some(event) = event else { break };
                write(log.as_ref(), event).await;
            }
            // Stopping: what was emitted before (a shutdown's last session
            // ends among it) is still written.
            while let Ok(event) = rx.try_recv() {
                write(log.as_ref(), event).await;
            }
        });
        EventSink { tx }
    }

    /// Queues `event` for the log; never waits.
    pub fn emit(&self, event: NewEvent) {
        if let Err(e) = self.tx.try_send(event) {
            let kind = match &e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => {
                    ev.kind.clone()
                }
            };
            warn!(
                kind,
                "an event was dropped: the event log is not keeping up"
            );
        }
    }
}

/// Tries to append an event this many times when the store says trying
/// again can help (a dropped connection, a busy database).
const ATTEMPTS: u32 = 3;

/// The pause before the second attempt; it doubles after.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

async fn write(log: &dyn EventLog, event: NewEvent) {
    let mut pause = RETRY_PAUSE;
    for attempt in 1..=ATTEMPTS {
        match log.append(event.clone()).await {
            Ok(_) => return,
            Err(e) if e.retryable() && attempt < ATTEMPTS => {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            Err(e) => {
                // Events are a record for observers: losing one never fails the grid.
                warn!(error = %e, kind = event.kind, "could not record an event");
                return;
            }
        }
    }
}
