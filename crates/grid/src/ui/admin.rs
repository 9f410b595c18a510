//! The admin pages: API keys (`/ui/keys`) and webhook subscriptions
//! (`/ui/webhooks`, `/ui/webhooks/ID` with its delivery log). Only admin
//! keys (and anyone on an open grid) see them; every other key gets a 403
//! page on each page and form. A new key's token and a new subscription's
//! signing secret are shown once, in the answer to the form that made them,
//! and never put in a URL, a redirect or a log line.

use super::layout::{self, Nav, Page};
use super::{Shown, Viewer};
use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{Method, Response, StatusCode};
use gridiron_domain::dashboard::duration;
use gridiron_domain::events::ALL_KINDS;
use gridiron_domain::percent;
use maud::{html, Markup};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[cfg(test)]
#[path = "admin_tests.rs"]
mod page_tests;

/// Subscriptions and delivery lines shown on one page.
const PAGE_SIZE: usize = 50;

/// The 403 page of a viewer who is not an admin, if they are not.
fn admin_only(v: &Viewer) -> Option<Response<Body>> {
    (!v.admin()).then(|| {
        layout::refusal(
            v,
            StatusCode::FORBIDDEN,
            "Only an admin key may manage API keys and webhooks. Sign in with an admin key to see this page.",
        )
    })
}

/// The `cursor` parameter of a page's query, if any.
fn cursor_of(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or("")).ok()?;
    pairs
        .into_iter()
        .find(|(k, v)| k == "cursor" && !v.is_empty())
        .map(|(_, v)| v)
}

/// An API list address with the page size and an optional cursor.
fn page_query(path: &str, cursor: Option<&str>) -> String {
    let mut q = vec![("limit", PAGE_SIZE.to_string())];
    if let Some(c) = cursor {
        q.push(("cursor", c.to_string()));
    }
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(q).unwrap_or_default()
    )
}

