//! Where artifact bytes live: [`ArtifactBackend`], with a local directory
//! ([`LocalBackend`], the default) and, behind the `s3` feature, an
//! S3-compatible bucket (`super::s3`). Callers pass checked session ids and
//! names; backends check them again, since a slip here reads any file.

use super::files;
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::Stream;
use gridiron_domain::artifacts::{check_name, is_path_safe_id};
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// The bytes of an artifact, streamed.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// One artifact as a backend holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its session.
    pub session: String,
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Unix ms when it was written.
    pub modified: i64,
}

/// A place to keep artifact bytes.
#[async_trait]
pub trait ArtifactBackend: Send + Sync + 'static {
    /// What index entries record as the artifact's location: `local`, or
    /// [`gridiron_store::artifacts::IN_BUCKET`] for storage every process reads.
    fn location(&self) -> &'static str;
    /// Stores the regular file `file` as artifact `name` of `session` (the
    /// file may be moved away); returns its size.
    async fn put_file(&self, session: &str, name: &str, file: &Path) -> io::Result<u64>;
    /// The size of a stored artifact (`NotFound` if there is none).
    async fn size(&self, session: &str, name: &str) -> io::Result<u64>;
    /// `len` bytes of a stored artifact from `start`.
    async fn read(&self, session: &str, name: &str, start: u64, len: u64)
        -> io::Result<ByteStream>;
    /// Removes a stored artifact; `false` if there was none.
    async fn remove(&self, session: &str, name: &str) -> io::Result<bool>;
    /// Everything stored.
    async fn list_all(&self) -> io::Result<Vec<Stored>>;
}

/// Refuses a session id or name that could leave the storage's root.
pub fn checked(session: &str, name: &str) -> io::Result<()> {
    if !is_path_safe_id(session) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad session id",
        ));
    }
    check_name(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.0))
}

/// Artifacts as files under `<root>/<session>/<name>`.
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// Storage under `root` (`<data_dir>/artifacts`).
    pub fn new(root: PathBuf) -> Self {
        // Only the grid enters it: sessions run under user ids of their own.
        if std::fs::create_dir_all(&root).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700));
        }
        LocalBackend { root }
    }
}

/// Runs blocking file work off the runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
}

/// Bytes read per chunk of a streamed file.
const CHUNK: usize = 64 * 1024;

/// Streams `len` bytes of `file` from `start`.
pub(crate) async fn stream_file(
    file: std::fs::File,
    start: u64,
    len: u64,
) -> io::Result<ByteStream> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(io::SeekFrom::Start(start)).await?;
    }
    let reader = file.take(len);
    Ok(Box::pin(futures_util::stream::unfold(
        reader,
        |mut reader| async move {
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), reader))
                }
                Err(e) => Some((Err(e), reader)),
            }
        },
    )))
}

