//! The file operations of local artifact storage, blocking (run them in
//! `spawn_blocking`): taking a session's outbox into storage, listing a
//! stored session, opening a stored file. Nothing here follows a symbolic
//! link: the outbox is written by processes that serve hostile pages.

use gridiron_domain::artifacts::check_name;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Files taken from one outbox at most; the rest stay (and go with the
/// session's directory).
pub const MAX_FILES: usize = 10_000;

/// The regular files below `outbox` that may be artifacts (name, size):
/// no links, no devices or sockets, acceptable UTF-8 names, at most
/// [`MAX_FILES`].
pub fn outbox_files(outbox: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    walk(outbox, "", 0, &mut found);
    found.truncate(MAX_FILES);
    found.sort();
    found
}

/// Moves what the sessions of an earlier process (one that was killed, so
/// its sessions were never ended) left in their outboxes under
/// `<data_dir>/sessions/` into `<data_dir>/artifacts/<session>/`, before
/// those directories are removed. The keeper indexes them at its start.
/// Returns how many files were saved.
pub fn salvage_outboxes(data_dir: &Path) -> usize {
    let Ok(sessions) = fs::read_dir(data_dir.join("sessions")) else {
        return 0;
    };
    let mut saved = 0;
    for entry in sessions.flatten() {
        let Some(id) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let is_dir = fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir());
        if !is_dir || !gridiron_domain::artifacts::is_path_safe_id(&id) {
            continue;
        }
        let outbox = super::outbox(&entry.path());
        let dest = data_dir.join("artifacts").join(&id);
        for (name, _) in outbox_files(&outbox) {
            if move_file(&outbox.join(&name), &dest.join(&name)).is_ok() {
                saved += 1;
            }
        }
    }
    saved
}

/// The regular files below `dir` (name relative to the walk's root, size),
/// without following links.
fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<(String, u64)>) {
    if depth >= gridiron_domain::artifacts::MAX_DEPTH || out.len() >= MAX_FILES {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(part) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let name = if prefix.is_empty() {
            part
        } else {
            format!("{prefix}/{part}")
        };
        // `symlink_metadata`: a link is seen as a link, never as its target.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if meta.is_dir() {
            walk(&entry.path(), &name, depth + 1, out);
        } else if meta.is_file() && check_name(&name).is_ok() {
            out.push((name, meta.len()));
        }
    }
}

/// Moves one file, by rename when it stays on one file system, by copy
/// otherwise. Refuses a source that is not a regular file by then.
pub(crate) fn move_file(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    let moved = match fs::rename(from, to) {
        Ok(()) => {
            // A rename moves a link as a link: if the file was swapped for
            // one after it was looked at, drop what arrived.
            if !fs::symlink_metadata(to)?.is_file() {
                let _ = fs::remove_file(to);
                return Err(io::Error::other("not a regular file"));
            }
            Ok(())
        }
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let mut src = open_regular(from)?;
            let mut dst = fs::File::create(to)?;
            io::copy(&mut src, &mut dst)?;
            dst.sync_all()?;
            fs::remove_file(from)
        }
        Err(e) => Err(e),
    };
    if moved.is_ok() {
        // The file may belong to the session's own user id, which a later
        // session reuses: stored, it is the grid's alone.
        // SAFETY: geteuid and getegid have no preconditions and cannot fail.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let _ = std::os::unix::fs::chown(to, Some(uid), Some(gid));
        let _ = fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o600));
    }
    moved
}

/// Opens `path` for reading if it is a regular file reached without any
/// symbolic link below `root`.
pub fn open_regular_below(root: &Path, name: &str) -> io::Result<(fs::File, fs::Metadata)> {
    check_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.0))?;
    let mut at = root.to_path_buf();
    for part in Path::new(name).components() {
        let Component::Normal(part) = part else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad name"));
        };
        at.push(part);
        if fs::symlink_metadata(&at)?.file_type().is_symlink() {
            return Err(io::Error::new(io::ErrorKind::NotFound, "a symbolic link"));
        }
    }
    let file = open_regular(&at)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Opens a regular file, refusing a final symbolic link (`O_NOFOLLOW`).
