//! The sessions pages through the real router of a standalone grid with
//! API keys, on the stand-in provisioner: what each key sees, search,
//! paging, a session's page while it runs and once it ended.

use super::*;
use crate::ui::tests::{Dash, Seen};
use axum::http::Request;
use gridiron_domain::auth::Role;
use gridiron_store::{NewSession, Store};
use serde_json::json;

impl Dash {
    /// A dashboard page as the browser signed in with `token` reads it.
    async fn page(&self, path: &str, token: &str) -> Seen {
        self.get(path, Some(token)).await
    }
}

fn rows(html: &str) -> usize {
    html.matches("data-session=\"").count()
}

#[tokio::test]
async fn a_user_key_sees_only_its_own_sessions() {
    let g = Dash::start(2, None).await;
    let alice = g.key("alice", Role::User).await;
    let bob = g.key("bob", Role::User).await;
    let admin = g.key("root", Role::Admin).await;
    let a = g.session(&alice, json!({"name": "checkout flow"})).await;
    let b = g
        .session(&bob, json!({"name": "bob's", "labels": {"team": "api"}}))
        .await;

    let list = g.page("/ui/sessions", &alice).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!("data-session=\"{a}\"")),
        "{}",
        list.body
    );
    assert!(
        !list.body.contains(&b),
        "bob's session is not alice's business"
    );
    assert!(list.body.contains("id=\"session-filters\""));
    assert!(
        !list.body.contains("name=\"owner\""),
        "a user has no owner filter"
    );
    assert!(list.body.contains("checkout flow"));

    let theirs = g.page(&format!("/ui/sessions/{b}"), &alice).await;
    assert_eq!(theirs.status, 404);
    assert!(!theirs.body.contains("bob's"));
    let file = g
        .page(&format!("/ui/sessions/{b}/artifacts/console.log"), &alice)
        .await;
    assert_eq!(file.status, 404);
    let live = g.page(&format!("/ui/sessions/{b}/live"), &alice).await;
    assert_eq!(live.status, 404);
    assert_eq!(
        g.press(&format!("/ui/sessions/{b}/end"), &alice)
            .await
            .status,
        404
    );

    let all = g.page("/ui/sessions", &admin).await;
    assert_eq!(rows(&all.body), 2, "{}", all.body);
    assert!(all.body.contains("name=\"owner\""));
    let bobs = g.page("/ui/sessions?owner=bob", &admin).await;
    assert_eq!(rows(&bobs.body), 1);
    assert!(bobs.body.contains(&format!("data-session=\"{b}\"")));
    // A user's owner field is ignored, not an error.
    let own = g.page("/ui/sessions?owner=bob", &alice).await;
    assert_eq!(rows(&own.body), 1);
    assert!(own.body.contains(&a));
}

#[tokio::test]
async fn search_and_filters_find_sessions_and_bad_input_is_explained() {
    let g = Dash::start(2, None).await;
    let admin = g.key("root", Role::Admin).await;
    let a = g
        .session(
            &admin,
            json!({"name": "Checkout flow", "labels": {"team": "web"}}),
        )
        .await;
    let b = g.session(&admin, json!({"name": "login"})).await;

    let found = g.page("/ui/sessions?q=CHECKOUT", &admin).await;
    assert_eq!(rows(&found.body), 1, "{}", found.body);
    assert!(found.body.contains(&format!("data-session=\"{a}\"")));
    // The form keeps what was asked.
    assert!(found.body.contains("value=\"CHECKOUT\""));
    let by_label_value = g.page("/ui/sessions?q=web", &admin).await;
    assert_eq!(rows(&by_label_value.body), 1);
    let by_id = g.page(&format!("/ui/sessions?q={}", &b[..8]), &admin).await;
    assert!(by_id.body.contains(&format!("data-session=\"{b}\"")));
    let label = g
        .page("/ui/sessions?label=team%3Dweb&state=running", &admin)
        .await;
    assert_eq!(rows(&label.body), 1);
    let none = g.page("/ui/sessions?q=nothing-like-it", &admin).await;
    assert_eq!(rows(&none.body), 0);
    assert!(none.body.contains("No session matches"));
    let recent = g.page("/ui/sessions?since=1h&q=", &admin).await;
    assert_eq!(rows(&recent.body), 2);

    let bad = g.page("/ui/sessions?label=novalue", &admin).await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("label must be KEY=VALUE"), "{}", bad.body);
    assert!(bad.body.contains("id=\"session-filters\""));
    let since = g.page("/ui/sessions?since=forever", &admin).await;
    assert_eq!(since.status, 400);
    assert!(since.body.contains("since must be one of"));
    let cursor = g.page("/ui/sessions?cursor=garbage", &admin).await;
    assert_eq!(cursor.status, 400);
    assert!(cursor.body.contains("class=\"error\""));
}

