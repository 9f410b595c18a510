//! Following the event log live: one task per process reads what is
//! appended (by this process or, through a shared store, by any other) and
//! passes it to every subscriber in memory. A subscriber that falls more
//! than [`FEED_BUFFER`] events behind misses some, and is told so.

use crate::tasks::Tasks;
use gridiron_store::{Event, EventLog};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tracing::warn;

/// Events a subscriber may fall behind before it is dropped.
pub const FEED_BUFFER: usize = 4096;

/// How long one read of the log waits for new events before asking again.
const TAIL_WAIT: Duration = Duration::from_secs(5);

/// Events read from the log at once.
const TAIL_BATCH: usize = 512;

/// Pause after the log could not be read.
const TAIL_RETRY: Duration = Duration::from_secs(1);

/// The live events of a grid, for any number of subscribers.
pub struct EventFeed {
    log: Arc<dyn EventLog>,
    tasks: Tasks,
    tx: broadcast::Sender<Arc<Event>>,
    /// Set once the tail task knows where the log ends; from then on,
    /// everything appended reaches subscribers.
    ready: watch::Sender<bool>,
    started: OnceLock<()>,
}

impl EventFeed {
    /// A feed of `log`, whose tail task (started with the first subscriber)
    /// runs among `tasks`.
    pub fn new(log: Arc<dyn EventLog>, tasks: Tasks) -> EventFeed {
        EventFeed {
            log,
            tasks,
            tx: broadcast::channel(FEED_BUFFER).0,
            ready: watch::Sender::new(false),
            started: OnceLock::new(),
        }
    }

    /// The tasks of the role the feed belongs to.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// The log the feed follows.
    pub fn log(&self) -> &Arc<dyn EventLog> {
        &self.log
    }

    /// Events appended from now on. Every event appended after this returns
    /// reaches the receiver (unless it falls behind); events before are in the log.
    pub async fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.started.get_or_init(|| {
            let log = self.log.clone();
            let tx = self.tx.clone();
            let ready = self.ready.clone();
            let tasks = self.tasks.clone();
            self.tasks
                .spawn_until_stopped(async move { tail(log, tx, ready, tasks).await });
        });
        let rx = self.tx.subscribe();
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
        rx
    }
}

/// Reads the log from its end on, forever, passing each event on.
async fn tail(
    log: Arc<dyn EventLog>,
    tx: broadcast::Sender<Arc<Event>>,
    ready: watch::Sender<bool>,
    tasks: Tasks,
) {
    let mut last = loop {
        match log.last_id().await {
            Ok(last) => break last,
            Err(e) => {
                warn!(error = %e, "cannot read the event log; retrying");
                tokio::time::sleep(TAIL_RETRY).await;
            }
        }
    };
    ready.send_replace(true);
    while !tasks.is_stopping() {
        match log.read_after(last.as_deref(), TAIL_BATCH, TAIL_WAIT).await {
            Ok(events) => {
                for e in events {
                    last = Some(e.id.clone());
                    // Nobody subscribed is fine.
                    let _ = tx.send(Arc::new(e));
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot read the event log; retrying");
                tokio::time::sleep(TAIL_RETRY).await;
            }
        }
    }
}

#[cfg(test)]
impl EventFeed {
    /// Events sent to subscribers and not yet read by every one of them.
    pub(crate) fn unread(&self) -> usize {
        self.tx.len()
    }
}
