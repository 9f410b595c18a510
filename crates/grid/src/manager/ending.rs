//! Ending sessions, whatever the reason, and noticing crashed browsers.

use super::records::Write;
use super::Manager;
use crate::session::Session;
use gridiron_domain::events;
use gridiron_domain::lifecycle::SessionEvent;
use gridiron_domain::EndReason;
use gridiron_store::{now_ms, NewEvent};
use std::sync::Arc;
use tracing::{info, warn};

impl Manager {
    /// Ends a session: stops its processes, returns its slot, records why.
    /// Only the first call for a session does anything.
    pub async fn end(self: &Arc<Self>, id: &str, reason: EndReason) {
        if let Some(session) = self.begin_end(id, reason) {
            self.finish_end(session, reason).await;
        }
    }

    /// First half of ending: claims the session for `reason` and unlists it, so
    /// new commands fail at once and no other end can start. `None` if it is
    /// not running or already ending.
    pub fn begin_end(&self, id: &str, reason: EndReason) -> Option<Arc<Session>> {
        let session = self.session(id)?;
        if !session.apply(SessionEvent::End(reason)) {
            return None;
        }
        session.timeline.step(
            "ending",
            Some(serde_json::json!({ "reason": reason.as_str() })),
        );
        // Before it leaves the list: an artifact list never sees it neither
        // running nor being collected.
        self.artifacts.begin_collecting(id);
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        self.ending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), (reason, session.owner.clone()));
        Some(session)
    }

    /// Second half of ending: stops the processes, returns the slot, records it.
    /// Runs in a task of its own, so a caller that is cancelled (its client hung
    /// up) cannot leave a session half ended.
    pub async fn finish_end(self: &Arc<Self>, session: Arc<Session>, reason: EndReason) {
        let _ = self.end_in_background(session, reason).cleaned_up.await;
    }

    /// Second half of ending, answered before it is done: the session's
    /// processes are killed, its slot is free and its end is queued for the
    /// store when this returns. The returned [`Ending`] says when the record is
    /// written (what whoever answers a client for the end awaits, so any
    /// reader of the store sees the end once the client has seen it); reaping,
    /// sweeps, file removal and the event follow in a task of their own.
    pub(crate) fn end_in_background(
        self: &Arc<Self>,
        session: Arc<Session>,
        reason: EndReason,
    ) -> Ending {
        let process = session.take_resources().map(|(process, permit)| {
            // Killed at once, so the slot can serve the next session now.
            process.kill();
            drop(permit);
            session.timeline.step("processes_killed", None);
            // A slot came free: a warm session may be started in it.
            self.warm.changed();
            process
        });
        // Queued now, behind the session's earlier writes: the record ends
        // without waiting for the clean-up.
        let commands = session.command_count();
        let written = self.records.write(Write::Ended {
            id: session.id.clone(),
            reason,
            at: now_ms(),
            commands,
        });
        let (recorded_tx, recorded) = tokio::sync::oneshot::channel();
        let m = self.clone();
        let cleaned_up = self.tasks.spawn(async move {
            written.await;
            session.timeline.step("end_recorded", None);
            // The store answers for it from now on.
            m.ending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&session.id);
            // Counted once recorded: whoever sees the count finds the record.
            m.metrics.session_ended(reason);
            let _ = recorded_tx.send(());
            if let Some(process) = process {
                // What the session leaves behind is completed and kept before
                // its directory is removed.
                process.finish_outputs().await;
                session.timeline.step("outputs_finished", None);
                for hook in session.take_end_hooks() {
                    hook().await;
                }
                m.collect_artifacts(&session, &crate::artifacts::outbox(process.dir()))
                    .await;
                // Listed complete now, not after the processes are reaped.
                m.artifacts.done_collecting(&session.id);
                process.shutdown().await;
            }
            m.artifacts.done_collecting(&session.id);
            session.apply(SessionEvent::CleanedUp);
            info!(session = %session.id, reason = reason.as_str(), commands, "session ended");
            m.emit(
                NewEvent::now(events::SESSION_ENDED)
                    .session(&session.id)
                    .owner(session.owner.as_deref())
                    .with("reason", reason.as_str())
                    .with("commands", commands),
            );
            if let Some(f) = m.end_listener.get() {
                f(&session.id, reason);
            }
        });
        Ending {
            recorded,
            cleaned_up,
        }
    }

    /// Whether the session's driver or browser process has died. Cheap: the
    /// session's process handle keeps this up to date as processes exit.
    pub fn browser_gone(&self, session: &Session) -> bool {
        session.browser_gone()
    }

    /// Ends the session as `reason` if its browser has died; `true` if it had.
    pub async fn end_if_browser_gone(
        self: &Arc<Self>,
        session: &Session,
        reason: EndReason,
    ) -> bool {
        if !self.browser_gone(session) {
            return false;
        }
        warn!(session = %session.id, reason = reason.as_str(), "browser process is gone");
        self.end(&session.id, reason).await;
        true
    }
}

/// A session's end in progress (see [`Manager::end_in_background`]).
pub(crate) struct Ending {
    /// Resolves once the end is in the store (or its write failed and was logged).
    pub recorded: tokio::sync::oneshot::Receiver<()>,
    /// Resolves once the processes are reaped and the end is announced.
    pub cleaned_up: tokio::task::JoinHandle<()>,
}

impl Ending {
    /// Waits until the end is recorded; the clean-up goes on regardless.
    pub async fn recorded(self) {
        let _ = self.recorded.await;
    }
}
