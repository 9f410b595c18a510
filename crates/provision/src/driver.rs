//! One driver process (chromedriver or geckodriver) in its own process group.
//!
//! The driver starts the browser as its child, so the browser and all its
//! helper processes share the driver's process group: killing the group
//! stops them all. A parent-death signal covers the grid dying abruptly.

use crate::discovery::BrowserInstall;
use crate::{ENV_DATA_DIR, ENV_SESSION};
use gridiron_domain::BrowserKind;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::{mpsc, watch};

/// How a driver process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverExit {
    /// Exit code, if it exited.
    pub code: Option<i32>,
    /// Signal number, if it was killed.
    pub signal: Option<i32>,
}

impl std::fmt::Display for DriverExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (_, Some(s)) => write!(f, "signal {s}"),
            _ => write!(f, "unknown status"),
        }
    }
}

const KEEP_LINES: usize = 40;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running driver, owned by one session (or waiting to be claimed by one).
#[derive(Debug)]
pub struct DriverProcess {
    /// The grid session id this driver serves (set at spawn, so its processes carry it).
    pub session_id: String,
    /// Where the process listens: a driver's `http://127.0.0.1:PORT`, or a
    /// browser's DevTools websocket URL.
    pub endpoint: String,
    /// The driver's pid, which is also its process group id.
    pub pid: i32,
    /// The session directory: profile, temp files, driver log.
    pub dir: PathBuf,
    /// Which kind of browser the driver runs.
    pub kind: BrowserKind,
    /// The processes' TMPDIR (see [`crate::sweep::session_tmp_dir`]).
    tmp: PathBuf,
    exit: watch::Receiver<Option<DriverExit>>,
    output: Arc<Mutex<VecDeque<String>>>,
}

impl DriverProcess {
    /// Starts the driver for `install` with its files under `dir`, and waits
    /// until it listens. On failure the process group is already gone.
    pub async fn spawn(
        install: &BrowserInstall,
        session_id: &str,
        dir: &Path,
        data_dir: &Path,
    ) -> Result<DriverProcess, String> {
        let kind = install.stereotype.kind;
        let args = match kind {
            BrowserKind::Chromium => vec![
                "--port=0".to_string(),
                format!("--log-path={}", dir.join("driver.log").display()),
            ],
            BrowserKind::Firefox => {
                // geckodriver opens its BiDi websocket on 9222 unless told otherwise.
                let ws = free_port().map_err(|e| format!("no free port: {e}"))?;
                vec![
                    "--port".into(),
                    "0".into(),
                    "--websocket-port".into(),
                    ws.to_string(),
                ]
            }
        };
        let ready = |line: &str| listening_port(line).map(|p| format!("http://127.0.0.1:{p}"));
        Self::spawn_process(
            &install.driver,
            &args,
            ready,
            kind,
            session_id,
            dir,
            data_dir,
        )
        .await
    }

    /// Starts a Chromium browser itself (no driver) with `args`, for clients
    /// that speak CDP; its endpoint is the browser's DevTools websocket URL.
    pub async fn spawn_browser(
        install: &BrowserInstall,
        args: &[String],
        session_id: &str,
        dir: &Path,
        data_dir: &Path,
    ) -> Result<DriverProcess, String> {
        let binary = PathBuf::from(&install.stereotype.binary);
        let ready = |line: &str| {
            line.split_once("DevTools listening on ")
                .map(|(_, url)| url.trim().to_string())
        };
        let kind = install.stereotype.kind;
        Self::spawn_process(&binary, args, ready, kind, session_id, dir, data_dir).await
    }

