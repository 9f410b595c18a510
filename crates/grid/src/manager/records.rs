//! What the manager writes to and reads from the store.

use super::Manager;
use crate::backend::NotRunning;
use crate::tasks::Tasks;
use gridiron_domain::{EndReason, GridError, GridOptions};
use gridiron_store::{now_ms, NewSession, Store, StoreError};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

impl Manager {
    /// Writes the records of running sessions the store no longer has (it
    /// lost its data). A session the store has as ended is ended here too:
    /// it never comes back.
    pub async fn rewrite_records(self: &Arc<Self>) {
        for s in self.all_sessions() {
            match self.store.get(&s.id).await {
                Ok(Some(rec)) => {
                    if let Some(reason) = rec.end_reason {
                        self.end(&s.id, reason).await;
                    }
                }
                Err(_) => {}
                Ok(None) => {
                    let new = NewSession {
                        id: s.id.clone(),
                        browser: s.browser.clone(),
                        requested_caps: Value::Null,
                        grid_options: s.options.to_json(),
                        created_at: s.started_at_ms,
                        owner: s.owner.clone(),
                    };
                    self.record("insert", self.store.insert(new, false).await);
                    self.record(
                        "mark_running",
                        self.store
                            .mark_running(&s.id, Value::Null, s.started_at_ms)
                            .await,
                    );
                }
            }
        }
    }

    /// The error for a session id that is not running, saying why if the store knows.
    pub async fn unknown_session(&self, id: &str) -> GridError {
        self.not_running(id).await.error(id)
    }

    /// Why session `id` is not running, as far as the store knows.
    pub(crate) async fn not_running(&self, id: &str) -> NotRunning {
        let ending = self
            .ending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned();
        if let Some((reason, owner)) = ending {
            // Ended a moment ago; its record is still on its way to the store.
            return NotRunning::Ended(reason, owner);
        }
        NotRunning::of(self.store.as_ref(), id)
            .await
            .unwrap_or(NotRunning::Unknown)
            .local()
    }

    /// Records a session whose processes just started. The returned future
    /// resolves once the record is in the store; awaiting it is optional (the
    /// write is queued either way).
    pub(super) fn record_new(
        &self,
        id: &str,
        browser: &str,
        requested: Value,
        options: &GridOptions,
        owner: Option<String>,
    ) -> Written {
        let new = NewSession {
            id: id.to_string(),
            browser: browser.to_string(),
            requested_caps: requested,
            grid_options: options.to_json(),
            created_at: now_ms(),
            owner,
        };
        self.records.write(Write::Insert { new, queued: false })
    }

    /// Logs a failed store write: a record is lost, the session goes on.
    pub(super) fn record(&self, op: &str, r: Result<(), StoreError>) {
        log_failed(op, r);
    }
}

fn log_failed(op: &str, r: Result<(), StoreError>) {
    if let Err(e) = r {
        warn!(op, error = %e, "store write failed");
    }
}

/// One write of a session's record.
pub(crate) enum Write {
    /// A new record (of a session starting, or of a request that ended in the queue).
    Insert {
        /// The record.
        new: NewSession,
        /// Whether the request waited in the queue.
        queued: bool,
    },
    /// The driver granted the session.
    Running {
        /// Session id.
        id: String,
        /// What the driver granted.
        caps: Value,
        /// Unix ms.
        at: i64,
    },
    /// The session (or request) ended.
    Ended {
        /// Session id.
        id: String,
        /// Why.
        reason: EndReason,
        /// Unix ms.
        at: i64,
        /// Commands it ran.
        commands: u64,
    },
}

/// Resolves once a queued write is in the store (or has failed and been logged).
pub(crate) struct Written(oneshot::Receiver<()>);

