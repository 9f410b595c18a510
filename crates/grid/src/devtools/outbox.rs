//! Files the grid writes into a session's outbox. The session directory
//! belongs to the session's user, so its browser could put a link where the
//! grid is about to write: the outbox is opened without following links and
//! each file is created new inside it, never through one.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Creates file `name` (a plain name) in `outbox` for writing; fails if the
/// outbox or the file is a link, or the file exists already.
pub fn create(outbox: &Path, name: &str) -> io::Result<File> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::other(format!("not a plain file name: {name:?}")));
    }
    match std::fs::create_dir(outbox) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let dir: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(outbox)?
        .into();
    let c_name = CString::new(Path::new(name).as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a file name with a NUL"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: openat(2) with a live directory descriptor and a NUL-terminated name.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c_name.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::create;
    use std::io::Write;

    #[test]
    fn files_are_created_new_and_never_through_links() {
        let root = tempfile::tempdir().unwrap();
        let outbox = root.path().join("artifacts");
        create(&outbox, "console.log")
            .unwrap()
            .write_all(b"x")
            .unwrap();
        assert_eq!(std::fs::read(outbox.join("console.log")).unwrap(), b"x");
        assert!(create(&outbox, "console.log").is_err(), "exists already");

        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("target"), outbox.join("network.har")).unwrap();
        assert!(
            create(&outbox, "network.har").is_err(),
            "a link in the outbox"
        );
        assert!(!elsewhere.join("target").exists());

        let linked = root.path().join("linked");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        assert!(
            create(&linked, "network.har").is_err(),
            "the outbox is a link"
        );
        assert!(!elsewhere.join("network.har").exists());

        for bad in ["", "..", "a/b"] {
            assert!(create(&outbox, bad).is_err(), "{bad:?}");
        }
    }
}
