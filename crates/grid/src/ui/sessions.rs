//! The sessions pages: the list (filters, search, pages by the API's
//! cursor), one session's page (facts, capabilities, timeline, live view
//! while it runs; video, logs and downloads once it ended), ending a
//! session, and the live view and artifacts streamed through from the API.

use super::layout::Nav;
use super::layout::{
    self, empty, failed, json_block, render, short, state, time, Page, SESSION_EVENTS,
};
use super::{Shown, Viewer};
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use axum::response::IntoResponse;
use gridiron_domain::dashboard::duration;
use gridiron_domain::percent;
use maud::{html, Markup};
use serde_json::Value;

/// Sessions on one page of the list.
const PAGE_SIZE: usize = 50;
/// How much of the end of a log the session page shows.
const LOG_TAIL: u64 = 200 * 1024;
/// The filters of the list, as the form and the API name them.
const FILTERS: [&str; 6] = ["state", "browser", "owner", "label", "name", "q"];
/// The `since` choices: the form's value, what it reads, how far back (ms).
const SINCE: [(&str, &str, Option<i64>); 4] = [
    ("all", "any time", None),
    ("1h", "last hour", Some(3_600_000)),
    ("24h", "last 24 hours", Some(86_400_000)),
    ("7d", "last 7 days", Some(7 * 86_400_000)),
];

/// What the list's form asked for: the filters (blank ones dropped), the
/// time range and the page.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ListForm {
    /// `(name, value)` of each filter given, in [`FILTERS`] order.
    filters: Vec<(&'static str, String)>,
    /// One of [`SINCE`]'s values (`all` when not given).
    since: String,
    /// The API's cursor of the page shown.
    cursor: Option<String>,
}

impl ListForm {
    /// Reads the page's query string; unknown fields are ignored, `owner`
    /// only counts for admins (a user key sees its own sessions anyway).
    fn parse(query: Option<&str>, admin: bool) -> ListForm {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(query.unwrap_or("")).unwrap_or_default();
        let given = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let filters = FILTERS
            .iter()
            .filter(|f| admin || **f != "owner")
            .filter_map(|f| Some((*f, given(f)?)))
            .collect();
        ListForm {
            filters,
            since: given("since").unwrap_or_else(|| "all".to_string()),
            cursor: given("cursor"),
        }
    }

    /// The value of filter `name`, or `""`.
    fn get(&self, name: &str) -> &str {
        self.filters
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The API query (`?state=running&limit=50...`) of this form at `now`
    /// (Unix ms); `Err` says what is wrong with `since`.
    fn api_query(&self, now: i64) -> Result<String, String> {
        let mut pairs: Vec<(&str, String)> = self.filters.clone();
        match SINCE.iter().find(|(v, _, _)| *v == self.since) {
            Some((_, _, Some(back))) => {
                pairs.push(("created_after", (now - back).max(0).to_string()))
            }
            Some((_, _, None)) => {}
            None => {
                return Err(format!(
                    "since must be one of 1h, 24h, 7d or all, got {:?}",
                    self.since
                ))
            }
        }
        pairs.push(("limit", PAGE_SIZE.to_string()));
        if let Some(c) = &self.cursor {
            pairs.push(("cursor", c.clone()));
        }
        Ok(format!("?{}", encode_query(&pairs)))
    }

    /// The dashboard address of this form's list at `cursor` (`None`: the
    /// first page).
    fn page_url(&self, v: &Viewer, cursor: Option<&str>) -> String {
        let mut pairs: Vec<(&str, String)> = self.filters.clone();
        if self.since != "all" {
            pairs.push(("since", self.since.clone()));
        }
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_string()));
        }
        let query = encode_query(&pairs);
        if query.is_empty() {
            v.url("/sessions")
        } else {
            format!("{}?{query}", v.url("/sessions"))
        }
    }
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// How long a session ran (or has been running at `now`); `None` before
/// its browser was ready.
fn ran_for(s: &Value, now: i64) -> Option<String> {
    let started = s["started_at"].as_i64()?;
    let until = s["ended_at"].as_i64().unwrap_or(now);
    Some(duration(until - started))
}