/// The links to the first and the next page of a paged list.
fn pager(v: &Viewer, path: &str, cursor: Option<&str>, next: Option<&str>) -> Markup {
    html! {
        @if cursor.is_some() || next.is_some() {
            nav.pager {
                @if cursor.is_some() { a rel="first" href=(v.url(path)) { "« Newest" } }
                @if let Some(n) = next {
                    a rel="next" href=(format!("{}?{}", v.url(path), serde_urlencoded::to_string([("cursor", n)]).unwrap_or_default())) { "Older »" }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- API keys

/// What the key form holds, as entered (kept when the API refuses it).
#[derive(Debug, Clone, Default, PartialEq)]
struct KeyForm {
    name: String,
    role: String,
    max_sessions: String,
    rate: String,
}

/// A posted form field, trimmed (empty when absent).
fn field(fields: &HashMap<String, String>, name: &str) -> String {
    fields
        .get(name)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl KeyForm {
    /// The form's fields as posted.
    fn read(fields: &HashMap<String, String>) -> KeyForm {
        KeyForm {
            name: field(fields, "name"),
            role: field(fields, "role"),
            max_sessions: field(fields, "max_sessions"),
            rate: field(fields, "rate"),
        }
    }

    /// The role asked for (`user` when none was chosen).
    fn role(&self) -> &str {
        if self.role.is_empty() {
            "user"
        } else {
            &self.role
        }
    }

    /// The API's `NewKey` body, or what is wrong with the form. On an open
    /// grid (`first`) the key must be an admin key: once it exists the grid
    /// asks every caller for a key, and a first user key would leave nobody
    /// able to manage keys from the dashboard.
    fn body(&self, first: bool) -> Result<Value, String> {
        if self.name.is_empty() {
            return Err("Give the key a name.".into());
        }
        let role = self.role();
        if first && role != "admin" {
            return Err("The first key must be an admin key: it turns authentication on, and only an admin key can then manage keys.".into());
        }
        let mut body = Map::new();
        body.insert("name".into(), json!(self.name));
        body.insert("role".into(), json!(role));
        if !self.max_sessions.is_empty() {
            let n: u32 =
                self.max_sessions.parse().ok().filter(|n| *n >= 1).ok_or(
                    "Max sessions must be a whole number of at least 1 (or empty: no limit).",
                )?;
            body.insert("max_sessions".into(), json!(n));
        }
        if !self.rate.is_empty() {
            let r: f64 = self
                .rate
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0)
                .ok_or("The rate must be a positive number of requests per second (or empty: no limit).")?;
            body.insert("rate".into(), json!(r));
        }
        Ok(Value::Object(body))
    }
}

/// A key's limits for people: `3 sessions · 5 req/s`, or `no limits`.
fn limits(max_sessions: Option<u64>, rate: Option<f64>) -> String {
    let mut parts = Vec::new();
    if let Some(n) = max_sessions {
        parts.push(format!(
            "{n} session{} at once",
            if n == 1 { "" } else { "s" }
        ));
    }
    if let Some(r) = rate {
        parts.push(format!("{r} req/s"));
    }
    if parts.is_empty() {
        "no limits".into()
    } else {
        parts.join(" · ")
    }
}

/// What a page with a creation form shows besides its list: the form as
/// entered, its error, and what was just made (with its token or secret).
#[derive(Default)]
struct FormView<F> {
    form: F,
    error: Option<String>,
    created: Option<Value>,
}

/// The keys page's [`FormView`].
type KeysView = FormView<KeyForm>;
/// The webhooks page's [`FormView`].
type HooksView = FormView<HookForm>;

/// Posts a creation form's `body` (or its error) to `api_path`: the view
/// to show with its status, the form again with what was wrong when the
/// API refused it, or the API's failure.
async fn submit<F: Default>(
    v: &Viewer,
    form: F,
    body: Result<Value, String>,
    api_path: &str,
) -> Result<(FormView<F>, StatusCode), Shown> {
    let again = |form, error| FormView {
        form,
        error: Some(error),
        created: None,
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => return Ok((again(form, e), StatusCode::BAD_REQUEST)),
    };
    match v.send(Method::POST, api_path, Some(&body)).await {
        Ok(created) => Ok((
            FormView {
                created: Some(created),
                ..FormView::default()
            },
            StatusCode::OK,
        )),
        Err(Shown { status, message }) if status.is_client_error() => {
            Ok((again(form, message), status))
        }
        Err(e) => Err(e),
    }
}

/// `GET /ui/keys`: the keys, and the form that makes one.
pub(crate) async fn keys(v: Viewer) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    keys_page(&v, KeysView::default(), StatusCode::OK).await
}

/// `POST /ui/keys`: makes a key and shows its token once.
pub(crate) async fn create_key(v: Viewer, body: Body) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    let fields = match v.form(body).await {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    let form = KeyForm::read(&fields);
    let (name, body) = (form.name.clone(), form.body(v.open));
    match submit(&v, form, body, "/keys").await {
        Ok((view, status)) => {
            if view.created.is_some() {
                tracing::info!(key = %name, "a key was made on the dashboard");
            }
            keys_page(&v, view, status).await
        }
        Err(e) => layout::failed(&v, e),
    }
}

/// `POST /ui/keys/NAME/revoke`: revokes a key.
pub(crate) async fn revoke_key(v: Viewer, Path(name): Path<String>, body: Body) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    let path = format!("/keys/{}", percent::segment(&name));
    v.press(body, (Method::DELETE, &path), "/keys", |e| {
        layout::failed(&v, e)
    })
    .await
}

async fn keys_page(v: &Viewer, view: KeysView, status: StatusCode) -> Response<Body> {
    let list = match v.get("/keys").await {
        Ok(l) => l,
        Err(e) => return layout::failed(v, e),
    };
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    // Still open: no key existed when this request came in, nor does one now.
    let first = v.open && items.is_empty();
    let admins = items.iter().filter(|k| k["role"] == "admin").count();
    let others = |k: &Value| Others {
        keys: items.len() - 1,
        admins: admins - usize::from(k["role"] == "admin"),
    };
    let head = html! {
        @if let Some(k) = &view.created { (new_token(v, k)) }
        @if first {
            div.notice #open-grid {
                p { strong { "This grid is open: " } "it has no API keys, so anyone who reaches it may use it and see everything." }
                p { "Creating the first key turns authentication on. It must be an admin key. From then on every client needs a key, and this browser must sign in with the new key's token to see the dashboard." }
            }
        }
        (key_form(v, &view.form, view.error.as_deref(), first))
    };
    let live = html! {
        h2 { "Keys" }
        @if items.is_empty() {
            (layout::empty("No API keys yet."))
        } @else {
            table #keys {
                thead { tr { th { "Name" } th { "Role" } th { "Limits" } th { "Created" } th {} } }
                tbody {
                    @for k in items { (key_row(v, k, others(k))) }
                }
            }
        }
    };
    layout::render_status(
        v,
        Page {
            title: "API keys",
            nav: Nav::Keys,
            head,
            live,
            // The page showing a token is not refreshed: once the first key
            // exists the refresh would lead to the sign-in page and lose it.
            events: if view.created.is_some() {
                ""
            } else {
                "key.created,key.revoked"
            },
            every: 0,
        },
        status,
    )
}

fn new_token(v: &Viewer, k: &Value) -> Markup {
    let name = k["name"].as_str().unwrap_or("");
    let token = k["token"].as_str().unwrap_or("");
    html! {
        section.notice.shown-once #new-key {
            h2 { "Key " code { (name) } " created" }
            p { "Its token is shown " strong { "only now" } ": copy it somewhere safe. The grid keeps only its hash and cannot show it again; if it is lost, revoke the key and make another." }
            pre.secret #new-token { (token) }
            p.muted {
                "Clients send it as " code { "Authorization: Bearer TOKEN" } " (or " code { "X-API-Key: TOKEN" }
                ", or Basic auth " code { "http://" (name) ":TOKEN@host:port" } " for WebDriver clients)."
            }
            @if v.open {
                p { strong { "Authentication is now on." } " Sign in to this dashboard with this token: "
                    a href=(v.url("/login")) { "sign in" } "." }
            }
        }
    }
}

