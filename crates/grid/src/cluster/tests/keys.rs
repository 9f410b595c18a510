//! API keys through hubs and nodes: the hub authenticates and checks who owns
//! a session; the node records the owner the hub passed through the queue.

use super::fixture::{caps, eventually, Answer, Grid};
use axum::http::Method;
use gridiron_domain::auth::{hash_token, ApiKey, Role};
use gridiron_store::Cluster;
use serde_json::json;

async fn key(g: &Grid, name: &str, role: Role) -> String {
    limited_key(g, name, role, None).await
}

async fn limited_key(g: &Grid, name: &str, role: Role, max: Option<u32>) -> String {
    let token = format!("token-of-{name}");
    let key = ApiKey {
        name: name.into(),
        role,
        token_hash: hash_token(&token),
        max_sessions: max,
        rate: None,
        created_at: 0,
    };
    assert!(g.cluster.sessions().create_key(key).await.unwrap());
    token
}

#[tokio::test]
async fn hubs_authenticate_and_keep_sessions_to_their_owners() {
    let g = Grid::new();
    let a = key(&g, "a", Role::User).await;
    let b = key(&g, "b", Role::User).await;
    let admin = key(&g, "root", Role::Admin).await;
    let (hub, other_hub) = (g.hub(|_| {}).await, g.hub(|_| {}).await);
    let node = g.node(2, |_| {}).await;
    let c = &g.client;

    let anonymous = c
        .call(
            Method::POST,
            &format!("{}/session", hub.url),
            Some(&caps(json!({}))),
        )
        .await;
    assert_eq!(
        (anonymous.status, anonymous.error()),
        (401, "unknown error")
    );
    let status = c
        .call(Method::GET, &format!("{}/status", hub.url), None)
        .await;
    assert_eq!(status.status, 200, "readiness probes need no key");

    let created = c
        .call_as(
            Method::POST,
            &format!("{}/session", hub.url),
            Some(&caps(json!({}))),
            Some(&a),
        )
        .await;
    let sid = created.session_id();
    assert!(node.runs(&sid));
    let rec = g.cluster.sessions().get(&sid).await.unwrap().unwrap();
    assert_eq!(
        rec.owner.as_deref(),
        Some("a"),
        "the node recorded the owner"
    );

    for h in [&hub, &other_hub] {
        let title = format!("{}/session/{sid}/title", h.url);
        let by_b = c.call_as(Method::GET, &title, None, Some(&b)).await;
        assert_eq!((by_b.status, by_b.error()), (404, "invalid session id"));
        let by_a = c.call_as(Method::GET, &title, None, Some(&a)).await;
        assert_eq!(by_a.status, 200, "{:?}", by_a.body);
        let by_admin = c.call_as(Method::GET, &title, None, Some(&admin)).await;
        assert_eq!(by_admin.status, 200, "{:?}", by_admin.body);
    }
    let session = format!("{}/session/{sid}", hub.url);
    let del_b = c.call_as(Method::DELETE, &session, None, Some(&b)).await;
    assert_eq!(del_b.status, 404);
    assert!(node.runs(&sid), "b could not end a's session");
    let del_admin = c
        .call_as(Method::DELETE, &session, None, Some(&admin))
        .await;
    assert_eq!(del_admin.status, 200, "{:?}", del_admin.body);
    assert!(!node.runs(&sid));

    // Nodes still refuse anyone but hubs, keys or not.
    let direct = c
        .call_as(
            Method::GET,
            &format!("{}/status", node_url(&g, &node.id).await),
            None,
            Some(&admin),
        )
        .await;
    assert_eq!(direct.status, 401);
}

async fn node_url(g: &Grid, id: &str) -> String {
    g.cluster
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.info.id == id)
        .unwrap()
        .info
        .url
}

/// Starts `POST /session` on `hub` as the key of `token`, in a task of its own.
fn spawn_as(g: &Grid, hub: &str, token: &str) -> tokio::task::JoinHandle<Answer> {
    let (client, url, token) = (
        g.client.clone(),
        format!("{hub}/session"),
        token.to_string(),
    );
    tokio::spawn(async move {
        client
            .call_as(Method::POST, &url, Some(&caps(json!({}))), Some(&token))
            .await
    })
}

async fn quit_as(g: &Grid, hub: &str, sid: &str, token: &str) {
    let url = format!("{hub}/session/{sid}");
    let quit = g
        .client
        .call_as(Method::DELETE, &url, None, Some(token))
        .await;
    assert_eq!(quit.status, 200, "{:?}", quit.body);
}

#[tokio::test]
async fn a_key_at_its_cap_waits_in_the_shared_queue_while_others_are_served() {
    let g = Grid::new();
    let a = limited_key(&g, "a", Role::User, Some(1)).await;
    let b = key(&g, "b", Role::User).await;
    let hub = g.hub(|_| {}).await;
    // Another hub takes a's second request: the cap holds across hubs.
    let other_hub = g.hub(|_| {}).await;
    let node = g.node(3, |_| {}).await;

    let first = spawn_as(&g, &hub.url, &a).await.unwrap().session_id();
    assert!(node.runs(&first));
    let second = spawn_as(&g, &other_hub.url, &a);
    eventually("a's second request waits", || async {
        g.queued().await == 1
    })
    .await;
    // b is served at once, though a's request came first and slots are free.
    let by_b = spawn_as(&g, &hub.url, &b).await.unwrap().session_id();
    assert!(node.runs(&by_b));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!second.is_finished(), "a runs as many sessions as it may");
    assert_eq!(g.queued().await, 1);

    quit_as(&g, &hub.url, &first, &a).await;
    let second = second.await.unwrap();
    assert_eq!(second.status, 200, "{:?}", second.body);
    assert!(node.runs(&second.session_id()));
    assert_eq!(g.queued().await, 0);
}

#[tokio::test]
async fn keys_take_turns_in_the_shared_queue() {
    let g = Grid::new();
    let (a, b, c) = (
        key(&g, "a", Role::User).await,
        key(&g, "b", Role::User).await,
        key(&g, "c", Role::User).await,
    );
    let hub = g.hub(|_| {}).await;
    let _node = g.node(1, |_| {}).await;
    // c holds the only slot while a queues many requests, then b one.
    let holder = spawn_as(&g, &hub.url, &c).await.unwrap().session_id();
    const MANY: usize = 6;
    let mut waiting = Vec::new();
    for i in 0..MANY {
        waiting.push(("a", a.clone(), spawn_as(&g, &hub.url, &a)));
        eventually("a's requests wait", || async { g.queued().await == i + 1 }).await;
    }
    waiting.push(("b", b.clone(), spawn_as(&g, &hub.url, &b)));
    eventually("b's request waits", || async {
        g.queued().await == MANY + 1
    })
    .await;

    // Each session ends as soon as it starts: the slot serves them in turn.
    quit_as(&g, &hub.url, &holder, &c).await;
    let mut served = Vec::new();
    while !waiting.is_empty() {
        eventually("a request is served", || async {
            waiting.iter().any(|(_, _, h)| h.is_finished())
        })
        .await;
        let i = waiting
            .iter()
            .position(|(_, _, h)| h.is_finished())
            .unwrap();
        let (who, token, h) = waiting.remove(i);
        let sid = h.await.unwrap().session_id();
        served.push(who);
        quit_as(&g, &hub.url, &sid, &token).await;
    }
    let b_at = served.iter().position(|w| *w == "b").unwrap();
    assert!(
        b_at <= 1,
        "b waits for one of a's requests at most, not all {MANY}: {served:?}"
    );
}
