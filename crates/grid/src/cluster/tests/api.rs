//! The REST API (`/api/v1`) through a hub, and on a standalone grid, over
//! the stand-in provisioner: who sees what, the queue, nodes, pools, keys.

use super::fixture::{caps, eventually, serve, Answer, Client, Grid};
use crate::config::GridConfig;
use crate::manager::Manager;
use crate::testing::StandinProvisioner;
use axum::http::Method;
use gridiron_domain::auth::Role;
use gridiron_domain::EndReason;
use gridiron_store::{Cluster, MemoryStore, Store};
use serde_json::{json, Value};
use std::sync::Arc;

async fn key(store: &dyn Store, name: &str, role: Role) -> String {
    crate::testing::make_key(store, name, role, format!("token-of-{name}")).await
}

/// Calls the API at `base` as `token`.
struct Api<'a> {
    c: &'a Client,
    base: String,
}

impl Api<'_> {
    async fn call(&self, m: Method, path: &str, body: Option<Value>, token: &str) -> Answer {
        let url = format!("{}/api/v1{path}", self.base);
        let token = Some(token).filter(|t| !t.is_empty());
        self.c.call_as(m, &url, body.as_ref(), token).await
    }
    async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(Method::GET, path, None, token).await
    }
}

fn ids(a: &Answer) -> Vec<String> {
    let items = a.body["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap_or("").to_string())
        .collect()
}

fn problem(a: &Answer) -> (u16, &str) {
    (a.status, a.body["type"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn a_hub_serves_sessions_nodes_pools_and_keys_to_whom_they_belong() {
    let g = Grid::new();
    let store = g.cluster.sessions();
    let (a, b) = (
        key(&*store, "a", Role::User).await,
        key(&*store, "b", Role::User).await,
    );
    let admin = key(&*store, "root", Role::Admin).await;
    let hub = g.hub(|_| {}).await;
    let node = g.node(1, |_| {}).await;
    let api = Api {
        c: &g.client,
        base: hub.url.clone(),
    };

    let none = g
        .client
        .call(Method::GET, &format!("{}/api/v1/sessions", hub.url), None)
        .await;
    assert_eq!(problem(&none), (401, "urn:gridiron:problem:unauthorized"));

    let created = api
        .call(
            Method::POST,
            "/sessions",
            Some(json!({"name": "agent", "labels": {"team": "web"}})),
            &a,
        )
        .await;
    assert_eq!(created.status, 201, "{:?}", created.body);
    let sid = created.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.body["webdriver_url"],
        format!("{}/session/{sid}", hub.url)
    );
    assert!(created.body["live_view_url"].is_null());
    // The session answers W3C commands at the returned URL.
    let title = format!("{}/session/{sid}/title", hub.url);
    let command = g.client.call_as(Method::GET, &title, None, Some(&a)).await;
    assert_eq!(command.status, 200, "{:?}", command.body);

    assert_eq!(ids(&api.get("/sessions", &a).await), [sid.as_str()]);
    assert!(
        ids(&api.get("/sessions", &b).await).is_empty(),
        "b sees none of a's"
    );
    assert_eq!(
        ids(&api.get("/sessions?owner=a&label=team%3Dweb", &admin).await),
        [sid.as_str()]
    );
    assert!(ids(&api.get("/sessions?owner=b", &admin).await).is_empty());
    assert_eq!(problem(&api.get("/sessions?owner=a", &b).await).0, 403);
    assert_eq!(problem(&api.get("/sessions?state=sleepy", &a).await).0, 400);
    assert_eq!(
        problem(&api.get(&format!("/sessions/{sid}"), &b).await).0,
        404
    );
    let detail = api.get(&format!("/sessions/{sid}"), &a).await;
    assert_eq!(detail.body["node"], node.id.as_str(), "{:?}", detail.body);
    assert_eq!(detail.body["owner"], "a");
    assert_eq!(detail.body["name"], "agent");
    // The timeline is the session's events, as the node recorded them.
    assert_eq!(detail.body["timeline"][0]["kind"], "session.started");
    assert_eq!(detail.body["timeline"][0]["fields"]["browser"], "chrome");

    // The one slot is taken: a request waits, visible to its owner and admins.
    let (client, url, token) = (g.client.clone(), format!("{}/session", hub.url), b.clone());
    let waiting = tokio::spawn(async move {
        client
            .call_as(Method::POST, &url, Some(&caps(json!({}))), Some(&token))
            .await
    });
    eventually("the request waits", || async { g.queued().await == 1 }).await;
    let queue = api.get("/queue", &admin).await;
    assert_eq!(queue.body["items"][0]["position"], 1, "{:?}", queue.body);
    let rid = queue.body["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(queue.body["items"][0]["owner"], "b");
    assert!(
        ids(&api.get("/queue", &a).await).is_empty(),
        "a sees none of b's"
    );
    assert_eq!(ids(&api.get("/queue", &b).await), [rid.as_str()]);
    assert_eq!(
        problem(
            &api.call(Method::DELETE, &format!("/queue/{rid}"), None, &a)
                .await
        )
        .0,
        404
    );
    let cancelled = api
        .call(Method::DELETE, &format!("/queue/{rid}"), None, &admin)
        .await;
    assert_eq!(cancelled.status, 204, "{:?}", cancelled.body);
    let refused = waiting.await.unwrap();
    assert_eq!(refused.error(), "session not created", "{:?}", refused.body);

    // Nodes, pools and keys are for admins.
    assert_eq!(
        problem(&api.get("/nodes", &a).await),
        (403, "urn:gridiron:problem:forbidden")
    );
    let nodes = api.get("/nodes", &admin).await;
    assert_eq!(ids(&nodes), [node.id.as_str()]);
    assert_eq!(nodes.body["items"][0]["sessions"], json!([sid]));
    assert!(
        nodes.body["items"][0]["heartbeat_age_ms"].is_u64(),
        "{:?}",
        nodes.body
    );
    assert_eq!(
        api.get(&format!("/nodes/{}", node.id), &admin).await.status,
        200
    );
    assert_eq!(api.get("/nodes/nope", &admin).await.status, 404);

    let pool = json!({"name": "gpu", "browser": "chrome", "max_concurrency": 2});
    assert_eq!(
        api.call(Method::POST, "/pools", Some(pool.clone()), &admin)
            .await
            .status,
        201
    );
    assert_eq!(
        problem(&api.call(Method::POST, "/pools", Some(pool), &admin).await).0,
        409
    );
    let bad = json!({"name": "x", "args": ["--gpu-launcher=/bin/sh"]});
    assert_eq!(
        problem(&api.call(Method::POST, "/pools", Some(bad), &admin).await).0,
        400
    );
    let put = api
        .call(
            Method::PUT,
            "/pools/gpu",
            Some(json!({"max_concurrency": 3})),
            &admin,
        )
        .await;
    assert_eq!(put.body["max_concurrency"], 3, "{:?}", put.body);
    assert_eq!(
        g.cluster
            .pool("gpu")
            .await
            .unwrap()
            .unwrap()
            .max_concurrency,
        Some(3)
    );
    assert_eq!(
        api.get("/pools", &admin).await.body["items"][0]["name"],
        "gpu"
    );
    assert_eq!(
        api.call(Method::DELETE, "/pools/gpu", None, &admin)
            .await
            .status,
        204
    );
    assert_eq!(api.get("/pools/gpu", &admin).await.status, 404);
    assert_eq!(api.get("/pools", &a).await.status, 403);

    let made = api
        .call(Method::POST, "/keys", Some(json!({"name": "c"})), &admin)
        .await;
    assert_eq!(made.status, 201, "{:?}", made.body);
    let c = made.body["token"].as_str().unwrap().to_string();
    assert!(
        ids(&api.get("/sessions", &c).await).is_empty(),
        "the new key works"
    );
    let names = api.get("/keys", &admin).await.body["items"].to_string();
    assert!(
        names.contains("\"c\"") && !names.contains("token"),
        "{names}"
    );
    assert_eq!(
        api.call(Method::DELETE, "/keys/c", None, &admin)
            .await
            .status,
        204
    );
    assert_eq!(api.get("/keys", &a).await.status, 403);

    // Ending: only the owner (or an admin), once.
    assert_eq!(
        api.call(Method::DELETE, &format!("/sessions/{sid}"), None, &b)
            .await
            .status,
        404
    );
    assert_eq!(
        api.call(Method::DELETE, &format!("/sessions/{sid}"), None, &a)
            .await
            .status,
        204
    );
    eventually("the session ends", || async {
        g.end_reason(&sid).await == Some(EndReason::DeletedByApi)
    })
    .await;
    assert_eq!(
        api.call(Method::DELETE, &format!("/sessions/{sid}"), None, &a)
            .await
            .status,
        409
    );
    let ended = api.get("/sessions?state=ended", &a).await;
    assert_eq!(ended.body["items"][0]["end_reason"], "deleted_by_api");

    assert_eq!(
        api.call(
            Method::POST,
            &format!("/nodes/{}/drain", node.id),
            None,
            &admin
        )
        .await
        .status,
        202
    );
    eventually("the node drains", || async {
        g.cluster
            .nodes()
            .await
            .unwrap()
            .iter()
            .all(|n| n.draining || !n.alive)
    })
    .await;
}

#[tokio::test]
async fn a_standalone_grid_lists_pages_and_cancels_its_own_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = GridConfig::with_defaults(1, dir.path().to_path_buf());
    config.prewarm = false;
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let m = Manager::start(config, store, StandinProvisioner::new());
    let base = serve(crate::router(m.clone())).await;
    let c = Client::new();
    // No keys: everyone is an admin.
    let api = Api {
        c: &c,
        base: base.clone(),
    };
    let mut sids = Vec::new();
    for _ in 0..3 {
        let s = api
            .call(Method::POST, "/sessions", Some(json!({})), "")
            .await;
        assert_eq!(s.status, 201, "{:?}", s.body);
        let id = s.body["id"].as_str().unwrap().to_string();
        assert_eq!(
            api.call(Method::DELETE, &format!("/sessions/{id}"), None, "")
                .await
                .status,
            204
        );
        sids.push(id);
    }
    let first = api.get("/sessions?limit=2", "").await;
    assert_eq!(ids(&first).len(), 2);
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let second = api
        .get(&format!("/sessions?limit=2&cursor={cursor}"), "")
        .await;
    assert_eq!(ids(&second).len(), 1);
    assert!(second.body["next_cursor"].is_null());
    let mut all = [ids(&first), ids(&second)].concat();
    all.sort();
    sids.sort();
    assert_eq!(all, sids);

    assert_eq!(
        problem(&api.get("/sessions?cursor=garbage", "").await).0,
        400
    );
    assert_eq!(problem(&api.get("/sessions?limit=501", "").await).0, 400);
    assert_eq!(problem(&api.get("/nowhere", "").await).0, 404);
    let malformed = c
        .call(
            Method::POST,
            &format!("{base}/api/v1/sessions"),
            Some(&json!("{")),
        )
        .await;
    assert_eq!(
        problem(&malformed),
        (400, "urn:gridiron:problem:invalid-argument")
    );
    assert_eq!(
        problem(&api.get("/pools", "").await),
        (404, "urn:gridiron:problem:needs-scaled-out-grid")
    );
    assert_eq!(
        problem(&api.call(Method::POST, "/nodes/local/drain", None, "").await).0,
        404
    );
    assert_eq!(ids(&api.get("/nodes", "").await), ["local"]);

    // One slot: the second request waits until cancelled.
    let busy = api
        .call(Method::POST, "/sessions", Some(json!({"name": "busy"})), "")
        .await;
    let busy = busy.body["id"].as_str().unwrap().to_string();
    let c2 = c.clone();
    let url = base.clone();
    let waiting = tokio::spawn(async move {
        c2.call(
            Method::POST,
            &format!("{url}/session"),
            Some(&caps(json!({}))),
        )
        .await
    });
    eventually("the request waits", || async {
        !ids(&api.get("/queue", "").await).is_empty()
    })
    .await;
    let queue = api.get("/queue", "").await;
    assert_eq!(queue.body["items"][0]["browser"], "chrome");
    let rid = ids(&queue).remove(0);
    assert_eq!(
        api.call(Method::DELETE, &format!("/queue/{rid}"), None, "")
            .await
            .status,
        204
    );
    let refused = waiting.await.unwrap();
    assert_eq!(refused.error(), "session not created");
    assert!(
        refused.message().contains("cancelled"),
        "{}",
        refused.message()
    );
    assert!(ids(&api.get("/queue", "").await).is_empty());
    assert_eq!(
        api.call(Method::DELETE, &format!("/queue/{rid}"), None, "")
            .await
            .status,
        404
    );
    let busy_detail = api.get(&format!("/sessions/{busy}"), "").await;
    assert_eq!(busy_detail.body["node"], "local");
    m.shutdown().await;
}
