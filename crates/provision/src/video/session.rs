//! A recorded session as the grid sees it: its driver, plus the display the
//! browser shows on and the encoder recording it.

use super::Video;
use crate::driver::{DriverExit, DriverProcess};
use crate::process::{SessionProcess, X11Display};
use std::path::Path;
use tokio::sync::watch;

/// A driver whose browser shows on a recorded display of its own.
pub struct RecordedSession {
    /// The session's driver (and, in its process group, the browser).
    pub(crate) driver: DriverProcess,
    /// The display and its encoder; they outlive a kill of the driver's group.
    pub(crate) video: Video,
}

#[async_trait::async_trait]
impl SessionProcess for RecordedSession {
    fn session_id(&self) -> &str {
        self.driver.session_id()
    }

    fn endpoint(&self) -> &str {
        self.driver.endpoint()
    }

    fn dir(&self) -> &Path {
        self.driver.dir()
    }

    fn pid(&self) -> Option<i32> {
        self.driver.pid()
    }

    fn exit_watch(&self) -> watch::Receiver<Option<DriverExit>> {
        self.driver.exit_watch()
    }

    fn recent_output(&self) -> String {
        self.driver.recent_output()
    }

    async fn browser_started(&self) {
        self.driver.browser_started().await;
    }

    fn browser_gone(&self) -> bool {
        self.driver.browser_gone()
    }

    fn kill(&self) {
        // The browser only: the encoder records until it is stopped gracefully.
        DriverProcess::kill(&self.driver);
    }

    async fn finish_outputs(&self) {
        // Whatever ended the session, the browser is gone before the video ends.
        DriverProcess::kill(&self.driver);
        self.driver.flush_output().await;
        self.video
            .finish(&self.driver.dir().join(crate::OUTBOX))
            .await;
    }

    fn display(&self) -> Option<X11Display> {
        Some(self.video.display().clone())
    }

    async fn shutdown(&self) {
        self.video.discard().await;
        self.driver.stop().await;
    }
}
