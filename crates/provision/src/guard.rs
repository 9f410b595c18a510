//! Browsers that die with the grid.
//!
//! A driver gets a parent-death signal from the grid, but the browser it
//! starts does not inherit one (the kernel clears it on fork), so a browser
//! would outlive a grid killed with SIGKILL. Instead of wrapping every
//! browser start (an extra shell and `exec` per session), each grid process
//! has one watchdog: a child in a process group of its own that waits on a
//! pipe from the grid. Whatever way the grid ends, the kernel closes the
//! pipe, and the watchdog kills every process carrying the grid's marker
//! (see [`crate::sweep`]), then exits.

use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// The running watchdog of this grid; the grid keeps it for as long as it runs.
pub struct Watchdog {
    child: Child,
    /// The write end of the pipe; closed only when the grid ends.
    _pipe: ChildStdin,
}

impl Watchdog {
    /// Starts `gridiron watchdog DATA_DIR` (`gridiron` is the program at `me`).
    pub fn start(me: &Path, data_dir: &Path) -> io::Result<Watchdog> {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(me)
            .arg("watchdog")
            .arg(data_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // A group of its own: a signal to the grid's group (Ctrl-C, a
            // supervisor's kill) leaves it to do its work.
            .process_group(0)
            .spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("the watchdog has no stdin"))?;
        Ok(Watchdog { child, _pipe: pipe })
    }

    /// Whether the watchdog is still there to clean up after the grid.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// The watchdog itself: waits until the grid's end of the pipe on stdin
/// closes, then kills what the grid with `data_dir` left running. Returns
/// how many processes it killed.
pub fn run_watchdog(data_dir: &Path) -> usize {
    let mut sink = [0u8; 64];
    let mut stdin = io::stdin().lock();
    // Nothing is ever written: a read returns only at the end (or an error).
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
    crate::sweep::kill_marked(data_dir)
}
