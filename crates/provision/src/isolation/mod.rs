//! Keeping a session's driver and browser away from the grid's secrets, the
//! store and the other sessions.
//!
//! Pages are hostile, and a page can make its browser read any file the
//! browser's user may read (`file://`). So a session's processes:
//! - start with a cleared environment: only what they need ([`session_env`]),
//!   never the grid's own variables (cluster secret, store URL with password);
//! - when the grid runs as root, run under a user id of their own
//!   ([`UidRange`]), with the session's files owned by that user (mode 0700)
//!   and the store's files owned by the grid (mode 0600), so `file://` of the
//!   store or of another session's directory shows nothing;
//! - keep Chromium's own sandbox on where the host supports it
//!   ([`Isolation::chromium_sandbox`]).
//!
//! When the grid does not run as root, every session shares the grid's user:
//! file modes keep other users of the host out of the grid's files, but not
//! one session out of another's. [`Isolation::notes`] says so, for the log and
//! `gridiron doctor`.

use crate::discovery::BrowserInstall;
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// First user id of session processes, unless configured.
pub const DEFAULT_UID_BASE: u32 = 200_000;
/// How many user ids sessions may use, unless configured.
pub const DEFAULT_UID_COUNT: u32 = 10_000;

/// The `PATH` of session processes: a fixed list of system directories, not the
/// grid's `PATH`, which may hold directories writable by some user (`~/bin`,
/// `~/.cargo/bin`, `.`) and so would let that user choose what a session runs.
/// Drivers and browsers are started by absolute path; this only serves the
/// helpers they look up themselves.
pub const SESSION_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Variables of the grid's environment that session processes keep: the
/// display of a headful browser, the locale and time zone.
const KEPT_VARS: &[&str] = &[
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "LANG",
    "LANGUAGE",
    "TZ",
];

/// Where the locks that give a user id to one session at a time live: root-only
/// (`/run`), and the same for every grid of the host, so two grids never hand
/// the same id to two sessions at once.
const UID_LOCK_DIR: &str = "/run/gridiron/uids";

/// How the operator configured isolation.
#[derive(Debug, Clone)]
pub struct IsolationSettings {
    /// First user id of session processes; 0 runs sessions as the grid's user.
    pub uid_base: u32,
    /// How many user ids from `uid_base` on sessions may use.
    pub uid_count: u32,
    /// Names of variables passed from the grid's environment to drivers and
    /// browsers (e.g. `HTTP_PROXY`), on top of the ones they always get.
    pub pass_env: Vec<String>,
}

impl Default for IsolationSettings {
    fn default() -> Self {
        IsolationSettings {
            uid_base: DEFAULT_UID_BASE,
            uid_count: DEFAULT_UID_COUNT,
            pass_env: Vec::new(),
        }
    }
}

impl IsolationSettings {
    /// Refuses settings that cannot work: a range past the largest user id,
    /// variable names that are no names or that would hide the grid's markers.
    pub fn check(&self) -> Result<(), String> {
        if self.uid_base != 0 {
            if self.uid_count == 0 {
                return Err("--session-uid-count must be at least 1".into());
            }
            // 65534 (nobody) and u32::MAX (-1, "no change") must never be handed out.
            if self.uid_base < 1000 || self.uid_base.checked_add(self.uid_count).is_none() {
                return Err(format!(
                    "--session-uid-base must be 0 (off) or at least 1000, and base + count must fit in 32 bits; got {} + {}",
                    self.uid_base, self.uid_count
                ));
            }
            if (self.uid_base..self.uid_base + self.uid_count).contains(&65534) {
                return Err("the session user ids must not include 65534 (nobody)".into());
            }
        }
        for name in &self.pass_env {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(format!("--pass-env takes variable names, got {name:?}"));
            }
            if name == crate::ENV_MARK || name == crate::ENV_SESSION {
                return Err(format!("--pass-env may not pass the grid's marker {name}"));
            }
        }
        Ok(())
    }
}

/// A range of user ids that sessions run under, one id per running session.
#[derive(Debug)]
pub struct UidRange {
    base: u32,
    count: u32,
    /// Where the next search starts, so a just-freed id is not handed out again
    /// at once (its last processes may still be exiting).
    next: AtomicU32,
    locks: PathBuf,
}

