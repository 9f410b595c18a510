//! The nodes page (`/ui/nodes`): every node with its state, labels, slots,
//! browsers and heartbeat, a drain button for admins, and the pools of a
//! scaled-out grid with their limits and load. Nodes and pools are the
//! API's admin resources: a user key is told so instead.

use super::layout::{action, empty, render, state, time, Page, NODE_EVENTS};
use super::{Nav, Viewer};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Response, StatusCode};
use gridiron_domain::dashboard::ago;
use gridiron_domain::percent;
use maud::{html, Markup};
use serde_json::Value;
use std::collections::BTreeMap;

/// A node as `GET /api/v1/nodes` describes it.
pub(super) use crate::api::nodes::NodeView as NodeInfo;
/// A pool as `GET /api/v1/pools` describes it.
use crate::api::pools::PoolView as PoolInfo;

impl NodeInfo {
    /// The node's state as a word: `up`, `draining`, `lost` (a scaled-out
    /// node whose heartbeat expired) or `down` (a grid shutting down).
    pub fn state(&self) -> &'static str {
        match (self.alive, self.draining) {
            (false, _) if self.url.is_some() => "lost",
            (_, true) => "draining",
            (false, false) => "down",
            (true, false) => "up",
        }
    }

    /// Slots that can take a session now (none on a node that takes none).
    pub fn free(&self) -> usize {
        if self.state() == "up" {
            self.slots.saturating_sub(self.used)
        } else {
            0
        }
    }

    /// How old its heartbeat is, as people read it.
    pub fn heartbeat(&self) -> String {
        match self.heartbeat_age_ms {
            Some(ms) => ago(0, ms),
            // A standalone grid is this process: it has no heartbeat.
            None if self.url.is_none() => "this process".to_string(),
            None => "expired".to_string(),
        }
    }
}

/// The nodes of an API answer (`{"items": [...]}`); malformed items are skipped.
pub(super) fn nodes_of(answer: &Value) -> Vec<NodeInfo> {
    super::items(answer)
}

/// A filled bar of `used` out of `total`, with the numbers as its title.
/// Its width is one of the style sheet's steps (the page's security policy
/// allows no inline styles).
pub(super) fn bar(used: usize, total: usize) -> Markup {
    let step = fill_step(used, total);
    html! {
        div.bar-meter role="img" title=(format!("{used} of {total} in use")) aria-label=(format!("{used} of {total} in use")) {
            span class=(format!("fill-{step}")) {}
        }
    }
}

/// `used / total` in steps of 5 %, rounded up so that any use shows.
fn fill_step(used: usize, total: usize) -> usize {
    if total == 0 {
        return if used > 0 { 100 } else { 0 };
    }
    let pct = (used.min(total) * 100).div_ceil(total);
    (pct.div_ceil(5) * 5).min(100)
}

/// A node's id, whole (ids are short, `node-1a2b3c4d`, and people tell
/// nodes apart by them).
pub(super) fn node_id(id: &str) -> Markup {
    html! { span.mono.node-id { (id) } }
}

/// Labels as `key=value` badges.
pub(super) fn labels(l: &BTreeMap<String, String>) -> Markup {
    html! {
        @if l.is_empty() {
            span.muted { "—" }
        }
        @for (k, val) in l {
            span.badge.mono { (k) "=" (val) } " "
        }
    }
}