/// A label map as `key=value` badges.
fn labels(s: &Value) -> Markup {
    html! {
        @if let Some(map) = s["labels"].as_object() {
            @for (k, val) in map {
                span.badge.label { (k) "=" (val.as_str().unwrap_or("")) } " "
            }
        }
    }
}

/// `GET /ui/sessions`: the sessions the viewer may see, newest first,
/// filtered and paged by the API.
pub(crate) async fn list(v: Viewer, RawQuery(query): RawQuery) -> Response<Body> {
    let form = ListForm::parse(query.as_deref(), v.admin());
    let now = gridiron_store::now_ms();
    let answer = match form.api_query(now) {
        Ok(q) => v.get(&format!("/sessions{q}")).await,
        Err(message) => Err(Shown {
            status: StatusCode::BAD_REQUEST,
            message,
        }),
    };
    // A failure is shown with the form, so bad input can be corrected.
    let (live, status) = match answer {
        Ok(page) => (session_table(&v, &form, &page, now), StatusCode::OK),
        Err(e) => (
            html! { p.error { "The sessions could not be listed: " (e.message) } },
            e.status,
        ),
    };
    let mut r = render(
        &v,
        Page {
            title: "Sessions",
            nav: Nav::Sessions,
            head: filters(&v, &form),
            live,
            events: SESSION_EVENTS,
            every: 15,
        },
    );
    if status.is_client_error() || status.is_server_error() {
        *r.status_mut() = status;
    }
    r
}

/// The list's filter form (a GET: the address keeps the filters).
fn filters(v: &Viewer, form: &ListForm) -> Markup {
    let states = ["", "queued", "provisioning", "running", "ended"];
    html! {
        form #session-filters .filters method="get" action=(v.url("/sessions")) {
            label { "Search"
                input type="search" name="q" value=(form.get("q")) placeholder="id, name, label, owner…" size="28";
            }
            label { "State"
                select name="state" {
                    @for s in states {
                        option value=(s) selected[form.get("state") == s] {
                            @if s.is_empty() { "any" } @else { (s) }
                        }
                    }
                }
            }
            label { "Browser"
                input name="browser" value=(form.get("browser")) placeholder="chrome" size="10";
            }
            @if v.admin() {
                label { "Owner"
                    input name="owner" value=(form.get("owner")) placeholder="key name" size="12";
                }
            }
            label { "Label"
                input name="label" value=(form.get("label")) placeholder="KEY=VALUE" size="14";
            }
            label { "Name"
                input name="name" value=(form.get("name")) placeholder="exact name" size="14";
            }
            label { "Created"
                select name="since" {
                    @for (value, text, _) in SINCE {
                        option value=(value) selected[form.since == value] { (text) }
                    }
                }
            }
            button type="submit" { "Filter" }
            @if !form.filters.is_empty() || form.since != "all" {
                a href=(v.url("/sessions")) { "Clear" }
            }
        }
    }
}

