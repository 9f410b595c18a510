//! `/api/v1/sessions/stats`: the sessions that started and those that ended
//! since a time, counted by the store (a dashboard refreshing every few
//! seconds does not page through the records). A user key counts only its own.

use super::{caller, json, only_params, param, query_pairs, ApiResult, Problem, Role};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The window counted when `since` is not given: the last hour.
const DEFAULT_WINDOW_MS: i64 = 3_600_000;

/// Counts of the sessions that started and ended since a time.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionStatsView {
    /// Unix ms: the start of the window counted.
    pub since: i64,
    /// Sessions whose browser started since then.
    pub started: u64,
    /// Of those, the ones running now.
    pub running: u64,
    /// Sessions that ended since then (whenever they started, or never: a
    /// request that left the queue unserved), by end reason (`quit`,
    /// `idle_timeout`, ...).
    pub ended: BTreeMap<String, u64>,
}

/// Count the sessions that started, and those that ended (by end reason), since a time.
///
/// A user key counts only its own sessions.
#[utoipa::path(
    operation_id = "session_stats",
    get, path = "/api/v1/sessions/stats", tag = "sessions",
    params(("since" = Option<i64>, Query, minimum = 0, description = "The window's start, Unix ms (default: an hour ago)")),
    responses(
        (status = 200, description = "The counts", body = SessionStatsView),
        (status = 400, description = "Bad parameter", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid API key", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "The store failed", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn sessions(State(b): State<Role>, req: Request<Body>) -> ApiResult<Response> {
    let who = caller(&req);
    let pairs = query_pairs(&req)?;
    only_params(&pairs, &["since"])?;
    let since = since_of(param(&pairs, "since"), gridiron_store::now_ms())?;
    let owner = (!who.admin).then(|| who.key.clone().unwrap_or_default());
    let stats = b.store().session_stats(since, owner.as_deref()).await?;
    Ok(json(
        StatusCode::OK,
        &SessionStatsView {
            since,
            started: stats.started,
            running: stats.running,
            ended: stats.ended,
        },
    ))
}

/// The `since` parameter: Unix ms, an hour before `now` if absent.
fn since_of(given: Option<&str>, now: i64) -> ApiResult<i64> {
    match given {
        None => Ok(now - DEFAULT_WINDOW_MS),
        Some(v) => match v.parse::<i64>() {
            Ok(t) if t >= 0 => Ok(t),
            _ => Err(Problem::invalid(format!(
                "since must be a Unix time in milliseconds (0 or more), not {v:?}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::since_of;

    #[test]
    fn since_is_unix_ms_defaulting_to_an_hour_ago() {
        assert_eq!(since_of(None, 10_000_000), Ok(6_400_000));
        assert_eq!(since_of(Some("42"), 10_000_000), Ok(42));
        for bad in ["-1", "soon", "1.5", ""] {
            let e = since_of(Some(bad), 0).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
            assert!(e.detail.contains("Unix time"), "{}", e.detail);
        }
    }
}
