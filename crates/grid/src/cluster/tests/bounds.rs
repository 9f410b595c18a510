//! A hub's front end refuses cross-site requests and oversized new-session
//! bodies like a standalone grid's, and what it lets through reaches the node.

use super::fixture::{caps, Grid};
use crate::manager::driver_client;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// Sends `body` to `url` with extra `headers`; the status and JSON answer.
async fn send(method: Method, url: &str, headers: &[(&str, &str)], body: String) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = driver_client()
        .request(req.body(Body::from(body)).unwrap())
        .await
        .expect("the hub answers");
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_hub_refuses_cross_site_requests_and_large_new_sessions() {
    let g = Grid::new();
    let hub = g
        .hub(|c| {
            c.allowed_origins = vec!["https://dash.example".into()];
            c.max_new_session_bytes = 2048;
        })
        .await;
    let node = g.node(1, |_| {}).await;
    let json_body = [("content-type", "application/json")];
    let new_session = format!("{}/session", hub.url);

    let evil = [
        ("content-type", "application/json"),
        ("origin", "http://evil.example"),
    ];
    let (status, v) = send(
        Method::POST,
        &new_session,
        &evil,
        caps(json!({})).to_string(),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["value"]["error"], "unknown error");
    assert!(v["value"]["message"]
        .as_str()
        .unwrap()
        .contains("http://evil.example"));

    let plain = [("content-type", "text/plain")];
    let (status, v) = send(
        Method::POST,
        &new_session,
        &plain,
        caps(json!({})).to_string(),
    )
    .await;
    assert_eq!(
        (status, v["value"]["error"].as_str()),
        (400, Some("invalid argument"))
    );

    let big = json!({"capabilities": {"alwaysMatch": {}}, "pad": "x".repeat(4096)}).to_string();
    let (status, v) = send(Method::POST, &new_session, &json_body, big).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["value"]["message"]
        .as_str()
        .unwrap()
        .contains("--max-new-session-bytes"));
    assert_eq!(node.standin.started(), 0, "nothing was started");

    // An allowed origin passes the hub, and the node (which allows none)
    // serves what the hub forwards.
    let dash = [
        ("content-type", "application/json"),
        ("origin", "https://dash.example"),
    ];
    let (status, v) = send(
        Method::POST,
        &new_session,
        &dash,
        caps(json!({})).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let sid = v["value"]["sessionId"].as_str().unwrap().to_string();
    let title = format!("{}/session/{sid}/title", hub.url);
    let (status, v) = send(Method::GET, &title, &dash, String::new()).await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = send(Method::GET, &title, &evil, String::new()).await;
    assert_eq!(status, 403);
    assert_eq!(g.client.quit(&hub.url, &sid).await.status, 200);
}
