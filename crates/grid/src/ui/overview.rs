//! The overview (`/ui/`): running sessions, free slots per node and
//! browser, the queue, what became of the last hour's sessions, and node
//! health. Admin keys see the whole grid; a user key sees its own sessions
//! and requests, and the grid's slot totals (`/api/v1/scaling`), since the
//! nodes are the API's admin resources.

use super::layout::{empty, render, state, time, Page, NODE_EVENTS, SESSION_EVENTS};
use super::nodes::{bar, node_id, nodes_of, NodeInfo};
use super::queue::{oldest_wait, waiting_of, Waiting, QUEUE_LIMIT};
use super::{Nav, Shown, Viewer};
use axum::body::Body;
use axum::http::Response;
use gridiron_domain::dashboard::duration;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::BTreeMap;

/// The window of the "last hour" counts.
const HOUR_MS: i64 = 3_600_000;
/// Running sessions read to split each node's use by browser.
const RUNNING_LIMIT: usize = 500;

/// One node's slots, with its use split by browser.
#[derive(Debug, Clone, PartialEq)]
struct SlotRow {
    node: String,
    state: &'static str,
    /// Each browser it offers (`chrome 131.0...`), or runs without
    /// offering it any more, and how many of its sessions run.
    browsers: Vec<(String, usize)>,
    used: usize,
    free: usize,
    total: usize,
}

/// The running sessions' `(node, browser)` of an API answer.
fn running_of(answer: &Value) -> Vec<(String, String)> {
    answer["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let text = |k: &str| s[k].as_str().unwrap_or("").to_string();
                    (text("node"), text("browser"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The slot rows of `nodes`, with `running` (node, browser) counted against
/// the browsers each offers (an offer reads `NAME VERSION`).
fn slot_rows(nodes: &[NodeInfo], running: &[(String, String)]) -> Vec<SlotRow> {
    nodes
        .iter()
        .map(|n| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for (node, browser) in running {
                if *node == n.id {
                    *counts.entry(browser.to_ascii_lowercase()).or_default() += 1;
                }
            }
            let mut browsers: Vec<(String, usize)> = n
                .browsers
                .iter()
                .map(|offer| {
                    let name = offer
                        .split_whitespace()
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    (offer.clone(), counts.remove(&name).unwrap_or(0))
                })
                .collect();
            browsers.extend(counts);
            SlotRow {
                node: n.id.clone(),
                state: n.state(),
                browsers,
                used: n.used,
                free: n.free(),
                total: n.slots,
            }
        })
        .collect()
}

/// What an end reason means, for people.
fn reason_label(reason: &str) -> &str {
    match reason {
        "quit" => "Quit by its client",
        "idle_timeout" => "Idle too long",
        "max_duration" => "Reached its time limit",
        "client_gone" => "Client went away",
        "driver_crashed" => "Driver or browser crashed",
        "node_lost" => "Its node was lost",
        "failed_to_start" => "Failed to start",
        "deleted_by_api" => "Ended through the API or dashboard",
        "queue_timeout" => "Gave up waiting for a slot",
        "shutdown" => "The grid shut down",
        "command_timeout" => "A command timed out",
        "unknown" => "Unknown",
        other => other,
    }
}

/// The ended counts of a stats answer, most first (ties by reason).
fn ended_of(stats: &Value) -> Vec<(String, u64)> {
    let mut ended: Vec<(String, u64)> = stats["ended"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, n)| Some((k.clone(), n.as_u64()?)))
                .collect()
        })
        .unwrap_or_default();
    ended.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    ended
}

/// Where the overview's slot figures come from: nodes need an admin key;
/// anyone else reads the grid's slot totals (`/scaling`).
enum Slots {
    Nodes(Result<Vec<NodeInfo>, Shown>),
    Totals(Result<Value, Shown>),
}

