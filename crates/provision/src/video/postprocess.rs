//! Finishing recordings after their sessions: a remux that moves the index
//! to the front (`+faststart`, so a browser can seek before it has the whole
//! file) and a thumbnail. This work runs in a bounded pool, so fifty
//! sessions ending at once do not start fifty encoders.

use super::helper::{wait_or_kill, Helper};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// How long one post-processing step may run before it is given up.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
/// Width of thumbnails in pixels (the height keeps the aspect ratio).
const THUMBNAIL_WIDTH: u32 = 320;

/// The bounded pool of post-processing work; clones share the bound.
#[derive(Clone, Debug)]
pub struct PostProcessing {
    permits: Arc<Semaphore>,
    workers: usize,
}

impl PostProcessing {
    /// A pool running at most `workers` jobs at once (at least one).
    pub fn new(workers: usize) -> Self {
        let workers = workers.max(1);
        PostProcessing {
            permits: Arc::new(Semaphore::new(workers)),
            workers,
        }
    }

    /// The default size: one worker per core of the host.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// How many jobs may run at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `job` once a worker is free; waits for one meanwhile.
    pub async fn run<F: std::future::Future>(&self, job: F) -> F::Output {
        // The semaphore is never closed, so acquiring cannot fail.
        let _permit = self.permits.acquire().await.ok();
        job.await
    }
}

impl Default for PostProcessing {
    fn default() -> Self {
        PostProcessing::new(PostProcessing::default_workers())
    }
}

/// What finishing a recording in `dir` produced.
#[derive(Debug, Default)]
pub struct Finished {
    /// The playable video, if there was anything to play.
    pub video: Option<PathBuf>,
    /// A still of the video.
    pub thumbnail: Option<PathBuf>,
}

/// Turns `dir/raw.mp4` into `dir/video.mp4` (index in front) and
/// `dir/thumbnail.jpg`, running ffmpeg as `uid`. A raw file that cannot be
/// remuxed is kept as the video as it is: fragmented MP4 plays too.
pub async fn finish(dir: &Path, uid: Option<u32>, marks: (&Path, &str)) -> Finished {
    let raw = dir.join("raw.mp4");
    if !std::fs::metadata(&raw).is_ok_and(|m| m.len() > 0) {
        return Finished::default();
    }
    let video = dir.join("video.mp4");
    let remux = [
        "-i",
        "raw.mp4",
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        "video.mp4",
    ];
    if !ffmpeg(dir, &remux, uid, marks).await || !non_empty(&video) {
        tracing::warn!(dir = %dir.display(), "a recording could not be remuxed; keeping it fragmented");
        if std::fs::rename(&raw, &video).is_err() {
            return Finished::default();
        }
    }
    let thumbnail = dir.join("thumbnail.jpg");
    let width = format!("scale={THUMBNAIL_WIDTH}:-2");
    // A second in, past the browser's first paint; a shorter video shows its first frame.
    for at in ["1", "0"] {
        let args = [
            "-ss",
            at,
            "-i",
            "video.mp4",
            "-frames:v",
            "1",
            "-vf",
            &width,
            "-q:v",
            "4",
            "-f",
            "image2",
            "thumbnail.jpg",
        ];
        if ffmpeg(dir, &args, uid, marks).await && non_empty(&thumbnail) {
            break;
        }
    }
    Finished {
        video: Some(video),
        thumbnail: non_empty(&thumbnail).then_some(thumbnail),
    }
}

fn non_empty(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.len() > 0)
}

/// Runs one ffmpeg step in `dir`; whether it succeeded.
async fn ffmpeg(
    dir: &Path,
    args: &[&str],
    uid: Option<u32>,
    (data_dir, session): (&Path, &str),
) -> bool {
    let mut all: Vec<OsString> = ["-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        .iter()
        .map(Into::into)
        .collect();
    all.extend(args.iter().map(Into::into));
    let child = Helper {
        program: "ffmpeg",
        args: all,
        uid,
        data_dir,
        session,
        env: Vec::new(),
        cwd: dir,
        stdin: false,
        stdout: false,
        log: dir.join("postprocess.log"),
    }
    .spawn();
    let Ok(mut child) = child else { return false };
    match tokio::time::timeout(STEP_TIMEOUT, child.wait()).await {
        Ok(Ok(status)) => status.success(),
        _ => {
            wait_or_kill(&mut child, Duration::ZERO).await;
            false
        }
    }
}

/// Moves `file` into `outbox` as `name`. The outbox lies in the session's
/// directory, which the session's user owns: only a real directory is
/// written to (never through a symlink a page planted), and the name
/// replaces whatever entry was there (a rename does not follow a symlink).
pub fn deliver(file: &Path, outbox: &Path, name: &str) -> std::io::Result<()> {
    match std::fs::symlink_metadata(outbox) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(std::io::Error::other(format!(
                "{} is not a directory",
                outbox.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(outbox)?,
        Err(e) => return Err(e),
    }
    let target = outbox.join(name);
    match std::fs::rename(file, &target) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let _ = std::fs::remove_file(&target);
            copy_new(file, &target)
        }
        other => other,
    }
}

/// Copies `from` to a new file `to`, refusing to follow a symlink.
fn copy_new(from: &Path, to: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = std::fs::File::open(from)?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)?;
    std::io::copy(&mut src, &mut dst).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn the_pool_never_runs_more_jobs_than_it_has_workers() {
        let pool = PostProcessing::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..50)
            .map(|_| {
                let (pool, running, most) = (pool.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    pool.run(async {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert_eq!(PostProcessing::new(0).workers(), 1);
    }

    #[test]
    fn delivery_never_writes_through_a_planted_symlink() {
        let root = std::env::temp_dir().join(format!("gt-deliver-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        let file = root.join("video.mp4");
        std::fs::write(&file, b"v").unwrap();
        // The outbox itself a symlink: refused.
        let outbox = root.join("artifacts");
        std::os::unix::fs::symlink(root.join("elsewhere"), &outbox).unwrap();
        assert!(deliver(&file, &outbox, "video.mp4").is_err());
        assert!(!root.join("elsewhere/video.mp4").exists());
        // A symlink at the name: replaced, its target untouched.
        std::fs::remove_file(&outbox).unwrap();
        std::fs::create_dir(&outbox).unwrap();
        std::fs::write(root.join("elsewhere/victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(root.join("elsewhere/victim"), outbox.join("video.mp4"))
            .unwrap();
        deliver(&file, &outbox, "video.mp4").unwrap();
        assert_eq!(std::fs::read(outbox.join("video.mp4")).unwrap(), b"v");
        assert_eq!(
            std::fs::read(root.join("elsewhere/victim")).unwrap(),
            b"keep"
        );
        // A missing outbox is made.
        std::fs::remove_dir_all(&outbox).unwrap();
        std::fs::write(&file, b"w").unwrap();
        deliver(&file, &outbox, "video.mp4").unwrap();
        assert_eq!(std::fs::read(outbox.join("video.mp4")).unwrap(), b"w");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
