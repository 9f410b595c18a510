//! What the grid sees of a session's browser besides its commands: the
//! console log and the HAR of Chromium sessions (a passive observer over a
//! DevTools connection of the grid's own, [`observer`]), and the live view of
//! any session ([`live`]: the DevTools screencast for Chromium, `ffmpeg
//! x11grab` of a session's private X display otherwise).

pub mod cdp;
pub mod console;
pub mod har;
pub mod jpeg;
pub mod live;
pub mod observer;
mod x11grab;

use crate::manager::Manager;
use crate::session::Session;
use bytes::Bytes;
use observer::Observer;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// A session's DevTools observer and live view, as the session holds them.
#[derive(Default)]
pub struct SessionTools {
    /// The observer of a Chromium session, once connected.
    observer: OnceLock<Arc<Observer>>,
    /// The live view's frames while someone watches: watchers subscribe to
    /// it; the capture stops when the last of them leaves.
    live: Mutex<Option<watch::Sender<Option<Bytes>>>>,
}

/// How long a new session may wait for its observer to attach: past it the
/// session goes on without a console log rather than start late.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the observer of `session` if its browser speaks CDP: the console
/// log always, the HAR if the session asked for `recordNetwork`. Returns once
/// its current pages are followed (before the client gets the session).
pub async fn observe(m: &Arc<Manager>, session: &Arc<Session>) {
    let Some(cdp_http) = session.cdp_http.clone() else {
        return;
    };
    let outbox = crate::artifacts::outbox(session.process().dir());
    let record_network = session.options.record_network;
    let started = tokio::time::timeout(ATTACH_TIMEOUT, async {
        let ws = cdp::browser_websocket(m, &cdp_http).await?;
        Observer::start(&ws, &outbox, record_network).await
    })
    .await
    .unwrap_or_else(|_| Err(format!("not attached within {ATTACH_TIMEOUT:?}")));
    match started {
        Ok(obs) => {
            let _ = session.devtools.observer.set(obs.clone());
            session.on_end(Box::new(move || {
                Box::pin(async move { obs.finish().await })
            }));
        }
        Err(e) => warn!(session = %session.id, "no console log or HAR for this session: {e}"),
    }
}

impl SessionTools {
    /// The observer, if the session has one.
    pub fn observer(&self) -> Option<&Arc<Observer>> {
        self.observer.get()
    }
}
