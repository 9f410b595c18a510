//! One subscriber's view of the events: what it missed since the id it
//! resumes from (read from the log), then the live feed; filtered, limited
//! to what the caller may see, never repeating an event.

use super::feed::EventFeed;
use crate::auth::Caller;
use gridiron_domain::events::{id_order, visible_to, EventFilter};
use gridiron_store::{Event, StoreError};
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Events read from the log at once while catching up.
const BACKLOG_BATCH: usize = 500;

/// Why a subscription ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// The subscriber read too slowly and fell behind the feed; it may
    /// resume from the last event it got (`None`: it got none).
    TooSlow(Option<String>),
    /// The grid is stopping.
    Closed,
    /// The event log could not be read.
    Store(String),
}

impl Dropped {
    /// The reason given to the client.
    pub fn reason(&self) -> String {
        match self {
            Dropped::TooSlow(Some(id)) => {
                format!("slow consumer: fell behind the feed; resume after event {id}")
            }
            Dropped::TooSlow(None) => "slow consumer: fell behind the feed".to_string(),
            Dropped::Closed => "the grid is shutting down".to_string(),
            Dropped::Store(e) => format!("the event log cannot be read: {e}"),
        }
    }
}

impl From<StoreError> for Dropped {
    fn from(e: StoreError) -> Self {
        Dropped::Store(e.to_string())
    }
}

/// A subscriber's events, in order.
pub struct Subscription {
    feed_log: Arc<dyn gridiron_store::EventLog>,
    tasks: crate::tasks::Tasks,
    live: broadcast::Receiver<Arc<Event>>,
    filter: EventFilter,
    caller: Caller,
    /// The last event passed on (or skipped), so none comes twice.
    last: Option<String>,
    /// Still reading the log after `last`, before the live feed.
    catching_up: bool,
    pending: VecDeque<Arc<Event>>,
}

impl Subscription {
    /// Events for `caller` matching `filter`: those after `resume` (an
    /// event id; `None`: only new ones), then new ones as they happen.
    pub async fn start(
        feed: &EventFeed,
        filter: EventFilter,
        caller: Caller,
        resume: Option<String>,
    ) -> Subscription {
        // Subscribed before the log is read: nothing falls between the two.
        let live = feed.subscribe().await;
        Subscription {
            feed_log: feed.log().clone(),
            tasks: feed.tasks().clone(),
            live,
            filter,
            caller,
            catching_up: resume.is_some(),
            last: resume,
            pending: VecDeque::new(),
        }
    }

    fn wanted(&self, e: &Event) -> bool {
        let subject = e.subject();
        self.filter.matches(&subject)
            && visible_to(&subject, self.caller.admin, self.caller.key.as_deref())
    }

    fn is_new(&self, e: &Event) -> bool {
        self.last
            .as_deref()
            .is_none_or(|last| id_order(&e.id, last) == Ordering::Greater)
    }

    /// The next event, waiting for one; `Err` when the subscription is over.
    pub async fn next(&mut self) -> Result<Arc<Event>, Dropped> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.last = Some(e.id.clone());
                if self.wanted(&e) {
                    return Ok(e);
                }
                continue;
            }
            if self.catching_up {
                let batch = self
                    .feed_log
                    .read_after(self.last.as_deref(), BACKLOG_BATCH, Duration::ZERO)
                    .await?;
                self.catching_up = batch.len() == BACKLOG_BATCH;
                self.pending.extend(batch.into_iter().map(Arc::new));
                continue;
            }
            let received = tokio::select! {
                received = self.live.recv() => received,
                _ = self.tasks.stopped() => return Err(Dropped::Closed),
            };
            match received {
                Ok(e) if self.is_new(&e) => self.pending.push_back(e),
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    return Err(Dropped::TooSlow(self.last.clone()))
                }
                Err(broadcast::error::RecvError::Closed) => return Err(Dropped::Closed),
            }
        }
    }

    /// The id of the last event passed on or skipped.
    pub fn last_id(&self) -> Option<&str> {
        self.last.as_deref()
    }
}
