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

/// Gives the process `cmd` starts a parent-death signal: it is killed
/// when the thread that started it ends (a tokio worker, which lives as long
/// as the grid). Set in `pre_exec`, so after any change of user id (which
/// clears the signal).
pub fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The running watchdog of this grid; the grid keeps it for as long as it runs.
pub struct Watchdog {
    child: Child,
    /// The write end of the pipe; closed only when the grid ends.
    pipe: ChildStdin,
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
        Ok(Watchdog { child, pipe })
    }

    /// The grid has ended every session itself: the watchdog exits without
    /// sweeping, and is gone when this returns.
    pub fn release(&mut self) {
        use std::io::Write;
        let _ = self.pipe.write_all(RELEASE);
        let _ = self.pipe.flush();
        let _ = self.child.wait();
    }
}

/// What the grid writes to tell its watchdog that nothing is left to kill.
const RELEASE: &[u8] = b"q";

/// The watchdog itself: waits until the grid's end of the pipe on stdin
/// closes, then kills what the grid with `data_dir` left running. Returns
/// how many processes it killed.
pub fn run_watchdog(data_dir: &Path) -> usize {
    let mut byte = [0u8; 1];
    let mut stdin = io::stdin().lock();
    // Only a grid that stopped cleanly writes (and then has nothing left
    // running); otherwise a read returns at the end of the pipe (or an error).
    loop {
        match stdin.read(&mut byte) {
            Ok(1) if byte == RELEASE => return 0,
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
    crate::sweep::kill_marked(data_dir)
}
