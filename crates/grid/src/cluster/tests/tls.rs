//! Hubs reach `https://` nodes, verifying them against a private CA.

use super::fixture::*;
use serde_json::json;
use std::sync::Arc;

/// A CA and a certificate for `127.0.0.1`/`localhost` it signed: the CA's
/// PEM and the node's server settings.
fn private_ca() -> (String, Arc<rustls::ServerConfig>, tempfile::TempDir) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("node.pem"), dir.path().join("node.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let server = crate::tls::server_config(&cert_file, &key_file).unwrap();
    (ca.pem(), server, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_runs_commands_and_tunnels_on_an_https_node() {
    let (ca_pem, server, dir) = private_ca();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let mut grid = Grid::new();
    grid.node_tls = Some(server);
    let node = grid.node(1, |_| {}).await;
    assert!(node.url.starts_with("https://"));
    let hub = grid.hub(|c| c.node_ca_file = Some(ca_file.clone())).await;
    let sid = grid
        .client
        .new_session(&hub.url, json!({}))
        .await
        .session_id();
    let answer = grid.client.command(&hub.url, &sid).await;
    assert_eq!(answer.status, 200, "{:?}", answer.body);

    // A websocket goes over TLS to the node and passes its signature check:
    // the stand-in driver has no BiDi, so the node's own answer comes back.
    let ws = ws_upgrade(&hub.url, &format!("/session/{sid}/se/bidi")).await;
    assert!(ws.contains("refused the websocket with status 400"), "{ws}");

    // A hub that does not trust the CA cannot reach the node.
    let stranger = grid.hub(|_| {}).await;
    let answer = grid.client.command(&stranger.url, &sid).await;
    assert_eq!(answer.status, 500, "{:?}", answer.body);
    assert_eq!(answer.error(), "unknown error");
    assert!(node.runs(&sid));
    assert_eq!(grid.client.quit(&hub.url, &sid).await.status, 200);
}

#[test]
fn a_bad_ca_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("ca.pem");
    std::fs::write(&f, "not a certificate").unwrap();
    assert!(crate::tls::client_config(Some(&f)).is_err());
    assert!(crate::tls::client_config(Some(&dir.path().join("missing"))).is_err());
    assert!(crate::tls::server_config(&f, &f).is_err());
}

/// Sends a websocket upgrade for `path` to the hub at `hub`; the raw answer.
async fn ws_upgrade(hub: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = hub.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf))
        .await
        .expect("the hub answers")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).to_string()
}