#[tokio::test]
async fn pages_follow_the_cursor() {
    let g = Dash::start(2, None).await;
    let alice = g.key("alice", Role::User).await;
    let now = gridiron_store::now_ms();
    for i in 0..57 {
        let id = format!("s{i:03}");
        g.store
            .insert(
                NewSession {
                    id: id.clone(),
                    browser: "chrome".into(),
                    requested_caps: json!({}),
                    grid_options: json!({"name": format!("run {i}")}),
                    created_at: now - 60_000 + i,
                    owner: Some("alice".into()),
                },
                false,
            )
            .await
            .unwrap();
        g.store
            .mark_running(&id, json!({}), now - 50_000 + i)
            .await
            .unwrap();
        g.store
            .mark_ended(&id, gridiron_domain::EndReason::Quit, now - 1000, 3)
            .await
            .unwrap();
    }
    let first = g.page("/ui/sessions?state=ended", &alice).await;
    assert_eq!(rows(&first.body), 50, "{}", first.body);
    assert!(first.body.contains("data-session=\"s056\""), "newest first");
    assert!(!first.body.contains("data-session=\"s006\""));
    let next = first
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a link to the next page")
        .replace("&amp;", "&");
    assert!(
        next.contains("state=ended") && next.contains("cursor="),
        "{next}"
    );
    assert!(first.body.contains("rel=\"first\""));
    let second = g.page(&next, &alice).await;
    assert_eq!(rows(&second.body), 7, "{}", second.body);
    assert!(second.body.contains("data-session=\"s006\""));
    assert!(second.body.contains("data-session=\"s000\""));
    assert!(!second.body.contains("rel=\"next\""), "the last page");
}

