//! Nodes serve only signed, fresh, unreplayed requests from hubs.

use super::fixture::*;
use crate::cluster::signing::{self, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::cluster::{unix_ms, END_REASON_HEADER};
use serde_json::json;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes clients sent through a [`recording_proxy`], one entry per connection.
type Recorded = Arc<Mutex<Vec<Vec<u8>>>>;

/// A TCP proxy to the address `upstream` will hold, recording what clients send.
async fn recording_proxy(upstream: Arc<Mutex<String>>) -> (String, Recorded) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let recorded: Recorded = Arc::default();
    let rec = recorded.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let to = upstream.lock().unwrap().clone();
            let mut server = TcpStream::connect(to.trim_start_matches("http://"))
                .await
                .unwrap();
            let rec = rec.clone();
            let index = {
                let mut r = rec.lock().unwrap();
                r.push(Vec::new());
                r.len() - 1
            };
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = [0u8; 4096];
                    loop {
                        let n = cr.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        rec.lock().unwrap()[index].extend_from_slice(&buf[..n]);
                        if sw.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                tokio::select! { _ = up => {}, _ = down => {} }
            });
        }
    });
    (url, recorded)
}

/// The first request starting with `start` in what was recorded (requests
/// without a body: it ends at the blank line).
fn captured(recorded: &Recorded, start: &str) -> Vec<u8> {
    let all = recorded.lock().unwrap().concat();
    let text = String::from_utf8_lossy(&all);
    let from = text.find(start).expect("the request was recorded");
    let len = text[from..].find("\r\n\r\n").expect("a whole request") + 4;
    text[from..from + len].as_bytes().to_vec()
}

/// Sends raw request bytes to `url` on a fresh connection; the status and body.
async fn send_raw(url: &str, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    // One request per connection: the answer ends when the node closes.
    let text =
        String::from_utf8_lossy(request).replacen("\r\n\r\n", "\r\nconnection: close\r\n\r\n", 1);
    s.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut out))
        .await
        .expect("the node answers")
        .unwrap();
    let out = String::from_utf8_lossy(&out).to_string();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

/// A GET to `path` with the given extra header lines.
fn get(path: &str, host: &str, extra: &[String]) -> Vec<u8> {
    let mut r = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n");
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r.into_bytes()
}