/// `GET /ui/nodes`.
pub(crate) async fn page(v: Viewer) -> Response<Body> {
    if !v.admin() {
        return render(
            &v,
            Page {
                title: "Nodes",
                nav: Nav::Nodes,
                head: html! {},
                live: html! {
                    p.notice #nodes-admin-only {
                        "Nodes and pools are shown to admin keys only: the key "
                        strong { (v.caller.key.as_deref().unwrap_or("")) }
                        " is a user key. The "
                        a href=(v.url("/")) { "overview" }
                        " shows the grid's free slots."
                    }
                },
                events: "",
                every: 0,
            },
        );
    }
    let (nodes, pools) = tokio::join!(v.get("/nodes"), v.get("/pools"));
    let nodes = match nodes {
        Ok(n) => nodes_of(&n),
        Err(e) => return super::layout::failed(&v, e),
    };
    let pools = pools.map(|p| super::items::<PoolInfo>(&p));
    let live = html! {
        (node_table(&v, &nodes))
        h2 { "Pools" }
        @match pools {
            Ok(p) if p.is_empty() => (empty("No pools. Create one with gridiron pools create.")),
            Ok(p) => (pool_table(&p)),
            // The pools route exists, so 404 is the standalone grid's answer.
            Err(e) if e.status == StatusCode::NOT_FOUND => {
                p.notice #no-pools {
                    "This is a standalone grid: it has no pools. Pools belong to a scaled-out grid (hubs and nodes sharing a Redis store)."
                }
            }
            Err(e) => p.error { "The pools could not be read: " (e.message) },
        }
    };
    let events = format!("{NODE_EVENTS},session.started,session.ended");
    render(
        &v,
        Page {
            title: "Nodes",
            nav: Nav::Nodes,
            head: html! {},
            live,
            events: &events,
            every: 5,
        },
    )
}

