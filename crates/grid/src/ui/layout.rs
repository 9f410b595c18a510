//! The frame every dashboard page shares (header, navigation, sign-out),
//! the live region the script refreshes, and the small pieces pages repeat:
//! times, states, empty lists, errors.

use super::{Shown, Viewer};
use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use gridiron_domain::civil::Civil;
use gridiron_domain::dashboard::CSRF_FIELD;
use maud::{html, Markup, DOCTYPE};

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Sessions,
    Queue,
    Nodes,
    Keys,
    Webhooks,
    /// A page outside the sections (sign-in, errors).
    None,
}

impl Nav {
    const ALL: [(Nav, &'static str, &'static str, bool); 6] = [
        (Nav::Overview, "Overview", "/", false),
        (Nav::Sessions, "Sessions", "/sessions", false),
        (Nav::Queue, "Queue", "/queue", false),
        (Nav::Nodes, "Nodes", "/nodes", false),
        (Nav::Keys, "API keys", "/keys", true),
        (Nav::Webhooks, "Webhooks", "/webhooks", true),
    ];
}

/// The events after which a page's live region is read again.
pub(crate) const SESSION_EVENTS: &str =
    "session.started,session.ended,request.queued,request.cancelled";
/// The events of nodes and pools.
pub(crate) const NODE_EVENTS: &str = "node.up,node.down,node.lost,node.drained,pool.changed";

/// A page: `title`, `nav` marked current, `head` (static content above the
/// live region, e.g. filters and forms, kept while it refreshes), and
/// `live`, the region refreshed after any of `events` (comma-separated
/// event types; empty: never) and every `every` seconds (0: never).
pub(crate) struct Page<'a> {
    pub title: &'a str,
    pub nav: Nav,
    pub head: Markup,
    pub live: Markup,
    pub events: &'a str,
    pub every: u32,
}

/// Renders `page` for `v`: the whole document, or only its live region when
/// the page's script asks for it.
pub(crate) fn render(v: &Viewer, page: Page<'_>) -> Response<Body> {
    if v.fragment {
        return v.finish(html_response(StatusCode::OK, page.live));
    }
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (page.title) " · Gridiron" }
                link rel="stylesheet" href=(v.url("/assets/gridiron.css"));
                script defer src=(v.url("/assets/gridiron.js")) {}
            }
            body data-prefix=(v.prefix) {
                (header_bar(v, page.nav))
                main {
                    h1 { (page.title) }
                    (page.head)
                    div #live data-live=(page.events) data-every=(page.every) {
                        (page.live)
                    }
                }
            }
        }
    };
    v.finish(html_response(StatusCode::OK, doc))
}

fn header_bar(v: &Viewer, current: Nav) -> Markup {
    html! {
        header.bar {
            a.brand href=(v.url("/")) { "Gridiron" }
            @if v.signed_in() {
            nav {
                @for (nav, label, path, admin_only) in Nav::ALL {
                    @if !admin_only || v.admin() {
                        a href=(v.url(path)) aria-current=[(nav == current).then_some("page")] { (label) }
                    }
                }
            }
            div.who {
                @if v.open {
                    span.muted { "open grid (no API keys)" }
                } @else {
                    span { "signed in as " strong { (v.caller.key.as_deref().unwrap_or("?")) } }
                    @if v.admin() { " " span.badge { "admin" } }
                    form.inline method="post" action=(v.url("/logout")) {
                        (csrf(v))
                        button.link type="submit" { "Sign out" }
                    }
                }
            }
            }
        }
    }
}

/// The hidden field every state-changing form carries.
pub(crate) fn csrf(v: &Viewer) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(v.csrf); }
}

/// A small form that posts to `action` with one button (ending, draining,
/// cancelling, revoking); `confirm` is asked first.
pub(crate) fn action(v: &Viewer, action: &str, label: &str, confirm: &str) -> Markup {
    html! {
        form.inline method="post" action=(v.url(action)) data-confirm=(confirm) {
            (csrf(v))
            button.danger type="submit" { (label) }
        }
    }
}

/// An HTML answer.
pub(crate) fn html_response(status: StatusCode, m: Markup) -> Response<Body> {
    let mut r = (status, m.into_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// [`render`], answered with `status`.
pub(crate) fn render_status(v: &Viewer, page: Page<'_>, status: StatusCode) -> Response<Body> {
    let mut r = render(v, page);
    *r.status_mut() = status;
    r
}

/// A page that says why something was refused or failed.
pub(crate) fn refusal(v: &Viewer, status: StatusCode, message: &str) -> Response<Body> {
    render_status(
        v,
        Page {
            title: status.canonical_reason().unwrap_or("Error"),
            nav: Nav::None,
            head: html! {},
            live: html! {
                p.error { (message) }
                p { a href=(v.url("/")) { "Back to the overview" } }
            },
            events: "",
            every: 0,
        },
        status,
    )
}

/// The page of an API failure.
pub(crate) fn failed(v: &Viewer, e: Shown) -> Response<Body> {
    let status = if e.status.is_client_error() || e.status.is_server_error() {
        e.status
    } else {
        StatusCode::BAD_GATEWAY
    };
    refusal(v, status, &e.message)
}

/// A Unix ms time as UTC (`2026-11-29 08:04:56`), in a `<time>` element.
pub(crate) fn time(ms: i64) -> Markup {
    let c = Civil::from_unix_ms(ms);
    let text = format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    );
    html! { time datetime=(c.iso8601()) title=(format!("{text} UTC")) { (text) } }
}

/// A state (`running`, `ended`, `up`, `draining`, ...) as a coloured badge.
pub(crate) fn state(s: &str) -> Markup {
    html! { span class=(format!("state state-{s}")) { (s) } }
}

/// What an empty list says.
pub(crate) fn empty(what: &str) -> Markup {
    html! { p.empty { (what) } }
}

/// A JSON value, pretty, for capabilities and options.
pub(crate) fn json_block(v: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    html! { pre.json { (text) } }
}

/// The first 8 characters of an id, for tables.
pub(crate) fn short(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(i, _)| &id[..i])
}
