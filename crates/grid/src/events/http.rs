//! `GET /api/v1/events`: the grid's events as Server-Sent Events, and the
//! same over a WebSocket at `/api/v1/events/ws`. Both take the filters
//! `type`, `session` and `node` (comma-separated lists) and resume after the
//! id in `Last-Event-ID` (SSE's header) or `last_event_id` (query; `0` for
//! everything kept); without one they start with the next event.

use super::{Dropped, Subscription};
use crate::api::caller;
use crate::api::problem::Problem;
use crate::auth::Caller;
use crate::backend::Backend;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::{Request, Response};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use gridiron_domain::events::{is_event_id, EventFilter};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The shared state of the handlers: the role serving the routes.
type Role = Arc<dyn Backend>;

/// How long a WebSocket close frame may take to go out to a client that
/// stopped reading, before the connection is simply dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The WebSocket close code of a subscriber dropped for reading too slowly
/// (1008, policy violation: it broke the feed's one rule).
const CLOSE_TOO_SLOW: u16 = 1008;

/// The event routes (under `/api/v1`).
pub fn routes() -> Router<Role> {
    Router::new()
        .route("/events", get(sse))
        .route("/events/ws", get(websocket))
}

/// An event as the feeds send it (the SSE `data`, a WebSocket text frame).
#[derive(ToSchema)]
#[schema(as = Event)]
#[allow(dead_code)] // Describes the JSON of `gridiron_store::Event` for the OpenAPI document.
pub struct EventSchema {
    /// Its id: later events have greater ids; resume after it with `Last-Event-ID`.
    id: String,
    /// Unix ms when it happened.
    at: i64,
    /// `request.queued`, `request.cancelled`, `session.started`,
    /// `session.activity`, `session.ended`, `node.up`, `node.down`,
    /// `node.lost`, `node.drained`, `pool.changed`, `key.created`, `key.revoked`,
    /// `artifact.ready`, `artifact.deleted`.
    #[schema(rename = "type")]
    kind: String,
    /// The session it concerns.
    session: Option<String>,
    /// The node it concerns.
    node: Option<String>,
    /// The API key whose session or request it concerns.
    owner: Option<String>,
    /// Everything else (`reason`, `request`, `position`, `commands`, ...).
    fields: BTreeMap<String, String>,
}

/// The query of both event routes.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Event types (`session.ended`, `session.*`, ...), comma-separated.
    #[serde(default, rename = "type")]
    #[param(rename = "type")]
    pub kinds: String,
    /// Session ids, comma-separated.
    #[serde(default)]
    pub session: String,
    /// Node ids, comma-separated.
    #[serde(default)]
    pub node: String,
    /// Resume after this event id (`0`: from the oldest kept).
    pub last_event_id: Option<String>,
}

/// What a request for events asks, once checked.
struct Asked {
    filter: EventFilter,
    resume: Option<String>,
    caller: Caller,
}

/// Checks who asks and what for.
fn asked(caller: Caller, query: EventsQuery, header_id: Option<&str>) -> Result<Asked, Problem> {
    if !caller.admin && caller.key.is_none() {
        return Err(Problem::new("unauthorized", "events need an API key"));
    }
    let filter =
        EventFilter::parse(&query.kinds, &query.session, &query.node).map_err(Problem::invalid)?;
    // The header is what an SSE client sends on reconnecting; it wins.
    let resume = header_id
        .map(str::to_string)
        .or(query.last_event_id)
        .filter(|id| !id.is_empty());
    if let Some(id) = &resume {
        if !is_event_id(id) {
            return Err(Problem::invalid(format!("{id:?} is not an event id")));
        }
    }
    Ok(Asked {
        filter,
        resume,
        caller,
    })
}

