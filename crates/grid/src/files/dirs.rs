//! The directories behind a session's files: its download directory (in its
//! outbox, writable by the session's user) and its uploads (readable by it).
//! Every name used here has passed [`check_file_name`]; files are opened
//! without following links, so nothing outside the session's directory is
//! ever read.

use super::archive::Unpacked;
use super::grid_failed;
use gridiron_domain::files::{check_file_name, finished_downloads, is_partial};
use gridiron_domain::GridError;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The download directory of the session whose directory is `session_dir`.
pub(crate) fn downloads_dir(session_dir: &Path) -> PathBuf {
    crate::artifacts::outbox(session_dir).join("downloads")
}

/// Makes the session's download directory, owned by the session's user (who
/// owns the session directory) alone; returns it.
pub(crate) async fn prepare_download_dir(session_dir: &Path) -> std::io::Result<PathBuf> {
    let session_dir = session_dir.to_path_buf();
    blocking(move || {
        let dir = downloads_dir(&session_dir);
        let outbox = crate::artifacts::outbox(&session_dir);
        std::fs::create_dir_all(&outbox)?;
        let owner = std::fs::metadata(&session_dir)?.uid();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        if let Ok(meta) = std::fs::symlink_metadata(&dir) {
            // Made by an earlier start of this session's browser.
            if meta.is_dir() && meta.uid() == owner {
                return Ok(dir);
            }
        }
        let uid = (owner != me).then_some(owner);
        if std::fs::symlink_metadata(&outbox)?.uid() == me {
            // The session's user passes through to its downloads (the grid's
            // umask made the outbox the grid's alone), but cannot list it.
            std::fs::set_permissions(&outbox, std::fs::Permissions::from_mode(0o711))?;
        }
        gridiron_provision::isolation::give_dirs(&[&dir], uid)?;
        Ok(dir)
    })
    .await
}

/// The finished downloads in `dir`: regular files only (no links, no
/// directories), none still being written.
pub(crate) async fn list(dir: PathBuf) -> Result<Vec<String>, GridError> {
    blocking(move || regular_files(&dir))
        .await
        .map(|names| finished_downloads(&names))
        .map_err(|e| grid_failed(format!("could not list the downloads: {e}")))
}

fn regular_files(dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        // The entry's own type: a link is a link, whatever it points at.
        if entry.file_type()?.is_file() {
            if let Ok(name) = entry.file_name().into_string() {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// The bytes of the finished download `name` in `dir` (`None`: there is no
/// such finished file), at most `limit` of them.
pub(crate) async fn read_download(
    dir: PathBuf,
    name: &str,
    limit: u64,
) -> Result<Option<Vec<u8>>, GridError> {
    check_file_name("the file name", name)?;
    let name = name.to_string();
    let read = blocking(
        move || -> std::io::Result<Result<Option<Vec<u8>>, GridError>> {
            let names = regular_files(&dir)?;
            if !names.contains(&name) || is_partial(&name, &names) {
                return Ok(Ok(None));
            }
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(dir.join(&name));
            let file = match file {
                Ok(f) => f,
                // Replaced by a link since it was listed.
                Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(Ok(None)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(None)),
                Err(e) => return Err(e),
            };
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(Ok(None));
            }
            if meta.len() > limit {
                return Ok(Err(GridError::invalid_argument(format!(
                    "{name:?} is {} bytes, over the {limit} bytes a session command may return; \
                 fetch it through /api/v1/sessions/{{id}}/artifacts/downloads/{name} once the \
                 session has ended",
                    meta.len()
                ))));
            }
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.take(limit).read_to_end(&mut bytes)?;
            Ok(Ok(Some(bytes)))
        },
    )
    .await
    .map_err(|e| grid_failed(format!("could not read the download: {e}")))?;
    read
}

/// Removes everything in `dir` (links themselves, never what they point at).
pub(crate) async fn delete_all(dir: PathBuf) -> Result<(), GridError> {
    blocking(move || {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| grid_failed(format!("could not delete the downloads: {e}")))
}

/// Writes an uploaded file into a directory of its own under the session's
/// `uploads/`, readable by the session's user; returns the file's path.
pub(crate) async fn store_upload(
    session_dir: PathBuf,
    file: Unpacked,
) -> Result<PathBuf, GridError> {
    blocking(move || {
        let owner = std::fs::metadata(&session_dir)?.uid();
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let uid = (owner != me).then_some(owner);
        let uploads = session_dir.join("uploads");
        // A directory per upload: the same name twice keeps both files.
        let own = uploads.join(uuid::Uuid::new_v4().simple().to_string());
        if std::fs::symlink_metadata(&uploads).is_err() {
            gridiron_provision::isolation::give_dirs(&[&uploads], uid)?;
        }
        gridiron_provision::isolation::give_dirs(&[&own], uid)?;
        let path = own.join(&file.name);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        // Explicitly: the grid's umask keeps its own files private.
        out.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        std::io::Write::write_all(&mut out, &file.bytes)?;
        Ok(path)
    })
    .await
    .map_err(|e| grid_failed(format!("could not store the upload: {e}")))
}

/// Runs file work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_finished_regular_files_are_served() {
        let tmp = tempfile::tempdir().unwrap();
        let session = tmp.path().join("s1");
        let dir = prepare_download_dir(&session).await.unwrap();
        assert_eq!(dir, session.join("artifacts/downloads"));
        std::fs::write(dir.join("a.txt"), "A").unwrap();
        std::fs::write(dir.join("b.bin.crdownload"), "partial").unwrap();
        std::fs::write(tmp.path().join("secret"), "S").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), dir.join("link.txt")).unwrap();
        std::fs::create_dir(dir.join("sub")).unwrap();
        assert_eq!(list(dir.clone()).await.unwrap(), ["a.txt"]);
        assert_eq!(
            read_download(dir.clone(), "a.txt", 10).await.unwrap(),
            Some(b"A".to_vec())
        );
        for absent in ["link.txt", "sub", "b.bin.crdownload", "nope"] {
            assert_eq!(
                read_download(dir.clone(), absent, 10).await.unwrap(),
                None,
                "{absent}"
            );
        }
        for hostile in ["../secret", "/etc/passwd", ".."] {
            assert!(
                read_download(dir.clone(), hostile, 10).await.is_err(),
                "{hostile}"
            );
        }
        std::fs::write(dir.join("big"), vec![0u8; 100]).unwrap();
        assert!(read_download(dir.clone(), "big", 10).await.is_err());
        delete_all(dir.clone()).await.unwrap();
        assert!(list(dir.clone()).await.unwrap().is_empty());
        assert_eq!(
            std::fs::read(tmp.path().join("secret")).unwrap(),
            b"S",
            "a link's target stays"
        );
    }

    #[tokio::test]
    async fn uploads_land_in_a_directory_of_their_own() {
        let tmp = tempfile::tempdir().unwrap();
        let file = || Unpacked {
            name: "photo.png".into(),
            bytes: b"png".to_vec(),
        };
        let a = store_upload(tmp.path().to_path_buf(), file())
            .await
            .unwrap();
        let b = store_upload(tmp.path().to_path_buf(), file())
            .await
            .unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(tmp.path().join("uploads")));
        assert_eq!(std::fs::read(&b).unwrap(), b"png");
    }
}