fn key_form(v: &Viewer, f: &KeyForm, error: Option<&str>, first: bool) -> Markup {
    let role = if first { "admin" } else { f.role() };
    html! {
        details.create open[first || error.is_some()] {
            summary { "New key" }
            form.stack #create-key method="post" action=(v.url("/keys")) {
                (layout::csrf(v))
                @if let Some(e) = error { p.error role="alert" { (e) } }
                label { "Name"
                    input name="name" required maxlength="64" pattern="[A-Za-z0-9._\\-]{1,64}" value=(f.name)
                        autocomplete="off" placeholder="ci-runner"
                        title="1 to 64 letters, digits, dots, dashes or underscores";
                }
                label { "Role"
                    select name="role" {
                        @if !first {
                            option value="user" selected[role == "user"] { "user: only its own sessions" }
                        }
                        option value="admin" selected[role == "admin"] { "admin: the whole grid, keys and webhooks" }
                    }
                }
                div.row {
                    label { "Max sessions at once"
                        input name="max_sessions" type="number" min="1" step="1" value=(f.max_sessions) placeholder="no limit";
                    }
                    label { "Requests per second"
                        input name="rate" type="number" min="0" step="any" value=(f.rate) placeholder="no limit";
                    }
                }
                div { button type="submit" { "Create key" } }
            }
        }
    }
}

/// The keys besides one: how many, and how many of them are admin keys.
#[derive(Debug, Clone, Copy)]
struct Others {
    keys: usize,
    admins: usize,
}

/// What the revoke button asks first: what revoking `name` does, including
/// to this browser (`own`) and to the grid when it is the last (admin) key.
fn revoke_question(name: &str, own: bool, admin: bool, others: Others) -> String {
    let mut q = if own {
        format!("Revoke {name}, the key this browser is signed in with? Its clients and this browser will be refused from now on.")
    } else {
        format!("Revoke the key {name}? Its clients will be refused from now on.")
    };
    if others.keys == 0 {
        q.push_str(" It is the last key: the grid becomes open to anyone, without a key.");
    } else if admin && others.admins == 0 {
        q.push_str(" It is the last admin key: nobody could manage keys or webhooks here any more (only `gridiron keys` on the grid's host).");
    }
    q
}

