//! One driver process (chromedriver or geckodriver) in its own process group.
//!
//! The driver starts the browser as its child, so the browser and all its
//! helper processes share the driver's process group: killing the group
//! stops them all. A parent-death signal covers the grid dying abruptly.

use crate::discovery::BrowserInstall;
use crate::error::ProvisionError;
use crate::isolation::{give_dirs, Isolation, UidLease};
use crate::output::{Pump, Sink, FLUSH_WAIT, KEEP_LINES};
use crate::process::SessionProcess;
use crate::procfs::{browser_pid, process_alive};
use crate::ENV_SESSION;
use gridiron_domain::BrowserKind;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a browser is checked when the kernel cannot tell us it exited (no pidfd).
const POLL_BROWSER: Duration = Duration::from_millis(250);

/// A running driver, owned by one session (or waiting to be claimed by one).
pub struct DriverProcess {
    /// The grid session id this driver serves (set at spawn, so its processes carry it).
    session_id: String,
    /// Where the process listens: a driver's `http://127.0.0.1:PORT`, or a
    /// browser's DevTools websocket URL.
    endpoint: String,
    /// The driver's pid, which is also its process group id.
    pid: i32,
    /// The session directory: profile, temp files, driver log.
    dir: PathBuf,
    /// The processes' TMPDIR (see [`crate::sweep::session_tmp_dir`]).
    tmp: PathBuf,
    exit: watch::Receiver<Option<DriverExit>>,
    output: Arc<Mutex<VecDeque<String>>>,
    /// Turned true once the session runs: its output is read by the
    /// [`Pump`] from then on (see [`crate::output`]).
    steady: watch::Sender<bool>,
    /// The tasks reading the output while the process starts.
    drains: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// This process's output under the [`Pump`].
    output_key: u64,
    /// The process is the browser itself (CDP), not a driver that starts one.
    is_browser: bool,
    /// Set once the browser the driver started has exited.
    browser_exited: Arc<AtomicBool>,
    /// The task watching the browser, stopped on shutdown.
    browser_watch: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Set once shutdown has begun; the drop safety net then stays out.
    shut: AtomicBool,
    /// The user id the processes run under, held until they are gone (the
    /// field is dropped after `Drop::drop` has killed them).
    _uid: Option<UidLease>,
}

impl std::fmt::Debug for DriverProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriverProcess")
            .field("session_id", &self.session_id)
            .field("endpoint", &self.endpoint)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl DriverProcess {
    /// Starts the driver for `install` with its files under `dir` (and `env`
    /// beyond the session's own: a recorded session's display), and waits
    /// until it listens. On failure the process group is already gone.
    pub async fn spawn(
        install: &BrowserInstall,
        (session_id, dir): (&str, &Path),
        data_dir: &Path,
        isolation: &Isolation,
        env: &[(OsString, OsString)],
    ) -> Result<DriverProcess, ProvisionError> {
        let args = match install.stereotype.kind {
            // Its log goes to stderr, which the grid keeps (see `driver_log`).
            BrowserKind::Chromium => vec!["--port=0".to_string(), "--log-level=INFO".to_string()],
            BrowserKind::Firefox => {
                // geckodriver opens its BiDi websocket on 9222 unless told otherwise.
                let ws = free_port().map_err(ProvisionError::NoFreePort)?;
                vec![
                    "--port".into(),
                    "0".into(),
                    "--websocket-port".into(),
                    ws.to_string(),
                ]
            }
        };
        let ready = |line: &str| listening_port(line).map(|p| format!("http://127.0.0.1:{p}"));
        let spawn = Spawn {
            program: &install.driver,
            args: &args,
            env,
            is_browser: false,
            console_in_output: install.stereotype.kind == BrowserKind::Firefox,
            session_id,
            dir,
            data_dir,
            isolation,
        };
        spawn.run(ready).await
    }

    /// Starts a Chromium browser itself (no driver) with `args`, for clients
    /// that speak CDP; its endpoint is the browser's DevTools websocket URL.
    pub async fn spawn_browser(
        install: &BrowserInstall,
        args: &[String],
        session_id: &str,
        dir: &Path,
        data_dir: &Path,
        isolation: &Isolation,
    ) -> Result<DriverProcess, ProvisionError> {
        let binary = PathBuf::from(&install.stereotype.binary);
        let ready = |line: &str| {
            line.split_once("DevTools listening on ")
                .map(|(_, url)| url.trim().to_string())
        };
        let spawn = Spawn {
            program: &binary,
            args,
            env: &[],
            is_browser: true,
            console_in_output: false,
            session_id,
            dir,
            data_dir,
            isolation,
        };
        spawn.run(ready).await
    }

    /// Whether the driver has exited.
    pub fn has_exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Kills the whole process group at once, without waiting for it.
    pub fn kill(&self) {
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
    }

    /// Writes what the process printed so far to its log (after a kill:
    /// all it ever printed), handing its output to the pump first if it
    /// was still being read as at its start.
    pub async fn flush_output(&self) {
        self.steady.send_replace(true);
        let drains = std::mem::take(&mut *lock(&self.drains));
        for d in drains {
            let _ = tokio::time::timeout(FLUSH_WAIT, d).await;
        }
        Pump::shared().flush(self.output_key).await;
    }

    /// Kills the process group, waits for the driver to be reaped and removes
    /// the session directory. Later calls do nothing.
    pub async fn stop(&self) {
        if self.shut.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(w) = lock(&self.browser_watch).take() {
            w.abort();
        }
        self.kill();
        // Helpers outside the group (Chromium's crash handler) carry the session marker;
        // one scan of the process table serves every session ending at about this time.
        crate::sweep::Sweeper::shared()
            .sweep(ENV_SESSION, &self.session_id)
            .await;
        let mut exit = self.exit.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), exit.wait_for(Option::is_some)).await;
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
    }
}

