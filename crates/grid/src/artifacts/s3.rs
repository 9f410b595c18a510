//! Artifacts in an S3-compatible bucket (`--artifacts-url s3://bucket/prefix`),
//! through `object_store`: objects `<prefix>/<session>/<name>`. Endpoint,
//! credentials and region come from the usual environment (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`); an `http://`
//! endpoint the operator names is allowed. Every process of a grid reads
//! the same bucket, so hubs serve its artifacts themselves.

use super::backend::{checked, ArtifactBackend, ByteStream, Stored};
use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};
use gridiron_store::artifacts::IN_BUCKET;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::path::{Path as ObjectPath, PathPart};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// A bucket (and a prefix in it) holding artifacts.
pub struct S3Backend {
    store: Arc<AmazonS3>,
    /// Parts of the prefix, without slashes at either end.
    prefix: Vec<String>,
}

impl S3Backend {
    /// The bucket of `url` (`s3://bucket/prefix`), configured from the environment.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("--artifacts-url {url:?} must start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("--artifacts-url {url:?} names no bucket"));
        }
        // reqwest's TLS is built without a provider of its own: ring, as
        // the rest of the grid uses, for the whole process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
            // A local S3-compatible server (MinIO, moto) is often plain HTTP.
            builder = builder
                .with_endpoint(&endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_err() {
            builder = builder.with_region("us-east-1");
        }
        let store = builder
            .build()
            .map_err(|e| format!("--artifacts-url {url}: {e}"))?;
        let prefix = prefix
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Ok(S3Backend {
            store: Arc::new(store),
            prefix,
        })
    }

    /// The object of artifact `name` of `session`.
    fn object(&self, session: &str, name: &str) -> ObjectPath {
        self.prefix
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(session))
            .chain(name.split('/'))
            .map(PathPart::from)
            .collect()
    }

    fn root(&self) -> ObjectPath {
        self.prefix
            .iter()
            .map(|p| PathPart::from(p.as_str()))
            .collect()
    }
}

/// An `object_store` failure as an I/O error (its "not found" kept).
fn io_err(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, e.to_string())
        }
        e => io::Error::other(e.to_string()),
    }
}

/// Undoes the percent-encoding `object_store` gives path parts.
fn decode(part: &str) -> Option<String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait]
impl ArtifactBackend for S3Backend {
    fn location(&self) -> &'static str {
        IN_BUCKET
    }

    async fn put_file(&self, session: &str, name: &str, file: &Path) -> io::Result<u64> {
        use tokio::io::AsyncWriteExt;
        checked(session, name)?;
        let src = std::fs::OpenOptions::new().read(true).open(file)?;
        if !src.metadata()?.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut src = tokio::fs::File::from_std(src);
        // Large files (videos) go up in parts, never whole in memory.
        let mut writer = BufWriter::new(self.store.clone(), self.object(session, name));
        let size = tokio::io::copy(&mut src, &mut writer).await?;
        writer.shutdown().await?;
        let _ = tokio::fs::remove_file(file).await;
        Ok(size)
    }

    async fn size(&self, session: &str, name: &str) -> io::Result<u64> {
        checked(session, name)?;
        let meta = self
            .store
            .head(&self.object(session, name))
            .await
            .map_err(io_err)?;
        Ok(meta.size)
    }

    async fn read(
        &self,
        session: &str,
        name: &str,
        start: u64,
        len: u64,
    ) -> io::Result<ByteStream> {
        checked(session, name)?;
        if len == 0 {
            return Ok(Box::pin(futures_util::stream::empty()));
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + len)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&self.object(session, name), options)
            .await
            .map_err(io_err)?;
        Ok(Box::pin(got.into_stream().map_err(io_err)))
    }

    async fn remove(&self, session: &str, name: &str) -> io::Result<bool> {
        checked(session, name)?;
        let object = self.object(session, name);
        match self.store.head(&object).await {
            Ok(_) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(io_err(e)),
        }
        self.store.delete(&object).await.map_err(io_err)?;
        Ok(true)
    }

    async fn list_all(&self) -> io::Result<Vec<Stored>> {
        let root = self.root();
        let skip = self.prefix.len();
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&root))
            .map(|m| m.map_err(io_err))
            .try_collect()
            .await?;
        let mut out = Vec::new();
        for m in metas {
            let parts: Vec<String> = m
                .location
                .parts()
                .skip(skip)
                .filter_map(|p| decode(p.as_ref()))
                .collect();
            let Some((session, rest)) = parts.split_first() else {
                continue;
            };
            let name = rest.join("/");
            if checked(session, &name).is_err() {
                continue;
            }
            out.push(Stored {
                session: session.clone(),
                name,
                size: m.size,
                modified: m.last_modified.timestamp_millis(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn parts_decode() {
        assert_eq!(decode("a%20b").as_deref(), Some("a b"));
        assert_eq!(decode("plain.mp4").as_deref(), Some("plain.mp4"));
        assert_eq!(decode("%2E%2E").as_deref(), Some(".."));
        assert_eq!(decode("bad%4").as_deref(), Some("bad%4"));
    }
}