    async fn spawn_process(
        program: &Path,
        args: &[String],
        ready: impl Fn(&str) -> Option<String>,
        kind: BrowserKind,
        session_id: &str,
        dir: &Path,
        data_dir: &Path,
    ) -> Result<DriverProcess, String> {
        let tmp = crate::sweep::session_tmp_dir(data_dir, session_id);
        for d in [dir, &tmp] {
            std::fs::create_dir_all(d)
                .map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        }
        let mut cmd = Command::new(program);
        cmd.args(args);
        cmd.env(ENV_DATA_DIR, data_dir)
            .env(ENV_SESSION, session_id)
            .env("TMPDIR", &tmp)
            // Chromium's config and crash database would otherwise land in the user's home.
            .env("XDG_CONFIG_HOME", dir.join("config"))
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or("driver exited at once")?;
        let output = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP_LINES)));
        let (lines_tx, mut lines_rx) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(drain(out, output.clone(), lines_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(drain(err, output.clone(), lines_tx));
        }
        let (exit_tx, exit_rx) = watch::channel(None);
        tokio::spawn(async move {
            let status = child.wait().await;
            let exit = match status {
                Ok(s) => {
                    use std::os::unix::process::ExitStatusExt;
                    DriverExit {
                        code: s.code(),
                        signal: s.signal(),
                    }
                }
                Err(_) => DriverExit {
                    code: None,
                    signal: None,
                },
            };
            let _ = exit_tx.send(Some(exit));
        });
        let mut proc = DriverProcess {
            session_id: session_id.to_string(),
            endpoint: String::new(),
            pid,
            dir: dir.to_path_buf(),
            kind,
            tmp: tmp.clone(),
            exit: exit_rx,
            output,
        };
        let mut exit = proc.exit.clone();
        let endpoint = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                tokio::select! {
                    line = lines_rx.recv() => match line {
                        Some(l) => if let Some(p) = ready(&l) { return Ok(p) },
                        None => return Err("driver closed its output before listening".to_string()),
                    },
                    status = exit.wait_for(Option::is_some) => {
                        let status = status.ok().and_then(|s| *s).map(|e| e.to_string()).unwrap_or_default();
                        return Err(format!("driver exited before listening ({status})"));
                    }
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("driver did not listen within {START_TIMEOUT:?}")));
        match endpoint {
            Ok(e) => {
                proc.endpoint = e;
                Ok(proc)
            }
            Err(e) => {
                let out = proc.recent_output();
                proc.shutdown().await;
                Err(if out.is_empty() {
                    e
                } else {
                    format!("{e}: {out}")
                })
            }
        }
    }

    /// The exit status, if the driver has exited.
    pub fn exit_status(&self) -> Option<DriverExit> {
        *self.exit.borrow()
    }

    /// A receiver that turns `Some` when the driver exits.
    pub fn exit_watch(&self) -> watch::Receiver<Option<DriverExit>> {
        self.exit.clone()
    }

    /// The driver's last lines of output, for error messages.
    pub fn recent_output(&self) -> String {
        let lines = self.output.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Kills the whole process group at once.
    pub fn kill(&self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }

    /// Kills the process group, waits for the driver to be reaped and removes
    /// the session directory.
    pub async fn shutdown(mut self) {
        self.kill();
        // Helpers outside the group (Chromium's crash handler) carry the session marker.
        let id = self.session_id.clone();
        let _ = tokio::task::spawn_blocking(move || crate::sweep::kill_with_env(ENV_SESSION, &id))
            .await;
        let _ =
            tokio::time::timeout(Duration::from_secs(5), self.exit.wait_for(Option::is_some)).await;
        // Helpers that were mid-exit may still hold files for a moment.
        for d in [&self.dir, &self.tmp] {
            for _ in 0..3 {
                match tokio::fs::remove_dir_all(d).await {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        self.kill();
                    }
                    _ => break,
                }
            }
        }
        self.dir = PathBuf::new();
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // Safety net for paths that never reached `shutdown` (panics, cancelled tasks).
        if !self.dir.as_os_str().is_empty() {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

async fn drain(
    r: impl AsyncRead + Unpin,
    keep: Arc<Mutex<VecDeque<String>>>,
    lines: mpsc::UnboundedSender<String>,
) {
    let mut reader = BufReader::new(r).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        tracing::trace!(target: "gridiron::driver", "{line}");
        let _ = lines.send(line.clone());
        let mut k = keep.lock().unwrap_or_else(|e| e.into_inner());
        if k.len() == KEEP_LINES {
            k.pop_front();
        }
        k.push_back(line);
    }
}

/// The port in a driver's "listening" line: chromedriver's
/// `... started successfully on port 41141.` or geckodriver's `Listening on 127.0.0.1:4444`.
pub fn listening_port(line: &str) -> Option<u16> {
    if let Some(i) = line.find("started successfully on port ") {
        let rest = &line[i + "started successfully on port ".len()..];
        return rest.trim_end_matches(['.', ' ']).parse().ok();
    }
    if let Some(i) = line.find("Listening on ") {
        let addr = line[i + "Listening on ".len()..].trim();
        return addr.rsplit(':').next()?.parse().ok();
    }
    None
}

/// The browser's main process: the driver's child that is not a helper (`--type=`).
pub fn browser_pid(driver_pid: i32) -> Option<i32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| {
            parent_of(pid) == Some(driver_pid)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| !String::from_utf8_lossy(&c).contains("--type="))
                    .unwrap_or(false)
        })
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces or parens: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    !matches!(state, None | Some('Z') | Some('X') | Some('x'))
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(
            listening_port("ChromeDriver was started successfully on port 41141."),
            Some(41141)
        );
        assert_eq!(
            listening_port("1700000000000\tgeckodriver\tINFO\tListening on 127.0.0.1:4444"),
            Some(4444)
        );
        assert_eq!(listening_port("Only local connections are allowed."), None);
    }

    #[test]
    fn own_process_is_alive() {
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(i32::MAX));
        assert_eq!(
            parent_of(std::process::id() as i32),
            Some(std::os::unix::process::parent_id() as i32)
        );
    }
}
