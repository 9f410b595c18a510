//! Starting the helper processes of a recording (X server, encoder): each in
//! a process group of its own, so killing the browser's group leaves them
//! to be stopped gracefully, with a cleared environment that carries the
//! grid's marker, so the watchdog kills them if the grid dies. They carry
//! the session's marker too, yet no sweep of the session runs before they
//! are stopped: the recording stops them first.

use crate::error::ProvisionError;
use crate::isolation::SESSION_PATH;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Where a helper program is, looked up in the fixed system `PATH` of
/// sessions (never the grid's own `PATH`, never a client's word).
pub fn find_program(name: &str) -> Option<PathBuf> {
    SESSION_PATH
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A helper to start: `program` with `args`, as user `uid` when given.
pub struct Helper<'a> {
    /// The program's name, looked up with [`find_program`].
    pub program: &'a str,
    /// Its arguments (chosen by the grid alone).
    pub args: Vec<OsString>,
    /// The user it runs as (the recording's own id), or the grid's user.
    pub uid: Option<u32>,
    /// The grid's data directory: the marker every process of the grid carries.
    pub data_dir: &'a Path,
    /// The session it serves: its processes' marker (tests and sweeps find it by it).
    pub session: &'a str,
    /// Variables beyond `PATH` and the marker (`XAUTHORITY`).
    pub env: Vec<(OsString, OsString)>,
    /// Where it runs.
    pub cwd: &'a Path,
    /// Whether the grid writes to its stdin (the encoder's `q`).
    pub stdin: bool,
    /// Whether the grid reads its stdout (the X server's display number).
    pub stdout: bool,
    /// Where its stderr goes: a file, so nobody has to drain a pipe.
    pub log: PathBuf,
}

impl Helper<'_> {
    /// Starts the helper.
    pub fn spawn(self) -> Result<Child, ProvisionError> {
        let path = find_program(self.program).ok_or_else(|| {
            ProvisionError::Recording(format!("{} is not installed", self.program))
        })?;
        let log = std::fs::File::create(&self.log).map_err(|source| ProvisionError::Files {
            path: self.log.clone(),
            source,
        })?;
        let mut cmd = Command::new(&path);
        cmd.args(&self.args)
            .env_clear()
            .env("PATH", SESSION_PATH)
            .env(crate::ENV_MARK, self.data_dir)
            .env(crate::ENV_SESSION, self.session)
            .envs(self.env)
            .current_dir(self.cwd)
            .stdin(if self.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if self.stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        if let Some(u) = self.uid {
            cmd.uid(u).gid(u);
        }
        // As for drivers: the helper dies with the grid.
        crate::guard::die_with_parent(&mut cmd);
        cmd.spawn().map_err(|source| ProvisionError::Spawn {
            program: path,
            source,
        })
    }
}

/// Waits up to `grace` for `child` to exit, then kills it; `true` if it
/// exited by itself.
pub async fn wait_or_kill(child: &mut Child, grace: std::time::Duration) -> bool {
    if tokio::time::timeout(grace, child.wait()).await.is_ok() {
        return true;
    }
    let _ = child.start_kill();
    let _ = child.wait().await;
    false
}

/// Sends `signal` to the process `child` (if it still runs).
pub fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), signal);
    }
}

/// The last lines of a helper's log, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}