#[tokio::test]
async fn a_sessions_page_while_it_runs_and_once_it_ended() {
    let g = Dash::start(2, None).await;
    let alice = g.key("alice", Role::User).await;
    let id = g
        .session(&alice, json!({"name": "report", "labels": {"team": "web"}}))
        .await;

    let running = g.page(&format!("/ui/sessions/{id}"), &alice).await;
    assert_eq!(running.status, 200, "{}", running.body);
    let t = &running.body;
    assert!(t.contains("id=\"session-state\""), "{t}");
    assert!(t.contains(">running<"));
    assert!(t.contains("id=\"session-facts\""));
    assert!(t.contains("id=\"capabilities\"") && t.contains("id=\"grid-options\""));
    assert!(t.contains("id=\"timeline\"") && t.contains("session.started"));
    assert!(t.contains("id=\"end-session\""));
    // The stand-in browser has neither DevTools nor a display: the page
    // says so instead of showing a broken image.
    assert!(t.contains("has no live view"), "{t}");
    assert!(!t.contains("id=\"live-view\""));
    assert!(!t.contains("id=\"video\""));
    // The live region alone: no live view in it (it would restart).
    let req = Request::get(format!("/ui/sessions/{id}")).header("x-gridiron-fragment", "1");
    let fragment = g.send(req, Some(&alice), Body::empty()).await;
    assert!(fragment.body.contains("id=\"session-facts\""));
    assert!(!fragment.body.contains("live-view") && !fragment.body.contains("<html"));

    // The files it leaves, then the end through the page's form.
    let outbox = crate::artifacts::outbox(&g.standin.session_dir(&id));
    std::fs::create_dir_all(outbox.join("downloads")).unwrap();
    std::fs::write(
        outbox.join("console.log"),
        "page loaded\nERROR: <b>boom</b> happened\nall fine\nanother error\n",
    )
    .unwrap();
    std::fs::write(outbox.join("video.mp4"), vec![7u8; 4096]).unwrap();
    std::fs::write(outbox.join("downloads/report 1.csv"), "a,b\n1,2\n").unwrap();
    let ended = g.press(&format!("/ui/sessions/{id}/end"), &alice).await;
    assert_eq!(ended.status, 303, "{}", ended.body);
    assert_eq!(
        ended.headers["location"].to_str().unwrap(),
        format!("/ui/sessions/{id}")
    );
    let again = g.press(&format!("/ui/sessions/{id}/end"), &alice).await;
    assert_eq!(again.status, 409, "the API's refusal is shown");
    assert!(again.body.contains("already ended"));

    let page = g.page(&format!("/ui/sessions/{id}"), &alice).await;
    let t = &page.body;
    assert!(t.contains(">ended<"), "{t}");
    assert!(t.contains("deleted_by_api"));
    assert!(!t.contains("id=\"end-session\"") && !t.contains("id=\"live-view\""));
    assert!(t.contains(&format!(
        "id=\"video\" src=\"/ui/sessions/{id}/artifacts/video.mp4\""
    )));
    assert!(t.contains("id=\"downloads\""));
    assert!(t.contains(&format!(
        "/ui/sessions/{id}/artifacts/downloads/report%201.csv"
    )));
    assert!(t.contains("id=\"console-log\"") && t.contains("all fine"));
    assert!(t.contains("&lt;b&gt;boom&lt;/b&gt;"), "log text is escaped");
    assert!(t.contains("id=\"driver-log\""));
    assert!(t.contains("id=\"log-search\""));

    let searched = g
        .page(&format!("/ui/sessions/{id}?log_q=error"), &alice)
        .await;
    let t = &searched.body;
    assert!(t.contains("<mark>ERROR</mark>: &lt;b&gt;boom"), "{t}");
    assert!(t.contains("another <mark>error</mark>"));
    assert!(!t.contains("all fine"));
    assert!(t.contains("2 matching lines"));

    // The video, whole and in part.
    let video = g
        .page(&format!("/ui/sessions/{id}/artifacts/video.mp4"), &alice)
        .await;
    assert_eq!(video.status, 200);
    assert_eq!(video.headers["content-type"], "video/mp4");
    let req = Request::get(format!("/ui/sessions/{id}/artifacts/video.mp4"))
        .header("range", "bytes=100-199");
    let part = g.send(req, Some(&alice), Body::empty()).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], "bytes 100-199/4096");
    let csv = g
        .page(
            &format!("/ui/sessions/{id}/artifacts/downloads/report%201.csv"),
            &alice,
        )
        .await;
    assert_eq!(
        (csv.status.as_u16(), csv.body.as_str()),
        (200, "a,b\n1,2\n")
    );
    let missing = g
        .page(&format!("/ui/sessions/{id}/artifacts/nothing.txt"), &alice)
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("nothing.txt") && !missing.body.contains('{'));
    let live = g.page(&format!("/ui/sessions/{id}/live"), &alice).await;
    assert_eq!(live.status, 409);
}

