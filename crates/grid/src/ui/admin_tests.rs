//! The admin pages through the grid's whole router (front door, sign-in
//! cookie, form tokens, the API called in process) on a standalone grid
//! with the stand-in provisioner.

use crate::ui::tests::{Dash, CSRF};
use axum::http::StatusCode;
use gridiron_domain::auth::{hash_token, Role};
use gridiron_domain::webhooks::Next;
use gridiron_store::webhooks::{LogEntry, NewDelivery};
use gridiron_store::{Store, WebhookStore};

/// What the admin tests ask of a grid beyond pages.
impl Dash {
    async fn key_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .store
            .keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        names.sort();
        names
    }
}

/// The text of `<pre ... id="ID">TEXT</pre>`.
fn pre_text(body: &str, id: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("#{id} in {body}"));
    let rest = &body[at..];
    let start = rest.find('>').unwrap() + 1;
    let end = rest.find("</pre>").unwrap();
    rest[start..end].to_string()
}

/// A grid with one admin key, `root`, and its token.
async fn admin_grid() -> (Dash, String) {
    let g = Dash::start(1, None).await;
    let admin = g.key("root", Role::Admin).await;
    (g, admin)
}

#[tokio::test]
async fn an_admin_makes_a_key_and_sees_its_token_once() {
    let (g, admin) = admin_grid().await;

    let page = g.get("/ui/keys", Some(&admin)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("id=\"create-key\""));
    assert!(page.has("tr data-key=\"root\""));
    assert!(!page.has("id=\"open-grid\""), "the grid has keys");

    let made = g
        .post(
            "/ui/keys",
            Some(&admin),
            &[
                ("csrf", CSRF),
                ("name", "ci-runner"),
                ("role", "user"),
                ("max_sessions", "3"),
                ("rate", ""),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert!(
        made.location.is_none(),
        "the token is not carried by a redirect"
    );
    let token = pre_text(&made.body, "new-token");
    assert!(token.len() >= 16, "a token: {token:?}");
    assert!(made.has("class=\"secret\""));
    assert!(made.has("only now"));
    assert!(made.has("Authorization: Bearer TOKEN"));
    assert!(made.has("tr data-key=\"ci-runner\""));
    assert!(made.has("3 sessions at once"));

    // The token is the key's: it signs in and is kept only as a hash.
    let key = g
        .store
        .keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.name == "ci-runner")
        .expect("the key was made");
    assert_eq!(key.token_hash, hash_token(&token));
    assert_eq!(key.max_sessions, Some(3));
    assert_eq!(key.role, Role::User);

    // Shown once: the list does not hold it.
    let again = g.get("/ui/keys", Some(&admin)).await;
    assert!(again.has("tr data-key=\"ci-runner\""));
    assert!(!again.has(&token));
    assert!(!again.has("id=\"new-token\""));
}

#[tokio::test]
async fn a_refused_key_form_keeps_what_was_entered() {
    let (g, admin) = admin_grid().await;
    let got = g
        .post(
            "/ui/keys",
            Some(&admin),
            &[
                ("csrf", CSRF),
                ("name", "root"),
                ("role", "admin"),
                ("rate", "4"),
            ],
        )
        .await;
    assert_eq!(got.status, StatusCode::CONFLICT, "{}", got.body);
    assert!(got.has("a key named root exists already"), "{}", got.body);
    assert!(got.has("value=\"4\""), "the rate entered is kept");
    assert!(!got.has("id=\"new-token\""));

    let bad = g
        .post(
            "/ui/keys",
            Some(&admin),
            &[("csrf", CSRF), ("name", "bad name!"), ("role", "user")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.has("role=\"alert\""));
    assert!(bad.has("value=\"bad name!\""));
    assert_eq!(g.key_names().await, ["root"]);
}

#[tokio::test]
async fn a_form_without_its_token_is_refused_and_makes_nothing() {
    let (g, admin) = admin_grid().await;
    let got = g
        .post(
            "/ui/keys",
            Some(&admin),
            &[("name", "sneaky"), ("role", "admin")],
        )
        .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert!(got.has("form token"));
    let wrong = g
        .post(
            "/ui/keys",
            Some(&admin),
            &[("csrf", "nope"), ("name", "sneaky"), ("role", "admin")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert_eq!(g.key_names().await, ["root"]);

    let hook = g
        .post(
            "/ui/webhooks",
            Some(&admin),
            &[("url", "https://x.example/h"), ("events", "*")],
        )
        .await;
    assert_eq!(hook.status, StatusCode::FORBIDDEN);
    assert!(g.store.webhooks().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_user_key_is_refused_every_admin_page_and_form() {
    let g = Dash::start(1, None).await;
    g.key("root", Role::Admin).await;
    let user = g.key("alice", Role::User).await;

    for path in ["/ui/keys", "/ui/webhooks", "/ui/webhooks/wh_x"] {
        let got = g.get(path, Some(&user)).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{path}");
        assert!(got.has("Only an admin key"), "{path}: {}", got.body);
        assert!(got.has("<html"), "{path}: a page, not the API's JSON");
    }
    let posts: [(&str, &[(&str, &str)]); 4] = [
        (
            "/ui/keys",
            &[("csrf", CSRF), ("name", "mine"), ("role", "admin")],
        ),
        ("/ui/keys/root/revoke", &[("csrf", CSRF)]),
        (
            "/ui/webhooks",
            &[
                ("csrf", CSRF),
                ("url", "https://x.example/h"),
                ("events", "*"),
            ],
        ),
        ("/ui/webhooks/wh_x/delete", &[("csrf", CSRF)]),
    ];
    for (path, form) in posts {
        let got = g.post(path, Some(&user), form).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(g.key_names().await, ["alice", "root"]);
    assert!(g.store.webhooks().await.unwrap().is_empty());

    // The navigation hides the admin pages from the user.
    let home = g.get("/ui/", Some(&user)).await;
    assert!(!home.has("/ui/keys"), "{}", home.body);
}

#[tokio::test]
async fn revoking_a_key_removes_its_row() {
    let (g, admin) = admin_grid().await;
    g.key("old", Role::User).await;
    let page = g.get("/ui/keys", Some(&admin)).await;
    assert!(page.has("tr data-key=\"old\""));
    assert!(page.has("action=\"/ui/keys/old/revoke\""));
    assert!(page.has("data-confirm=\"Revoke the key old?"));

    let got = g.press("/ui/keys/old/revoke", &admin).await;
    assert!(got.status.is_redirection(), "{}", got.body);
    assert_eq!(got.location.as_deref(), Some("/ui/keys"));
    let page = g.get("/ui/keys", Some(&admin)).await;
    assert!(!page.has("tr data-key=\"old\""));
    assert!(page.has("tr data-key=\"root\""));
    assert_eq!(g.key_names().await, ["root"]);

    let missing = g.press("/ui/keys/old/revoke", &admin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_first_key_of_an_open_grid_is_an_admin_key_and_closes_it() {
    let g = Dash::start(1, None).await;
    let page = g.get("/ui/keys", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("id=\"open-grid\""));
    assert!(page.has("turns authentication on"));
    assert!(!page.has("option value=\"user\""), "only admin is offered");

    let user = g
        .post(
            "/ui/keys",
            None,
            &[("csrf", CSRF), ("name", "first"), ("role", "user")],
        )
        .await;
    assert_eq!(user.status, StatusCode::BAD_REQUEST);
    assert!(user.has("must be an admin key"));
    assert!(g.key_names().await.is_empty());

    let made = g
        .post(
            "/ui/keys",
            None,
            &[("csrf", CSRF), ("name", "first"), ("role", "admin")],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let token = pre_text(&made.body, "new-token");
    assert!(made.has("Authentication is now on"));
    assert!(made.has("href=\"/ui/login\""));
    assert!(
        made.has("data-live=\"\""),
        "the token page is not refreshed"
    );

    // From now on the browser signs in, and the token lets it.
    tokio::time::sleep(crate::auth::KEY_CACHE + std::time::Duration::from_millis(200)).await;
    let stranger = g.get("/ui/keys", None).await;
    assert!(stranger.status.is_redirection());
    assert!(stranger.location.unwrap().starts_with("/ui/login"));
    let signed_in = g.get("/ui/keys", Some(&token)).await;
    assert_eq!(signed_in.status, StatusCode::OK);
    assert!(signed_in.has("tr data-key=\"first\""));
}

#[tokio::test]
async fn a_webhook_is_made_listed_and_shown_with_its_deliveries() {
    let (g, admin) = admin_grid().await;

    let empty = g.get("/ui/webhooks", Some(&admin)).await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.body);
    assert!(empty.has("id=\"create-webhook\""));
    assert!(empty.has("name=\"type:session.ended\""));
    assert!(empty.has("No webhooks yet"));

    let refused = g
        .post(
            "/ui/webhooks",
            Some(&admin),
            &[
                ("csrf", CSRF),
                ("url", "ftp://x.example/h"),
                ("events", "*"),
            ],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.has("http://"), "{}", refused.body);
    assert!(refused.has("value=\"ftp://x.example/h\""));

    let made = g
        .post(
            "/ui/webhooks",
            Some(&admin),
            &[
                ("csrf", CSRF),
                ("url", "https://ci.example/hook"),
                ("type:session.ended", "1"),
                ("events", "node.*"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let secret = pre_text(&made.body, "new-secret");
    let hooks = g.store.webhooks().await.unwrap();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.secret, secret, "the secret shown is the hook's");
    assert_eq!(hook.events, ["session.ended", "node.*"]);
    let row = format!("tr data-webhook=\"{}\"", hook.id);
    assert!(made.has(&row));
    assert!(made.has(&format!("href=\"/ui/webhooks/{}\"", hook.id)));
    assert!(made.has("session.ended, node.*"));

    let list = g.get("/ui/webhooks", Some(&admin)).await;
    assert!(list.has(&row));
    assert!(!list.has(&secret), "shown once");

    // A delivery that failed once and then went through.
    let s: &dyn Store = g.store.as_ref();
    let d = NewDelivery {
        webhook: hook.id.clone(),
        event_id: "42-0".into(),
        event_type: "session.ended".into(),
        body: "{}".into(),
    };
    s.enqueue_deliveries(&[d], 1_000).await.unwrap();
    let line = |attempt, status, error: Option<&str>, result: &str| LogEntry {
        seq: 0,
        delivery: format!("{}.42-0", hook.id),
        event_id: "42-0".into(),
        event_type: "session.ended".into(),
        attempt,
        at: 1_700_000_000_000 + i64::from(attempt),
        duration_ms: 120,
        status,
        error: error.map(str::to_string),
        result: result.into(),
    };
    let first = s.take_due(1_000, 1, 60_000, "t").await.unwrap();
    let e = line(1, None, Some("connection refused"), "retrying");
    s.record_attempt(&first[0], Next::RetryAt(2_000), &e)
        .await
        .unwrap();
    let second = s.take_due(2_000, 1, 60_000, "t").await.unwrap();
    let e = line(2, Some(204), None, "delivered");
    s.record_attempt(&second[0], Next::Delivered, &e)
        .await
        .unwrap();

    let page = g
        .get(&format!("/ui/webhooks/{}", hook.id), Some(&admin))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.has("https://ci.example/hook"));
    assert!(page.has("id=\"deliveries\""));
    assert!(page.has("connection refused"));
    assert!(page.has("HTTP 204"));
    assert!(page.has("state-delivered"));
    assert!(page.has("state-retrying"));
    assert!(page.has("data-every=\"5\""));
    let newest = page.body.find("HTTP 204").unwrap();
    let oldest = page.body.find("connection refused").unwrap();
    assert!(newest < oldest, "newest first");

    let gone = g
        .press(&format!("/ui/webhooks/{}/delete", hook.id), &admin)
        .await;
    assert_eq!(gone.location.as_deref(), Some("/ui/webhooks"));
    assert!(g.store.webhooks().await.unwrap().is_empty());
    let page = g
        .get(&format!("/ui/webhooks/{}", hook.id), Some(&admin))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_delivery_log_is_read_a_page_at_a_time() {
    let (g, admin) = admin_grid().await;
    let made = g
        .post(
            "/ui/webhooks",
            Some(&admin),
            &[
                ("csrf", CSRF),
                ("url", "https://ci.example/hook"),
                ("events", "*"),
            ],
        )
        .await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    assert!(made.has("* (every event)"));
    let id = g.store.webhooks().await.unwrap()[0].id.clone();
    let s: &dyn Store = g.store.as_ref();
    let total = super::PAGE_SIZE + 5;
    for n in 0..total {
        let event_id = format!("{}-0", 1000 + n);
        let d = NewDelivery {
            webhook: id.clone(),
            event_id: event_id.clone(),
            event_type: "node.up".into(),
            body: "{}".into(),
        };
        s.enqueue_deliveries(&[d], 1_000).await.unwrap();
        let taken = s.take_due(1_000, 1, 60_000, "t").await.unwrap();
        let e = LogEntry {
            seq: 0,
            delivery: taken[0].id.clone(),
            event_id,
            event_type: "node.up".into(),
            attempt: 1,
            at: 1_700_000_000_000 + n as i64,
            duration_ms: 3,
            status: Some(200),
            error: None,
            result: "delivered".into(),
        };
        s.record_attempt(&taken[0], Next::Delivered, &e)
            .await
            .unwrap();
    }
    let rows = |body: &str| body.matches("<tr data-delivery=").count();
    let first = g.get(&format!("/ui/webhooks/{id}"), Some(&admin)).await;
    assert_eq!(rows(&first.body), super::PAGE_SIZE);
    assert!(
        first.has(&format!("{}-0", 1000 + total - 1)),
        "newest first"
    );
    let needle = "rel=\"next\" href=\"";
    let at = first.body.find(needle).expect("a next page") + needle.len();
    let next = first.body[at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let second = g.get(&next, Some(&admin)).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(rows(&second.body), 5);
    assert!(second.has("1000-0"), "the oldest line");
    assert!(second.has("rel=\"first\""));
    assert!(!second.has("rel=\"next\""));
}
