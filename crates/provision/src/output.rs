//! Reading what drivers and browsers print.
//!
//! While a process starts, its output is read at once by a task of its own:
//! the start waits for a line naming its port, and a failed start quotes the
//! last lines. Once its session runs, the pipes go to [`Pump`], one thread
//! for every session's output. chromedriver prints several lines per
//! command; read as they come, each would wake the grid (a context switch)
//! on the command's path. The pump reads whatever is waiting at most every
//! [`COALESCE`] while output flows, and sleeps in `poll` while none does.

use crate::driver_log::DriverLog;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// How long the pump lets output gather after it read some.
const COALESCE: Duration = Duration::from_millis(50);
/// Bytes read per call.
const CHUNK: usize = 64 * 1024;
/// Output of more than this in one round is a burst: the pump reads on
/// without a pause until it ends, so a chatty process (a page logging in a
/// loop) waits for a full pipe at most once, for at most [`COALESCE`].
const BURST: usize = 16 * 1024;
/// How many of the last lines of a process are kept for error messages.
pub(crate) const KEEP_LINES: usize = 40;
/// How long a flush waits for each step: a start-up reader to hand its pipe
/// over, then the pump (each answers at once unless its thread is starved).
pub(crate) const FLUSH_WAIT: Duration = Duration::from_secs(2);

/// Where the lines of one process go: its session's driver log and, while
/// it starts, the last [`KEEP_LINES`] lines.
#[derive(Clone)]
pub(crate) struct Sink {
    /// The session's driver log, if it could be created.
    pub log: Option<Arc<DriverLog>>,
    /// The last lines, for error messages.
    pub keep: Arc<Mutex<VecDeque<String>>>,
}

impl Sink {
    /// Takes the lines one read of `bytes` completes (one write to the log
    /// for them all); each also goes to `each`.
    fn take(&self, split: &mut Lines, bytes: &[u8], mut each: impl FnMut(&str)) {
        let mut lines = Vec::new();
        split.push(bytes, |l| lines.push(l.to_string()));
        self.deliver(lines, &mut each);
    }

    /// Takes one read of a running session's output. Only the log wants it
    /// now (no start waits for a line, no error quotes the last ones), so
    /// unless lines need reading (a browser's console calls among them, or
    /// trace logging), its complete lines go to the log as they came.
    fn take_running(&self, split: &mut Lines, bytes: &[u8]) {
        let Some(log) = &self.log else { return };
        if log.has_console() || tracing::enabled!(target: "gridiron::driver", tracing::Level::TRACE)
        {
            return self.take(split, bytes, |_| {});
        }
        split.push_raw(bytes, |complete| log.append(complete));
    }

    /// At the end of the output: its unfinished line, if any.
    fn finish(&self, split: &mut Lines) {
        let mut lines = Vec::new();
        split.finish(|l| lines.push(l.to_string()));
        self.deliver(lines, |_| {});
    }

    fn deliver(&self, lines: Vec<String>, mut each: impl FnMut(&str)) {
        if lines.is_empty() {
            return;
        }
        if let Some(log) = &self.log {
            log.lines(&lines);
        }
        let mut k = self.keep.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines {
            tracing::trace!(target: "gridiron::driver", "{line}");
            each(&line);
            if k.len() == KEEP_LINES {
                k.pop_front();
            }
            k.push_back(line);
        }
    }
}

