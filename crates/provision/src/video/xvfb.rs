//! A private X display per recorded session: Xvfb, reachable only through a
//! unix socket (`-nolisten tcp`) and only with the session's own
//! MIT-MAGIC-COOKIE, so no other session's user can connect to it.

use super::helper::{tail, wait_or_kill, Helper};
use crate::error::ProvisionError;
use gridiron_domain::recording::Screen;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// How long an X server may take to open its display.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// The protocol name of the cookie in an authority file.
const COOKIE_NAME: &[u8] = b"MIT-MAGIC-COOKIE-1";
/// `FamilyWild`: the entry serves a client connecting by any address.
const FAMILY_WILD: u16 = 0xffff;

/// A running X server of one session.
pub struct XServer {
    child: Child,
    /// The display number (`:N`).
    pub number: u32,
}

impl XServer {
    /// Starts Xvfb with a `screen`-sized 24-bit screen, as `uid`, with the
    /// cookie in `auth`; its log goes to `dir/xvfb.log`.
    pub async fn start(
        dir: &Path,
        auth: &Path,
        screen: Screen,
        uid: Option<u32>,
        (data_dir, session): (&Path, &str),
    ) -> Result<XServer, ProvisionError> {
        prepare_socket_dir();
        let log = dir.join("xvfb.log");
        let args = [
            // The server picks a free display and writes its number once it accepts clients.
            "-displayfd",
            "1",
            "-nolisten",
            "tcp",
            // Keeps the cookie and screen when the last client (the browser) leaves.
            "-noreset",
            "-auth",
            &auth.to_string_lossy(),
            "-screen",
            "0",
            &format!("{}x{}x24", screen.width, screen.height),
        ];
        let mut child = Helper {
            program: "Xvfb",
            args: args.iter().map(Into::into).collect(),
            uid,
            data_dir,
            session,
            env: Vec::new(),
            cwd: dir,
            stdin: false,
            stdout: true,
            log: log.clone(),
        }
        .spawn()?;
        let stdout = child.stdout.take();
        let number = tokio::time::timeout(START_TIMEOUT, async {
            let mut lines = BufReader::new(stdout?).lines();
            lines.next_line().await.ok()??.trim().parse::<u32>().ok()
        })
        .await
        .ok()
        .flatten();
        match number {
            Some(number) => Ok(XServer { child, number }),
            None => {
                wait_or_kill(&mut child, Duration::ZERO).await;
                Err(ProvisionError::Recording(format!(
                    "Xvfb did not open a display: {}",
                    tail(&log)
                )))
            }
        }
    }

    /// The display's name, `:N`.
    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// Stops the server (SIGTERM, then SIGKILL after a moment) and reaps it.
    pub async fn stop(&mut self) {
        super::helper::signal(&self.child, nix::sys::signal::Signal::SIGTERM);
        wait_or_kill(&mut self.child, Duration::from_secs(2)).await;
    }
}

/// Where X servers put their sockets must exist, world-writable and sticky,
/// for a server that does not run as root to create its socket there.
fn prepare_socket_dir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Path::new("/tmp/.X11-unix");
    if std::fs::symlink_metadata(dir).is_err() && std::fs::create_dir(dir).is_ok() {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
}

/// A fresh random cookie.
pub fn new_cookie() -> std::io::Result<[u8; 16]> {
    use std::io::Read;
    let mut cookie = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut cookie)?;
    Ok(cookie)
}

/// An authority file's bytes: one entry for any address and display,
/// holding `cookie` (what both the server's `-auth` and clients' `XAUTHORITY` read).
pub fn authority(cookie: &[u8]) -> Vec<u8> {
    let mut out = FAMILY_WILD.to_be_bytes().to_vec();
    for field in [&b""[..], b"", COOKIE_NAME, cookie] {
        out.extend((field.len() as u16).to_be_bytes());
        out.extend(field);
    }
    out
}

/// Writes an authority file with `cookie` at `path` (a new file, `mode`).
pub fn write_authority(path: &Path, cookie: &[u8], mode: u32) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(&authority(cookie))?;
    // The grid's umask would narrow the mode given at creation.
    use std::os::unix::fs::PermissionsExt;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authority_entry_has_the_xau_layout() {
        let a = authority(&[7u8; 16]);
        assert_eq!(&a[..2], &[0xff, 0xff]);
        assert_eq!(&a[2..6], &[0, 0, 0, 0]);
        assert_eq!(&a[6..8], &[0, 18]);
        assert_eq!(&a[8..26], COOKIE_NAME);
        assert_eq!(&a[26..28], &[0, 16]);
        assert_eq!(&a[28..], &[7u8; 16]);
        assert_ne!(new_cookie().unwrap(), new_cookie().unwrap());
    }
}