fn key_row(v: &Viewer, k: &Value, others: Others) -> Markup {
    let name = k["name"].as_str().unwrap_or("");
    let role = k["role"].as_str().unwrap_or("");
    let own = v.caller.key.as_deref() == Some(name);
    let confirm = revoke_question(name, own, role == "admin", others);
    html! {
        tr data-key=(name) {
            td.mono { (name) @if own { " " span.badge { "you" } } }
            td { @if role == "admin" { span.badge.admin { "admin" } } @else { (role) } }
            td { (limits(k["max_sessions"].as_u64(), k["rate"].as_f64())) }
            td.nowrap { @if let Some(t) = k["created_at"].as_i64().filter(|t| *t > 0) { (layout::time(t)) } @else { span.muted { "—" } } }
            td.actions { (layout::action(v, &format!("/keys/{}/revoke", percent::segment(name)), "Revoke", &confirm)) }
        }
    }
}

// ---------------------------------------------------------------- webhooks

/// What the webhook form holds, as entered.
#[derive(Debug, Clone, Default, PartialEq)]
struct HookForm {
    url: String,
    /// The known types ticked.
    ticked: Vec<String>,
    /// Other types or patterns (`session.*`, `*`), comma-separated.
    more: String,
}

/// The checkbox field of event type `kind`.
fn kind_field(kind: &str) -> String {
    format!("type:{kind}")
}

impl HookForm {
    fn read(fields: &HashMap<String, String>) -> HookForm {
        HookForm {
            url: field(fields, "url"),
            ticked: ALL_KINDS
                .iter()
                .filter(|k| fields.contains_key(&kind_field(k)))
                .map(|k| k.to_string())
                .collect(),
            more: field(fields, "events"),
        }
    }

    /// The event types wanted: the ticked ones, then the typed ones, without repeats.
    fn events(&self) -> Vec<String> {
        let mut out: Vec<String> = self.ticked.clone();
        for e in self.more.split([',', ' ']).map(str::trim) {
            if !e.is_empty() && !out.iter().any(|o| o == e) {
                out.push(e.to_string());
            }
        }
        out
    }

    /// The API's `NewWebhook` body, or what is wrong with the form (the API
    /// checks the URL and the types).
    fn body(&self) -> Result<Value, String> {
        if self.url.is_empty() {
            return Err("Give the URL deliveries are posted to.".into());
        }
        let events = self.events();
        if events.is_empty() {
            return Err(
                "Tick at least one event type, or type a pattern such as session.* or * (all)."
                    .into(),
            );
        }
        Ok(json!({ "url": self.url, "events": events }))
    }
}

/// Whether a subscription is active, and why not.
fn hook_state(w: &Value) -> Markup {
    match w["disabled"].as_str() {
        Some(why) => html! { (layout::state("disabled")) " " span.muted { (why) } },
        None => match w["failures"].as_u64().unwrap_or(0) {
            0 => layout::state("active"),
            n => html! {
                (layout::state("active")) " "
                span.warn.nowrap title="failed delivery attempts in a row" { (n) " failed in a row" }
            },
        },
    }
}

/// A subscription's event types for people (`*` says what it means).
fn event_list(w: &Value) -> String {
    let types: Vec<&str> = w["events"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if types == ["*"] {
        "* (every event)".into()
    } else {
        types.join(", ")
    }
}

/// `GET /ui/webhooks`: the subscriptions, newest first, and the form that
/// makes one.
pub(crate) async fn webhooks(v: Viewer, RawQuery(query): RawQuery) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    let cursor = cursor_of(query.as_deref());
    hooks_page(&v, cursor.as_deref(), HooksView::default(), StatusCode::OK).await
}

/// `POST /ui/webhooks`: subscribes a URL and shows its signing secret once.
pub(crate) async fn create_webhook(v: Viewer, body: Body) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    let fields = match v.form(body).await {
        Ok(f) => f,
        Err(refused) => return refused,
    };
    let form = HookForm::read(&fields);
    let body = form.body();
    match submit(&v, form, body, "/webhooks").await {
        Ok((view, status)) => hooks_page(&v, None, view, status).await,
        Err(e) => layout::failed(&v, e),
    }
}

