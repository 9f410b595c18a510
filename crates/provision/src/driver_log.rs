//! A session's driver log: everything its driver (or CDP browser) prints,
//! kept as `driver.log` in the session's outbox (`<session dir>/artifacts/`).
//! The grid writes the file itself from the captured output: the driver
//! never gets a path to write to, and the file is the grid's, not the
//! session user's.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a driver log stops growing: a chatty client cannot fill the disk.
pub const MAX_DRIVER_LOG_BYTES: u64 = 32 * 1024 * 1024;

/// The open driver log of one session.
pub struct DriverLog {
    /// Written one line per call, unbuffered: whatever reads the file after
    /// the driver is killed finds every line the grid has received.
    file: File,
    /// Bytes written so far.
    written: AtomicU64,
}

impl DriverLog {
    /// Creates `artifacts/driver.log` under `session_dir`; `None` (logged) if
    /// it cannot: the session runs without its log rather than not at all.
    pub fn create(session_dir: &Path) -> Option<DriverLog> {
        let outbox = session_dir.join("artifacts");
        let opened = std::fs::create_dir_all(&outbox).and_then(|()| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(outbox.join("driver.log"))
        });
        match opened {
            Ok(file) => Some(DriverLog {
                file,
                written: AtomicU64::new(0),
            }),
            Err(e) => {
                tracing::warn!(dir = %session_dir.display(), error = %e, "no driver log for this session");
                None
            }
        }
    }

    /// Appends one line of output, until the log is full.
    pub fn line(&self, line: &str) {
        let n = line.len() as u64 + 1;
        let before = self.written.fetch_add(n, Ordering::Relaxed);
        if before + n <= MAX_DRIVER_LOG_BYTES {
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            let _ = (&self.file).write_all(&buf);
        } else if before <= MAX_DRIVER_LOG_BYTES {
            let note = format!("[gridiron] driver log truncated at {MAX_DRIVER_LOG_BYTES} bytes\n");
            let _ = (&self.file).write_all(note.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_land_in_the_outbox_until_the_log_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let log = DriverLog::create(dir.path()).unwrap();
        log.line("Starting ChromeDriver");
        log.line("[INFO]: COMMAND InitSession");
        let text = std::fs::read_to_string(dir.path().join("artifacts/driver.log")).unwrap();
        assert_eq!(text, "Starting ChromeDriver\n[INFO]: COMMAND InitSession\n");
        log.written
            .store(MAX_DRIVER_LOG_BYTES - 2, Ordering::Relaxed);
        log.line("too long for the rest");
        log.line("and more");
        let text = std::fs::read_to_string(dir.path().join("artifacts/driver.log")).unwrap();
        assert!(text.ends_with("truncated at 33554432 bytes\n"), "{text}");
        assert_eq!(text.matches("truncated").count(), 1);
    }

    #[test]
    fn a_link_in_place_of_the_log_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("artifacts")).unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("artifacts/driver.log")).unwrap();
        assert!(DriverLog::create(dir.path()).is_none());
    }
}
