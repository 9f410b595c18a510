//! The dashboard of a hub (`/ui/`): its nodes with their heartbeats and
//! slots, the pools with their limits and load, and draining a node from the
//! nodes page.

use super::fixture::{eventually, Grid};
use crate::driver_client::driver_client;
use axum::body::Body;
use axum::http::{header, Method, Request};
use gridiron_domain::dashboard::{CSRF_COOKIE, CSRF_FIELD};
use http_body_util::BodyExt;
use serde_json::json;

/// A request to the hub at `url` (a grid without keys: everyone is an admin);
/// status, `Location` and body.
async fn send(method: Method, url: &str, form: bool) -> (u16, String, String) {
    let token = "00112233445566778899aabbccddeeff";
    let mut req = Request::builder().method(method).uri(url);
    let body = if form {
        req = req
            .header(header::COOKIE, format!("{CSRF_COOKIE}={token}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        Body::from(format!("{CSRF_FIELD}={token}"))
    } else {
        Body::empty()
    };
    let r = driver_client()
        .request(req.body(body).unwrap())
        .await
        .expect("the hub answers");
    let status = r.status().as_u16();
    let to = r
        .headers()
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    (status, to, String::from_utf8_lossy(&bytes).into_owned())
}

async fn page(url: &str) -> String {
    let (status, _, html) = send(Method::GET, url, false).await;
    assert_eq!(status, 200, "{html}");
    html
}

/// The HTML of the table row whose `attr` is `value`.
fn row<'a>(html: &'a str, attr: &str, value: &str) -> Option<&'a str> {
    let at = html.find(&format!("<tr {attr}=\"{value}\""))?;
    let end = at + html[at..].find("</tr>")?;
    Some(&html[at..end])
}

#[tokio::test]
async fn a_hub_dashboard_shows_nodes_and_pools_and_drains_a_node() {
    let g = Grid::new();
    let hub = g.hub(|_| {}).await;
    let node = g.node(2, |_| {}).await;
    let pool = json!({"name": "web", "max_concurrency": 4, "labels": {"team": "web"}});
    let created = g
        .client
        .call(
            Method::POST,
            &format!("{}/api/v1/pools", hub.url),
            Some(&pool),
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let sid = g.client.new_session(&hub.url, json!({})).await.session_id();
    assert!(node.runs(&sid));

    let html = page(&format!("{}/ui/nodes", hub.url)).await;
    let r = row(&html, "data-node", &node.id).expect("the node's row");
    assert!(r.contains(">1 / 2<"), "{r}");
    assert!(r.contains("state-up"), "{r}");
    assert!(
        r.contains(" ago<") || r.contains("just now"),
        "a heartbeat age: {r}"
    );
    let drain = format!("/ui/nodes/{}/drain", node.id);
    assert!(r.contains(&format!("action=\"{drain}\"")), "{r}");
    let p = row(&html, "data-pool", "web").expect("the pool's row");
    assert!(p.contains("team=web") && p.contains("fill-0"), "{p}");
    assert!(!html.contains("id=\"no-pools\""));

    let html = page(&format!("{}/ui/", hub.url)).await;
    let slots = row(&html, "data-node", &node.id).expect("the node's slots");
    assert!(slots.contains("1/2"), "{slots}");
    assert!(html.contains("id=\"running-count\">1<"), "{html}");
    assert!(html.contains("id=\"free-slots\">1<"), "{html}");

    let (status, to, _) = send(Method::POST, &format!("{}{drain}", hub.url), true).await;
    assert_eq!((status, to.as_str()), (303, "/ui/nodes"));
    eventually("the node drains", || async {
        let html = page(&format!("{}/ui/nodes", hub.url)).await;
        row(&html, "data-node", &node.id).is_some_and(|r| r.contains("state-draining"))
    })
    .await;
    let html = page(&format!("{}/ui/nodes", hub.url)).await;
    let r = row(&html, "data-node", &node.id).unwrap();
    assert!(
        !r.contains("<form"),
        "a draining node has no drain button: {r}"
    );
    let html = page(&format!("{}/ui/", hub.url)).await;
    assert!(html.contains("id=\"free-slots\">0<"), "{html}");
}
