//! The grid's own account of a session's life (see
//! [`gridiron_domain::timeline`]): steps recorded from the request to the
//! end, written as the session's `timeline.json` artifact when it ends.

use crate::session::Session;
use gridiron_domain::timeline::{document, Step};
use gridiron_store::now_ms;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The name of the timeline artifact in a session's outbox.
pub const TIMELINE_FILE: &str = "timeline.json";

/// A session's steps so far; clones share them, so a request's steps (queued,
/// slot granted) carry over into the session it becomes.
#[derive(Clone, Default)]
pub struct Timeline(Arc<Mutex<Vec<Step>>>);

impl Timeline {
    /// A timeline whose first step is `name` (now).
    pub fn starting(name: &'static str, detail: Option<Value>) -> Timeline {
        let t = Timeline::default();
        t.step(name, detail);
        t
    }

    /// Records step `name` now.
    pub fn step(&self, name: &'static str, detail: Option<Value>) {
        let step = Step {
            at_ms: now_ms(),
            name,
            detail,
        };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(step);
    }

    /// The steps so far, in order.
    pub fn steps(&self) -> Vec<Step> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Makes `session` write its timeline into its outbox when it ends (an end
/// hook: after its processes are gone, before its artifacts are collected).
pub(crate) fn keep_on_end(session: &Arc<Session>) {
    // Weak: the hook lives in the session it writes about.
    let weak = Arc::downgrade(session);
    session.on_end(Box::new(move || {
        Box::pin(async move {
            let Some(session) = weak.upgrade() else {
                return;
            };
            session.timeline.step("timeline_written", None);
            let doc = document(
                &session.id,
                &session.timeline.steps(),
                session.command_count(),
            );
            let outbox = crate::artifacts::outbox(session.dir());
            let written = async {
                tokio::fs::create_dir_all(&outbox).await?;
                let body = serde_json::to_vec_pretty(&doc).map_err(std::io::Error::other)?;
                tokio::fs::write(outbox.join(TIMELINE_FILE), body).await
            };
            if let Err(e) = written.await {
                tracing::warn!(session = %session.id, error = %e, "could not write the session's timeline");
            }
        })
    }));
}