fn signed_headers(
    method: &str,
    path: &str,
    ts: u64,
    nonce: &str,
    reason: Option<&str>,
) -> Vec<String> {
    let digest = signing::body_digest(b"");
    let sig = signing::sign(
        SECRET.as_bytes(),
        &signing::Parts {
            method,
            path_and_query: path,
            timestamp_ms: ts,
            nonce,
            body_digest: &digest,
            headers: [reason.map(str::as_bytes)],
        },
    );
    let mut h = vec![
        format!("{TIMESTAMP_HEADER}: {ts}"),
        format!("{NONCE_HEADER}: {nonce}"),
        format!("{SIGNATURE_HEADER}: {sig}"),
    ];
    if let Some(r) = reason {
        h.push(format!("{END_REASON_HEADER}: {r}"));
    }
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_request_replayed_to_a_node_is_refused() {
    let grid = Grid::new();
    let upstream = Arc::new(Mutex::new(String::new()));
    let (proxy, recorded) = recording_proxy(upstream.clone()).await;
    let node = grid.node(1, |c| c.advertise_url = proxy.clone()).await;
    *upstream.lock().unwrap() = node.url.clone();
    let hub = grid.hub(|_| {}).await;
    let sid = grid
        .client
        .new_session(&hub.url, json!({}))
        .await
        .session_id();
    let first = grid.client.command(&hub.url, &sid).await;
    assert_eq!(first.status, 200, "{:?}", first.body);

    let request = captured(&recorded, &format!("GET /session/{sid}/title"));
    assert!(String::from_utf8_lossy(&request).contains(SIGNATURE_HEADER));
    let (status, body) = send_raw(&node.url, &request).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("already received"), "{body}");
    assert!(body.contains("\"error\""), "a W3C error: {body}");

    // The same signature on another path (or any other change) is refused too.
    let text = String::from_utf8_lossy(&request).to_string();
    let moved = text.replacen("/title", "/url", 1);
    let (status, body) = send_raw(&node.url, moved.as_bytes()).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("does not match"), "{body}");

    // The session was never touched by any of it.
    assert!(node.runs(&sid));
    assert_eq!(grid.client.command(&hub.url, &sid).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_stale_and_wrongly_signed_requests_are_refused() {
    let grid = Grid::new();
    let node = grid.node(1, |_| {}).await;
    let hub = grid.hub(|_| {}).await;
    let sid = grid
        .client
        .new_session(&hub.url, json!({}))
        .await
        .session_id();
    let host = node.url.trim_start_matches("http://").to_string();
    let path = format!("/session/{sid}/title");
    let now = unix_ms();

    // A signature made with the secret is served once.
    let good = signed_headers("GET", &path, now, "fresh-nonce", None);
    let (status, body) = send_raw(&node.url, &get(&path, &host, &good)).await;
    assert_eq!(status, 200, "{body}");

    let mut wrong = signed_headers("GET", &path, now, "other-nonce", None);
    wrong[2] = format!("{SIGNATURE_HEADER}: {}", "ab".repeat(32));
    let stale_ts = now - 2 * signing::MAX_SKEW.as_millis() as u64;
    let future_ts = now + 2 * signing::MAX_SKEW.as_millis() as u64;
    let refused = [
        ("unsigned", vec![]),
        (
            "the old bearer secret",
            vec![format!("x-gridiron-cluster-secret: {SECRET}")],
        ),
        ("a wrong signature", wrong),
        (
            "a stale one",
            signed_headers("GET", &path, stale_ts, "n-stale", None),
        ),
        (
            "a future one",
            signed_headers("GET", &path, future_ts, "n-future", None),
        ),
        (
            "signed for another method",
            signed_headers("POST", &path, now, "n-method", None),
        ),
    ];
    for (what, headers) in refused {
        let (status, body) = send_raw(&node.url, &get(&path, &host, &headers)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            body.contains("unknown error"),
            "{what}: a W3C error: {body}"
        );
        assert!(!body.contains(SECRET), "{what}: {body}");
    }

    // An end reason the signature does not cover is refused, not trusted.
    let mut forged = signed_headers("DELETE", &format!("/session/{sid}"), now, "n-del", None);
    forged.push(format!("{END_REASON_HEADER}: idle_timeout"));
    let mut req = String::from_utf8(get(&format!("/session/{sid}"), &host, &forged)).unwrap();
    req.replace_range(0..3, "DELETE");
    let (status, body) = send_raw(&node.url, req.as_bytes()).await;
    assert_eq!(status, 401, "{body}");
    assert!(node.runs(&sid));

    // Signed with it, the hub's reason is taken.
    let signed = signed_headers(
        "DELETE",
        &format!("/session/{sid}"),
        now,
        "n-del2",
        Some("idle_timeout"),
    );
    let mut req = String::from_utf8(get(&format!("/session/{sid}"), &host, &signed)).unwrap();
    req.replace_range(0..3, "DELETE");
    let (status, body) = send_raw(&node.url, req.as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    eventually("the session ends for the signed reason", || async {
        grid.end_reason(&sid).await == Some(gridiron_domain::EndReason::IdleTimeout)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_smuggle_an_end_reason_through_a_hub() {
    let grid = Grid::new();
    let _node = grid.node(1, |_| {}).await;
    let hub = grid.hub(|_| {}).await;
    let sid = grid
        .client
        .new_session(&hub.url, json!({}))
        .await
        .session_id();
    let req = axum::http::Request::delete(format!("{}/session/{sid}", hub.url))
        .header(END_REASON_HEADER, "node_lost")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = crate::driver_client::driver_client()
        .request(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    eventually("the session ends as a quit", || async {
        grid.end_reason(&sid).await == Some(gridiron_domain::EndReason::Quit)
    })
    .await;
}