fn open_regular(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The stored files below `dir` (names, sizes, modification times in Unix ms).
pub fn list(dir: &Path) -> Vec<(String, u64, i64)> {
    let mut found = Vec::new();
    walk(dir, "", 0, &mut found);
    let mut out: Vec<(String, u64, i64)> = found
        .into_iter()
        .map(|(name, size)| {
            let modified = fs::symlink_metadata(dir.join(&name))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as i64);
            (name, size, modified)
        })
        .collect();
    out.sort();
    out
}

/// Removes `name` below `root` and the directories it leaves empty (up to
/// `root`, which stays). `false` if there was no such file.
pub fn remove_below(root: &Path, name: &str) -> bool {
    if check_name(name).is_err() {
        return false;
    }
    let path = root.join(name);
    match fs::symlink_metadata(&path) {
        Ok(m) if !m.is_dir() => {}
        _ => return false,
    }
    if fs::remove_file(&path).is_err() {
        return false;
    }
    let mut dir: PathBuf = path.parent().map(Path::to_path_buf).unwrap_or_default();
    while dir.starts_with(root) && dir != root {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
        dir.pop();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_move_and_links_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let (outbox, dest) = (tmp.path().join("out"), tmp.path().join("store"));
        fs::create_dir_all(outbox.join("downloads")).unwrap();
        fs::write(outbox.join("video.mp4"), b"12345").unwrap();
        fs::write(outbox.join("downloads/r.csv"), b"a,b").unwrap();
        let secret = tmp.path().join("secret");
        fs::write(&secret, b"do not take").unwrap();
        std::os::unix::fs::symlink(&secret, outbox.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), outbox.join("up")).unwrap();
        let found = outbox_files(&outbox);
        assert_eq!(
            found,
            vec![
                ("downloads/r.csv".to_string(), 3),
                ("video.mp4".to_string(), 5)
            ]
        );
        for (name, _) in &found {
            move_file(&outbox.join(name), &dest.join(name)).unwrap();
        }
        assert_eq!(fs::read(dest.join("video.mp4")).unwrap(), b"12345");
        assert!(!dest.join("link.txt").exists());
        assert!(!dest.join("up").exists());
        assert_eq!(fs::read(&secret).unwrap(), b"do not take");
        let names: Vec<String> = list(&dest).into_iter().map(|(n, ..)| n).collect();
        assert_eq!(names, vec!["downloads/r.csv", "video.mp4"]);
    }

    #[test]
    fn a_killed_processs_outboxes_are_saved_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let outbox = super::super::outbox(&data.join("sessions").join("abc123"));
        fs::create_dir_all(outbox.join("d")).unwrap();
        fs::write(outbox.join("d/video.mp4"), b"v").unwrap();
        fs::write(data.join("sessions/abc123/profile.txt"), b"not an artifact").unwrap();
        std::os::unix::fs::symlink(data.join("secret"), outbox.join("l")).unwrap();
        fs::create_dir_all(data.join("sessions/bad.id/artifacts")).unwrap();
        fs::write(data.join("sessions/bad.id/artifacts/x"), b"x").unwrap();
        assert_eq!(salvage_outboxes(data), 1);
        assert_eq!(
            fs::read(data.join("artifacts/abc123/d/video.mp4")).unwrap(),
            b"v"
        );
        assert!(!data.join("artifacts/abc123/profile.txt").exists());
        assert!(!data.join("artifacts/abc123/l").exists());
        assert!(!data.join("artifacts/bad.id").exists());
        assert_eq!(salvage_outboxes(&data.join("nothing")), 0);
    }

    #[test]
    fn opening_refuses_links_and_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("s");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/f.txt"), b"ok").unwrap();
        fs::write(tmp.path().join("outside"), b"no").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), root.join("l")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root.join("dl")).unwrap();
        assert!(open_regular_below(&root, "d/f.txt").is_ok());
        for bad in [
            "l",
            "dl/outside",
            "../outside",
            "/etc/passwd",
            "d",
            "d/../l",
        ] {
            assert!(open_regular_below(&root, bad).is_err(), "{bad}");
        }
        assert!(!remove_below(&root, "../outside"));
        assert!(remove_below(&root, "d/f.txt"));
        assert!(!root.join("d").exists() && root.exists());
    }
}
