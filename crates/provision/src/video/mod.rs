//! Recorded sessions: a private X display per session (Xvfb), the browser
//! headful on it, and an encoder (ffmpeg `x11grab`) writing the session's
//! video from before the client hears of the session until it ends.
//!
//! The X server and the encoder run under a user id of their own (neither
//! the grid's nor the session's), in process groups of their own: killing the
//! browser's group leaves them running, so the encoder can be stopped
//! gracefully when the session ends, whatever ended it. Their files live in
//! `<data_dir>/recordings/<session id>/`, out of the session user's reach;
//! the finished `video.mp4` and `thumbnail.jpg` are moved into the session's
//! outbox, after a bounded post-processing pool had its turn.

mod helper;
mod postprocess;
mod recorder;
mod session;
mod xvfb;

pub use helper::find_program;
pub use postprocess::PostProcessing;
pub use session::RecordedSession;

use crate::error::ProvisionError;
use crate::isolation::{give_dirs, Isolation, UidLease};
use crate::process::X11Display;
use gridiron_domain::recording::Screen;
use recorder::Recorder;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use xvfb::XServer;

/// How a grid records sessions (`--video-fps`, `--post-processing-workers`).
#[derive(Debug, Clone)]
pub struct VideoSettings {
    /// Frames per second of recordings.
    pub fps: u32,
    /// Where finishing recordings waits its turn.
    pub pool: PostProcessing,
}

impl Default for VideoSettings {
    fn default() -> Self {
        VideoSettings {
            fps: gridiron_domain::recording::DEFAULT_FPS,
            pool: PostProcessing::default(),
        }
    }
}

/// Where the recordings of a grid are made, below its data directory.
pub fn recordings_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("recordings")
}

