//! `/api/v1/sessions`: create a browser, list, inspect and end sessions.
//! A user key sees and ends only its own sessions; someone else's session is
//! answered exactly as one that never existed (404).

use super::{caller, json, json_body, param, query_pairs, ApiResult, Id, Problem, Role};
use crate::backend::Located;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use gridiron_domain::api::{page_limit, paginate, CreateSession, Cursor, SessionFilter};
use gridiron_domain::EndReason;
use gridiron_store::SessionRecord;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A session as lists show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// The grid's session id (also its WebDriver session id).
    pub id: String,
    /// `queued`, `provisioning`, `running` or `ended`.
    pub state: String,
    /// `chrome` or `firefox`.
    pub browser: String,
    /// The name the client gave.
    pub name: Option<String>,
    /// The labels the client gave.
    pub labels: BTreeMap<String, String>,
    /// The API key that owns it (`null`: made without a key).
    pub owner: Option<String>,
    /// The node running it (`local` on a standalone grid); `null` unless running.
    pub node: Option<String>,
    /// Unix ms when it was admitted.
    pub created_at: i64,
    /// Unix ms when its browser was ready.
    pub started_at: Option<i64>,
    /// Unix ms when it ended.
    pub ended_at: Option<i64>,
    /// Why it ended (`quit`, `idle_timeout`, `deleted_by_api`, ...).
    pub end_reason: Option<String>,
    /// WebDriver commands proxied to its driver so far.
    pub command_count: u64,
}

/// One page of sessions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionPage {
    /// The sessions of this page.
    pub items: Vec<SessionView>,
    /// Pass as `?cursor=` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A step of a session's life.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineEntry {
    /// Unix ms.
    pub at: i64,
    /// `session.created`, `session.started`, `session.ended`, ...
    pub kind: String,
    /// Details (`reason` of an end).
    pub fields: BTreeMap<String, String>,
}

/// Everything the grid knows about one session.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDetail {
    /// The summary.
    #[serde(flatten)]
    pub session: SessionView,
    /// The capabilities the client asked for.
    pub requested_capabilities: Value,
    /// The capabilities the driver granted (`null` until running).
    pub granted_capabilities: Value,
    /// The grid options (`gridiron:options`) in effect.
    pub grid_options: Value,
    /// Milliseconds from admission to a ready browser.
    pub start_latency_ms: Option<i64>,
    /// Its lifecycle, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// A browser made through the API, and how to reach it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSession {
    /// The session id.
    pub id: String,
    /// WebDriver base of the session: send commands to `{webdriver_url}/url`, ...
    pub webdriver_url: String,
    /// The CDP websocket (Chromium), through the grid.
    pub cdp_url: Option<String>,
    /// The WebDriver BiDi websocket, through the grid.
    pub bidi_url: Option<String>,
    /// A live view of the browser's screen (MJPEG; `null` for a session
    /// without one: not Chromium, and no display of its own).
    pub live_view_url: Option<String>,
    /// Seconds without traffic before the session ends (`null`: the grid's default).
    pub idle_timeout: Option<f64>,
    /// Seconds after which the session ends (`null`: the grid's limit, if any).
    pub session_timeout: Option<f64>,
    /// The capabilities the driver granted.
    pub capabilities: Value,
}

