//! With a real Xvfb (its own cookie) and a real ffmpeg.

use super::*;
use std::process::Command;

#[test]
fn the_display_and_its_size_come_from_the_session_only() {
    let d = X11Display {
        name: ":107".into(),
        xauthority: "/tmp/x/auth".into(),
        width: 1280,
        height: 800,
    };
    let a = args(&d);
    let at = |k: &str| a[a.iter().position(|x| x == k).unwrap() + 1].clone();
    assert_eq!(at("-i"), ":107");
    assert_eq!(at("-video_size"), "1280x800");
    assert_eq!(a.last().unwrap(), "pipe:1");
}

/// An Xvfb of the test's own, reachable only with its cookie.
struct Xvfb {
    child: std::process::Child,
    display: X11Display,
    _dir: tempfile::TempDir,
}

impl Xvfb {
    fn start() -> Xvfb {
        let dir = tempfile::tempdir().unwrap();
        let auth = dir.path().join("xauth");
        // Tests run at once: each takes a number of its own.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = std::iter::repeat_with(|| NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            .map(|i| 300 + (i + std::process::id()) % 600)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .unwrap();
        let name = format!(":{n}");
        let cookie: Vec<u8> = (0..16u32).map(|i| ((i * 37 + n) % 256) as u8).collect();
        std::fs::write(&auth, xauthority(n, &cookie)).unwrap();
        let child = Command::new("Xvfb")
            .args([
                &name,
                "-auth",
                auth.to_str().unwrap(),
                "-nolisten",
                "tcp",
                "-screen",
                "0",
                "320x240x24",
            ])
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is installed");
        let socket = format!("/tmp/.X11-unix/X{n}");
        for _ in 0..100 {
            if Path::new(&socket).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Xvfb {
            child,
            display: X11Display {
                name,
                xauthority: auth,
                width: 320,
                height: 240,
            },
            _dir: dir,
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Xauthority file's one entry: the cookie of display `n` on any host
/// (family "wild"), as xauth writes it.
fn xauthority(n: u32, cookie: &[u8]) -> Vec<u8> {
    let mut out = 0xFFFFu16.to_be_bytes().to_vec();
    for field in [
        &b""[..],
        n.to_string().as_bytes(),
        b"MIT-MAGIC-COOKIE-1",
        cookie,
    ] {
        out.extend((field.len() as u16).to_be_bytes());
        out.extend(field);
    }
    out
}

/// The width and height of a baseline JPEG (its SOF0 segment).
fn jpeg_size(j: &[u8]) -> Option<(u16, u16)> {
    let at = j.windows(2).position(|w| w == [0xFF, 0xC0])?;
    let h = u16::from_be_bytes([j[at + 5], j[at + 6]]);
    let w = u16::from_be_bytes([j[at + 7], j[at + 8]]);
    Some((w, h))
}

#[tokio::test]
async fn ffmpeg_grabs_the_display_as_jpegs_marked_as_the_grids_and_stops() {
    let x = Xvfb::start();
    let data_dir = tempfile::tempdir().unwrap();
    let session = format!("x11grab-test-{}", std::process::id());
    let (tx, mut rx) = watch::channel(None);
    let grab = X11Grab::start(&x.display, data_dir.path(), &session, tx).unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            rx.changed()
                .await
                .expect("ffmpeg ended before its first frame");
            if let Some(f) = rx.borrow_and_update().clone() {
                return f;
            }
        }
    })
    .await
    .expect("a frame within 20 s");
    assert_eq!(&frame[..2], &[0xFF, 0xD8]);
    assert_eq!(&frame[frame.len() - 2..], &[0xFF, 0xD9]);
    assert_eq!(jpeg_size(&frame), Some((320, 240)));
    let marked =
        gridiron_provision::sweep::processes_with_env(gridiron_provision::ENV_SESSION, &session);
    assert_eq!(marked.len(), 1, "ffmpeg carries the session's marker");
    let grid_marked = gridiron_provision::sweep::processes_with_env(
        gridiron_provision::ENV_MARK,
        data_dir.path().to_str().unwrap(),
    );
    assert_eq!(grid_marked, marked, "and the grid's");
    grab.stop().await;
    assert!(
        gridiron_provision::sweep::processes_with_env(gridiron_provision::ENV_SESSION, &session)
            .is_empty(),
        "ffmpeg is gone once stopped"
    );
}

#[tokio::test]
async fn without_the_displays_cookie_nothing_is_grabbed() {
    let x = Xvfb::start();
    let data_dir = tempfile::tempdir().unwrap();
    let mut display = x.display.clone();
    display.xauthority = data_dir.path().join("no-such-cookie");
    let (tx, mut rx) = watch::channel(None);
    let grab = X11Grab::start(&display, data_dir.path(), "x11grab-nocookie", tx).unwrap();
    tokio::time::timeout(Duration::from_secs(20), grab.exited())
        .await
        .expect("ffmpeg gives up");
    assert!(rx.borrow_and_update().is_none());
}