/// `GET /ui/`.
pub(crate) async fn page(v: Viewer) -> Response<Body> {
    let since = gridiron_store::now_ms() - HOUR_MS;
    let slots = async {
        if v.admin() {
            Slots::Nodes(v.get("/nodes").await.map(|n| nodes_of(&n)))
        } else {
            Slots::Totals(v.get("/scaling").await)
        }
    };
    let (running_q, queue_q, stats_q) = (
        format!("/sessions?state=running&limit={RUNNING_LIMIT}"),
        format!("/queue?limit={QUEUE_LIMIT}"),
        format!("/sessions/stats?since={since}"),
    );
    let (slots, running, queue, stats) =
        tokio::join!(slots, v.get(&running_q), v.get(&queue_q), v.get(&stats_q),);
    let (running, queue, stats) = match (running, queue, stats) {
        (Ok(r), Ok(q), Ok(s)) => (r, q, s),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return super::layout::failed(&v, e),
    };
    let running_cut = !running["next_cursor"].is_null();
    let running = running_of(&running);
    let queue = waiting_of(&queue);

    let cards = cards(&v, &slots, &running, running_cut, &queue);
    let live = html! {
        (cards)
        div.grid2 {
            section {
                h2 { "Slots" }
                @match &slots {
                    Slots::Nodes(Ok(nodes)) => {
                        (slot_table(&slot_rows(nodes, &running)))
                        @if running_cut {
                            p.muted { "Browsers split the first " (RUNNING_LIMIT) " running sessions." }
                        }
                    }
                    Slots::Nodes(Err(e)) => p.error { "The nodes could not be read: " (e.message) },
                    Slots::Totals(s) => (grid_slots(s)),
                }
            }
            section {
                h2 { "Last hour" }
                (last_hour(&stats, since))
            }
        }
        h2 { "Node health" }
        @match &slots {
            Slots::Nodes(Ok(nodes)) => (node_health(nodes)),
            Slots::Nodes(Err(_)) => p.error { "The nodes could not be read." },
            Slots::Totals(_) => p.notice #node-health-admin-only { "Nodes are shown to admin keys only." },
        }
    };
    let events = format!("{SESSION_EVENTS},{NODE_EVENTS}");
    render(
        &v,
        Page {
            title: "Overview",
            nav: Nav::Overview,
            head: html! {},
            live,
            events: &events,
            every: 5,
        },
    )
}

/// The four cards: running sessions, free slots, queue depth, oldest wait.
fn cards(
    v: &Viewer,
    slots: &Slots,
    running: &[(String, String)],
    running_cut: bool,
    queue: &[Waiting],
) -> Markup {
    let own = !v.admin();
    // An admin counts what the nodes report; a user key its own sessions.
    let (running_count, free, total) = match slots {
        Slots::Nodes(Ok(n)) => (
            Some(n.iter().map(|n| n.used).sum::<usize>().to_string()),
            Some(n.iter().map(NodeInfo::free).sum::<usize>()),
            Some(
                n.iter()
                    .filter(|n| n.state() == "up")
                    .map(|n| n.slots)
                    .sum::<usize>(),
            ),
        ),
        Slots::Totals(Ok(s)) => (
            None,
            s["free_slots"].as_u64().map(|f| f as usize),
            s["total_slots"].as_u64().map(|t| t as usize),
        ),
        _ => (None, None, None),
    };
    let running_count = running_count.unwrap_or_else(|| at_least(running.len(), running_cut));
    let queued = at_least(queue.len(), queue.len() >= QUEUE_LIMIT);
    html! {
        div.cards {
            (link_card("running-count", &running_count, v.url("/sessions?state=running"),
                if own { "Your running sessions" } else { "Running sessions" }))
            div.card {
                div.value #free-slots { @match free { Some(f) => (f), None => "—" } }
                div.label {
                    "Free slots"
                    @if let Some(t) = total { " of " (t) }
                }
            }
            (link_card("queue-depth", &queued, v.url("/queue"),
                if own { "Your queued requests" } else { "Queued requests" }))
            div.card {
                div.value #oldest-wait {
                    @match oldest_wait(queue) { Some(w) => (duration(w)), None => "—" }
                }
                div.label { @if own { "Your longest wait" } @else { "Longest wait" } }
            }
        }
    }
}