impl std::fmt::Display for UidRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}..{}",
            self.base,
            u64::from(self.base) + u64::from(self.count)
        )
    }
}

/// One user id held by one session (or spare driver) until dropped.
#[derive(Debug)]
pub struct UidLease {
    uid: u32,
    /// Holds the id: an exclusive `flock`, released when the file is closed
    /// (also when the grid dies).
    _lock: File,
}

impl UidLease {
    /// The user id (also used as the group id).
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

impl UidRange {
    /// Ids `base..base + count`, each held through a lock file in `locks`,
    /// a directory only the grid's user may write.
    pub fn new(base: u32, count: u32, locks: PathBuf) -> Self {
        UidRange {
            base,
            count,
            next: AtomicU32::new(0),
            locks,
        }
    }

    /// A user id no other session of this host holds, or `None` when all are taken.
    pub fn acquire(&self) -> Option<UidLease> {
        use std::os::fd::AsRawFd;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.count {
            let uid = self.base + (start.wrapping_add(i) % self.count);
            let path = self.locks.join(uid.to_string());
            let Ok(file) = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
            else {
                continue;
            };
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                self.next
                    .store(start.wrapping_add(i).wrapping_add(1), Ordering::Relaxed);
                return Some(UidLease { uid, _lock: file });
            }
        }
        None
    }
}

/// How this grid isolates sessions, decided once at start-up.
#[derive(Debug, Default)]
pub struct Isolation {
    /// The user ids sessions run under; `None`: sessions run as the grid's user.
    pub uids: Option<UidRange>,
    /// Whether Chromium keeps its sandbox (no `--no-sandbox`).
    pub chromium_sandbox: bool,
    /// Variables passed from the grid's environment (see [`IsolationSettings::pass_env`]).
    pub pass_env: Vec<String>,
    /// Why isolation is weaker than it could be, one sentence each; empty when
    /// sessions have their own user and the sandbox.
    pub notes: Vec<String>,
}

impl Isolation {
    /// Sessions run as the grid's user, without Chromium's sandbox: for tests
    /// and for callers that decide nothing.
    pub fn shared() -> Self {
        Isolation::default()
    }

    /// Decides how to isolate the sessions of a grid with `data_dir`.
    ///
    /// With user ids, every program a session runs must be reachable by a user
    /// that is not the grid's: a driver under a private directory
    /// (`/root/.cargo/bin`) is linked (or copied) into `data_dir/bin`, and
    /// `installs` are pointed at the copies. A browser or a data dir out of
    /// reach turns user ids off, with a note saying why.
    pub fn decide(
        settings: &IsolationSettings,
        data_dir: &Path,
        installs: &mut [BrowserInstall],
    ) -> Isolation {
        Isolation::decide_as(settings, data_dir, installs, true)
    }

    /// What [`Isolation::decide`] would decide, without creating or linking
    /// anything (for `gridiron doctor`).
    pub fn preview(
        settings: &IsolationSettings,
        data_dir: &Path,
        installs: &[BrowserInstall],
    ) -> Isolation {
        let mut installs = installs.to_vec();
        Isolation::decide_as(settings, data_dir, &mut installs, false)
    }

    fn decide_as(
        settings: &IsolationSettings,
        data_dir: &Path,
        installs: &mut [BrowserInstall],
        apply: bool,
    ) -> Isolation {
        let mut iso = Isolation {
            pass_env: settings.pass_env.clone(),
            ..Isolation::default()
        };
        let root = euid() == 0;
        if !root {
            iso.notes.push(format!(
                "the grid does not run as root, so sessions share its user (uid {}): \
                 file modes keep other users out of the store, but a page can read other \
                 sessions' files and the store through file://",
                euid()
            ));
            iso.chromium_sandbox = namespaces_work(None);
            if !iso.chromium_sandbox {
                iso.notes.push(
                    "this host does not let an unprivileged user create user namespaces, \
                     so Chromium runs with --no-sandbox"
                        .into(),
                );
            }
            return iso;
        }
        match uid_range(settings, data_dir, installs, apply) {
            Ok(range) => {
                iso.chromium_sandbox = namespaces_work(Some(range.base));
                if !iso.chromium_sandbox {
                    iso.notes.push(
                        "this host does not let an unprivileged user create user namespaces \
                         (user.max_user_namespaces, kernel.unprivileged_userns_clone), so \
                         Chromium runs with --no-sandbox"
                            .into(),
                    );
                }
                iso.uids = Some(range);
            }
            Err(why) => {
                iso.notes.push(format!(
                    "sessions run as root, the grid's user: {why}; a page can read other \
                     sessions' files and the store through file://"
                ));
                iso.notes.push(
                    "Chromium cannot keep its sandbox as root: it runs with --no-sandbox".into(),
                );
            }
        }
        iso
    }