/// Create a browser session. It queues like any new-session request and
/// ends on `DELETE` or its timeouts (not when a CDP or BiDi websocket closes).
#[utoipa::path(
    operation_id = "create_session",
    post, path = "/api/v1/sessions", tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "The session runs", body = CreatedSession),
        (status = 400, description = "Invalid request", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Not created", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let (parts, body) = req.into_parts();
    let base = crate::routes::request_base(b.front().public_url.as_deref(), &parts);
    let asked: CreateSession = json_body(&b, Request::from_parts(parts, body)).await?;
    let w3c = asked.to_new_session_body()?;
    let answer = b
        .clone()
        .new_session(w3c.to_string().into(), base.clone(), who)
        .await?;
    let value = &answer["value"];
    let id = value["sessionId"].as_str().unwrap_or_default().to_string();
    let caps = value["capabilities"].clone();
    let url = |k: &str| caps.get(k).and_then(Value::as_str).map(str::to_string);
    let (mut idle, mut max) = (asked.idle_timeout, asked.session_timeout);
    // Chromium is watched through DevTools; another browser only on a display of its own.
    let mut live = caps.get("se:cdp").is_some();
    if let Ok(Located::Local { session, .. }) = b.locate(&id).await {
        idle = Some(session.timeouts.idle.as_secs_f64());
        max = session.timeouts.max_duration.map(|d| d.as_secs_f64());
        live = live || session.process().display().is_some();
    }
    let created = CreatedSession {
        webdriver_url: format!("{base}/session/{id}"),
        cdp_url: url("se:cdp"),
        bidi_url: url("webSocketUrl"),
        live_view_url: live.then(|| format!("{base}/api/v1/sessions/{id}/live")),
        idle_timeout: idle,
        session_timeout: max,
        capabilities: caps,
        id: id.clone(),
    };
    let mut r = json(StatusCode::CREATED, &created);
    if let Ok(loc) = HeaderValue::from_str(&format!("/api/v1/sessions/{id}")) {
        r.headers_mut().insert(header::LOCATION, loc);
    }
    Ok(r)
}

