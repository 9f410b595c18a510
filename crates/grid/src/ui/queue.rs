//! The queue page (`/ui/queue`): new-session requests waiting for a slot,
//! first in line first, each with a cancel button. A user key sees (and
//! cancels) only its own requests, as the API answers it.

use super::layout::{action, empty, render, Page};
use super::{Nav, Viewer};
use axum::body::Body;
use axum::extract::Path;
use axum::http::{Method, Response, StatusCode};
use gridiron_domain::dashboard::duration;
use gridiron_domain::percent;
use maud::{html, Markup};
use serde_json::Value;

/// Requests the page lists at most (the API's largest page).
pub(super) const QUEUE_LIMIT: usize = 500;

/// A waiting request as `GET /api/v1/queue` describes it.
pub(super) use crate::api::queue::QueueEntry as Waiting;

/// The requests of an API answer; malformed items are skipped.
pub(super) fn waiting_of(answer: &Value) -> Vec<Waiting> {
    super::items(answer)
}

/// The longest any of `queue` has waited.
pub(super) fn oldest_wait(queue: &[Waiting]) -> Option<i64> {
    queue.iter().map(|w| w.waited_ms).max()
}

/// An id short enough for a table cell: its first 8 characters, the whole
/// id in the title (and copied with the text).
fn short_id(id: &str) -> Markup {
    let short = super::layout::short(id);
    html! {
        @if short.len() < id.len() {
            span.mono title=(id) { (short) "…" }
        } @else {
            span.mono { (id) }
        }
    }
}

/// `GET /ui/queue`.
pub(crate) async fn page(v: Viewer) -> Response<Body> {
    let queue = match v.get(&format!("/queue?limit={QUEUE_LIMIT}")).await {
        Ok(q) => waiting_of(&q),
        Err(e) => return super::layout::failed(&v, e),
    };
    let live = html! {
        @if queue.is_empty() {
            table #queue { tbody {} }
            (empty("No requests are waiting for a slot."))
        } @else {
            p.muted #queue-summary {
                (queue.len()) @if queue.len() == 1 { " request waits" } @else { " requests wait" }
                @if let Some(w) = oldest_wait(&queue) { "; the longest for " (duration(w)) }
                "."
                @if queue.len() >= QUEUE_LIMIT { " Only the first " (QUEUE_LIMIT) " are listed." }
            }
            (queue_table(&v, &queue))
        }
    };
    let head = html! {
        @if !v.admin() {
            p.muted { "Your key's requests only; other keys' requests may be ahead of them." }
        }
    };
    render(
        &v,
        Page {
            title: "Queue",
            nav: Nav::Queue,
            head,
            live,
            events: "request.queued,request.cancelled,session.started",
            every: 2,
        },
    )
}

fn queue_table(v: &Viewer, queue: &[Waiting]) -> Markup {
    html! {
        table #queue {
            thead { tr {
                th.num { "#" } th { "Request" } th { "Waited" } th { "Browser" }
                th { "Owner" } th { "" }
            } }
            tbody {
                @for w in queue {
                    tr data-request=(w.id) {
                        td.num.position { (w.position) }
                        td { (short_id(&w.id)) }
                        td.waited { (duration(w.waited_ms)) }
                        td {
                            (w.browser)
                            @if let Some(p) = &w.pool { " " span.badge title="pool" { (p) } }
                        }
                        td {
                            @match &w.owner { Some(o) => (o), None => span.muted { "no key" } }
                        }
                        td {
                            (action(v, &format!("/queue/{}/cancel", percent::segment(&w.id)), "Cancel",
                                "Cancel this request? Its client is told it was cancelled."))
                        }
                    }
                }
            }
        }
    }
}

/// `POST /ui/queue/{id}/cancel`: cancels the request through the API.
pub(crate) async fn cancel(v: Viewer, Path(id): Path<String>, body: Body) -> Response<Body> {
    let path = format!("/queue/{}", percent::segment(&id));
    v.press(body, (Method::DELETE, &path), "/queue", |e| {
        if e.status == StatusCode::NOT_FOUND {
            super::layout::refusal(
                &v,
                StatusCode::NOT_FOUND,
                &format!(
                    "Request {id} is no longer waiting: it was given a slot, cancelled, or gave up."
                ),
            )
        } else {
            super::layout::failed(&v, e)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn long_ids_are_shortened_with_the_whole_in_the_title() {
        let m = short_id("0123456789abcdef").into_string();
        assert!(m.contains("title=\"0123456789abcdef\""), "{m}");
        assert!(m.contains(">01234567…<"), "{m}");
        assert_eq!(
            short_id("local").into_string(),
            "<span class=\"mono\">local</span>"
        );
    }

    #[test]
    fn the_oldest_wait_is_the_longest() {
        let q = waiting_of(&json!({"items": [
            {"id": "a", "position": 1, "waited_ms": 900, "browser": "chrome", "owner": null, "pool": null},
            {"id": "b", "position": 2, "waited_ms": 4000, "browser": "chrome", "owner": "k", "pool": null},
            7
        ]}));
        assert_eq!(q.len(), 2);
        assert_eq!(oldest_wait(&q), Some(4000));
        assert_eq!(oldest_wait(&[]), None);
    }

    /// The queue page lists a waiting request with its place in line to its
    /// owner and admins only, and cancels it with the form token only.
    #[tokio::test]
    async fn the_queue_lists_and_cancels_waiting_requests() {
        use super::super::overview::fixture::{row, text_of, TestGrid};
        let g = TestGrid::start(1).await;
        g.session("alice").await;
        let (id, waiting) = g.queue_request("bob").await;

        let (status, html) = g.page("/ui/queue", "root").await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let r = row(&html, "data-request", &id).expect("the request's row");
        assert!(r.contains("<td class=\"num position\">1</td>"), "{r}");
        assert!(r.contains(">bob<") && r.contains("chrome"), "{r}");
        assert!(
            r.contains(&format!("action=\"/ui/queue/{id}/cancel\"")),
            "{r}"
        );
        assert!(text_of(&html, "queue-summary").starts_with("1 request waits"));
        let (_, html) = g.page("/ui/queue", "bob").await;
        assert!(
            row(&html, "data-request", &id).is_some(),
            "its owner sees it"
        );
        let (_, html) = g.page("/ui/queue", "alice").await;
        assert!(row(&html, "data-request", &id).is_none(), "{html}");
        assert!(html.contains("No requests are waiting for a slot."));

        let cancel = format!("/ui/queue/{id}/cancel");
        let (status, _) = g.post(&cancel, "bob", false).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "no form token, no cancel");
        let (status, _) = g.post(&cancel, "alice", true).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "not hers to cancel");
        let (status, to) = g.post(&cancel, "bob", true).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(to, "/ui/queue");
        waiting.await.unwrap();
        let (_, html) = g.page("/ui/queue", "root").await;
        assert!(row(&html, "data-request", &id).is_none(), "{html}");
        let (status, again) = g.post(&cancel, "bob", true).await;
        assert_eq!((status, again.as_str()), (StatusCode::NOT_FOUND, ""));
    }
}