/// The table of one page of sessions, and the links to the other pages.
fn session_table(v: &Viewer, form: &ListForm, page: &Value, now: i64) -> Markup {
    let items = page["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let next = page["next_cursor"].as_str();
    html! {
        @if items.is_empty() {
            @if form.cursor.is_some() {
                (empty("No more sessions."))
            } @else if form.filters.is_empty() && form.since == "all" {
                (empty("No sessions yet."))
            } @else {
                (empty("No session matches these filters."))
            }
        } @else {
            div.table-wrap {
            table #sessions {
                thead { tr {
                    th { "Session" } th { "State" } th { "Browser" } th { "Name" } th { "Labels" }
                    @if v.admin() { th { "Owner" } }
                    th { "Node" } th { "Created" } th.num { "Duration" } th.num { "Commands" } th { "End reason" }
                } }
                tbody {
                    @for s in items {
                        @let id = s["id"].as_str().unwrap_or("");
                        tr data-session=(id) {
                            td.mono { a href=(v.url(&format!("/sessions/{}", percent::segment(id)))) title=(id) { (short(id)) } }
                            td { (state(s["state"].as_str().unwrap_or("?"))) }
                            td { (s["browser"].as_str().unwrap_or("")) }
                            td.wrap { (s["name"].as_str().unwrap_or("")) }
                            td.wrap { (labels(s)) }
                            @if v.admin() { td { (s["owner"].as_str().unwrap_or("—")) } }
                            td { (s["node"].as_str().unwrap_or("")) }
                            td.nowrap { @if let Some(at) = s["created_at"].as_i64() { (time(at)) } }
                            td.num { (ran_for(s, now).unwrap_or_default()) }
                            @match (s["end_reason"].is_null(), s["command_count"].as_u64().unwrap_or(0)) {
                                // A hub learns a running session's count when it ends.
                                (true, 0) => td.num.muted title="counted as it runs where the grid runs it, else when it ends; its page shows the count so far" { "—" },
                                (_, n) => td.num { (n) },
                            }
                            td { (s["end_reason"].as_str().unwrap_or("")) }
                        }
                    }
                }
            }
            }
        }
        nav.pager {
            a rel="first" href=(form.page_url(v, None)) { "« Newest" }
            @if let Some(c) = next {
                a rel="next" href=(form.page_url(v, Some(c))) { "Older »" }
            }
        }
    }
}

/// `GET /ui/sessions/{id}`: one session.
pub(crate) async fn page(
    v: Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    let path = format!("/sessions/{}", percent::segment(&id));
    let s = match v.get(&path).await {
        Ok(s) => s,
        Err(e) => return failed(&v, e),
    };
    let log_q = super::query_param(query.as_deref(), "log_q")
        .map(|q| q.trim().to_string())
        .unwrap_or_default();
    let st = s["state"].as_str().unwrap_or("?").to_string();
    let ended = st == "ended";
    let now = gridiron_store::now_ms();
    // The media stay outside the live region: a refresh would restart them.
    let (head, extra) = if v.fragment {
        (html! {}, html! {})
    } else if ended {
        ended_parts(&v, &path, &log_q).await
    } else if st == "running" {
        (live_view(&v, &id, &path, &s).await, html! {})
    } else {
        (html! {}, html! {})
    };
    let title = format!("Session {}", short(&id));
    let live = html! {
        div.session-bar {
            span #session-state class=(format!("state state-{st}")) { (st) }
            @if st == "running" {
                form #end-session .inline method="post" action=(v.url(&format!("{path}/end"))) data-confirm="End this session? Its browser closes." {
                    (layout::csrf(&v))
                    button.danger type="submit" { "End session" }
                }
            }
            @if v.fragment && ended {
                span.notice { "The session has ended. " a href=(v.url(&path)) { "Reload" } " for its recording, logs and files." }
            }
            @if st == "queued" || st == "provisioning" {
                span.muted { "Its browser is starting; reload once it runs to watch it." }
            }
        }
        div.grid2 {
            section {
                h2 { "Facts" }
                (facts(&s, now))
            }
            section {
                h2 { "Timeline" }
                (timeline(&s))
            }
        }
        (extra)
        div.grid2 {
            section {
                h2 { "Requested capabilities" }
                div #capabilities { (json_block(&s["requested_capabilities"])) }
                @if !s["granted_capabilities"].is_null() {
                    details {
                        summary { "Granted capabilities" }
                        (json_block(&s["granted_capabilities"]))
                    }
                }
            }
            section {
                h2 { "Grid options" }
                div #grid-options { (json_block(&s["grid_options"])) }
            }
        }
    };
    render(
        &v,
        Page {
            title: &title,
            nav: Nav::Sessions,
            head,
            live,
            // An ended session changes no more.
            events: if ended { "" } else { SESSION_EVENTS },
            every: if ended { 0 } else { 10 },
        },
    )
}

