//! Finding and killing processes that carry a grid's marker, e.g. left by a
//! previous grid process with the same data directory that was killed hard.

use crate::ENV_DATA_DIR;
use std::path::Path;

/// Pids of processes whose environment has `GRIDIRON_DATA_DIR=<data_dir>`.
pub fn marked_processes(data_dir: &Path) -> Vec<i32> {
    processes_with_env(ENV_DATA_DIR, &data_dir.display().to_string())
}

/// Pids of processes (other than this one) whose environment has `var=value`.
pub fn processes_with_env(var: &str, value: &str) -> Vec<i32> {
    let marker = format!("{var}={value}");
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
                .unwrap_or(false)
        })
        .collect()
}

/// Kills every marked process; returns how many there were.
pub fn kill_marked(data_dir: &Path) -> usize {
    kill_all(&marked_processes(data_dir))
}

/// Kills every process carrying `var=value`; returns how many there were.
/// Catches helpers that left the process group (Chromium's crash handler does).
pub fn kill_with_env(var: &str, value: &str) -> usize {
    kill_all(&processes_with_env(var, value))
}

fn kill_all(pids: &[i32]) -> usize {
    for &pid in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_and_kills_marked_children() {
        let dir = std::env::temp_dir().join(format!("gridiron-sweep-{}", std::process::id()));
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .env(ENV_DATA_DIR, &dir)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert_eq!(marked_processes(&dir), vec![pid]);
        assert!(marked_processes(&dir.join("other")).is_empty());
        assert_eq!(kill_marked(&dir), 1);
        let status = child.wait().unwrap();
        assert!(!status.success());
    }
}