/// Follow the grid's events as Server-Sent Events.
///
/// Without `Last-Event-ID` the stream starts with the next event; with one
/// it first sends every kept event after it. A client that falls too far
/// behind gets a last event `dropped` (`{"reason", "last_event_id"}`).
#[utoipa::path(
    get, path = "/api/v1/events", tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "The events, as they happen", body = EventSchema, content_type = "text/event-stream"),
        (status = 400, description = "Unknown event type or bad event id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sse(
    State(b): State<Role>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    req: Request<Body>,
) -> Response<Body> {
    let Ok(Query(query)) = query else {
        return Problem::invalid("malformed query").response();
    };
    let header_id = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok());
    let asked = match asked(caller(&req), query, header_id) {
        Ok(a) => a,
        Err(problem) => return problem.response(),
    };
    let sub = Subscription::start(b.event_feed(), asked.filter, asked.caller, asked.resume).await;
    // Pulled only as fast as the client reads: a client that stops reading
    // falls behind the feed and is dropped, never slowing anyone else.
    let stream = futures_util::stream::unfold(Some(sub), |sub| async move {
        let mut sub = sub?;
        let frame = match sub.next().await {
            Ok(e) => SseEvent::default()
                .id(e.id.clone())
                .event(e.kind.clone())
                .json_data(&*e)
                .unwrap_or_default(),
            Err(dropped) => {
                return Some((Ok::<_, Infallible>(dropped_frame(&dropped, &sub)), None));
            }
        };
        Some((Ok(frame), Some(sub)))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The last frame of a dropped SSE subscriber: why, and where to resume.
fn dropped_frame(dropped: &Dropped, sub: &Subscription) -> SseEvent {
    SseEvent::default()
        .event("dropped")
        .data(json!({"reason": dropped.reason(), "last_event_id": sub.last_id()}).to_string())
}

/// Follow the grid's events over a WebSocket: one text frame per event.
///
/// A client that falls too far behind is closed with code 1008, whose reason
/// names the event to resume after (`?last_event_id=`).
#[utoipa::path(
    get, path = "/api/v1/events/ws", tag = "events",
    params(EventsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol; each text frame is an `Event`"),
        (status = 400, description = "Not a WebSocket upgrade, unknown event type or bad event id", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn websocket(
    State(b): State<Role>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    req: Request<Body>,
) -> Response<Body> {
    let Ok(Query(query)) = query else {
        return Problem::invalid("malformed query").response();
    };
    let asked = match asked(caller(&req), query, None) {
        Ok(a) => a,
        Err(problem) => return problem.response(),
    };
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(_) => {
            return Problem::invalid("this endpoint needs a websocket upgrade (Upgrade: websocket)")
                .response()
        }
    };
    let tasks = b.tasks().clone();
    // Subscribed before the handshake is answered: a client that acts as
    // soon as it is connected misses none of the events it causes.
    let sub = Subscription::start(b.event_feed(), asked.filter, asked.caller, asked.resume).await;
    upgrade
        .on_upgrade(move |socket| async move {
            // Tracked, so that shutdown waits for the close frames.
            let _ = tasks.spawn(follow(socket, sub)).await;
        })
        .into_response()
}

/// Sends `sub`'s events as text frames until either side ends; tells a
/// dropped client why in the close frame.
async fn follow(mut socket: WebSocket, mut sub: Subscription) {
    let dropped = loop {
        tokio::select! {
            next = sub.next() => match next {
                Ok(e) => {
                    let text = serde_json::to_string(&*e).unwrap_or_default();
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(dropped) => break dropped,
            },
            incoming = socket.recv() => match incoming {
                // The client's own frames mean nothing here (pings are answered for us).
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    };
    let code = match dropped {
        Dropped::TooSlow(_) => CLOSE_TOO_SLOW,
        Dropped::Closed => 1001,
        Dropped::Store(_) => 1011,
    };
    let mut reason = dropped.reason();
    // A close frame's reason holds at most 123 bytes.
    while reason.len() > 123 {
        reason.pop();
    }
    let close = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_GRACE, socket.send(close)).await;
}
