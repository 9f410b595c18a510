//! A recorded session end to end at the provisioner: a real Xvfb, Chromium
//! and ffmpeg. The browser shows a red page, then a blue one; the finished
//! video in the outbox plays, lasts as long as the session, shows both
//! colours, and nothing of the recording outlives the session.

use gridiron_domain::recording::Screen;
use gridiron_provision::isolation::UidRange;
use gridiron_provision::{discover, Isolation, LocalProvisioner, Provisioner, VideoSettings};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A WebDriver command to the driver at `endpoint`, over plain HTTP/1.1.
fn post(endpoint: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // chromedriver keeps the connection open: read the head, then Content-Length bytes.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
}

/// Processes whose environment carries the grid's marker for `data_dir`.
fn marked(data_dir: &Path) -> Vec<String> {
    let mark = format!("{}={}", gridiron_provision::ENV_MARK, data_dir.display());
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|v| v == mark.as_bytes()) {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            found.push(format!("{pid} {}", comm.trim()));
        }
    }
    found
}

/// The RGB of the frame at `at` seconds, averaged over the middle of the screen.
fn colour_at(video: &Path, at: f64) -> [u8; 3] {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-ss", &format!("{at}"), "-i"])
        .arg(video)
        .args([
            "-frames:v",
            "1",
            "-vf",
            "crop=64:64:(iw-64)/2:(ih-64)/2,scale=1:1",
        ])
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "-"])
        .output()
        .unwrap();
    assert_eq!(
        out.stdout.len(),
        3,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    [out.stdout[0], out.stdout[1], out.stdout[2]]
}

fn duration(video: &Path) -> f64 {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(video)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_recorded_session_leaves_a_playable_video_of_itself() {
    let found = discover();
    let Some(chromium) = found
        .installs
        .iter()
        .position(|i| i.stereotype.kind == gridiron_domain::BrowserKind::Chromium)
    else {
        panic!("this test needs Chromium and chromedriver");
    };
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    let locks = tempfile::tempdir().unwrap();
    let mut isolation = Isolation::shared();
    if root {
        isolation.uids = Some(UidRange::new(320_000, 10, locks.path().to_path_buf()));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = LocalProvisioner::new(
            found.installs.clone(),
            data.path(),
            false,
            isolation,
            VideoSettings::default(),
        );
        let screen = Screen {
            width: 640,
            height: 480,
        };
        let began = Instant::now();
        let s = p.start_recorded_driver(chromium, screen).await.unwrap();
        let display = s.display().expect("a recorded session has a display");
        assert_eq!((display.width, display.height), (640, 480));
        assert!(display.name.starts_with(':'));
        let mut caps = serde_json::json!({"browserName": "chrome", "goog:chromeOptions": {
            "binary": found.installs[chromium].stereotype.binary,
            "args": ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]}});
        gridiron_domain::recording::show_on_screen(caps.as_object_mut().unwrap(), screen);
        let endpoint = s.endpoint().to_string();
        let created = tokio::task::spawn_blocking(move || {
            let v = post(&endpoint, "/session", &serde_json::json!({"capabilities": {"alwaysMatch": caps}}));
            let sid = v["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("{v}")).to_string();
            let page = |c: &str| format!("data:text/html,<body style='background:{c};margin:0'></body>");
            post(&endpoint, &format!("/session/{sid}/url"), &serde_json::json!({"url": page("red")}));
            std::thread::sleep(Duration::from_secs(3));
            post(&endpoint, &format!("/session/{sid}/url"), &serde_json::json!({"url": page("blue")}));
            std::thread::sleep(Duration::from_secs(3));
        });
        created.await.unwrap();
        // Ended as the grid ends a session: killed, then its outputs finished.
        s.kill();
        let lived = began.elapsed().as_secs_f64();
        s.finish_outputs().await;
        let outbox = s.dir().join("artifacts");
        let video = outbox.join("video.mp4");
        assert!(outbox.join("thumbnail.jpg").exists());
        let d = duration(&video);
        assert!((d - lived).abs() < 2.0, "video of {d} s for a session of {lived} s");
        // Seekable in a browser: the index comes before the media data.
        let bytes = std::fs::read(&video).unwrap();
        let moov = bytes.windows(4).position(|w| w == b"moov").unwrap();
        let mdat = bytes.windows(4).position(|w| w == b"mdat").unwrap();
        assert!(moov < mdat);
        let red = colour_at(&video, d - 4.0);
        let blue = colour_at(&video, d - 0.5);
        assert!(red[0] > 200 && red[1] < 60 && red[2] < 60, "{red:?}");
        assert!(blue[2] > 200 && blue[0] < 60 && blue[1] < 60, "{blue:?}");
        // The files must be read before shutdown removes them.
        s.shutdown().await;
        assert!(!s.dir().exists());
        assert!(!data.path().join("recordings").join(s.session_id()).exists());
        let deadline = Instant::now() + Duration::from_secs(5);
        while !marked(data.path()).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(marked(data.path()), Vec::<String>::new());
        p.close().await;
    });
}

#[test]
fn a_recorder_that_cannot_start_fails_the_start_and_leaves_nothing() {
    let found = discover();
    let chromium = found
        .installs
        .iter()
        .position(|i| i.stereotype.kind == gridiron_domain::BrowserKind::Chromium)
        .expect("this test needs Chromium and chromedriver");
    let data = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // No frame rate is an encoder that refuses to start.
        let video = VideoSettings {
            fps: 0,
            ..VideoSettings::default()
        };
        let p = LocalProvisioner::new(
            found.installs.clone(),
            data.path(),
            false,
            Isolation::shared(),
            video,
        );
        let screen = Screen {
            width: 640,
            height: 480,
        };
        let err = match p.start_recorded_driver(chromium, screen).await {
            Ok(_) => panic!("a recording without frames started"),
            Err(e) => e,
        };
        assert!(
            err.to_string()
                .starts_with("cannot record the session: ffmpeg"),
            "{err}"
        );
        let left = |d: &str| {
            std::fs::read_dir(data.path().join(d))
                .map(|r| r.count())
                .unwrap_or(0)
        };
        assert_eq!((left("sessions"), left("recordings")), (0, 0));
        assert_eq!(marked(data.path()), Vec::<String>::new());
        p.close().await;
    });
}