/// Keeps the recordings a grid killed outright left (its recorders killed
/// with it): each fragmented `raw.mp4` plays up to its last fragment, and is
/// moved into its session's outbox as `video.mp4` when that session's
/// directory is still there, for the grid's recovery to keep with the
/// session's other artifacts. Then removes every recording's files. Call
/// only when no recorder of `data_dir` runs. Returns how many it kept.
pub fn salvage(data_dir: &Path) -> usize {
    let root = recordings_dir(data_dir);
    let Ok(entries) = std::fs::read_dir(&root) else {
        return 0;
    };
    let mut kept = 0;
    for entry in entries.flatten() {
        let raw = entry.path().join("raw.mp4");
        let session = data_dir.join("sessions").join(entry.file_name());
        let playable = std::fs::symlink_metadata(&raw).is_ok_and(|m| m.is_file() && m.len() > 0);
        if playable && std::fs::symlink_metadata(&session).is_ok_and(|m| m.is_dir()) {
            let outbox = session.join(crate::OUTBOX);
            kept += usize::from(postprocess::deliver(&raw, &outbox, "video.mp4").is_ok());
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    kept
}

/// The recording side of one session.
pub struct Video {
    /// The session the video belongs to.
    session_id: String,
    /// `<data_dir>/recordings/<session id>`: raw and finished files.
    dir: PathBuf,
    data_dir: PathBuf,
    /// The display, as [`crate::SessionProcess::display`] tells it.
    display: X11Display,
    /// The X server and encoder while they run; taken by the first stop.
    running: tokio::sync::Mutex<Option<(XServer, Recorder)>>,
    /// Whether the video has been finished (so shutdown does not wait for it again).
    finished: Mutex<bool>,
    pool: PostProcessing,
    /// The user id of the X server and encoder, held until they are gone
    /// (declared after `running`, so it is released after they are killed).
    uid: Option<UidLease>,
}

impl Video {
    /// Starts the display and the encoder of session `session_id` (whose
    /// directory is `session_dir`), and returns them with the environment
    /// its driver needs so the browser shows on the display.
    pub async fn start(
        session_id: &str,
        session_dir: &Path,
        data_dir: &Path,
        screen: Screen,
        settings: &VideoSettings,
        isolation: &Isolation,
    ) -> Result<(Video, Vec<(OsString, OsString)>), ProvisionError> {
        let uid = match &isolation.uids {
            Some(range) => Some(range.acquire().ok_or_else(|| {
                ProvisionError::Recording("every session user id is in use".into())
            })?),
            None => None,
        };
        let id = uid.as_ref().map(UidLease::uid);
        let dir = recordings_dir(data_dir).join(session_id);
        let started = async {
            let (server_auth, browser_auth) = prepare_files(&dir, session_dir, id)?;
            let mut x =
                XServer::start(&dir, &server_auth, screen, id, (data_dir, session_id)).await?;
            let name = x.name();
            let marks = (data_dir, session_id);
            let rec = Recorder::start(&dir, &name, &server_auth, screen, settings.fps, id, marks);
            match rec.await {
                Ok(rec) => Ok((x, rec, server_auth, browser_auth)),
                Err(e) => {
                    x.stop().await;
                    Err(e)
                }
            }
        };
        let (x, rec, server_auth, browser_auth) = match started.await {
            Ok(s) => s,
            Err(e) => {
                // No driver will own the session's directory: nothing may stay.
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_dir_all(session_dir);
                return Err(e);
            }
        };
        let name = x.name();
        let env = vec![
            ("DISPLAY".into(), name.clone().into()),
            ("XAUTHORITY".into(), browser_auth.into()),
        ];
        let video = Video {
            session_id: session_id.to_string(),
            display: X11Display {
                name,
                xauthority: server_auth,
                width: screen.width,
                height: screen.height,
            },
            dir,
            data_dir: data_dir.to_path_buf(),
            running: tokio::sync::Mutex::new(Some((x, rec))),
            finished: Mutex::new(false),
            pool: settings.pool.clone(),
            uid,
        };
        Ok((video, env))
    }

    /// The session's display.
    pub fn display(&self) -> &X11Display {
        &self.display
    }

    /// Stops the encoder gracefully and the X server, then (in the
    /// post-processing pool) makes the video seekable and a thumbnail, and
    /// moves both into `outbox`. The session's browser must be dead already.
    pub async fn finish(&self, outbox: &Path) {
        {
            let mut done = self.finished.lock().unwrap_or_else(|e| e.into_inner());
            if *done {
                return;
            }
            *done = true;
        }
        self.stop().await;
        // Helpers of the browser that left its process group could still
        // touch the outbox; none may run while files are moved into it.
        crate::sweep::Sweeper::shared()
            .sweep(crate::ENV_SESSION, &self.session_id)
            .await;
        let uid = self.uid.as_ref().map(UidLease::uid);
        let finished = self
            .pool
            .run(postprocess::finish(
                &self.dir,
                uid,
                (&self.data_dir, &self.session_id),
            ))
            .await;
        let files = [
            (finished.video, "video.mp4"),
            (finished.thumbnail, "thumbnail.jpg"),
        ];
        for (file, name) in files {
            let Some(file) = file else { continue };
            if let Err(e) = postprocess::deliver(&file, outbox, name) {
                tracing::warn!(session = %self.session_id, error = %e, "a recording could not be kept");
            }
        }
    }

    /// Stops the encoder (gracefully) and the X server, if they still run.
    async fn stop(&self) {
        let running = self.running.lock().await.take();
        if let Some((mut x, mut rec)) = running {
            rec.stop().await;
            x.stop().await;
        }
    }

    /// Stops everything at once and removes the recording's files.
    pub async fn discard(&self) {
        if let Some((mut x, mut rec)) = self.running.lock().await.take() {
            rec.kill();
            x.stop().await;
        }
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
    }
}

/// Makes the recording's directory `dir` (the recorder's user's alone) and
/// the session's directory, and writes a fresh cookie into both: the
/// server's and encoder's copy, and the browser's (in the session's
/// directory, which only the session's user can enter). Returns their paths.
fn prepare_files(
    dir: &Path,
    session_dir: &Path,
    uid: Option<u32>,
) -> Result<(PathBuf, PathBuf), ProvisionError> {
    use std::os::unix::fs::PermissionsExt;
    let files = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ProvisionError::Files { path, source }
    };
    let root = dir.parent().unwrap_or(dir);
    std::fs::create_dir_all(root).map_err(files(root))?;
    // Searchable by the recorders' users, listable by none of them.
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o711)).map_err(files(root))?;
    give_dirs(&[dir], uid).map_err(files(dir))?;
    let cookie = xvfb::new_cookie().map_err(files(dir))?;
    let server_auth = dir.join("xauthority");
    xvfb::write_authority(&server_auth, &cookie, 0o600).map_err(files(&server_auth))?;
    if let Some(u) = uid {
        std::os::unix::fs::lchown(&server_auth, Some(u), Some(u)).map_err(files(&server_auth))?;
    }
    give_dirs(&[session_dir], None).map_err(files(session_dir))?;
    let browser_auth = session_dir.join("xauthority");
    xvfb::write_authority(&browser_auth, &cookie, 0o644).map_err(files(&browser_auth))?;
    Ok((server_auth, browser_auth))
}

impl Drop for Video {
    fn drop(&mut self) {
        // The children die with their handles (kill_on_drop); the files go here.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_keeps_the_recordings_of_sessions_still_on_disk() {
        let data = std::env::temp_dir().join(format!("gt-salvage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        for (id, raw) in [("a", &b"frag"[..]), ("b", b"frag"), ("c", b"")] {
            std::fs::create_dir_all(recordings_dir(&data).join(id)).unwrap();
            std::fs::write(recordings_dir(&data).join(id).join("raw.mp4"), raw).unwrap();
        }
        // `b` has no session directory any more; `c` recorded nothing.
        for id in ["a", "c"] {
            std::fs::create_dir_all(data.join("sessions").join(id)).unwrap();
        }
        assert_eq!(salvage(&data), 1);
        let kept = data
            .join("sessions/a")
            .join(crate::OUTBOX)
            .join("video.mp4");
        assert_eq!(std::fs::read(kept).unwrap(), b"frag");
        assert!(!data.join("sessions/c").join(crate::OUTBOX).exists());
        assert!(!recordings_dir(&data).exists());
        assert_eq!(salvage(&data), 0);
        std::fs::remove_dir_all(&data).unwrap();
    }
}
