//! Finding and killing processes that carry a grid's marker, e.g. left by a
//! previous grid process with the same data directory that was killed hard.

use crate::ENV_MARK;
use std::path::Path;
use std::sync::{Condvar, Mutex, OnceLock};
use tokio::sync::oneshot;

/// Pids of processes whose environment has `__GRIDIRON_SWEEP_MARK=<data_dir>`.
pub fn marked_processes(data_dir: &Path) -> Vec<i32> {
    processes_with_env(ENV_MARK, &data_dir.display().to_string())
}

/// Pids of processes (other than this one) whose environment has `var=value`.
pub fn processes_with_env(var: &str, value: &str) -> Vec<i32> {
    let marker = format!("{var}={value}");
    processes_with_any(&[marker.as_bytes()])
}

/// Kills every marked process; returns how many there were.
pub fn kill_marked(data_dir: &Path) -> usize {
    kill_with_env(ENV_MARK, &data_dir.display().to_string())
}

/// How long the sweeper waits for more ending sessions before it walks the process table.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Sweeps for the markers of ending sessions in batches, on a thread of its
/// own: one walk over the process table serves every session that ended
/// since the last walk, so the cost of a walk is paid per batch, not per
/// session, however many sessions end at once.
pub struct Sweeper {
    pending: Mutex<Vec<(String, oneshot::Sender<()>)>>,
    wake: Condvar,
}

impl Sweeper {
    /// The sweeper of this process (its thread starts on first use).
    pub fn shared() -> &'static Sweeper {
        static SHARED: OnceLock<&'static Sweeper> = OnceLock::new();
        SHARED.get_or_init(|| {
            let sweeper: &'static Sweeper = Box::leak(Box::new(Sweeper {
                pending: Mutex::default(),
                wake: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("gridiron-sweeper".into())
                .spawn(move || sweeper.run())
                .expect("a thread for the sweeper");
            sweeper
        })
    }

    /// Kills every process carrying `var=value` (and its process group);
    /// resolves once none is left.
    pub async fn sweep(&self, var: &str, value: &str) {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).push((format!("{var}={value}"), tx));
        self.wake.notify_one();
        let _ = rx.await;
    }

    fn run(&self) {
        loop {
            {
                let mut pending = lock(&self.pending);
                while pending.is_empty() {
                    pending = self.wake.wait(pending).unwrap_or_else(|e| e.into_inner());
                }
            }
            // Sessions that end together are swept together: at most one walk
            // per gathering pause, however many sessions end meanwhile.
            std::thread::sleep(GATHER);
            let batch = std::mem::take(&mut *lock(&self.pending));
            let markers: Vec<&[u8]> = batch.iter().map(|(m, _)| m.as_bytes()).collect();
            kill_carrying(&markers);
            for (_, done) in batch {
                let _ = done.send(());
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Pids of processes (other than this one) whose environment holds one of `markers` (`var=value`).
fn processes_with_any(markers: &[&[u8]]) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| markers.contains(&kv)))
                .unwrap_or(false)
        })
        .collect()
}

/// Kills every process carrying `var=value`; returns how many there were.
/// Catches helpers that left the process group (Chromium's crash handler does).
/// Scans again until none is left, since a process may fork while it is killed.
pub fn kill_with_env(var: &str, value: &str) -> usize {
    kill_carrying(&[format!("{var}={value}").as_bytes()])
}

/// Kills every process carrying one of `markers` (`var=value`), scanning
/// again until none is left; returns how many there were.
fn kill_carrying(markers: &[&[u8]]) -> usize {
    let mut killed = 0;
    for _ in 0..10 {
        let pids = processes_with_any(markers);
        if pids.is_empty() {
            break;
        }
        killed += kill_all(&pids);
    }
    killed
}

/// SIGKILLs `pids` and waits (up to 2 s) until they are gone, so that their
/// files can be removed without racing a process that is still exiting.
///
/// Their whole process groups go too: some browser helpers start with a
/// cleaned environment (no marker) but stay in the driver's group.
fn kill_all(pids: &[i32]) -> usize {
    let own_group = nix::unistd::getpgrp().as_raw();
    let mut groups: Vec<i32> = pids
        .iter()
        .filter_map(|&p| process_group(p))
        .filter(|&g| g > 1 && g != own_group)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(g),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while pids.iter().any(|&p| crate::procfs::process_alive(p))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    pids.len()
}

fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name: state, ppid, pgrp.
    stat[stat.rfind(')')? + 2..]
        .split_whitespace()
        .nth(2)?
        .parse()
        .ok()
}

/// The TMPDIR of a session's processes: `$TMPDIR/gridiron-<grid tag>-<id prefix>`.
///
/// Kept short and outside the data dir on purpose: Chromium puts Unix sockets
/// in TMPDIR, and socket paths may not exceed 108 bytes, whatever the length
/// of the data dir path.
pub fn session_tmp_dir(data_dir: &Path, session_id: &str) -> std::path::PathBuf {
    let short = &session_id[..session_id.len().min(12)];
    tmp_root().join(format!("{}{short}", tmp_prefix(data_dir)))
}

/// `$TMPDIR` if it is short enough to leave room for Chromium's socket paths, else `/tmp`.
pub(crate) fn tmp_root() -> std::path::PathBuf {
    let t = std::env::temp_dir();
    if t.as_os_str().len() <= 24 {
        t
    } else {
        std::path::PathBuf::from("/tmp")
    }
}

/// Removes every session TMPDIR of the grid with this data dir; returns how many.
pub fn remove_tmp_dirs(data_dir: &Path) -> usize {
    let prefix = tmp_prefix(data_dir);
    let Ok(entries) = std::fs::read_dir(tmp_root()) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .filter(|e| std::fs::remove_dir_all(e.path()).is_ok())
        .count()
}

/// `gridiron-XXXXXXXX-`: a stable (FNV-1a) tag of the data dir, so grids with
/// different data dirs never touch each other's temp dirs.
fn tmp_prefix(data_dir: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in data_dir.as_os_str().as_encoded_bytes() {
        h = (h ^ u32::from(*b)).wrapping_mul(0x0100_0193);
    }
    format!("gridiron-{h:08x}-")
}

#[cfg(test)]
mod tests {
    #[test]
    fn tmp_dirs_are_short_tagged_and_removable() {
        let data = Path::new(
            "/a/very/long/data/dir/that/would/overflow/a/unix/socket/path/if/it/were/used/for/tmp",
        );
        let other = Path::new("/another/grid");
        let id = "0123456789abcdef0123456789abcdef";
        let t = session_tmp_dir(data, id);
        assert!(t.to_string_lossy().len() < 60, "{t:?}");
        assert_ne!(session_tmp_dir(other, id), t);
        std::fs::create_dir_all(t.join("inner")).unwrap();
        std::fs::create_dir_all(session_tmp_dir(other, id)).unwrap();
        assert_eq!(remove_tmp_dirs(data), 1);
        assert!(!t.exists());
        assert_eq!(remove_tmp_dirs(other), 1);
    }

    use super::*;

    #[tokio::test]
    async fn sweeps_of_many_sessions_share_a_walk_and_kill_each() {
        let var = "__GRIDIRON_SWEEP_TEST";
        let tag = format!("{}", std::process::id());
        let mut children: Vec<_> = (0..3)
            .map(|i| {
                std::process::Command::new("sleep")
                    .arg("30")
                    .env(var, format!("{tag}-{i}"))
                    .spawn()
                    .unwrap()
            })
            .collect();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while (0..3).any(|i| processes_with_env(var, &format!("{tag}-{i}")).is_empty())
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let s = Sweeper::shared();
        // Two of three are swept; the third is left alone.
        let (a, b) = (format!("{tag}-0"), format!("{tag}-1"));
        tokio::join!(s.sweep(var, &a), s.sweep(var, &b));
        assert!(!children[0].wait().unwrap().success());
        assert!(!children[1].wait().unwrap().success());
        assert!(
            children[2].try_wait().unwrap().is_none(),
            "an unmarked session survives"
        );
        s.sweep(var, &format!("{tag}-2")).await;
        assert!(!children[2].wait().unwrap().success());
    }

    #[test]
    fn finds_and_kills_marked_children() {
        let dir = std::env::temp_dir().join(format!("gridiron-sweep-{}", std::process::id()));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(ENV_MARK, &dir)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        // The kernel fills /proc/PID/environ only once exec has set up the
        // new stack, which may be just after spawn() returns.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while marked_processes(&dir).is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(marked_processes(&dir), vec![pid]);
        assert!(marked_processes(&dir.join("other")).is_empty());
        assert_eq!(kill_marked(&dir), 1);
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