    /// The environment of a session's processes: everything else is cleared.
    pub fn session_env(
        &self,
        dir: &Path,
        tmp: &Path,
        data_dir: &Path,
        session_id: &str,
    ) -> Vec<(OsString, OsString)> {
        session_env(
            &|k| std::env::var_os(k),
            &std::env::vars_os().map(|(k, _)| k).collect::<Vec<_>>(),
            &self.pass_env,
            dir,
            tmp,
            data_dir,
            session_id,
        )
    }
}

/// The effective user id of the grid.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Why sessions cannot get user ids of their own, or the range they get.
fn uid_range(
    settings: &IsolationSettings,
    data_dir: &Path,
    installs: &mut [BrowserInstall],
    apply: bool,
) -> Result<UidRange, String> {
    if settings.uid_base == 0 {
        return Err("--session-uid-base is 0".into());
    }
    let locks = PathBuf::from(UID_LOCK_DIR);
    if apply {
        std::fs::create_dir_all(&locks)
            .and_then(|_| std::fs::set_permissions(&locks, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("cannot create {}: {e}", locks.display()))?;
    }
    let dirs = if apply {
        vec![data_dir.join("sessions"), data_dir.join("bin")]
    } else {
        // Not created yet: what matters is whether the path leading there is open.
        let existing = data_dir
            .ancestors()
            .find(|d| d.exists())
            .unwrap_or(data_dir);
        vec![existing.to_path_buf()]
    };
    for dir in dirs.into_iter().chain([crate::sweep::tmp_root()]) {
        if !reachable_by_others(&dir, false) {
            return Err(format!(
                "{} is out of reach of other users (a directory above it lacks o+x); \
                 choose a --data-dir such as /var/lib/gridiron",
                dir.display()
            ));
        }
    }
    for i in installs.iter_mut() {
        let browser = Path::new(&i.stereotype.binary);
        if !reachable_by_others(browser, true) {
            return Err(format!(
                "the browser {} is out of reach of other users",
                browser.display()
            ));
        }
        if apply {
            i.driver = reachable_copy(&i.driver, data_dir)?;
        }
    }
    Ok(UidRange::new(settings.uid_base, settings.uid_count, locks))
}

/// `program` itself when any user may run it, else a hard link (or copy) of
/// it in `data_dir/bin`, which any user may run.
fn reachable_copy(program: &Path, data_dir: &Path) -> Result<PathBuf, String> {
    if reachable_by_others(program, true) {
        return Ok(program.to_path_buf());
    }
    let real = program
        .canonicalize()
        .map_err(|e| format!("{}: {e}", program.display()))?;
    let name = real
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "program".into());
    let copy = data_dir.join("bin").join(name);
    let _ = std::fs::remove_file(&copy);
    std::fs::hard_link(&real, &copy)
        .or_else(|_| std::fs::copy(&real, &copy).map(|_| ()))
        .and_then(|_| std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot make {} reachable: {e}", program.display()))?;
    Ok(copy)
}

/// Whether a user other than the owner (and not in its group) can reach
/// `path`: every directory above it searchable (`o+x`), and the file itself
/// executable when `exec`. ACLs are not looked at.
pub fn reachable_by_others(path: &Path, exec: bool) -> bool {
    let Ok(real) = path.canonicalize() else {
        return false;
    };
    let mode = |p: &Path| std::fs::metadata(p).map(|m| m.permissions().mode());
    let dirs_ok = real
        .ancestors()
        .skip(if exec { 1 } else { 0 })
        .all(|d| mode(d).is_ok_and(|m| m & 0o001 != 0));
    dirs_ok && (!exec || mode(&real).is_ok_and(|m| m & 0o001 != 0))
}

/// Whether a process (as user `uid`, or as the grid's user) may create user,
/// PID and network namespaces, which is what Chromium's sandbox needs when no
/// setuid helper is installed. Tried in a child process that then runs `true`.
pub fn namespaces_work(uid: Option<u32>) -> bool {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", "exit 0"])
        .env_clear()
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    // SAFETY: unshare is async-signal-safe; the child is single-threaded, as
    // CLONE_NEWUSER requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWPID | libc::CLONE_NEWNET) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.status().is_ok_and(|s| s.success())
}

/// Makes every file this process creates from now on private to its user
/// (umask 077): the store, its WAL and SHM files, logs. Files meant for
/// sessions (launch scripts) get their modes explicitly.
pub fn private_files() {
    // SAFETY: umask only changes this process's file creation mask.
    unsafe { libc::umask(0o077) };
}

/// Sets the grid's own files apart from its sessions': the data dir is
/// searchable but not listable (0711) so sessions reach their own directory
/// below it, `bin` (launch scripts) is readable, and everything else the grid
/// keeps there, the store first, is the grid's alone (0600, 0700).
pub fn protect_data_dir(data_dir: &Path) -> io::Result<()> {
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o711))?;
    for (name, mode) in [("sessions", 0o711), ("bin", 0o755), ("recordings", 0o711)] {
        let dir = data_dir.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
    }
    for entry in std::fs::read_dir(data_dir)?.flatten() {
        let name = entry.file_name();
        if name == "sessions" || name == "bin" || name == "recordings" {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let private = if meta.is_dir() { 0o700 } else { 0o600 };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(
                entry.path(),
                std::fs::Permissions::from_mode(mode & private),
            )?;
        }
    }
    Ok(())
}