/// The facts of session `s` at `now`.
fn facts(s: &Value, now: i64) -> Markup {
    let id = s["id"].as_str().unwrap_or("");
    let at = |k: &str| s[k].as_i64();
    html! {
        dl #session-facts .facts {
            dt { "Id" } dd.mono { (id) }
            dt { "Browser" } dd { (s["browser"].as_str().unwrap_or("")) }
            @if let Some(name) = s["name"].as_str() { dt { "Name" } dd { (name) } }
            @if s["labels"].as_object().is_some_and(|m| !m.is_empty()) { dt { "Labels" } dd { (labels(s)) } }
            dt { "Owner" } dd { (s["owner"].as_str().unwrap_or("— (no key)")) }
            dt { "Node" } dd { (s["node"].as_str().unwrap_or("—")) }
            dt { "Created" } dd { @if let Some(t) = at("created_at") { (time(t)) } }
            dt { "Started" } dd {
                @if let Some(t) = at("started_at") {
                    (time(t))
                    @if let Some(l) = at("start_latency_ms") { span.muted { " (after " (duration(l)) ")" } }
                } @else { "—" }
            }
            @if let Some(t) = at("ended_at") { dt { "Ended" } dd { (time(t)) } }
            dt { "Duration" } dd { (ran_for(s, now).unwrap_or_else(|| "—".into())) }
            dt { "Commands" } dd { (s["command_count"].as_u64().unwrap_or(0)) }
            dt { "End reason" } dd { (s["end_reason"].as_str().unwrap_or("—")) }
        }
    }
}

/// The session's timeline, oldest first (the list is there even when
/// empty, so that it is always found by its id).
fn timeline(s: &Value) -> Markup {
    let entries = s["timeline"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        ol #timeline .timeline {
            @for e in entries {
                li {
                    @if let Some(at) = e["at"].as_i64() { (time(at)) " " }
                    strong { (e["kind"].as_str().unwrap_or("")) }
                    @if let Some(f) = e["fields"].as_object() {
                        @for (k, val) in f {
                            " " span.muted { (k) "=" (val.as_str().map_or_else(|| val.to_string(), str::to_string)) }
                        }
                    }
                }
            }
        }
        @if entries.is_empty() { (empty("Nothing recorded yet.")) }
    }
}

/// The live view of running session `s`, or why there is none. Chromium is
/// always watched (through DevTools); another browser only on a display of
/// its own, which the live route itself tells (400 without one).
async fn live_view(v: &Viewer, id: &str, path: &str, s: &Value) -> Markup {
    let cdp = s["granted_capabilities"].get("se:cdp").is_some();
    let note = if cdp {
        None
    } else {
        // The stream is dropped at once; the capture stops with no watcher.
        let r = v
            .call(Method::GET, &format!("{path}/live"), None, &[])
            .await;
        match r.status() {
            s if s.is_success() => None,
            StatusCode::BAD_REQUEST => Some("This session has no live view: its browser is not Chromium and has no display of its own.".to_string()),
            _ => Some(format!(
                "The live view is not available: {}",
                super::problem(r).await.message
            )),
        }
    };
    html! {
        section.media {
            h2 { "Live view" }
            @match note {
                None => img #live-view .live-view src=(v.url(&format!("{path}/live"))) alt=(format!("Live view of session {id}"));
                Some(n) => p.notice { (n) }
            }
        }
    }
}

