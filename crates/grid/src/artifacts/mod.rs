//! What sessions leave behind: recordings, logs, downloads. While a session
//! runs, whatever makes one of its artifacts writes it as a file under the
//! session's outbox (`<session dir>/artifacts/`, the file's path below it is
//! the artifact's name); when the session ends, the outbox is collected into
//! the artifact storage and indexed in the grid's store.

use crate::manager::Manager;
use crate::session::Session;
use std::path::{Path, PathBuf};

/// The outbox of the session whose directory is `session_dir`.
pub fn outbox(session_dir: &Path) -> PathBuf {
    session_dir.join("artifacts")
}

impl Manager {
    /// Takes what `session` left in `outbox` into the artifact storage.
    pub(crate) async fn collect_artifacts(&self, session: &Session, outbox: &Path) {
        // Kept in place until the storage service takes them.
        let _ = (session, outbox);
    }
}
