//! The live view's capture: one per watched session, shared by its watchers,
//! started by the first and stopped when the last leaves (or the session
//! ends). Chromium sessions are cast through their DevTools observer; a
//! session with a private X display is grabbed from it with ffmpeg.

use super::x11grab::X11Grab;
use crate::manager::Manager;
use crate::session::Session;
use bytes::Bytes;
use gridiron_domain::GridError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;

/// Frames of a watched session: the latest JPEG (`None` before the first).
/// Its `changed()` fails once the capture has ended.
pub type Frames = watch::Receiver<Option<Bytes>>;

/// Captures started so far (ids for the log).
static CAPTURES: AtomicU64 = AtomicU64::new(0);

/// Watches `session`: joins its capture, or starts one. The grid's data
/// directory marks the processes a capture starts (its sweep finds them).
pub async fn watch(m: &Arc<Manager>, session: &Arc<Session>) -> Result<Frames, GridError> {
    let observer = super::observer_of(m, session).await.map_err(|e| {
        GridError::new(
            gridiron_domain::ErrorCode::UnknownError,
            gridiron_domain::Origin::Driver,
            format!("the live view could not reach the browser's DevTools: {e}"),
        )
    })?;
    let data_dir = &m.config.data_dir;
    let mut slot = session
        .devtools
        .live
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(tx) = slot.as_ref() {
        // Subscribed under the lock: the capture, deciding under it whether
        // its last watcher left, sees this one.
        return Ok(tx.subscribe());
    }
    let (tx, rx) = watch::channel(None);
    let source = if let Some(obs) = observer {
        if !obs.start_frames(tx.clone()) {
            return Err(GridError::invalid_session(format!(
                "session {} has ended",
                session.id
            )));
        }
        Source::Cdp(obs)
    } else if let Some(display) = session.process().display() {
        let grab = X11Grab::start(&display, data_dir, &session.id, tx.clone()).map_err(|e| {
            GridError::new(
                gridiron_domain::ErrorCode::UnknownError,
                gridiron_domain::Origin::Grid,
                format!("the live view could not start ffmpeg: {e}"),
            )
        })?;
        Source::X11(grab)
    } else {
        return Err(GridError::invalid_argument(format!(
            "session {} has no live view: it is not a Chromium session and shows on no display \
             of its own (ask for recordVideo)",
            session.id
        )));
    };
    let id = CAPTURES.fetch_add(1, Ordering::Relaxed) + 1;
    info!(session = %session.id, capture = id, source = source.name(), "live view started");
    *slot = Some(tx.clone());
    drop(slot);
    tokio::spawn(run(session.clone(), tx, source, id));
    Ok(rx)
}

/// Where a capture's frames come from.
enum Source {
    /// The DevTools screencast of the session's observer.
    Cdp(Arc<super::observer::Observer>),
    /// ffmpeg grabbing the session's display.
    X11(X11Grab),
}

impl Source {
    fn name(&self) -> &'static str {
        match self {
            Source::Cdp(_) => "devtools",
            Source::X11(_) => "x11grab",
        }
    }

    /// Resolves when the source can give no more frames (browser or display gone).
    async fn gone(&mut self) {
        match self {
            Source::Cdp(obs) => {
                let mut ended = obs.ended();
                let _ = ended.wait_for(|e| *e).await;
            }
            Source::X11(grab) => grab.exited().await,
        }
    }

    async fn stop(self) {
        match self {
            Source::Cdp(obs) => obs.stop_frames(),
            Source::X11(grab) => grab.stop().await,
        }
    }
}

/// Runs a capture until its last watcher leaves or its source is gone.
async fn run(session: Arc<Session>, tx: watch::Sender<Option<Bytes>>, mut source: Source, id: u64) {
    loop {
        tokio::select! {
            _ = tx.closed() => {}
            _ = source.gone() => {}
        }
        let mut slot = session
            .devtools
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        // A watcher that came meanwhile keeps it going (unless the source is gone).
        let gone = futures_util::FutureExt::now_or_never(source.gone()).is_some();
        if tx.receiver_count() > 0 && !gone {
            continue;
        }
        // Dropping the slot's sender (and `tx` below) ends every watcher's stream.
        *slot = None;
        break;
    }
    source.stop().await;
    info!(session = %session.id, capture = id, "live view stopped");
}