/// What an ended session left: the video and downloads (above the live
/// region) and its logs (within it; an ended session's page is not refreshed).
async fn ended_parts(v: &Viewer, path: &str, log_q: &str) -> (Markup, Markup) {
    let listed = match v.get(&format!("{path}/artifacts")).await {
        Ok(l) => l,
        Err(e) => {
            let m = html! { p.error { "Its artifacts could not be listed: " (e.message) } };
            return (m, html! {});
        }
    };
    let artifacts = listed["artifacts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let has = |name: &str| {
        artifacts
            .iter()
            .any(|a| a["name"] == name && a["state"] != "lost")
    };
    let link = |name: &str| v.url(&format!("{path}/artifacts/{}", percent::path(name)));
    let head = html! {
        div.grid2.media {
            section {
                h2 { "Recording" }
                @if has("video.mp4") {
                    video #video src=(link("video.mp4")) controls preload="metadata"
                        poster=[has("thumbnail.jpg").then(|| link("thumbnail.jpg"))] {}
                } @else {
                    p.muted { "No video was recorded." }
                }
            }
            section {
                h2 { "Files" }
                @if artifacts.is_empty() {
                    (empty(if listed["complete"] == false { "Its files are still being collected; reload in a moment." } else { "It left no files." }))
                } @else {
                    ul #downloads .downloads {
                        @for a in artifacts {
                            @let name = a["name"].as_str().unwrap_or("");
                            li {
                                @if a["state"] == "lost" {
                                    span.muted title="its node is gone" { (name) " (lost)" }
                                } @else {
                                    a href=(link(name)) { (name) }
                                }
                                " " span.muted { (size(a["size"].as_u64().unwrap_or(0))) }
                            }
                        }
                    }
                    @if listed["complete"] == false { p.muted { "More files may still come; reload in a moment." } }
                }
            }
        }
    };
    let mut logs = Vec::new();
    for (name, el) in [("console.log", "console-log"), ("driver.log", "driver-log")] {
        let shown = if has(name) {
            Some(log_tail(v, &format!("{path}/artifacts/{name}")).await)
        } else {
            None
        };
        logs.push((name, el, shown));
    }
    let extra = html! {
        section.logs {
            h2 { "Logs" }
            form #log-search .filters method="get" action=(v.url(path)) {
                label { "Show lines containing"
                    input type="search" name="log_q" value=(log_q) placeholder="text";
                }
                button type="submit" { "Search" }
                @if !log_q.is_empty() { a href=(v.url(path)) { "Show everything" } }
            }
            @for (name, el, shown) in logs {
                h3 { (name) }
                @match shown {
                    None => { p.muted id=(el) { "No " (name) " was kept." } }
                    Some(Err(e)) => { p.error id=(el) { (name) " could not be read: " (e.message) } }
                    Some(Ok((text, cut))) => {
                        @let (body, lines) = filter_log(&text, log_q);
                        @if cut { p.muted { "The last " (LOG_TAIL / 1024) " KB of it; " a href=(link(name)) { "the whole file" } "." } }
                        @if !log_q.is_empty() { p.muted { (lines) " matching line" @if lines != 1 { "s" } "." } }
                        pre.log id=(el) { (body) }
                    }
                }
            }
        }
    };
    (head, extra)
}

/// The last [`LOG_TAIL`] bytes of a log artifact at API path `path` as text,
/// and whether it was cut (then without its first, partial line).
async fn log_tail(v: &Viewer, path: &str) -> Result<(String, bool), Shown> {
    let range = HeaderValue::from_str(&format!("bytes=-{LOG_TAIL}"))
        .unwrap_or(HeaderValue::from_static("bytes=0-"));
    let r = v
        .call(Method::GET, path, None, &[(header::RANGE, range)])
        .await;
    if !r.status().is_success() {
        return Err(super::problem(r).await);
    }
    let cut = r
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| !h.starts_with("bytes 0-"));
    let bytes = axum::body::to_bytes(r.into_body(), (LOG_TAIL as usize) * 2)
        .await
        .map_err(|e| Shown {
            status: StatusCode::BAD_GATEWAY,
            message: format!("unreadable: {e}"),
        })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let text = match (cut, text.find('\n')) {
        (true, Some(i)) => text[i + 1..].to_string(),
        _ => text,
    };
    Ok((text, cut))
}

