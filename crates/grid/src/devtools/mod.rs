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
mod outbox;
mod x11grab;

use crate::manager::Manager;
use crate::session::Session;
use bytes::Bytes;
use observer::Observer;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// A session's DevTools observer and live view, as the session holds them.
#[derive(Default)]
pub struct SessionTools {
    /// The observer of a Chromium session, once connected.
    observer: tokio::sync::OnceCell<Arc<Observer>>,
    /// The live view's frames while someone watches: watchers subscribe to
    /// it; the capture stops when the last of them leaves.
    live: Mutex<Option<watch::Sender<Option<Bytes>>>>,
}

/// How long a new session may wait for its observer to attach: past it the
/// session goes on without a console log rather than start late.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Starts the observer of `session` if its browser speaks CDP: the console
/// log unless the session said `consoleLog: false`, the HAR if it asked for
/// `recordNetwork`. Returns once its current pages are followed (before the
/// client gets the session).
pub async fn observe(m: &Arc<Manager>, session: &Arc<Session>) {
    let Some(cdp_http) = session.cdp_http.clone() else {
        return;
    };
    let keep = observer::Keep {
        console: session.options.keeps_console_log(),
        network: session.options.record_network,
    };
    if !keep.console && !keep.network {
        return;
    }
    if let Err(e) = start_observer(m, session, &cdp_http, keep).await {
        warn!(session = %session.id, "no console log or HAR for this session: {e}");
    }
}

/// The observer of `session`, started now if it has none yet (a live view
/// of a session that keeps neither console nor HAR starts one that keeps nothing).
pub(crate) async fn observer_of(
    m: &Arc<Manager>,
    session: &Arc<Session>,
) -> Result<Option<Arc<Observer>>, String> {
    let Some(cdp_http) = session.cdp_http.clone() else {
        return Ok(None);
    };
    let keep = observer::Keep {
        console: false,
        network: false,
    };
    start_observer(m, session, &cdp_http, keep).await.map(Some)
}

/// Starts the session's observer once; later calls get the same one.
async fn start_observer(
    m: &Arc<Manager>,
    session: &Arc<Session>,
    cdp_http: &str,
    keep: observer::Keep,
) -> Result<Arc<Observer>, String> {
    let outbox = crate::artifacts::outbox(session.process().dir());
    let obs = session
        .devtools
        .observer
        .get_or_try_init(|| async {
            let obs = tokio::time::timeout(ATTACH_TIMEOUT, async {
                let ws = cdp::browser_websocket(m, cdp_http).await?;
                Observer::start(&ws, &outbox, keep).await
            })
            .await
            .unwrap_or_else(|_| Err(format!("not attached within {ATTACH_TIMEOUT:?}")))?;
            let o = obs.clone();
            session.on_end(Box::new(move || Box::pin(async move { o.finish().await })));
            Ok::<_, String>(obs)
        })
        .await?;
    Ok(obs.clone())
}