async fn hooks_page(
    v: &Viewer,
    cursor: Option<&str>,
    view: HooksView,
    status: StatusCode,
) -> Response<Body> {
    let list = match v.get(&page_query("/webhooks", cursor)).await {
        Ok(l) => l,
        Err(e) => return layout::failed(v, e),
    };
    let items = list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let next = list["next_cursor"].as_str();
    let head = html! {
        @if let Some(w) = &view.created { (new_secret(v, w)) }
        (hook_form(v, &view.form, view.error.as_deref()))
    };
    let live = html! {
        h2 { "Subscriptions" }
        @if items.is_empty() {
            (layout::empty(if cursor.is_some() { "No older subscriptions." } else { "No webhooks yet: the grid posts its events nowhere." }))
        } @else {
            table #webhooks {
                thead { tr { th { "Id" } th { "URL" } th { "Event types" } th { "State" } th { "Owner" } th { "Created" } } }
                tbody {
                    @for w in items {
                        @let id = w["id"].as_str().unwrap_or("");
                        tr data-webhook=(id) {
                            td.mono { a href=(v.url(&hook_path(id))) { (id) } }
                            td.mono.wrap { (w["url"].as_str().unwrap_or("")) }
                            td { (event_list(w)) }
                            td { (hook_state(w)) }
                            td { (w["owner"].as_str().unwrap_or("—")) }
                            td.nowrap { @if let Some(t) = w["created_at"].as_i64() { (layout::time(t)) } }
                        }
                    }
                }
            }
        }
        (pager(v, "/webhooks", cursor, next))
    };
    layout::render_status(
        v,
        Page {
            title: "Webhooks",
            nav: Nav::Webhooks,
            head,
            live,
            events: "",
            // A failing receiver's state changes without an event.
            every: if view.created.is_some() { 0 } else { 15 },
        },
        status,
    )
}

fn new_secret(v: &Viewer, w: &Value) -> Markup {
    let id = w["id"].as_str().unwrap_or("");
    html! {
        section.notice.shown-once #new-webhook {
            h2 { "Webhook " a.mono href=(v.url(&hook_path(id))) { (id) } " created" }
            p { "Its signing secret is shown " strong { "only now" } ": copy it to the receiver. The grid cannot show it again; if it is lost, delete the webhook and make another." }
            pre.secret #new-secret { (w["secret"].as_str().unwrap_or("")) }
            p.muted {
                "Every delivery carries " code { "Gridiron-Signature: t=SECONDS,v1=HEX" } ", where HEX is HMAC-SHA256 under this secret of "
                code { "SECONDS.BODY" } "; the receiver checks it, and the time, before trusting the body."
            }
        }
    }
}

fn hook_form(v: &Viewer, f: &HookForm, error: Option<&str>) -> Markup {
    html! {
        details.create open[error.is_some()] {
            summary { "New webhook" }
            form.stack.wide #create-webhook method="post" action=(v.url("/webhooks")) {
                (layout::csrf(v))
                @if let Some(e) = error { p.error role="alert" { (e) } }
                label { "URL deliveries are posted to"
                    input name="url" type="url" required maxlength="2048" value=(f.url)
                        placeholder="https://ci.example/hooks/gridiron" autocomplete="off";
                }
                fieldset.kinds {
                    legend { "Event types" }
                    @for kind in ALL_KINDS {
                        label.check {
                            input type="checkbox" name=(kind_field(kind)) value="1" checked[f.ticked.iter().any(|t| t == kind)];
                            code { (kind) }
                        }
                    }
                }
                label { "Or patterns, comma-separated"
                    input name="events" value=(f.more) placeholder="session.*, node.*  or  * for every event" autocomplete="off";
                }
                div { button type="submit" { "Create webhook" } }
            }
        }
    }
}

