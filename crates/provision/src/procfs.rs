//! Reading the process table (`/proc`): a driver's browser, a process's
//! parent, whether a process still runs.

/// The browser's main process: the driver's child that is not a helper (`--type=`).
pub(crate) fn browser_pid(driver_pid: i32) -> Option<i32> {
    let is_browser = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| !String::from_utf8_lossy(&c).contains("--type="))
            .unwrap_or(false)
    };
    // The kernel lists each thread's children: a few reads instead of a walk
    // over every process of the host.
    if let Some(children) = children_of(driver_pid) {
        return children.into_iter().find(|&pid| is_browser(pid));
    }
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .find(|&pid| parent_of(pid) == Some(driver_pid) && is_browser(pid))
}

/// The children of `pid` as `/proc/PID/task/*/children` lists them; `None`
/// where the kernel does not offer those files.
fn children_of(pid: i32) -> Option<Vec<i32>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let text = std::fs::read_to_string(task.path().join("children")).ok()?;
        children.extend(
            text.split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    Some(children)
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces or parens: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub(crate) fn process_alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rfind(')').and_then(|i| stat[i + 2..].chars().next());
    !matches!(state, None | Some('Z') | Some('X') | Some('x'))
}

#[cfg(test)]
mod tests {
    use super::*;

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