/// Splits a byte stream into lines, keeping an unfinished one for later.
#[derive(Default)]
pub(crate) struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// Passes every line `bytes` completes to `each` (without its newline).
    pub fn push(&mut self, bytes: &[u8], mut each: impl FnMut(&str)) {
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            let (line, after) = rest.split_at(i);
            if self.partial.is_empty() {
                each(&String::from_utf8_lossy(line));
            } else {
                self.partial.extend_from_slice(line);
                each(&String::from_utf8_lossy(&self.partial));
                self.partial.clear();
            }
            rest = &after[1..];
        }
        self.partial.extend_from_slice(rest);
    }

    /// Passes the complete lines `bytes` ends (newlines included, as one
    /// slice when it can) to `each`, keeping an unfinished one for later.
    pub fn push_raw(&mut self, bytes: &[u8], mut each: impl FnMut(&[u8])) {
        let Some(last) = bytes.iter().rposition(|b| *b == b'\n') else {
            self.partial.extend_from_slice(bytes);
            return;
        };
        let (complete, rest) = bytes.split_at(last + 1);
        if self.partial.is_empty() {
            each(complete);
        } else {
            self.partial.extend_from_slice(complete);
            each(&self.partial);
            self.partial.clear();
        }
        self.partial.extend_from_slice(rest);
    }

    /// At the end of the stream: the unfinished line, if any, is a line.
    pub fn finish(&mut self, each: impl FnOnce(&str)) {
        if !self.partial.is_empty() {
            each(&String::from_utf8_lossy(&self.partial));
            self.partial.clear();
        }
    }
}

