//! Files a WebDriver session exchanges with its client, the way Selenium 4
//! clients expect a grid to serve them (the grid answers; drivers know none
//! of these routes):
//! - managed downloads (`se:downloadsEnabled: true`): the browser saves into
//!   the session's `downloads/` in its outbox (so they are kept as artifacts),
//!   and `GET`/`POST`/`DELETE /session/{id}/se/files` list, fetch (one file
//!   as a base64 zip) and delete them;
//! - remote uploads (`POST /session/{id}/se/file`, what `LocalFileDetector`
//!   sends): one file, zipped, unpacked where the session's browser can read it.

mod archive;
mod dirs;

pub(crate) use dirs::prepare_download_dir;

use crate::http;
use crate::manager::Manager;
use crate::proxy;
use crate::session::Session;
use axum::body::Body;
use axum::http::{Method, Request, Response};
use gridiron_domain::files::check_file_name;
use gridiron_domain::{ErrorCode, GridError, Origin};
use serde_json::{json, Value};
use std::sync::Arc;

/// The largest download `POST /se/files` answers with: the answer is held in
/// memory (base64 inside JSON); larger files are fetched through the
/// artifacts API once the session has ended.
pub const MAX_DOWNLOAD_BYTES: u64 = 100 * 1024 * 1024;

/// Counts a files request as a command of its session while it runs: it is
/// activity (no idle timeout meanwhile), and the session's count includes it.
struct Busy(Arc<Session>);

impl Busy {
    fn new(m: &Manager, session: Arc<Session>) -> Busy {
        if session.command_started() {
            m.activity(&session);
        }
        Busy(session)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.command_done();
    }
}

/// `GET`, `POST`, `DELETE /session/{id}/se/files`.
pub(crate) async fn downloads(
    m: &Arc<Manager>,
    session: Arc<Session>,
    req: Request<Body>,
) -> Response<Body> {
    let busy = Busy::new(m, session);
    let session = &busy.0;
    if !session.downloads {
        return http::error(&GridError::invalid_argument(format!(
            "managed downloads are not enabled for session {}: ask for the capability \
             se:downloadsEnabled: true when the session is created",
            session.id
        )));
    }
    let dir = dirs::downloads_dir(session.dir());
    let result = match *req.method() {
        Method::GET => dirs::list(dir).await.map(|names| json!({ "names": names })),
        Method::POST => match name_asked(m, req).await {
            Ok(name) => fetch(session, dir, name).await,
            Err(e) => Err(e),
        },
        Method::DELETE => dirs::delete_all(dir).await.map(|()| Value::Null),
        _ => return unknown_method(req.method(), "GET, POST, DELETE"),
    };
    match result {
        Ok(v) => http::ok(v),
        Err(e) => http::error(&e),
    }
}

/// The file name a `POST /se/files` body asks for (`{"name": "..."}`).
async fn name_asked(m: &Manager, req: Request<Body>) -> Result<String, GridError> {
    let (_, body) = proxy::read_body(req, m.config.max_body_bytes).await?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
    let name = v
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| GridError::invalid_argument("the body must be {\"name\": FILE NAME}"))?;
    check_file_name("the file name", name)?;
    Ok(name.to_string())
}

/// One downloaded file as Selenium's clients take it: `{"filename",
/// "contents"}`, the contents a base64 zip holding the file.
async fn fetch(
    session: &Session,
    dir: std::path::PathBuf,
    name: String,
) -> Result<Value, GridError> {
    let bytes = dirs::read_download(dir, &name, MAX_DOWNLOAD_BYTES)
        .await?
        .ok_or_else(|| {
            GridError::invalid_argument(format!(
                "session {} has no finished download named {name:?} (list them with GET se/files)",
                session.id
            ))
        })?;
    let packed = {
        let name = name.clone();
        tokio::task::spawn_blocking(move || archive::pack_one(&name, &bytes))
            .await
            .map_err(|e| grid_failed(format!("packing the download failed: {e}")))?
            .map_err(|e| grid_failed(format!("packing the download failed: {e}")))?
    };
    Ok(json!({ "filename": name, "contents": archive::encode_base64(&packed) }))
}

/// `POST /session/{id}/se/file`: `{"file": base64 zip of one file}` ->
/// the path where the session's browser finds the file.
pub(crate) async fn upload(
    m: &Arc<Manager>,
    session: Arc<Session>,
    req: Request<Body>,
) -> Response<Body> {
    if req.method() != Method::POST {
        return unknown_method(req.method(), "POST");
    }
    let busy = Busy::new(m, session);
    match unpack_upload(m, &busy.0, req).await {
        Ok(path) => http::ok(Value::String(path)),
        Err(e) => http::error(&e),
    }
}

async fn unpack_upload(
    m: &Manager,
    session: &Session,
    req: Request<Body>,
) -> Result<String, GridError> {
    let limit = m.config.max_body_bytes;
    let (_, body) = proxy::read_body(req, limit).await?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
    let file = v.get("file").and_then(Value::as_str).ok_or_else(|| {
        GridError::invalid_argument("the body must be {\"file\": BASE64 ZIP OF ONE FILE}")
    })?;
    let archive = archive::decode_base64(file)?;
    // The body limit for commands bounds what the archive unpacks to as well.
    let unpacked = tokio::task::spawn_blocking(move || archive::unpack_one(&archive, limit as u64))
        .await
        .map_err(|e| grid_failed(format!("unpacking the upload failed: {e}")))??;
    let path = dirs::store_upload(session.dir().to_path_buf(), unpacked).await?;
    Ok(path.to_string_lossy().into_owned())
}

fn unknown_method(method: &Method, allowed: &str) -> Response<Body> {
    http::error(&GridError::new(
        ErrorCode::UnknownMethod,
        Origin::Client,
        format!("{method} is not supported here; use {allowed}"),
    ))
}

/// A failure of the grid's own (files, disk), not the client's.
fn grid_failed(message: String) -> GridError {
    GridError::new(ErrorCode::UnknownError, Origin::Grid, message)
}