fn slot_table(rows: &[SlotRow]) -> Markup {
    if rows.is_empty() {
        return html! { table #slots { tbody {} } (empty("No node is registered.")) };
    }
    html! {
        table #slots {
            thead { tr {
                th { "Node" } th { "Browser" } th.num { "In use" } th.num { "Free" } th { "Slots" }
            } }
            tbody {
                @for r in rows {
                    @let span = r.browsers.len().max(1);
                    @let first = r.browsers.first();
                    tr data-node=(r.node) {
                        td rowspan=(span) { (node_id(&r.node)) " " (state(r.state)) }
                        (browser_cells(first))
                        td.num.free rowspan=(span) { (r.free) }
                        td rowspan=(span) title=(format!("{} of {} slots in use", r.used, r.total)) {
                            span.mono { (r.used) "/" (r.total) } " " (bar(r.used, r.total))
                        }
                    }
                    @for b in r.browsers.iter().skip(1) {
                        tr data-node=(r.node) { (browser_cells(Some(b))) }
                    }
                }
            }
        }
        @if rows.iter().any(|r| r.browsers.len() > 1) {
            p.muted { "A node's browsers share its slots." }
        }
    }
}

fn browser_cells(b: Option<&(String, usize)>) -> Markup {
    html! {
        @match b {
            // The name; the version (on the nodes page) in the title.
            Some((offer, n)) => {
                td title=(offer) { (offer.split_whitespace().next().unwrap_or(offer)) }
                td.num.used { (n) }
            }
            None => { td.muted { "none" } td.num.used { "0" } }
        }
    }
}

/// The grid's slot totals, for a key that may not see nodes.
fn grid_slots(scaling: &Result<Value, Shown>) -> Markup {
    match scaling {
        Ok(s) => {
            let total = s["total_slots"].as_u64().unwrap_or(0) as usize;
            let free = s["free_slots"].as_u64().unwrap_or(0) as usize;
            let used = total.saturating_sub(free);
            html! {
                table #slots {
                    thead { tr { th { "Nodes" } th.num { "In use" } th.num { "Free" } th { "Slots" } } }
                    tbody { tr {
                        td { "All nodes" }
                        td.num.used { (used) }
                        td.num.free { (free) }
                        td { span.mono { (used) "/" (total) } " " (bar(used, total)) }
                    } }
                }
                p.muted { "Slots per node and browser are shown to admin keys." }
            }
        }
        Err(e) => html! { p.error { "The grid's slots could not be read: " (e.message) } },
    }
}

/// Sessions since `since`: how many started, how many of those run, and
/// how the sessions that ended meanwhile ended.
fn last_hour(stats: &Value, since: i64) -> Markup {
    let started = stats["started"].as_u64().unwrap_or(0);
    let running = stats["running"].as_u64().unwrap_or(0);
    let ended = ended_of(stats);
    html! {
        table #ended-by-reason {
            thead { tr { th { "Sessions" } th.num { "Count" } } }
            tbody {
                tr.started { td { strong { "Started" } } td.num { strong { (started) } } }
                tr.running { td { "Of those, running now" } td.num { (running) } }
                @if ended.is_empty() {
                    tr { td.muted { "Ended" } td.num { "0" } }
                }
                @for (reason, n) in &ended {
                    tr data-reason=(reason) {
                        td { "Ended: " (reason_label(reason)) " " span.muted.mono { (reason) } }
                        td.num { (n) }
                    }
                }
            }
        }
        p.muted { "Sessions that started or ended since " (time(since)) " UTC." }
    }
}

fn node_health(nodes: &[NodeInfo]) -> Markup {
    if nodes.is_empty() {
        return html! { table #node-health { tbody {} } (empty("No node is registered.")) };
    }
    html! {
        table #node-health {
            thead { tr { th { "Node" } th { "State" } th { "Heartbeat" } th { "Up since" } } }
            tbody {
                @for n in nodes {
                    tr data-node=(n.id) {
                        td { (node_id(&n.id)) }
                        td { (state(n.state())) }
                        td.heartbeat { (n.heartbeat()) }
                        td { (time(n.started_at)) }
                    }
                }
            }
        }
    }
}

/// A standalone grid on the stand-in driver, with keys, whose pages and API
/// the tests of the overview, queue and nodes pages call through the real
/// router (in process, no socket).
/// `n`, with a `+` when there are `more` than were read.
fn at_least(n: usize, more: bool) -> String {
    if more {
        format!("{n}+")
    } else {
        n.to_string()
    }
}