/// What one process start needs.
struct Spawn<'a> {
    program: &'a Path,
    args: &'a [String],
    env: &'a [(OsString, OsString)],
    is_browser: bool,
    /// Whether the page console calls printed among the output go to the
    /// session's console log too (Firefox's driver carries its browser's output).
    console_in_output: bool,
    session_id: &'a str,
    dir: &'a Path,
    data_dir: &'a Path,
    isolation: &'a Isolation,
}

impl Spawn<'_> {
    /// Starts the process and waits until `ready` finds its endpoint in a line of output.
    async fn run(
        self,
        ready: impl Fn(&str) -> Option<String>,
    ) -> Result<DriverProcess, ProvisionError> {
        let Spawn {
            program,
            args,
            env,
            is_browser,
            console_in_output,
            session_id,
            dir,
            data_dir,
            isolation,
        } = self;
        let tmp = crate::sweep::session_tmp_dir(data_dir, session_id);
        let lease = match &isolation.uids {
            Some(range) => Some(range.acquire().ok_or_else(|| ProvisionError::Files {
                path: dir.to_path_buf(),
                source: std::io::Error::other("every session user id is in use"),
            })?),
            None => None,
        };
        let uid = lease.as_ref().map(UidLease::uid);
        let home = dir.join("home");
        give_dirs(&[dir, &home, &tmp], uid).map_err(|source| ProvisionError::Files {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        // Nothing of the grid's environment (cluster secret, store URL) reaches a page.
        cmd.env_clear()
            .envs(isolation.session_env(dir, &tmp, data_dir, session_id))
            .envs(env.iter().cloned())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(u) = uid {
            // Also drops root's supplementary groups (std calls setgroups).
            cmd.uid(u).gid(u);
        }
        crate::guard::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| ProvisionError::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or(ProvisionError::ExitedEarly {
                exit: None,
                output: String::new(),
            })?;
        let output = Arc::new(Mutex::new(VecDeque::with_capacity(KEEP_LINES)));
        let (lines_tx, mut lines_rx) = mpsc::unbounded_channel();
        // Firefox prints its pages' console calls among its output (the grid's
        // `devtools.console.stdout.content`); Chromium's come through DevTools.
        let sink = Sink {
            log: crate::driver_log::DriverLog::create(dir, console_in_output).map(Arc::new),
            keep: output.clone(),
        };
        static KEYS: AtomicU64 = AtomicU64::new(1);
        let output_key = KEYS.fetch_add(1, Ordering::Relaxed);
        let (steady, steady_rx) = watch::channel(false);
        let pipes = [
            child.stdout.take().and_then(|p| p.into_owned_fd().ok()),
            child.stderr.take().and_then(|p| p.into_owned_fd().ok()),
        ];
        let drains = pipes
            .into_iter()
            .flatten()
            .map(|fd| {
                tokio::spawn(crate::output::drain(
                    fd,
                    sink.clone(),
                    lines_tx.clone(),
                    steady_rx.clone(),
                    output_key,
                ))
            })
            .collect();
        drop(lines_tx);
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
            tmp: tmp.clone(),
            exit: exit_rx,
            output,
            steady,
            drains: Mutex::new(drains),
            output_key,
            is_browser,
            browser_exited: Arc::default(),
            browser_watch: Mutex::default(),
            shut: AtomicBool::new(false),
            _uid: lease,
        };
        let mut exit = proc.exit.clone();
        /// Why no endpoint was found, before the output is attached.
        enum NotReady {
            Closed,
            Exited(Option<DriverExit>),
            Late,
        }
        let endpoint = tokio::time::timeout(START_TIMEOUT, async {
            loop {
                tokio::select! {
                    line = lines_rx.recv() => match line {
                        Some(l) => if let Some(p) = ready(&l) { return Ok(p) },
                        None => return Err(NotReady::Closed),
                    },
                    status = exit.wait_for(Option::is_some) => {
                        return Err(NotReady::Exited(status.ok().and_then(|s| *s)));
                    }
                }
            }
        })
        .await
        .unwrap_or(Err(NotReady::Late));
        match endpoint {
            Ok(e) => {
                proc.endpoint = e;
                Ok(proc)
            }
            Err(why) => {
                let output = proc.recent_output();
                proc.stop().await;
                Err(match why {
                    NotReady::Closed => ProvisionError::ClosedOutput { output },
                    NotReady::Exited(exit) => ProvisionError::ExitedEarly { exit, output },
                    NotReady::Late => ProvisionError::DidNotListen {
                        waited: START_TIMEOUT,
                        output,
                    },
                })
            }
        }
    }
}