#[tokio::test]
async fn a_long_log_shows_its_end() {
    let g = Dash::start(2, None).await;
    let alice = g.key("alice", Role::User).await;
    let id = g.session(&alice, json!({})).await;
    let outbox = crate::artifacts::outbox(&g.standin.session_dir(&id));
    std::fs::create_dir_all(&outbox).unwrap();
    let text: String = (0..20_000).map(|i| format!("console line {i}\n")).collect();
    assert!(text.len() as u64 > LOG_TAIL);
    std::fs::write(outbox.join("console.log"), &text).unwrap();
    assert_eq!(
        g.press(&format!("/ui/sessions/{id}/end"), &alice)
            .await
            .status,
        303
    );
    let page = g.page(&format!("/ui/sessions/{id}"), &alice).await;
    let t = &page.body;
    assert!(
        t.contains("The last 200 KB of it"),
        "{}",
        &t[..t.len().min(3000)]
    );
    assert!(t.contains("console line 19999\n"));
    assert!(!t.contains("console line 0\n"));
    // The first line of the tail is whole.
    let shown = t.split("id=\"console-log\">").nth(1).unwrap();
    assert!(shown.starts_with("console line "), "{}", &shown[..40]);
    let found = g
        .page(&format!("/ui/sessions/{id}?log_q=LINE+19998"), &alice)
        .await;
    assert!(found.body.contains("console <mark>line 19998</mark>"));
    assert!(found.body.contains("1 matching line."));
}

#[test]
fn the_list_form_becomes_the_apis_query() {
    let f = ListForm::parse(
        Some("q=+login+&state=&owner=bob&label=team%3Dweb&since=1h&cursor=abc&x=1"),
        false,
    );
    assert_eq!(
        f.filters,
        vec![("label", "team=web".into()), ("q", "login".into())]
    );
    assert_eq!(
        f.api_query(10_000_000).unwrap(),
        "?label=team%3Dweb&q=login&created_after=6400000&limit=50&cursor=abc"
    );
    let admin = ListForm::parse(Some("owner=bob"), true);
    assert_eq!(admin.get("owner"), "bob");
    assert_eq!(admin.api_query(5).unwrap(), "?owner=bob&limit=50");
    assert!(ListForm::parse(Some("since=2y"), true)
        .api_query(0)
        .is_err());
    assert_eq!(ListForm::parse(None, true).since, "all");
}

#[test]
fn log_lines_are_filtered_and_marked_ignoring_case() {
    assert_eq!(
        split_matches("Error: an error", "ERROR"),
        vec![("Error", true), (": an ", false), ("error", true)]
    );
    assert_eq!(split_matches("fine", "x"), vec![("fine", false)]);
    assert_eq!(split_matches("Ünï ünï", "ÜNÏ").len(), 3);
    let (m, n) = filter_log("a <x>\nb\nA\n", "a");
    assert_eq!(n, 2);
    assert_eq!(
        m.into_string(),
        "<mark>a</mark> &lt;x&gt;\n<mark>A</mark>\n"
    );
    let (m, n) = filter_log("one\ntwo\n", "");
    assert_eq!((m.into_string().as_str(), n), ("one\ntwo\n", 2));
}

#[test]
fn small_helpers() {
    assert_eq!(short("0123456789"), "01234567");
    assert_eq!(short("abc"), "abc");
    assert_eq!(size(10), "10 B");
    assert_eq!(size(2048), "2.0 KB");
    let s = json!({"started_at": 1000, "ended_at": 4000});
    assert_eq!(ran_for(&s, 0).as_deref(), Some("3 s"));
    assert_eq!(ran_for(&json!({}), 0), None);
}

#[tokio::test]
async fn the_list_counts_a_running_sessions_commands_as_they_come() {
    let g = Dash::start(1, None).await;
    let alice = g.key("alice", Role::User).await;
    let id = g.session(&alice, json!({"name": "counted"})).await;
    for _ in 0..3 {
        let req = Request::get(format!("/session/{id}/title"))
            .header("authorization", format!("Bearer {alice}"));
        assert_eq!(g.send(req, None, Body::empty()).await.status, 200);
    }
    let list = g.page("/ui/sessions", &alice).await;
    let row = crate::ui::overview::fixture::row(&list.body, "data-session", &id)
        .unwrap_or_else(|| panic!("no row in {}", list.body));
    assert!(row.contains("<td class=\"num\">3</td>"), "{row}");
}