/// A card of the overview: a figure with a label that links to its page.
fn link_card(id: &str, value: &str, href: String, label: &str) -> Markup {
    html! {
        div.card {
            div.value id=(id) { (value) }
            div.label { a href=(href) { (label) } }
        }
    }
}

#[cfg(test)]
pub(super) mod fixture {
    use crate::ui::tests::{Dash, CSRF};
    use axum::body::Body;
    use axum::http::{header, Method, Request, StatusCode};
    use gridiron_domain::auth::Role;
    use serde_json::{json, Value};
    use std::time::Duration;
    use tower::ServiceExt;

    /// The dashboard's test grid with an admin key `root` and user keys
    /// `alice` and `bob`, whose tokens are `token-of-NAME`.
    pub struct TestGrid(Dash);

    fn token(key: &str) -> String {
        format!("token-of-{key}")
    }

    impl TestGrid {
        /// A grid of `slots` slots with the three keys.
        pub async fn start(slots: usize) -> TestGrid {
            let d = Dash::start(slots, None).await;
            for (name, role) in [
                ("root", Role::Admin),
                ("alice", Role::User),
                ("bob", Role::User),
            ] {
                crate::testing::make_key(d.store.as_ref(), name, role, token(name)).await;
            }
            TestGrid(d)
        }

        /// `GET` of dashboard page `path` as `key`: its status and HTML.
        pub async fn page(&self, path: &str, key: &str) -> (StatusCode, String) {
            let seen = self.0.get(path, Some(&token(key))).await;
            (seen.status, seen.body)
        }

        /// Posts a dashboard form (with the form token unless `with_token`
        /// is false) as `key`: the status and where it sends the browser.
        pub async fn post(&self, path: &str, key: &str, with_token: bool) -> (StatusCode, String) {
            let fields: &[(&str, &str)] = if with_token { &[("csrf", CSRF)] } else { &[] };
            let seen = self.0.post(path, Some(&token(key)), fields).await;
            (seen.status, seen.location().to_string())
        }

        /// The live region of page `path` alone, as the page's script reads it.
        pub async fn fragment(&self, path: &str, key: &str) -> String {
            let req = Request::get(path).header("x-gridiron-fragment", "1");
            self.0
                .send(req, Some(&token(key)), Body::empty())
                .await
                .body
        }

        /// An API call as `key`: status and JSON.
        pub async fn api(&self, method: Method, path: &str, key: &str) -> (StatusCode, Value) {
            let mut req = Request::builder()
                .method(method.clone())
                .uri(format!("/api/v1{path}"))
                .header(header::AUTHORIZATION, format!("Bearer {}", token(key)));
            let body = if method == Method::POST && path == "/sessions" {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(json!({}).to_string())
            } else {
                Body::empty()
            };
            let seen = self.0.send(req, None, body).await;
            (
                seen.status,
                serde_json::from_str(&seen.body).unwrap_or(Value::Null),
            )
        }

        /// Starts a session as `key`; its id.
        pub async fn session(&self, key: &str) -> String {
            let (status, body) = self.api(Method::POST, "/sessions", key).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_string()
        }