#[async_trait::async_trait]
impl SessionProcess for DriverProcess {
    fn session_id(&self) -> &str {
        &self.session_id
    }

    fn endpoint(&self) -> &str {
        &self.endpoint
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn pid(&self) -> Option<i32> {
        Some(self.pid)
    }

    fn exit_watch(&self) -> watch::Receiver<Option<DriverExit>> {
        self.exit.clone()
    }

    fn recent_output(&self) -> String {
        let lines = lock(&self.output);
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    async fn browser_started(&self) {
        // The session runs: its output is the pump's from now on.
        self.steady.send_replace(true);
        // A CDP-only process is the browser: its exit watch covers it.
        if self.is_browser || lock(&self.browser_watch).is_some() {
            return;
        }
        // Looked up now, while the browser surely runs: a lookup after it died
        // would find nothing, and the crash would go unnoticed.
        let driver = self.pid;
        let browser = tokio::task::spawn_blocking(move || browser_pid(driver))
            .await
            .ok()
            .flatten();
        if let Some(pid) = browser {
            let watcher = tokio::spawn(watch_exit(pid, self.browser_exited.clone()));
            *lock(&self.browser_watch) = Some(watcher);
        }
    }

    fn browser_gone(&self) -> bool {
        self.has_exited() || self.browser_exited.load(Ordering::SeqCst)
    }

    fn kill(&self) {
        DriverProcess::kill(self);
    }

    async fn finish_outputs(&self) {
        self.flush_output().await;
    }

    async fn shutdown(&self) {
        self.stop().await;
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        // Safety net for paths that never reached `stop` (panics, cancelled tasks).
        if !*self.shut.get_mut() {
            self.kill();
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
        if let Some(w) = lock(&self.browser_watch).take() {
            w.abort();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sets `exited` once process `pid` (not our child) has exited: the kernel
/// says so through a pidfd; without one, the process table is polled off
/// the async threads.
async fn watch_exit(pid: i32, exited: Arc<AtomicBool>) {
    match pidfd_open(pid) {
        Ok(fd) => {
            // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same
            // descriptor) until the AsyncFd is dropped.
            let registered = unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            };
            if let Ok(fd) = registered {
                // A pidfd turns readable when its process exits.
                let _ = fd.readable().await;
                exited.store(true, Ordering::SeqCst);
                return;
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {
            exited.store(true, Ordering::SeqCst);
            return;
        }
        Err(_) => {}
    }
    loop {
        let alive = tokio::task::spawn_blocking(move || process_alive(pid))
            .await
            .unwrap_or(false);
        if !alive {
            exited.store(true, Ordering::SeqCst);
            return;
        }
        tokio::time::sleep(POLL_BROWSER).await;
    }
}

/// A pidfd for `pid` (Linux 5.3+).
fn pidfd_open(pid: i32) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
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

    #[tokio::test]
    async fn an_exited_process_is_noticed_without_reaping_it() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let exited = Arc::new(AtomicBool::new(false));
        let watch = tokio::spawn(watch_exit(child.id() as i32, exited.clone()));
        assert!(!exited.load(Ordering::SeqCst));
        child.kill().unwrap();
        // Not reaped yet: a zombie has exited too.
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("the exit is noticed")
            .unwrap();
        assert!(exited.load(Ordering::SeqCst));
        child.wait().unwrap();
    }
}
