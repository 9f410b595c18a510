//! The encoder of a recorded session: `ffmpeg -f x11grab` of the session's
//! display into H.264 in fragmented MP4, so even a recorder killed outright
//! leaves a file that plays up to its last fragment (about a second).

use super::helper::{tail, wait_or_kill, Helper};
use crate::error::ProvisionError;
use gridiron_domain::recording::Screen;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Child;

/// How long the encoder may take to write its first bytes.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a graceful stop (flush of the last fragment) may take.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The encoder's arguments: grab `display` at `fps`, encode cheaply (CPU is
/// what limits how many sessions a host records), a key frame and a
/// fragment every second or two, into `out`.
pub fn capture_args(display: &str, screen: Screen, fps: u32, out: &Path) -> Vec<OsString> {
    let even = screen.even();
    let gop = (fps * 2).to_string();
    let mut args: Vec<OsString> = [
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "error",
        "-f",
        "x11grab",
        "-draw_mouse",
        "0",
        "-framerate",
        &fps.to_string(),
        "-video_size",
        &format!("{}x{}", even.width, even.height),
        "-i",
        display,
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        // No look-ahead: frames leave the encoder at once, so a stop loses nothing.
        "-tune",
        "zerolatency",
        "-g",
        &gop,
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+frag_keyframe+empty_moov+default_base_moof",
        "-frag_duration",
        "1000000",
        // Each fragment reaches the file at once, not when ffmpeg's 32 KiB
        // buffer fills (minutes of a still page): a killed recorder loses
        // only its last second.
        "-flush_packets",
        "1",
        "-f",
        "mp4",
        "-y",
    ]
    .iter()
    .map(Into::into)
    .collect();
    args.push(out.into());
    args
}

/// A running encoder.
pub struct Recorder {
    child: Child,
    /// The fragmented MP4 it writes.
    pub raw: PathBuf,
    log: PathBuf,
}

impl Recorder {
    /// Starts recording `display` (cookie in `auth`) into `dir/raw.mp4`, and
    /// returns once the encoder has written its first bytes (it records).
    pub async fn start(
        dir: &Path,
        display: &str,
        auth: &Path,
        screen: Screen,
        fps: u32,
        uid: Option<u32>,
        (data_dir, session): (&Path, &str),
    ) -> Result<Recorder, ProvisionError> {
        let raw = dir.join("raw.mp4");
        let log = dir.join("ffmpeg.log");
        let child = Helper {
            program: "ffmpeg",
            args: capture_args(display, screen, fps, &raw),
            uid,
            data_dir,
            session,
            env: vec![("XAUTHORITY".into(), auth.into())],
            cwd: dir,
            stdin: true,
            stdout: false,
            log: log.clone(),
        }
        .spawn()?;
        let mut rec = Recorder { child, raw, log };
        let since = std::time::Instant::now();
        loop {
            if std::fs::metadata(&rec.raw).is_ok_and(|m| m.len() > 0) {
                return Ok(rec);
            }
            let exited = !matches!(rec.child.try_wait(), Ok(None));
            if exited || since.elapsed() > START_TIMEOUT {
                wait_or_kill(&mut rec.child, Duration::ZERO).await;
                return Err(ProvisionError::Recording(format!(
                    "ffmpeg did not start recording: {}",
                    tail(&rec.log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the encoder gracefully ('q' on stdin: it writes its last
    /// fragment), SIGINT if it does not listen, SIGKILL as a last resort.
    pub async fn stop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"q").await;
            let _ = stdin.flush().await;
        }
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_ok()
        {
            return;
        }
        super::helper::signal(&self.child, nix::sys::signal::Signal::SIGINT);
        wait_or_kill(&mut self.child, Duration::from_secs(3)).await;
    }

    /// Kills the encoder at once (the file stays playable up to its last fragment).
    pub fn kill(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capture_is_even_sized_h264_in_fragments() {
        let screen = Screen {
            width: 1025,
            height: 768,
        };
        let args = capture_args(":5", screen, 10, Path::new("/r/raw.mp4"));
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let after = |k: &str| text[text.iter().position(|a| a == k).unwrap() + 1].clone();
        assert_eq!(after("-video_size"), "1024x768");
        assert_eq!(after("-i"), ":5");
        assert_eq!(after("-framerate"), "10");
        assert_eq!(after("-g"), "20");
        assert_eq!(after("-pix_fmt"), "yuv420p");
        assert!(after("-movflags").contains("frag_keyframe"));
        assert_eq!(after("-flush_packets"), "1");
        assert_eq!(text.last().unwrap(), "/r/raw.mp4");
    }
}
