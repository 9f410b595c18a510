//! Test harness: runs the real `gridiron` binary on a free port with its own
//! data directory, and checks that nothing it started outlives it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Polls `cond` until it holds or `within` passes; panics with `what` otherwise.
pub fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {within:?}: {what}");
}

/// A running grid process.
pub struct Grid {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Grid {
    /// Starts `gridiron standalone` with extra flags and waits until `/status` answers.
    pub fn start(extra: &[&str]) -> Grid {
        Self::start_in(tempfile::tempdir().unwrap(), extra)
    }

    /// Like [`Grid::start`], on a given data directory.
    pub fn start_in(tmp: tempfile::TempDir, extra: &[&str]) -> Grid {
        let data_dir = tmp.path().canonicalize().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("grid.log"))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_gridiron"))
            .args([
                "standalone",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let grid = Grid {
            child: Some(child),
            port,
            data_dir,
            _tmp: tmp,
        };
        eventually(Duration::from_secs(20), "grid answers /status", || {
            grid.request("GET", "/status", None).0 == 200
        });
        grid
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("grid.log")).unwrap_or_default()
    }

    /// One HTTP/1.1 request on a fresh connection: (status, body).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(self.port, method, path, body)
    }

    /// Creates a session with empty capabilities over raw HTTP; returns its id.
    pub fn new_session(&self) -> String {
        let (status, body) = self.request("POST", "/session", Some(r#"{"capabilities":{}}"#));
        assert_eq!(status, 200, "{body}\n{}", self.log());
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["value"]["sessionId"].as_str().unwrap().to_string()
    }

    /// Sends `POST /session` on a connection the caller holds; dropping the
    /// stream is a client hanging up before the answer.
    pub fn send_new_session_request(&self) -> TcpStream {
        let body = r#"{"capabilities":{}}"#;
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        s
    }

    /// Processes carrying this grid's marker.
    pub fn processes(&self) -> Vec<i32> {
        processes_with_env(&format!(
            "{}={}",
            gridiron_provision::ENV_MARK,
            self.data_dir.display()
        ))
    }

    /// Processes of one session.
    pub fn session_processes(&self, session: &str) -> Vec<i32> {
        processes_with_env(&format!("{}={session}", gridiron_provision::ENV_SESSION))
    }

    /// The pid of a session's driver.
    pub fn driver_pid(&self, session: &str) -> i32 {
        *self
            .session_processes(session)
            .iter()
            .find(|p| comm(**p) == "chromedriver")
            .expect("the session has a chromedriver")
    }

    /// Kills the grid process alone with SIGKILL (its children are left to fend
    /// for themselves) and hands back its data directory.
    pub fn kill_hard(mut self) -> tempfile::TempDir {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
        std::mem::replace(&mut self._tmp, tempfile::tempdir().unwrap())
    }

    /// Sends SIGTERM and waits for the exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let mut child = self.child.take().expect("running");
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("grid did not exit after SIGTERM\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts that the grid left no process and no session directory behind.
    pub fn assert_clean(&self) {
        eventually(Duration::from_secs(5), "no grid processes remain", || {
            self.processes().is_empty()
        });
        let dirs: Vec<_> = std::fs::read_dir(self.data_dir.join("sessions"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(dirs.is_empty(), "session dirs remain: {dirs:?}");
    }

    /// Runs a query on the grid's SQLite store with the sqlite3 CLI-free path: via the status API.
    pub fn store_value(&self, sql: &str) -> String {
        let out = Command::new("python3")
            .args(["-c", "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); r=c.execute(sys.argv[2]).fetchone(); print('' if r is None else '|'.join(str(x) for x in r))"])
            .arg(self.data_dir.join("gridiron.db"))
            .arg(sql)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Grid {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ok = self.terminate();
            if !std::thread::panicking() {
                assert!(ok, "grid exited with an error\n{}", self.log());
                self.assert_clean();
            }
        }
    }
}

pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub fn processes_with_env(entry: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| *p != me)
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

pub fn http(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let body = body.unwrap_or("");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // Decode a chunked body well enough for JSON checks.
    let body = if text
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A tiny HTTP server for test pages (there is no internet here): answers every
/// request with `html`, and sets a cookie on `/setcookie`.
pub fn serve_pages(html: &'static str) -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let extra = if req.starts_with("GET /setcookie") {
                    "Set-Cookie: from_server=yes; Path=/\r\n"
                } else {
                    ""
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = s.write_all(resp.as_bytes());
            });
        }
    });
    port
}