#[async_trait]
impl ArtifactBackend for LocalBackend {
    fn location(&self) -> &'static str {
        "local"
    }

    async fn put_file(&self, session: &str, name: &str, file: &Path) -> io::Result<u64> {
        checked(session, name)?;
        let to = self.root.join(session).join(name);
        let from = file.to_path_buf();
        blocking(move || {
            files::move_file(&from, &to)?;
            Ok(std::fs::symlink_metadata(&to)?.len())
        })
        .await
    }

    async fn size(&self, session: &str, name: &str) -> io::Result<u64> {
        checked(session, name)?;
        let dir = self.root.join(session);
        let name = name.to_string();
        blocking(move || Ok(files::open_regular_below(&dir, &name)?.1.len())).await
    }

    async fn read(
        &self,
        session: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> io::Result<ByteStream> {
        checked(session, name)?;
        let dir = self.root.join(session);
        let name = name.to_string();
        let (file, _) = blocking(move || files::open_regular_below(&dir, &name)).await?;
        stream_file(file, start, len).await
    }

    async fn remove(&self, session: &str, name: &str) -> io::Result<bool> {
        checked(session, name)?;
        let dir = self.root.join(session);
        let name = name.to_string();
        blocking(move || {
            let removed = files::remove_below(&dir, &name);
            // A session directory left empty goes too.
            let _ = std::fs::remove_dir(&dir);
            Ok(removed)
        })
        .await
    }

    async fn list_all(&self) -> io::Result<Vec<Stored>> {
        let root = self.root.clone();
        blocking(move || {
            let mut out = Vec::new();
            let entries = match std::fs::read_dir(&root) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(e),
            };
            for entry in entries.flatten() {
                let Some(session) = entry.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                let is_dir = std::fs::symlink_metadata(entry.path()).is_ok_and(|m| m.is_dir());
                if !is_path_safe_id(&session) || !is_dir {
                    continue;
                }
                for (name, size, modified) in files::list(&entry.path()) {
                    out.push(Stored {
                        session: session.clone(),
                        name,
                        size,
                        modified,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Artifacts in memory, for tests of what is built on a backend.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct MemoryBackend {
    files: std::sync::Mutex<std::collections::BTreeMap<(String, String), (Bytes, i64)>>,
}

#[cfg(any(test, feature = "testing"))]
impl MemoryBackend {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<(String, String), (Bytes, i64)>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(any(test, feature = "testing"))]
#[async_trait]
impl ArtifactBackend for MemoryBackend {
    fn location(&self) -> &'static str {
        gridiron_store::artifacts::IN_BUCKET
    }

    async fn put_file(&self, session: &str, name: &str, file: &Path) -> io::Result<u64> {
        checked(session, name)?;
        let bytes = Bytes::from(tokio::fs::read(file).await?);
        let size = bytes.len() as u64;
        let key = (session.to_string(), name.to_string());
        self.map().insert(key, (bytes, gridiron_store::now_ms()));
        Ok(size)
    }

    async fn size(&self, session: &str, name: &str) -> io::Result<u64> {
        checked(session, name)?;
        let key = (session.to_string(), name.to_string());
        self.map()
            .get(&key)
            .map(|(b, _)| b.len() as u64)
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    async fn read(
        &self,
        session: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> io::Result<ByteStream> {
        checked(session, name)?;
        let key = (session.to_string(), name.to_string());
        let bytes = self
            .map()
            .get(&key)
            .map(|(b, _)| b.clone())
            .ok_or(io::ErrorKind::NotFound)?;
        let end = (start + len).min(bytes.len() as u64) as usize;
        let part = bytes.slice((start as usize).min(end)..end);
        Ok(Box::pin(futures_util::stream::iter([Ok(part)])))
    }

    async fn remove(&self, session: &str, name: &str) -> io::Result<bool> {
        checked(session, name)?;
        let key = (session.to_string(), name.to_string());
        Ok(self.map().remove(&key).is_some())
    }

    async fn list_all(&self) -> io::Result<Vec<Stored>> {
        Ok(self
            .map()
            .iter()
            .map(|((session, name), (b, at))| Stored {
                session: session.clone(),
                name: name.clone(),
                size: b.len() as u64,
                modified: *at,
            })
            .collect())
    }
}

/// The behaviour every [`ArtifactBackend`] must show, from an empty one;
/// `scratch` is a directory for source files.
#[cfg(any(test, feature = "testing"))]
pub async fn conformance(backend: &dyn ArtifactBackend, scratch: &Path) {
    use futures_util::TryStreamExt;
    let read_all = |s: ByteStream| async move {
        let parts: Vec<Bytes> = s.try_collect().await.unwrap();
        parts.concat()
    };
    assert!(backend.list_all().await.unwrap().is_empty());
    let src = scratch.join("src.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(150_000).collect();
    std::fs::write(&src, &data).unwrap();
    assert_eq!(
        backend.put_file("s1", "video.mp4", &src).await.unwrap(),
        150_000
    );
    std::fs::write(&src, b"a,b").unwrap();
    assert_eq!(backend.put_file("s1", "d/r.csv", &src).await.unwrap(), 3);
    std::fs::write(&src, b"x").unwrap();
    backend.put_file("s2", "log.txt", &src).await.unwrap();
    assert_eq!(backend.size("s1", "video.mp4").await.unwrap(), 150_000);
    assert_eq!(
        backend.size("s1", "nope").await.unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    let whole = read_all(backend.read("s1", "video.mp4", 0, 150_000).await.unwrap()).await;
    assert_eq!(whole, data);
    let part = read_all(backend.read("s1", "video.mp4", 70_000, 100).await.unwrap()).await;
    assert_eq!(part, &data[70_000..70_100]);
    let mut all: Vec<(String, String, u64)> = backend
        .list_all()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.session, s.name, s.size))
        .collect();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("s1".into(), "d/r.csv".into(), 3),
            ("s1".into(), "video.mp4".into(), 150_000),
            ("s2".into(), "log.txt".into(), 1),
        ]
    );
    assert!(backend.remove("s1", "d/r.csv").await.unwrap());
    assert!(!backend.remove("s1", "d/r.csv").await.unwrap());
    assert!(backend.read("s1", "d/r.csv", 0, 1).await.is_err());
    for (s, n) in [("..", "x"), ("s1", "../s2/log.txt"), ("s1", "/etc/passwd")] {
        assert!(backend.put_file(s, n, &src).await.is_err(), "{s} {n}");
        assert!(backend.read(s, n, 0, 1).await.is_err(), "{s} {n}");
        assert!(backend.remove(s, n).await.is_err(), "{s} {n}");
    }
    assert_eq!(backend.list_all().await.unwrap().len(), 2);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_backend_conforms() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(tmp.path().join("artifacts"));
        conformance(&backend, tmp.path()).await;
    }

    #[tokio::test]
    async fn the_memory_backend_conforms() {
        let tmp = tempfile::tempdir().unwrap();
        conformance(&MemoryBackend::default(), tmp.path()).await;
    }
}