/// One `read` of a non-blocking descriptor.
fn read(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes for the whole call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor the caller owns.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Reads one process's output (`fd`, a pipe) while it starts: every line
/// goes to `sink` and, while anyone listens, to `lines`. Once `steady` turns
/// true (the session runs), the pipe goes to the [`Pump`] under `key`.
pub(crate) async fn drain(
    fd: OwnedFd,
    sink: Sink,
    lines: mpsc::UnboundedSender<String>,
    mut steady: watch::Receiver<bool>,
    key: u64,
) {
    if set_nonblocking(fd.as_raw_fd()).is_err() {
        return;
    }
    // SAFETY: the AsyncFd owns the OwnedFd, which stays open (and the same
    // descriptor) until the AsyncFd gives it back or is dropped.
    let Ok(fd) = (unsafe { tokio::io::unix::AsyncFd::register(fd) }) else {
        return;
    };
    let mut split = Lines::default();
    let mut buf = vec![0u8; CHUNK];
    let handover = async {
        // A process dropped before its session ran is read here to its end.
        if steady.wait_for(|s| *s).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(handover);
    loop {
        tokio::select! {
            ready = fd.readable() => {
                let Ok(mut guard) = ready else { return };
                match guard.try_io(|fd| read(fd.as_raw_fd(), &mut buf)) {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        sink.finish(&mut split);
                        return;
                    }
                    Ok(Ok(n)) => sink.take(&mut split, &buf[..n], |l| {
                        if !lines.is_closed() {
                            let _ = lines.send(l.to_string());
                        }
                    }),
                    // Not ready after all; readiness is cleared, wait again.
                    Err(_) => {}
                }
            }
            () = &mut handover => break,
        }
    }
    Pump::shared().add(Source {
        key,
        fd: fd.into_inner(),
        sink,
        split,
    });
}

/// A pipe the pump reads.
struct Source {
    /// Whose (see [`Pump::flush`]).
    key: u64,
    fd: OwnedFd,
    sink: Sink,
    split: Lines,
}

impl Source {
    /// Reads everything waiting; returns (bytes read, whether the pipe ended).
    fn read_waiting(&mut self, buf: &mut [u8]) -> (usize, bool) {
        let mut total = 0;
        loop {
            match read(self.fd.as_raw_fd(), buf) {
                Ok(0) => {
                    self.sink.finish(&mut self.split);
                    return (total, true);
                }
                Ok(n) => {
                    total += n;
                    self.sink.take_running(&mut self.split, &buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (total, false),
                Err(_) => return (total, true),
            }
        }
    }
}

enum Request {
    Add(Source),
    /// Read everything waiting in the pipes of `key`, then answer.
    Flush(u64, oneshot::Sender<()>),
}

/// The thread that reads the output of running sessions (see the module).
pub(crate) struct Pump {
    requests: Mutex<Vec<Request>>,
    /// An eventfd that wakes the thread for new requests.
    wake: OwnedFd,
}

impl Pump {
    /// The pump of this process (its thread starts on first use).
    pub fn shared() -> &'static Pump {
        static SHARED: OnceLock<&'static Pump> = OnceLock::new();
        SHARED.get_or_init(|| {
            // SAFETY: eventfd returns a new descriptor (or -1), owned from here.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            assert!(fd >= 0, "eventfd: {}", std::io::Error::last_os_error());
            let pump: &'static Pump = Box::leak(Box::new(Pump {
                requests: Mutex::default(),
                // SAFETY: the descriptor was just created and nothing else owns it.
                wake: unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) },
            }));
            std::thread::Builder::new()
                .name("gridiron-output".into())
                .spawn(move || pump.run())
                .expect("start the output thread");
            pump
        })
    }

    fn add(&self, source: Source) {
        self.request(Request::Add(source));
    }

    /// Returns once everything the processes of `key` printed so far is
    /// written to their log (what a session's end awaits before its
    /// artifacts are collected).
    pub async fn flush(&self, key: u64) {
        let (tx, rx) = oneshot::channel();
        self.request(Request::Flush(key, tx));
        let _ = tokio::time::timeout(FLUSH_WAIT, rx).await;
    }

    fn request(&self, r: Request) {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to the eventfd.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn run(&self) {
        let mut sources: Vec<Source> = Vec::new();
        let mut buf = vec![0u8; CHUNK];
        // Until then, output is left to gather (requests are still served).
        let mut gather_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let wait = gather_until.and_then(|t| t.checked_duration_since(now));
            let watch_output = wait.is_none();
            let mut fds = vec![libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if watch_output {
                fds.extend(sources.iter().map(|s| libc::pollfd {
                    fd: s.fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                }));
            }
            let timeout = wait.map_or(-1, |w| w.as_millis().max(1) as libc::c_int);
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                if std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                    // Out of memory, say: try again soon rather than spin.
                    std::thread::sleep(COALESCE);
                }
                continue;
            }
            if fds[0].revents != 0 {
                let mut count = [0u8; 8];
                let _ = read(self.wake.as_raw_fd(), &mut count);
            }
            let requests =
                std::mem::take(&mut *self.requests.lock().unwrap_or_else(|e| e.into_inner()));
            let mut ended = vec![false; sources.len()];
            let mut read_bytes = 0;
            if watch_output {
                for (i, s) in sources.iter_mut().enumerate() {
                    if fds[i + 1].revents != 0 {
                        let (n, end) = s.read_waiting(&mut buf);
                        read_bytes += n;
                        ended[i] |= end;
                    }
                }
            }
            let mut acks = Vec::new();
            for r in requests {
                match r {
                    Request::Add(s) => {
                        sources.push(s);
                        ended.push(false);
                    }
                    Request::Flush(key, ack) => {
                        for (i, s) in sources.iter_mut().enumerate() {
                            if s.key == key {
                                ended[i] |= s.read_waiting(&mut buf).1;
                            }
                        }
                        acks.push(ack);
                    }
                }
            }
            let mut i = 0;
            sources.retain(|_| {
                i += 1;
                !ended[i - 1]
            });
            for ack in acks {
                let _ = ack.send(());
            }
            if watch_output {
                gather_until =
                    (read_bytes > 0 && read_bytes < BURST).then(|| Instant::now() + COALESCE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]]) -> Vec<String> {
        let mut out = Vec::new();
        let mut split = Lines::default();
        for c in chunks {
            split.push(c, |l| out.push(l.to_string()));
        }
        split.finish(|l| out.push(l.to_string()));
        out
    }

    #[test]
    fn lines_are_split_across_reads() {
        assert_eq!(collect(&[b"a\nb", b"c\n", b"\nd"]), ["a", "bc", "", "d"]);
        assert_eq!(collect(&[b"one\n"]), ["one"]);
        assert!(collect(&[b""]).is_empty());
    }

    #[test]
    fn raw_pushes_pass_complete_lines_only() {
        let mut split = Lines::default();
        let mut out = Vec::new();
        for chunk in [&b"a\nb"[..], b"c", b"d\ne\nf", b"\n"] {
            split.push_raw(chunk, |c| out.push(String::from_utf8(c.to_vec()).unwrap()));
        }
        assert_eq!(out, ["a\n", "bcd\ne\n", "f\n"]);
    }

    fn sink(dir: &std::path::Path) -> Sink {
        Sink {
            log: DriverLog::create(dir, false).map(Arc::new),
            keep: Arc::default(),
        }
    }

    fn pipe() -> (OwnedFd, std::io::PipeWriter) {
        let (r, w) = std::io::pipe().unwrap();
        (OwnedFd::from(r), w)
    }

    #[tokio::test]
    async fn a_flush_writes_what_was_printed_and_the_rest_follows_unasked() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path());
        let (r, mut w) = pipe();
        let (lines_tx, mut lines_rx) = mpsc::unbounded_channel();
        let (steady_tx, steady) = watch::channel(false);
        let key = 0xfeed_0001;
        let task = tokio::spawn(drain(r, sink.clone(), lines_tx, steady, key));
        w.write_all(b"Starting\nlistening on 1").unwrap();
        assert_eq!(lines_rx.recv().await.as_deref(), Some("Starting"));
        steady_tx.send_replace(true);
        task.await.unwrap();
        // The unfinished line travelled with the pipe.
        w.write_all(b"234\nCOMMAND x\n").unwrap();
        Pump::shared().flush(key).await;
        let log = || std::fs::read_to_string(dir.path().join("artifacts/driver.log")).unwrap();
        assert_eq!(log(), "Starting\nlistening on 1234\nCOMMAND x\n");
        w.write_all(b"later\n").unwrap();
        drop(w);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !log().ends_with("later\n") {
            assert!(
                Instant::now() < deadline,
                "unflushed output never arrived: {}",
                log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Only a start quotes the last lines: they are kept until it is over.
        let kept: Vec<String> = sink.keep.lock().unwrap().iter().cloned().collect();
        assert_eq!(kept, ["Starting"]);
    }

    #[tokio::test]
    async fn a_burst_larger_than_the_pipe_arrives_whole_and_in_order() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path());
        let (r, mut w) = pipe();
        let (lines_tx, _lines_rx) = mpsc::unbounded_channel();
        let (steady_tx, steady) = watch::channel(true);
        let key = 0xfeed_0003;
        tokio::spawn(drain(r, sink, lines_tx, steady, key))
            .await
            .unwrap();
        let writer = std::thread::spawn(move || {
            for i in 0..40_000 {
                writeln!(w, "line {i:06} of a burst").unwrap();
            }
        });
        tokio::task::spawn_blocking(move || writer.join().unwrap())
            .await
            .unwrap();
        Pump::shared().flush(key).await;
        drop(steady_tx);
        let log = std::fs::read_to_string(dir.path().join("artifacts/driver.log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 40_000);
        assert!(lines
            .iter()
            .enumerate()
            .all(|(i, l)| *l == format!("line {i:06} of a burst")));
    }

    #[tokio::test]
    async fn output_of_a_process_that_never_ran_is_read_to_its_end() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path());
        let (r, mut w) = pipe();
        let (lines_tx, _lines_rx) = mpsc::unbounded_channel();
        let (steady_tx, steady) = watch::channel(false);
        let task = tokio::spawn(drain(r, sink.clone(), lines_tx, steady, 0xfeed_0002));
        drop(steady_tx);
        w.write_all(b"crashed\nno newline").unwrap();
        drop(w);
        task.await.unwrap();
        let kept: Vec<String> = sink.keep.lock().unwrap().iter().cloned().collect();
        assert_eq!(kept, ["crashed", "no newline"]);
    }
}
