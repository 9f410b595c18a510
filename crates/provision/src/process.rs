//! What a provisioner hands back: one session's running processes, seen
//! through a trait so the grid can run on stand-ins in its tests.

use crate::driver::DriverExit;
use crate::error::ProvisionError;
use async_trait::async_trait;
use gridiron_domain::recording::Screen;
use gridiron_domain::Stereotype;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

/// The processes of one session: a driver (which starts its browser), or, for
/// a CDP-only session, a browser alone.
#[async_trait]
pub trait SessionProcess: Send + Sync {
    /// The grid session id these processes serve.
    fn session_id(&self) -> &str;
    /// Where the process listens: a driver's `http://127.0.0.1:PORT`, or a
    /// browser's DevTools websocket URL.
    fn endpoint(&self) -> &str;
    /// The session directory: profile, temp files, logs.
    fn dir(&self) -> &Path;
    /// The main process id, if there is a real process.
    fn pid(&self) -> Option<i32>;
    /// Turns `Some` when the main process exits.
    fn exit_watch(&self) -> watch::Receiver<Option<DriverExit>>;
    /// The last lines of output while it started, for error messages.
    fn recent_output(&self) -> String;
    /// Called once the driver has started its browser (after the
    /// new-session exchange), so crashes of the browser can be noticed.
    async fn browser_started(&self);
    /// Whether the driver or its browser has died. Cheap: it reads state kept
    /// up to date by watchers, never the process table.
    fn browser_gone(&self) -> bool;
    /// Kills the session's processes at once, without waiting for them to
    /// exit or cleaning up after them ([`SessionProcess::shutdown`] does that).
    fn kill(&self) {}
    /// Completes what the session's processes leave behind in
    /// `dir()/artifacts` (a recording stopped and made playable, a log
    /// flushed). Called once after [`SessionProcess::kill`] and before the
    /// artifacts are collected; whatever it needs keeps running until then.
    async fn finish_outputs(&self) {}
    /// The private X display the session's browser shows on, when it has one
    /// (a recorded session); `None` for a headless browser.
    fn display(&self) -> Option<X11Display> {
        None
    }
    /// Stops every process of the session and removes its files. Later calls
    /// do nothing.
    async fn shutdown(&self);
}

/// An X display of a session's own, and what lets a client connect to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X11Display {
    /// The display name, e.g. `:107`.
    pub name: String,
    /// The authority file holding the display's cookie (`XAUTHORITY`).
    pub xauthority: PathBuf,
    /// The screen's size in pixels.
    pub width: u32,
    /// The screen's size in pixels.
    pub height: u32,
}

/// A session's processes as the grid holds them.
pub type SessionHandle = Arc<dyn SessionProcess>;

/// Starts the processes of sessions. One implementation per way of running
/// browsers (local processes today); the grid sees only this trait.
#[async_trait]
pub trait Provisioner: Send + Sync {
    /// The browsers this provisioner can start, in preference order. The
    /// `browser` arguments below are indexes into this list.
    fn stereotypes(&self) -> Vec<Stereotype>;
    /// A listening driver for a new session of `browser`, with a fresh
    /// session id. The browser starts when the driver gets the new-session request.
    async fn start_driver(&self, browser: usize) -> Result<SessionHandle, ProvisionError>;
    /// Like [`Provisioner::start_driver`], for a recorded session: a fresh
    /// driver whose browser will show on a private display of `screen`'s
    /// size, recorded from before this returns until the session ends
    /// ([`SessionProcess::finish_outputs`] leaves `video.mp4` in the outbox).
    async fn start_recorded_driver(
        &self,
        browser: usize,
        screen: Screen,
    ) -> Result<SessionHandle, ProvisionError> {
        let _ = (browser, screen);
        Err(ProvisionError::Recording(
            "this grid's provisioner cannot record sessions".into(),
        ))
    }
    /// A Chromium browser started directly with `args` (plus the grid's
    /// defaults), for a CDP client; fresh profile and session id.
    async fn start_browser(
        &self,
        browser: usize,
        args: Vec<String>,
        headless: bool,
    ) -> Result<SessionHandle, ProvisionError>;
    /// Prepares ahead of demand what a start of `browser` will need (a spare
    /// driver); called once a start that used it has finished.
    fn replenish(&self, browser: usize);
    /// Stops preparing ahead and stops what was prepared.
    async fn close(&self);
    /// Where session directories live.
    fn sessions_dir(&self) -> PathBuf;
    /// Whether Chromium may keep its sandbox (no `--no-sandbox`) in the
    /// sessions this provisioner starts.
    fn chromium_sandbox(&self) -> bool {
        false
    }
}
