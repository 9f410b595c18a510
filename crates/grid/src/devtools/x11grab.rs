//! ffmpeg grabbing a session's private X display as a stream of JPEGs, for
//! the live view. The process is the grid's: its own process group, an
//! environment of nothing but the display's cookie and the grid's markers
//! (the sweep that ends a session or the grid kills it), and it dies with the grid.

use super::jpeg::Splitter;
use bytes::Bytes;
use gridiron_provision::X11Display;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Frames grabbed per second: twice the live view's promise of one a second.
const FPS: u32 = 2;

/// A running grab.
pub struct X11Grab {
    pgid: i32,
    exited: watch::Receiver<bool>,
}

impl X11Grab {
    /// Starts ffmpeg on `display`; its frames go to `frames`.
    pub fn start(
        display: &X11Display,
        data_dir: &Path,
        session_id: &str,
        frames: watch::Sender<Option<Bytes>>,
    ) -> std::io::Result<X11Grab> {
        let ffmpeg = gridiron_provision::discovery::find("ffmpeg")
            .ok_or_else(|| std::io::Error::other("ffmpeg is not installed (not on PATH)"))?;
        let mut cmd = tokio::process::Command::new(ffmpeg);
        cmd.args(args(display));
        cmd.env_clear()
            .env("XAUTHORITY", &display.xauthority)
            .env(gridiron_provision::ENV_MARK, data_dir)
            .env(gridiron_provision::ENV_SESSION, session_id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        gridiron_provision::die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let pgid = child.id().map_or(0, |p| p as i32);
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (exited_tx, exited) = watch::channel(false);
        tokio::spawn(async move {
            let mut split = Splitter::default();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        for jpeg in split.push(&buf[..n]) {
                            frames.send_replace(Some(jpeg));
                        }
                    }
                }
            }
            let _ = child.kill().await;
            let _ = exited_tx.send(true);
        });
        Ok(X11Grab { pgid, exited })
    }

    /// Resolves once ffmpeg has exited (its display gone, or stopped).
    pub async fn exited(&self) {
        let mut e = self.exited.clone();
        let _ = e.wait_for(|x| *x).await;
    }

    /// Kills ffmpeg's process group and waits until it is reaped.
    pub async fn stop(self) {
        if self.pgid > 0 {
            // SAFETY: a plain kill(2) of ffmpeg's own process group.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.exited()).await;
    }
}

/// ffmpeg's arguments: the display at [`FPS`], as JPEGs on stdout. No
/// probing of the input (at 2 frames a second it would hold the first frame
/// back for seconds) and every frame flushed as it is made.
fn args(d: &X11Display) -> Vec<String> {
    let size = format!("{}x{}", d.width, d.height);
    [
        "-nostdin",
        "-loglevel",
        "error",
        "-analyzeduration",
        "0",
        "-probesize",
        "32",
        "-fflags",
        "nobuffer",
        "-f",
        "x11grab",
        "-draw_mouse",
        "0",
        "-framerate",
        &FPS.to_string(),
        "-video_size",
        &size,
        "-i",
        &d.name,
        "-pix_fmt",
        "yuvj420p",
        "-f",
        "image2pipe",
        "-flush_packets",
        "1",
        "-c:v",
        "mjpeg",
        "-q:v",
        "5",
        "pipe:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
#[path = "x11grab_tests.rs"]
mod tests;
