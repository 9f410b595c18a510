//! API keys through hubs and nodes: the hub authenticates and checks who owns
//! a session; the node records the owner the hub passed through the queue.

use super::fixture::{caps, Grid};
use axum::http::Method;
use gridiron_domain::auth::{hash_token, ApiKey, Role};
use gridiron_store::Cluster;
use serde_json::json;

async fn key(g: &Grid, name: &str, role: Role) -> String {
    let token = format!("token-of-{name}");
    let key = ApiKey {
        name: name.into(),
        role,
        token_hash: hash_token(&token),
        max_sessions: None,
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