impl std::future::Future for Written {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::pin::Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Session records are written by one task, in the order the lifecycle made
/// them, so starting, ending and the next session never wait for the store.
///
/// What a crash can cost: a session's record is inserted before its client
/// is told the session exists (the write runs while the browser starts, so
/// it adds no time), and later writes are queued in order. A grid that dies
/// with writes still queued loses only the newest state of records that
/// exist; the next start closes every record left unfinished
/// ([`Store::close_unfinished`]), so no session goes unrecorded.
#[derive(Clone)]
pub(crate) struct RecordWriter {
    tx: mpsc::UnboundedSender<(Write, oneshot::Sender<()>)>,
}

impl RecordWriter {
    /// A writer into `store`, run by a task of `tasks` that writes what is
    /// still queued when the tasks are stopped, then ends.
    pub(crate) fn start(store: Arc<dyn Store>, tasks: &Tasks) -> RecordWriter {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Write, oneshot::Sender<()>)>();
        let stopping = tasks.clone();
        tasks.spawn(async move {
            loop {
                let next = tokio::select! {
                    biased;
                    next = rx.recv() => next,
                    _ = stopping.stopped() => None,
                };
                let Some((write, done)) = next else { break };
                apply(store.as_ref(), write).await;
                let _ = done.send(());
            }
            // Stopping: the ends of the last sessions are among what is queued.
            rx.close();
            while let Some((write, done)) = rx.recv().await {
                apply(store.as_ref(), write).await;
                let _ = done.send(());
            }
        });
        RecordWriter { tx }
    }

    /// Queues `write`; never waits.
    pub(crate) fn write(&self, write: Write) -> Written {
        let (done, written) = oneshot::channel();
        if let Err(mpsc::error::SendError((w, _))) = self.tx.send((write, done)) {
            // Only after shutdown has finished; nothing is left to write into.
            warn!(op = w.op(), "a record was written after the grid stopped");
        }
        Written(written)
    }
}

impl Write {
    fn op(&self) -> &'static str {
        match self {
            Write::Insert { .. } => "insert",
            Write::Running { .. } => "mark_running",
            Write::Ended { .. } => "mark_ended",
        }
    }
}

/// Writes one record change, retried while the store is unreachable (it may
/// be restarting): later writes wait behind it, so the order holds and a
/// store that comes back within [`crate::timing::STORE_RETRY_FOR`] loses nothing.
async fn apply(store: &dyn Store, write: Write) {
    // A write it gives up on is logged there: a record is lost, the grid goes on.
    let _ = crate::store_retry::retry_store(write.op(), || async {
        match &write {
            Write::Insert { new, queued } => store.insert(new.clone(), *queued).await,
            Write::Running { id, caps, at } => store.mark_running(id, caps.clone(), *at).await,
            Write::Ended {
                id,
                reason,
                at,
                commands,
            } => store.mark_ended(id, *reason, *at, *commands).await,
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridiron_store::MemoryStore;
    use serde_json::json;

    fn insert(id: &str) -> Write {
        Write::Insert {
            new: NewSession {
                id: id.into(),
                browser: "chrome".into(),
                requested_caps: json!({}),
                grid_options: json!({}),
                created_at: 1,
                owner: None,
            },
            queued: false,
        }
    }

    fn ended(id: &str) -> Write {
        Write::Ended {
            id: id.into(),
            reason: EndReason::Quit,
            at: 3,
            commands: 7,
        }
    }

    #[tokio::test]
    async fn writes_land_in_the_order_they_were_made() {
        let store = Arc::new(MemoryStore::new());
        let tasks = Tasks::default();
        let w = RecordWriter::start(store.clone(), &tasks);
        // Queued back to back without waiting: a running mark after the end
        // would bring an ended session back to life.
        drop(w.write(insert("s")));
        drop(w.write(Write::Running {
            id: "s".into(),
            caps: json!({"browserName": "chrome"}),
            at: 2,
        }));
        w.write(ended("s")).await;
        let rec = store.get("s").await.unwrap().expect("recorded");
        assert_eq!(rec.end_reason, Some(EndReason::Quit));
        assert_eq!(rec.started_at, Some(2));
        assert_eq!(rec.command_count, 7);
        tasks.close(std::time::Duration::from_secs(5)).await;
    }

    #[tokio::test]
    async fn what_is_queued_when_the_grid_stops_is_still_written() {
        let store = Arc::new(MemoryStore::new());
        let tasks = Tasks::default();
        let w = RecordWriter::start(store.clone(), &tasks);
        for i in 0..50 {
            drop(w.write(insert(&format!("s{i}"))));
            drop(w.write(ended(&format!("s{i}"))));
        }
        assert!(tasks.close(std::time::Duration::from_secs(5)).await);
        for i in 0..50 {
            let rec = store
                .get(&format!("s{i}"))
                .await
                .unwrap()
                .expect("recorded");
            assert_eq!(rec.end_reason, Some(EndReason::Quit), "s{i}");
        }
    }
}