        /// Asks for a session as `key` without waiting for it; returns once
        /// the request waits in the queue, with the request's id.
        pub async fn queue_request(&self, key: &str) -> (String, tokio::task::JoinHandle<()>) {
            let grid = self.0.router.clone();
            let bearer = format!("Bearer {}", token(key));
            let waiting = tokio::spawn(async move {
                let req = Request::post("/api/v1/sessions")
                    .header(header::AUTHORIZATION, bearer)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("{}"))
                    .unwrap();
                let _ = grid.oneshot(req).await;
            });
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let (_, q) = self.api(Method::GET, "/queue", "root").await;
                if let Some(id) = q["items"][0]["id"].as_str() {
                    return (id.to_string(), waiting);
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "the request never waited"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// The text inside the element with id `id` (tags dropped, spaces
    /// squeezed); panics if there is none.
    pub fn text_of(html: &str, id: &str) -> String {
        let start = html
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id} in {html}"));
        let open = start + html[start..].find('>').unwrap() + 1;
        // The element ends where its tag closes at the same depth.
        let tag_start = html[..start].rfind('<').unwrap() + 1;
        let tag: String = html[tag_start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        let (mut depth, mut at) = (1, open);
        while depth > 0 {
            let next_open = html[at..].find(&format!("<{tag}")).map(|i| at + i);
            let next_close = html[at..]
                .find(&format!("</{tag}>"))
                .map(|i| at + i)
                .unwrap_or_else(|| panic!("#{id} never closes"));
            match next_open {
                Some(o) if o < next_close => {
                    depth += 1;
                    at = o + 1;
                }
                _ => {
                    depth -= 1;
                    at = next_close + 1;
                }
            }
        }
        let inner = &html[open..at - 1];
        let mut text = String::new();
        let mut in_tag = false;
        for c in inner.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    text.push(' ');
                }
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The HTML of the table row whose `attr` is `value` (`data-request`, id).
    pub fn row<'a>(html: &'a str, attr: &str, value: &str) -> Option<&'a str> {
        let at = html.find(&format!("<tr {attr}=\"{value}\""))?;
        let end = at + html[at..].find("</tr>")?;
        Some(&html[at..end])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, slots: usize, used: usize, browsers: &[&str]) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            url: Some(format!("http://{id}:5555")),
            slots,
            used,
            browsers: browsers.iter().map(|b| b.to_string()).collect(),
            alive: true,
            ..NodeInfo::default()
        }
    }

    #[test]
    fn slots_split_each_node_by_browser() {
        let nodes = [
            node("n1", 4, 3, &["chrome 131.0", "firefox 133.0"]),
            node("n2", 2, 1, &["chrome 131.0"]),
        ];
        let running: Vec<(String, String)> = [
            ("n1", "chrome"),
            ("n1", "chrome"),
            ("n1", "firefox"),
            ("n2", "MicrosoftEdge"),
            ("n3", "chrome"),
        ]
        .iter()
        .map(|(n, b)| (n.to_string(), b.to_string()))
        .collect();
        let rows = slot_rows(&nodes, &running);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].browsers,
            [
                ("chrome 131.0".to_string(), 2),
                ("firefox 133.0".to_string(), 1)
            ]
        );
        assert_eq!((rows[0].used, rows[0].free, rows[0].total), (3, 1, 4));
        // A browser the node runs but no longer offers still shows.
        assert_eq!(
            rows[1].browsers,
            [
                ("chrome 131.0".to_string(), 0),
                ("microsoftedge".to_string(), 1)
            ]
        );
    }

    #[test]
    fn ended_counts_come_most_first() {
        let stats = json!({"ended": {"quit": 2, "idle_timeout": 5, "shutdown": 2, "bad": "x"}});
        assert_eq!(
            ended_of(&stats),
            [
                ("idle_timeout".to_string(), 5),
                ("quit".to_string(), 2),
                ("shutdown".to_string(), 2)
            ]
        );
        assert!(ended_of(&json!({})).is_empty());
    }

    #[test]
    fn every_end_reason_reads_as_words() {
        for r in gridiron_domain::EndReason::ALL {
            assert_ne!(reason_label(r.as_str()), r.as_str(), "{r:?}");
        }
        assert_eq!(reason_label("something_new"), "something_new");
    }

    /// Counts of the overview and the stats endpoint on a grid with one
    /// slot: alice's session ended, alice's session running, bob's request queued.
    #[tokio::test]
    async fn the_overview_counts_what_each_key_may_see() {
        use super::fixture::{row, text_of, TestGrid};
        use axum::http::{Method, StatusCode};
        let g = TestGrid::start(1).await;
        let first = g.session("alice").await;
        let (status, _) = g
            .api(Method::DELETE, &format!("/sessions/{first}"), "alice")
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let running = g.session("alice").await;
        let (queued, waiting) = g.queue_request("bob").await;

        // The stats count a started and an ended session; a user key its own.
        let stats = |key: &'static str| {
            let g = &g;
            async move {
                let (status, body) = g.api(Method::GET, "/sessions/stats", key).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body
            }
        };
        crate::testing::eventually_within(
            std::time::Duration::from_secs(5),
            "the records are written",
            || async {
                let s = stats("root").await;
                s["started"] == 2 && s["running"] == 1 && s["ended"] == json!({"deleted_by_api": 1})
            },
        )
        .await;
        let all = stats("root").await;
        assert_eq!(all["running"], 1, "{all}");
        assert_eq!(all["ended"], json!({"deleted_by_api": 1}), "{all}");
        let alice = stats("alice").await;
        assert_eq!(
            (&alice["started"], &alice["running"]),
            (&json!(2), &json!(1)),
            "{alice}"
        );
        assert_eq!(alice["ended"], json!({"deleted_by_api": 1}));
        // A request still waiting has no session record yet.
        let bob = stats("bob").await;
        assert_eq!((&bob["started"], &bob["running"]), (&json!(0), &json!(0)));
        assert_eq!(bob["ended"], json!({}));
        let (status, later) = g
            .api(Method::GET, "/sessions/stats?since=99999999999999", "root")
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(later["started"], 0);
        let (status, bad) = g
            .api(Method::GET, "/sessions/stats?since=yesterday", "root")
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");

        // The admin sees the whole grid.
        let (status, html) = g.page("/ui/", "root").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert_eq!(text_of(&html, "running-count"), "1");
        assert_eq!(text_of(&html, "free-slots"), "0");
        assert_eq!(text_of(&html, "queue-depth"), "1");
        assert!(
            text_of(&html, "oldest-wait").ends_with(" s")
                || text_of(&html, "oldest-wait").ends_with("ms")
        );
        let slots = row(&html, "data-node", "local").expect("a slot row of the node");
        assert!(slots.contains("1/1"), "{slots}");
        assert!(text_of(&html, "slots").contains("chrome"), "{html}");
        let hour = text_of(&html, "ended-by-reason");
        assert!(hour.contains("Started 2"), "{hour}");
        assert!(hour.contains("Of those, running now 1"), "{hour}");
        assert!(hour.contains("deleted_by_api 1"), "{hour}");
        let health = text_of(&html, "node-health");
        assert!(health.contains("local up this process"), "{health}");

        // A user key: its own sessions and requests, the grid's slot totals.
        let (status, html) = g.page("/ui/", "alice").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert_eq!(text_of(&html, "running-count"), "1");
        assert_eq!(
            text_of(&html, "queue-depth"),
            "0",
            "bob's request is not hers"
        );
        assert_eq!(text_of(&html, "oldest-wait"), "—");
        assert_eq!(text_of(&html, "free-slots"), "0");
        assert!(html.contains("Free slots of 1"), "{html}");
        assert!(text_of(&html, "ended-by-reason").contains("Started 2"));
        assert!(html.contains("id=\"node-health-admin-only\""));
        assert!(!html.contains("data-node="), "no node rows for a user key");
        let (_, html) = g.page("/ui/", "bob").await;
        assert_eq!(text_of(&html, "queue-depth"), "1");
        assert_eq!(text_of(&html, "running-count"), "0");

        // Only the live region, when the page's script asks.
        let fragment = g.fragment("/ui/", "root").await;
        assert!(fragment.contains("id=\"running-count\""));
        assert!(!fragment.contains("<html"), "{fragment}");

        let (status, _) = g
            .api(Method::DELETE, &format!("/queue/{queued}"), "bob")
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        waiting.await.unwrap();
        // A request that left the queue unserved is counted as ended, not started.
        crate::testing::eventually_within(
            std::time::Duration::from_secs(5),
            "the cancelled request is recorded",
            || async {
                stats("bob").await["ended"]
                    .as_object()
                    .is_some_and(|e| e.len() == 1)
            },
        )
        .await;
        let bob = stats("bob").await;
        assert_eq!(
            (&bob["started"], &bob["running"]),
            (&json!(0), &json!(0)),
            "{bob}"
        );
        let (_, html) = g.page("/ui/", "bob").await;
        assert_eq!(text_of(&html, "queue-depth"), "0");
        assert!(
            text_of(&html, "ended-by-reason").contains("Started 0"),
            "{html}"
        );
        let (_, html) = g.page("/ui/", "root").await;
        let (_, rec) = g
            .api(Method::GET, &format!("/sessions/{running}"), "root")
            .await;
        assert_eq!(rec["state"], "running");
        assert!(
            text_of(&html, "ended-by-reason").contains("Started 2"),
            "{html}"
        );
    }
}