/// List sessions, newest first. A user key sees only its own.
#[utoipa::path(
    operation_id = "list_sessions",
    get, path = "/api/v1/sessions", tag = "sessions",
    params(
        ("state" = Option<String>, Query, description = "queued, provisioning, running or ended"),
        ("browser" = Option<String>, Query, description = "Browser name (chrome, firefox)"),
        ("owner" = Option<String>, Query, description = "API key name (admin; a user key may only name itself)"),
        ("label" = Option<String>, Query, description = "A label as KEY=VALUE"),
        ("name" = Option<String>, Query, description = "The session's name, exactly"),
        ("q" = Option<String>, Query, description = "Search: text found, ignoring case, in the session's id, name, owner, browser, or a label's key or value"),
        ("created_after" = Option<i64>, Query, minimum = 0, description = "Created at or after this Unix ms"),
        ("created_before" = Option<i64>, Query, minimum = 0, description = "Created before this Unix ms"),
        ("limit" = Option<usize>, Query, minimum = 1, maximum = 500, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of sessions", body = SessionPage),
        (status = 400, description = "Bad filter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A user key named another owner", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let pairs = query_pairs(&req)?;
    let limit = page_limit(param(&pairs, "limit"))?;
    let mut filter = SessionFilter::from_query(&pairs)?;
    if !who.admin {
        let own = who.key.clone().unwrap_or_default();
        if filter.owner.as_ref().is_some_and(|o| *o != own) {
            return Err(Problem::new(
                "forbidden",
                "a user API key sees only its own sessions",
            ));
        }
        filter.owner = Some(own);
    }
    let records = b.store().query(&filter, limit + 1).await?;
    let (page, next_cursor) = paginate(records, limit, |r| Cursor {
        at: r.created_at,
        id: r.id.clone(),
    });
    let mut items = Vec::with_capacity(page.len());
    for r in page {
        // Only sessions not yet ended run on a node.
        let node = match r.end_reason {
            None => b.session_node(&r.id).await?,
            Some(_) => None,
        };
        let count = match (&r.end_reason, b.own_node()) {
            (None, Some(_)) => running_count(&b, &r).await,
            _ => r.command_count,
        };
        items.push(SessionView {
            command_count: count,
            ..view(r, node)
        });
    }
    Ok(json(StatusCode::OK, &SessionPage { items, next_cursor }))
}

/// One session: capabilities, options, owner, node, timings, timeline.
#[utoipa::path(
    operation_id = "get_session",
    get, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionDetail),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session (or not this key's)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(State(b): State<Role>, Id(id): Id, req: Request<Body>) -> ApiResult<Response> {
    let rec = visible(&b, &id, &caller(&req)).await?;
    let mut count = rec.command_count;
    let mut node = None;
    if rec.end_reason.is_none() {
        node = b.session_node(&id).await?;
        count = running_count(&b, &rec).await;
    }
    let detail = SessionDetail {
        requested_capabilities: rec.requested_caps.clone(),
        granted_capabilities: rec.granted_caps.clone(),
        grid_options: rec.grid_options.clone(),
        start_latency_ms: rec.started_at.map(|s| s - rec.created_at),
        timeline: timeline(b.as_ref(), &rec).await,
        session: SessionView {
            command_count: count,
            ..view(rec, node)
        },
    };
    Ok(json(StatusCode::OK, &detail))
}

/// End a session (reason `deleted_by_api`).
#[utoipa::path(
    operation_id = "delete_session",
    delete, path = "/api/v1/sessions/{id}", tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session ended"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such session (or not this key's)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It had already ended, or is still starting", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete(State(b): State<Role>, Id(id): Id, req: Request<Body>) -> ApiResult<Response> {
    let rec = visible(&b, &id, &caller(&req)).await?;
    if let Some(reason) = rec.end_reason {
        return Err(Problem::new(
            "conflict",
            format!("session {id} has already ended ({})", reason.as_str()),
        ));
    }
    if rec.state != "running" && b.session_node(&id).await?.is_none() {
        // Its browser is still being started: there is nothing to end yet.
        return Err(Problem::new(
            "conflict",
            format!(
                "session {id} is still starting ({}); end it once it runs",
                rec.state
            ),
        ));
    }
    b.end_session(&id, EndReason::DeletedByApi).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The commands of a session that has not ended: a session running in this
/// process counts them in memory until it ends (its record has them then).
async fn running_count(b: &Role, rec: &SessionRecord) -> u64 {
    match b.locate(&rec.id).await {
        Ok(Located::Local { session, .. }) => rec.command_count.max(session.command_count()),
        _ => rec.command_count,
    }
}

/// The record of session `id` if `who` may see it; 404 otherwise.
pub(crate) async fn visible(
    b: &Role,
    id: &str,
    who: &crate::auth::Caller,
) -> ApiResult<SessionRecord> {
    match b.store().get(id).await? {
        Some(rec) if who.may_use(rec.owner.as_deref()) => Ok(rec),
        _ => Err(Problem::not_found(format!("session {id}"))),
    }
}

fn view(r: SessionRecord, node: Option<String>) -> SessionView {
    let labels = r
        .grid_options
        .get("labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    SessionView {
        name: r.grid_options["name"].as_str().map(str::to_string),
        labels,
        state: gridiron_domain::api::session_state(
            &r.state,
            node.is_some(),
            r.end_reason.is_some(),
        )
        .to_string(),
        node: node.filter(|_| r.end_reason.is_none()),
        end_reason: r.end_reason.map(|e| e.as_str().to_string()),
        id: r.id,
        browser: r.browser,
        owner: r.owner,
        created_at: r.created_at,
        started_at: r.started_at,
        ended_at: r.ended_at,
        command_count: r.command_count,
    }
}

/// The events of a session kept in the grid's event log, oldest first;
/// for a session whose events are no longer kept, what its record says.
async fn timeline(b: &dyn crate::backend::Backend, r: &SessionRecord) -> Vec<TimelineEntry> {
    match b
        .event_feed()
        .log()
        .session_events(&r.id, TIMELINE_LIMIT)
        .await
    {
        Ok(events) if !events.is_empty() => events
            .into_iter()
            .map(|e| TimelineEntry {
                at: e.at,
                kind: e.kind,
                fields: e.fields,
            })
            .collect(),
        _ => recorded_timeline(r),
    }
}

/// Events shown in a session's timeline, at most (the latest).
const TIMELINE_LIMIT: usize = 500;

/// The timeline of a session rebuilt from its record.
fn recorded_timeline(r: &SessionRecord) -> Vec<TimelineEntry> {
    let entry = |at, kind: &str, fields: &[(&str, &str)]| TimelineEntry {
        at,
        kind: kind.to_string(),
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut out = vec![entry(r.created_at, "session.created", &[])];
    if let Some(at) = r.started_at {
        out.push(entry(at, "session.started", &[]));
    }
    if let (Some(at), Some(reason)) = (r.ended_at, r.end_reason) {
        out.push(entry(at, "session.ended", &[("reason", reason.as_str())]));
    }
    out
}