/// A log for the page: everything when `q` is empty, else only the lines
/// containing `q` (ignoring case) with each occurrence marked; and how many
/// lines it shows.
fn filter_log(text: &str, q: &str) -> (Markup, usize) {
    if q.is_empty() {
        return (html! { (text) }, text.lines().count());
    }
    let hits: Vec<Vec<(&str, bool)>> = text
        .lines()
        .map(|line| split_matches(line, q))
        .filter(|parts| parts.iter().any(|(_, hit)| *hit))
        .collect();
    let markup = html! {
        @for parts in &hits {
            @for (part, hit) in parts {
                @if *hit { mark { (part) } } @else { (part) }
            }
            "\n"
        }
    };
    (markup, hits.len())
}

/// `line` cut into pieces, each marked whether it is an occurrence of `q`
/// (compared ignoring case, character by character).
fn split_matches<'a>(line: &'a str, q: &str) -> Vec<(&'a str, bool)> {
    let needle: Vec<char> = q.chars().collect();
    // The length in bytes of an occurrence at the start of `rest`.
    let at = |rest: &str| -> Option<usize> {
        let mut chars = rest.char_indices();
        for &n in &needle {
            let (_, c) = chars.next()?;
            if c != n && !c.to_lowercase().eq(n.to_lowercase()) {
                return None;
            }
        }
        Some(chars.next().map_or(rest.len(), |(off, _)| off))
    };
    let mut out = Vec::new();
    let (mut plain, mut i) = (0, 0);
    while i < line.len() {
        match at(&line[i..]).filter(|n| *n > 0) {
            Some(n) => {
                if plain < i {
                    out.push((&line[plain..i], false));
                }
                out.push((&line[i..i + n], true));
                i += n;
                plain = i;
            }
            None => i += line[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    if plain < line.len() {
        out.push((&line[plain..], false));
    }
    out
}

/// A byte count for people.
fn size(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KB", n as f64 / 1024.0),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

/// `POST /ui/sessions/{id}/end`: ends the session through the API (which
/// decides whether the viewer may), then shows its page again.
pub(crate) async fn end(v: Viewer, Path(id): Path<String>, body: Body) -> Response<Body> {
    let path = format!("/sessions/{}", percent::segment(&id));
    v.press(body, (Method::DELETE, &path), &path, |e| failed(&v, e))
        .await
}

/// `GET /ui/sessions/{id}/live`: the API's live view (MJPEG), streamed through.
pub(crate) async fn live(v: Viewer, Path(id): Path<String>) -> Response<Body> {
    let path = format!("/sessions/{}/live", percent::segment(&id));
    let r = v.call(Method::GET, &path, None, &[]).await;
    pass(&v, r).await
}

/// `GET /ui/sessions/{id}/artifacts/{*name}`: an artifact, streamed through
/// with the browser's `Range` (a video is seekable).
pub(crate) async fn artifact(
    v: Viewer,
    Path((id, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response<Body> {
    let path = format!(
        "/sessions/{}/artifacts/{}",
        percent::segment(&id),
        percent::path(&name)
    );
    let pass_on: Vec<_> = [header::RANGE, header::IF_RANGE]
        .into_iter()
        .filter_map(|h| Some((h.clone(), headers.get(&h)?.clone())))
        .collect();
    let mut r = v.call(Method::GET, &path, None, &pass_on).await;
    if r.status().is_success() {
        // A file a page left is no page of the dashboard: nothing in it runs here.
        r.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'"),
        );
    }
    pass(&v, r).await
}

/// An API answer as it is when it succeeded; else its status with a short
/// text (the API's message), not its JSON.
async fn pass(v: &Viewer, r: Response<Body>) -> Response<Body> {
    let status = r.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        return r;
    }
    let keep = r.headers().get(header::CONTENT_RANGE).cloned();
    let message = super::problem(r).await.message;
    let mut out = (status, message).into_response();
    if let Some(range) = keep {
        out.headers_mut().insert(header::CONTENT_RANGE, range);
    }
    v.finish(out)
}

#[cfg(test)]
#[path = "sessions_tests.rs"]
mod tests;