/// Makes `dirs` (created if missing) belong to `uid` alone (mode 0700).
///
/// A path that is not a directory of this process's user is refused rather
/// than changed: session TMPDIRs live in the shared `/tmp`, where another
/// user could have put a symlink to a directory of their choice.
pub fn give_dirs(dirs: &[&Path], uid: Option<u32>) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for d in dirs {
        std::fs::create_dir_all(d)?;
        let meta = std::fs::symlink_metadata(d)?;
        if !meta.is_dir() || meta.uid() != euid() {
            return Err(io::Error::other(format!(
                "{} is not a directory of the grid's user",
                d.display()
            )));
        }
        if let Some(u) = uid {
            std::os::unix::fs::lchown(d, Some(u), Some(u))?;
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The environment of a session's processes, from the grid's variables as
/// `get` sees them (`names` lists them all, for the `LC_*` family).
fn session_env(
    get: &dyn Fn(&str) -> Option<OsString>,
    names: &[OsString],
    pass: &[String],
    dir: &Path,
    tmp: &Path,
    data_dir: &Path,
    session_id: &str,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("PATH".into(), SESSION_PATH.into()),
        ("HOME".into(), dir.join("home").into()),
        ("TMPDIR".into(), tmp.into()),
        // Chromium's config and crash database would otherwise land in HOME.
        ("XDG_CONFIG_HOME".into(), dir.join("config").into()),
        ("XDG_CACHE_HOME".into(), dir.join("cache").into()),
        (crate::ENV_MARK.into(), data_dir.into()),
        (crate::ENV_SESSION.into(), session_id.into()),
    ];
    let locale = names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| n.starts_with("LC_"))
        .map(str::to_string);
    let kept = KEPT_VARS
        .iter()
        .map(|s| s.to_string())
        .chain(locale)
        .chain(pass.iter().cloned());
    for name in kept {
        if env.iter().any(|(k, _)| k == name.as_str()) {
            continue;
        }
        if let Some(v) = get(&name) {
            env.push((name.into(), v));
        }
    }
    env
}

#[cfg(test)]
mod tests;