/// `GET /ui/webhooks/ID`: one subscription and its delivery log.
pub(crate) async fn webhook(
    v: Viewer,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    let cursor = cursor_of(query.as_deref());
    let path = hook_path(&id);
    let hook = match v.get(&path).await {
        Ok(w) => w,
        Err(e) => return layout::failed(&v, e),
    };
    let log = match v
        .get(&page_query(
            &format!("{path}/deliveries"),
            cursor.as_deref(),
        ))
        .await
    {
        Ok(l) => l,
        Err(e) => return layout::failed(&v, e),
    };
    let lines = log["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let head = html! {
        p.muted { a href=(v.url("/webhooks")) { "← All webhooks" } }
    };
    let live = html! {
        div.card.hook-card {
            dl.facts #webhook-facts {
                dt { "URL" } dd.mono { (hook["url"].as_str().unwrap_or("")) }
                dt { "Event types" } dd { (event_list(&hook)) }
                dt { "Scope" } dd {
                    @if hook["all_events"].as_bool().unwrap_or(false) { "every event on the grid" }
                    @else { "only events about its owner's sessions and requests" }
                }
                dt { "Owner" } dd { (hook["owner"].as_str().unwrap_or("— (made on an open grid)")) }
                dt { "State" } dd #webhook-state { (hook_state(&hook)) }
                @if let Some(t) = hook["disabled_at"].as_i64() { dt { "Disabled" } dd { (layout::time(t)) } }
                dt { "Created" } dd { @if let Some(t) = hook["created_at"].as_i64() { (layout::time(t)) } }
            }
            div #delete-webhook {
                (layout::action(&v, &format!("{path}/delete"), "Delete webhook",
                    "Delete this webhook? Its pending deliveries and its log are deleted with it."))
            }
        }
        h2 { "Deliveries" }
        table #deliveries {
            thead { tr { th { "Time" } th { "Event" } th.num { "Attempt" } th { "Outcome" } th.num { "Took" } th { "Error" } } }
            tbody {
                @for d in lines { (delivery_row(d)) }
                @if lines.is_empty() {
                    tr.none { td.muted colspan="6" {
                        @if cursor.is_some() { "No older deliveries." }
                        @else { "No deliveries yet: nothing it subscribed to has happened since it was made." }
                    } }
                }
            }
        }
        (pager(&v, &path, cursor.as_deref(), log["next_cursor"].as_str()))
    };
    let title = format!("Webhook {}", hook["id"].as_str().unwrap_or(&id));
    layout::render(
        &v,
        Page {
            title: &title,
            nav: Nav::Webhooks,
            head,
            live,
            events: "",
            every: 5,
        },
    )
}

/// One line of the delivery log.
fn delivery_row(d: &Value) -> Markup {
    let result = d["result"].as_str().unwrap_or("");
    let attempt = d["attempt"].as_u64().unwrap_or(0);
    html! {
        tr data-delivery=(d["delivery"].as_str().unwrap_or("")) {
            td.nowrap { @if let Some(t) = d["at"].as_i64() { (layout::time(t)) } }
            td {
                code { (d["event_type"].as_str().unwrap_or("")) }
                " " span.muted.mono title="the event's id" { "#" (d["event_id"].as_str().unwrap_or("")) }
            }
            td.num { @if attempt == 0 { "—" } @else { (attempt) } }
            td.nowrap {
                (layout::state(result))
                @if let Some(s) = d["status"].as_u64() { " " span.mono { "HTTP " (s) } }
            }
            td.num.nowrap { @if attempt > 0 { (duration(d["duration_ms"].as_i64().unwrap_or(0))) } }
            td.wrap { @if let Some(e) = d["error"].as_str() { span.error-text { (e) } } }
        }
    }
}

/// The page (and API path) of webhook `id`.
fn hook_path(id: &str) -> String {
    format!("/webhooks/{}", percent::segment(id))
}

