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
    /// Written once per read of the output, unbuffered: whatever reads the
    /// file after the output is flushed finds every line the grid has read.
    file: File,
    /// Bytes written so far.
    written: AtomicU64,
    /// `console.log` of a browser that prints its pages' console calls to
    /// its output (Firefox, with the grid's `devtools.console.stdout.content`
    /// preference): one JSON object a line, like Chromium's.
    console: Option<File>,
    /// Bytes written to `console` so far.
    console_written: AtomicU64,
}

/// One console call of a page as Firefox prints it (`console.warn: text`,
/// `JavaScript error: URL, line N: message`), as a `console.log` entry
/// without its time; `None` for any other line.
pub fn firefox_console_entry(line: &str) -> Option<serde_json::Value> {
    if let Some(rest) = line.strip_prefix("console.") {
        let (kind, text) = rest.split_once(": ")?;
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let level = match kind {
            "error" | "assert" => "error",
            "warn" => "warning",
            "debug" | "trace" => "debug",
            "info" => "info",
            _ => "log",
        };
        let text = text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text);
        return Some(serde_json::json!({
            "level": level, "source": "console", "type": kind, "text": text,
        }));
    }
    let rest = line.strip_prefix("JavaScript error: ")?;
    let (url, text) = match rest.split_once(", line ") {
        Some((url, more)) => (url, more.split_once(": ").map_or(more, |(_, t)| t)),
        None => ("", rest),
    };
    Some(serde_json::json!({
        "level": "error", "source": "javascript", "type": "exception", "text": text, "url": url,
    }))
}

impl DriverLog {
    /// Creates `artifacts/driver.log` under `session_dir`; `None` (logged) if
    /// it cannot: the session runs without its log rather than not at all.
    /// With `console`, the page console calls among the lines also go to
    /// `artifacts/console.log`.
    pub fn create(session_dir: &Path, console: bool) -> Option<DriverLog> {
        let outbox = session_dir.join("artifacts");
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(outbox.join(name))
        };
        let opened = std::fs::create_dir_all(&outbox).and_then(|()| open("driver.log"));
        match opened {
            Ok(file) => Some(DriverLog {
                file,
                written: AtomicU64::new(0),
                console: console.then(|| open("console.log").ok()).flatten(),
                console_written: AtomicU64::new(0),
            }),
            Err(e) => {
                tracing::warn!(dir = %session_dir.display(), error = %e, "no driver log for this session");
                None
            }
        }
    }

    /// Appends one line of output, until the log is full.
    pub fn line(&self, line: &str) {
        self.lines(&[line]);
    }

    /// Appends lines of output, until the log is full: one write for them
    /// all (and one to the console log).
    pub fn lines(&self, lines: &[impl AsRef<str>]) {
        let mut out = Vec::new();
        let mut console_out = Vec::new();
        for line in lines {
            let line = line.as_ref();
            if self.console.is_some() {
                if let Some(mut entry) = firefox_console_entry(line) {
                    let at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    entry["timestamp"] = at.into();
                    let mut buf = entry.to_string().into_bytes();
                    buf.push(b'\n');
                    let n = buf.len() as u64;
                    if self.console_written.fetch_add(n, Ordering::Relaxed) + n
                        <= MAX_DRIVER_LOG_BYTES
                    {
                        console_out.extend_from_slice(&buf);
                    }
                }
            }
            let n = line.len() as u64 + 1;
            let before = self.written.fetch_add(n, Ordering::Relaxed);
            if before + n <= MAX_DRIVER_LOG_BYTES {
                out.extend_from_slice(line.as_bytes());
                out.push(b'\n');
            } else if before <= MAX_DRIVER_LOG_BYTES {
                let note =
                    format!("[gridiron] driver log truncated at {MAX_DRIVER_LOG_BYTES} bytes\n");
                out.extend_from_slice(note.as_bytes());
            }
        }
        if let (Some(console), false) = (&self.console, console_out.is_empty()) {
            let _ = (&*console).write_all(&console_out);
        }
        if !out.is_empty() {
            let _ = (&self.file).write_all(&out);
        }
    }

    /// Whether console calls are picked from the lines (see [`DriverLog::create`]).
    pub fn has_console(&self) -> bool {
        self.console.is_some()
    }

    /// Appends complete lines of output as they came, until the log is full
    /// (what does not fit is dropped whole, as by [`DriverLog::lines`]).
    pub fn append(&self, complete: &[u8]) {
        let n = complete.len() as u64;
        let before = self.written.fetch_add(n, Ordering::Relaxed);
        if before + n <= MAX_DRIVER_LOG_BYTES {
            let _ = (&self.file).write_all(complete);
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
    fn firefox_console_lines_become_entries_and_nothing_else_does() {
        let e = firefox_console_entry(r#"console.warn: "careful""#).unwrap();
        assert_eq!(
            (e["level"].as_str(), e["text"].as_str()),
            (Some("warning"), Some("careful"))
        );
        let e = firefox_console_entry("console.log: 42 true").unwrap();
        assert_eq!(
            (e["level"].as_str(), e["text"].as_str()),
            (Some("log"), Some("42 true"))
        );
        let e = firefox_console_entry(
            "JavaScript error: http://127.0.0.1:9/p.html, line 3: Error: boom",
        )
        .unwrap();
        assert_eq!(e["level"], "error");
        assert_eq!(e["url"], "http://127.0.0.1:9/p.html");
        assert_eq!(e["text"], "Error: boom");
        assert!(firefox_console_entry("1700000000000\tgeckodriver\tINFO\tListening").is_none());
        assert!(firefox_console_entry("console.: x").is_none());
        assert!(firefox_console_entry("console.a b: x").is_none());
    }

    #[test]
    fn a_firefox_log_keeps_the_console_calls_apart() {
        let dir = tempfile::tempdir().unwrap();
        let log = DriverLog::create(dir.path(), true).unwrap();
        log.line("geckodriver INFO Listening");
        log.line(r#"console.error: "it broke""#);
        let console = std::fs::read_to_string(dir.path().join("artifacts/console.log")).unwrap();
        let entry: serde_json::Value = serde_json::from_str(console.trim()).unwrap();
        assert_eq!(entry["text"], "it broke");
        assert!(entry["timestamp"].as_u64().unwrap() > 0);
        let all = std::fs::read_to_string(dir.path().join("artifacts/driver.log")).unwrap();
        assert!(all.contains("geckodriver INFO") && all.contains("it broke"));
    }

    #[test]
    fn lines_land_in_the_outbox_until_the_log_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let log = DriverLog::create(dir.path(), false).unwrap();
        log.line("Starting ChromeDriver");
        log.line("[INFO]: COMMAND InitSession");
        let text = std::fs::read_to_string(dir.path().join("artifacts/driver.log")).unwrap();
        assert_eq!(text, "Starting ChromeDriver\n[INFO]: COMMAND InitSession\n");
        log.written
            .store(MAX_DRIVER_LOG_BYTES - 2, Ordering::Relaxed);
        log.line("too long for the rest");
        log.line("and more");
        log.append(b"nor this\n");
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
        assert!(DriverLog::create(dir.path(), false).is_none());
    }
}