fn node_table(v: &Viewer, nodes: &[NodeInfo]) -> Markup {
    if nodes.is_empty() {
        return html! {
            table #nodes { tbody {} }
            (empty("No node is registered."))
        };
    }
    html! {
        table #nodes {
            thead { tr {
                th { "Node" } th { "State" } th { "Labels" } th { "Pools" }
                th { "Slots" } th { "Browsers" } th { "Heartbeat" }
                th { "Up since" } th { "" }
            } }
            tbody {
                @for n in nodes {
                    tr data-node=(n.id) {
                        td {
                            (node_id(&n.id))
                            @if let Some(url) = &n.url { br; span.muted.mono { (url) } }
                        }
                        td { (state(n.state())) }
                        td { (labels(&n.labels)) }
                        td {
                            @if n.pools.is_empty() { span.muted { "—" } }
                            @for p in &n.pools { span.badge { (p) } " " }
                        }
                        td {
                            span.mono.slots { (n.used) " / " (n.slots) } " " (bar(n.used, n.slots))
                        }
                        td {
                            @for b in &n.browsers { div.mono { (b) } }
                        }
                        td { (n.heartbeat()) }
                        td { (time(n.started_at)) }
                        td {
                            @if n.url.is_none() {
                                span.muted title="A standalone grid drains by stopping (SIGTERM): running sessions finish first." { "stop to drain" }
                            } @else if n.state() == "up" {
                                (action(v, &format!("/nodes/{}/drain", percent::segment(&n.id)), "Drain",
                                    &format!("Drain node {}? It takes no new sessions; its running sessions finish.", n.id)))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn pool_table(pools: &[PoolInfo]) -> Markup {
    html! {
        table #pools {
            thead { tr {
                th { "Pool" } th { "Browser" } th { "Labels" } th.num { "Running" }
                th.num { "Limit" } th { "Load" } th { "Warm" } th { "Switches" }
            } }
            tbody {
                @for p in pools {
                    tr data-pool=(p.name) {
                        td { strong { (p.name) } }
                        td {
                            (p.browser.as_deref().unwrap_or("any"))
                            @if let Some(ver) = &p.version { " " span.mono { (ver) } }
                        }
                        td { (labels(&p.labels)) }
                        td.num { (p.running) }
                        td.num { @match p.max_concurrency { Some(m) => (m), None => span.muted { "none" } } }
                        td {
                            @if let Some(m) = p.max_concurrency { (bar(p.running, m as usize)) }
                        }
                        td { @match &p.warm { Some(w) => span.mono { (w) }, None => span.muted { "—" } } }
                        td {
                            @if p.args.is_empty() { span.muted { "—" } }
                            @for a in &p.args { div.mono { (a) } }
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/nodes/{id}/drain`: drains the node through the API.
pub(crate) async fn drain(v: Viewer, Path(id): Path<String>, body: Body) -> Response<Body> {
    let path = format!("/nodes/{}/drain", percent::segment(&id));
    v.press(body, (Method::POST, &path), "/nodes", |e| {
        super::layout::failed(&v, e)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(alive: bool, draining: bool, url: Option<&str>) -> NodeInfo {
        NodeInfo {
            id: "n1".into(),
            url: url.map(str::to_string),
            slots: 4,
            used: 1,
            alive,
            draining,
            ..NodeInfo::default()
        }
    }

    #[test]
    fn a_node_state_says_whether_it_takes_sessions() {
        let hub = Some("http://n1:5555");
        assert_eq!(node(true, false, hub).state(), "up");
        assert_eq!(node(true, false, hub).free(), 3);
        assert_eq!(node(true, true, hub).state(), "draining");
        assert_eq!(node(true, true, hub).free(), 0);
        assert_eq!(node(false, false, hub).state(), "lost");
        assert_eq!(node(false, true, hub).state(), "lost");
        // A standalone grid shutting down drains.
        assert_eq!(node(false, true, None).state(), "draining");
        assert_eq!(node(false, false, None).state(), "down");
    }

    #[test]
    fn heartbeats_read_as_ages() {
        let mut n = node(true, false, Some("http://n1"));
        n.heartbeat_age_ms = Some(300);
        assert_eq!(n.heartbeat(), "just now");
        n.heartbeat_age_ms = Some(4_200);
        assert_eq!(n.heartbeat(), "4 s ago");
        n.heartbeat_age_ms = None;
        assert_eq!(n.heartbeat(), "expired");
        n.url = None;
        assert_eq!(n.heartbeat(), "this process");
    }

    #[test]
    fn bars_fill_in_steps_that_show_any_use() {
        assert_eq!(fill_step(0, 10), 0);
        assert_eq!(fill_step(1, 50), 5);
        assert_eq!(fill_step(1, 3), 35);
        assert_eq!(fill_step(3, 3), 100);
        assert_eq!(fill_step(5, 3), 100);
        assert_eq!(fill_step(0, 0), 0);
        assert_eq!(fill_step(1, 0), 100);
    }

    #[test]
    fn node_lists_skip_what_they_cannot_read() {
        let answer = json!({"items": [
            {"id": "local", "url": null, "slots": 2, "used": 1, "browsers": ["chrome 131"],
             "sessions": ["s1"], "labels": {}, "pools": [], "heartbeat_age_ms": null, "alive": true,
             "draining": false, "started_at": 5},
            "garbage"
        ]});
        let nodes = nodes_of(&answer);
        assert_eq!(nodes.len(), 1);
        assert_eq!((nodes[0].used, nodes[0].free()), (1, 1));
        assert!(nodes_of(&json!({})).is_empty());
    }

    /// An admin sees the standalone grid's one node with its slots and a
    /// note instead of pools; a user key is told nodes are for admins.
    #[tokio::test]
    async fn the_nodes_page_shows_the_node_and_its_slots() {
        use super::super::overview::fixture::{row, TestGrid};
        let g = TestGrid::start(2).await;
        g.session("alice").await;

        let (status, html) = g.page("/ui/nodes", "root").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let r = row(&html, "data-node", "local").expect("the node's row");
        assert!(r.contains("<span class=\"mono slots\">1 / 2</span>"), "{r}");
        assert!(r.contains("state-up") && r.contains("this process"), "{r}");
        assert!(r.contains("fill-50"), "{r}");
        assert!(r.contains("stop to drain") && !r.contains("<form"), "{r}");
        assert!(html.contains("id=\"no-pools\""), "{html}");
        assert!(!html.contains("id=\"pools\""));

        let (status, html) = g.page("/ui/nodes", "alice").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("id=\"nodes-admin-only\""), "{html}");
        assert!(!html.contains("id=\"nodes\""), "{html}");

        // A standalone grid drains by stopping: the API says so.
        let (status, _) = g.post("/ui/nodes/local/drain", "root", true).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = g.post("/ui/nodes/local/drain", "alice", true).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
}