/// `POST /ui/webhooks/ID/delete`: deletes a subscription and its log.
pub(crate) async fn delete_webhook(
    v: Viewer,
    Path(id): Path<String>,
    body: Body,
) -> Response<Body> {
    if let Some(r) = admin_only(&v) {
        return r;
    }
    let path = hook_path(&id);
    v.press(body, (Method::DELETE, &path), "/webhooks", |e| {
        layout::failed(&v, e)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_key_form_becomes_the_apis_body() {
        let f = KeyForm::read(&fields(&[
            ("name", " ci "),
            ("role", "admin"),
            ("max_sessions", "3"),
            ("rate", "2.5"),
        ]));
        assert_eq!(
            f.body(false).unwrap(),
            json!({"name": "ci", "role": "admin", "max_sessions": 3, "rate": 2.5})
        );
        let plain = KeyForm::read(&fields(&[
            ("name", "u"),
            ("max_sessions", ""),
            ("rate", ""),
        ]));
        assert_eq!(
            plain.body(false).unwrap(),
            json!({"name": "u", "role": "user"})
        );
    }

    #[test]
    fn a_key_form_with_bad_limits_is_refused() {
        let with = |k: &str, v: &str| KeyForm::read(&fields(&[("name", "a"), (k, v)])).body(false);
        assert!(with("max_sessions", "0").is_err());
        assert!(with("max_sessions", "two").is_err());
        assert!(with("max_sessions", "-1").is_err());
        assert!(with("rate", "0").is_err());
        assert!(with("rate", "inf").is_err());
        assert!(with("rate", "NaN").is_err());
        assert!(KeyForm::default().body(false).is_err(), "a name is needed");
    }

    #[test]
    fn the_first_key_must_be_an_admin_key() {
        let user = KeyForm::read(&fields(&[("name", "a"), ("role", "user")]));
        assert!(user.body(true).is_err());
        assert!(user.body(false).is_ok());
        let none = KeyForm::read(&fields(&[("name", "a")]));
        assert!(none.body(true).is_err(), "the default role is user");
        let admin = KeyForm::read(&fields(&[("name", "a"), ("role", "admin")]));
        assert!(admin.body(true).is_ok());
    }

    #[test]
    fn revoking_the_last_key_or_admin_key_is_spelled_out() {
        let many = Others { keys: 3, admins: 1 };
        let q = revoke_question("ci", false, false, many);
        assert_eq!(
            q,
            "Revoke the key ci? Its clients will be refused from now on."
        );
        assert!(revoke_question("me", true, true, many).contains("this browser"));
        let last_admin = revoke_question("root", false, true, Others { keys: 2, admins: 0 });
        assert!(last_admin.contains("last admin key"));
        let last = revoke_question("root", true, true, Others { keys: 0, admins: 0 });
        assert!(last.contains("becomes open"));
        assert!(!last.contains("last admin key"));
    }

    #[test]
    fn limits_read_as_words() {
        assert_eq!(limits(None, None), "no limits");
        assert_eq!(limits(Some(1), None), "1 session at once");
        assert_eq!(limits(Some(4), Some(2.5)), "4 sessions at once · 2.5 req/s");
    }

    #[test]
    fn a_webhook_form_joins_ticked_and_typed_types() {
        let f = HookForm::read(&fields(&[
            ("url", "https://x.example/h"),
            ("type:session.ended", "1"),
            ("type:node.lost", "1"),
            ("events", "session.*, node.lost,,*"),
        ]));
        assert_eq!(f.ticked, vec!["session.ended", "node.lost"]);
        assert_eq!(
            f.body().unwrap(),
            json!({"url": "https://x.example/h", "events": ["session.ended", "node.lost", "session.*", "*"]})
        );
        let none = HookForm::read(&fields(&[("url", "https://x.example/h")]));
        assert!(none.body().is_err(), "no type");
        assert!(HookForm::default().body().is_err(), "no URL");
    }

    #[test]
    fn path_segments_and_cursors_are_encoded() {
        assert_eq!(
            cursor_of(Some("cursor=abc%3D&x=1")).as_deref(),
            Some("abc=")
        );
        assert_eq!(cursor_of(Some("cursor=")), None);
        assert_eq!(cursor_of(None), None);
        assert_eq!(page_query("/webhooks", None), "/webhooks?limit=50");
        assert_eq!(
            page_query("/webhooks", Some("a b")),
            "/webhooks?limit=50&cursor=a+b"
        );
    }
}
