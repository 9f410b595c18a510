//! `gridiron sessions list|show|end` and `gridiron queue list`: the REST API
//! (`/api/v1`) of a running grid, as tables for people or `--json` for scripts.

use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

/// Which grid, and as whom.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The grid's URL.
    #[arg(long, env = "GRIDIRON_URL", default_value = "http://127.0.0.1:4444")]
    pub url: String,
    /// An API key's token (needed on a grid with keys).
    #[arg(long, env = "GRIDIRON_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `gridiron sessions ...`.
#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List sessions, newest first (a user key sees only its own).
    List {
        /// `queued`, `provisioning`, `running` or `ended`.
        #[arg(long)]
        state: Option<String>,
        /// Browser name (`chrome`, `firefox`).
        #[arg(long)]
        browser: Option<String>,
        /// API key name (admin keys).
        #[arg(long)]
        owner: Option<String>,
        /// A label, `KEY=VALUE`.
        #[arg(long)]
        label: Option<String>,
        /// The session's name.
        #[arg(long)]
        name: Option<String>,
        /// How many (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        target: Target,
    },
    /// Everything the grid knows about one session.
    Show {
        /// Session id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
    /// End a session (reason `deleted_by_api`).
    End {
        /// Session id.
        id: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `gridiron queue ...`.
#[derive(Subcommand, Debug)]
pub enum QueueCommand {
    /// The requests waiting for a slot, first in line first.
    List {
        #[command(flatten)]
        target: Target,
    },
}

/// Runs `gridiron sessions ...`.
pub fn run_sessions(cmd: SessionsCommand) -> Result<(), String> {
    crate::cli::runtime()?.block_on(async move {
        match cmd {
            SessionsCommand::List {
                state,
                browser,
                owner,
                label,
                name,
                limit,
                target,
            } => {
                let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
                let filters = [
                    ("state", state),
                    ("browser", browser),
                    ("owner", owner),
                    ("label", label),
                    ("name", name),
                ];
                q.extend(filters.into_iter().filter_map(|(k, v)| Some((k, v?))));
                let query = serde_urlencoded::to_string(&q).map_err(|e| e.to_string())?;
                let page = call(&target, "GET", &format!("/api/v1/sessions?{query}")).await?;
                if target.json {
                    return print_json(&page);
                }
                println!(
                    "{:<32}  {:<12} {:<8} {:<16} {:<12} {:<10} {:<19}  END",
                    "ID", "STATE", "BROWSER", "NAME", "OWNER", "NODE", "CREATED (UTC)"
                );
                for s in items(&page) {
                    println!(
                        "{:<32}  {:<12} {:<8} {:<16} {:<12} {:<10} {:<19}  {}",
                        text(&s["id"]),
                        text(&s["state"]),
                        text(&s["browser"]),
                        text(&s["name"]),
                        text(&s["owner"]),
                        text(&s["node"]),
                        crate::keys::utc(s["created_at"].as_i64().unwrap_or(0)),
                        text(&s["end_reason"]),
                    );
                }
                if !page["next_cursor"].is_null() {
                    eprintln!("(more sessions: raise --limit, or use the API's cursor)");
                }
                Ok(())
            }
            SessionsCommand::Show { id, target } => {
                let s = call(&target, "GET", &format!("/api/v1/sessions/{}", path(&id))).await?;
                if target.json {
                    return print_json(&s);
                }
                for key in [
                    "id",
                    "state",
                    "browser",
                    "name",
                    "owner",
                    "node",
                    "end_reason",
                    "command_count",
                    "start_latency_ms",
                ] {
                    println!("{key:<18} {}", text(&s[key]));
                }
                for key in ["created_at", "started_at", "ended_at"] {
                    let at = s[key].as_i64().map(crate::keys::utc);
                    println!("{key:<18} {}", at.unwrap_or_else(|| "-".into()));
                }
                println!("{:<18} {}", "labels", s["labels"]);
                println!("timeline:");
                for e in s["timeline"].as_array().into_iter().flatten() {
                    let at = crate::keys::utc(e["at"].as_i64().unwrap_or(0));
                    println!("  {at}  {} {}", text(&e["kind"]), e["fields"]);
                }
                Ok(())
            }
            SessionsCommand::End { id, target } => {
                call(
                    &target,
                    "DELETE",
                    &format!("/api/v1/sessions/{}", path(&id)),
                )
                .await?;
                if target.json {
                    return print_json(&serde_json::json!({"id": id, "ended": true}));
                }
                eprintln!("session {id} ended");
                Ok(())
            }
        }
    })
}

/// Runs `gridiron queue ...`.
pub fn run_queue(cmd: QueueCommand) -> Result<(), String> {
    crate::cli::runtime()?.block_on(async move {
        let QueueCommand::List { target } = cmd;
        let page = call(&target, "GET", "/api/v1/queue?limit=500").await?;
        if target.json {
            return print_json(&page);
        }
        println!(
            "{:>4}  {:<32}  {:<8} {:<12} {:>10}",
            "POS", "REQUEST", "BROWSER", "OWNER", "WAITED (s)"
        );
        for r in items(&page) {
            println!(
                "{:>4}  {:<32}  {:<8} {:<12} {:>10.1}",
                r["position"].as_u64().unwrap_or(0),
                text(&r["id"]),
                text(&r["browser"]),
                text(&r["owner"]),
                r["waited_ms"].as_f64().unwrap_or(0.0) / 1000.0,
            );
        }
        Ok(())
    })
}

fn items(page: &Value) -> impl Iterator<Item = &Value> {
    page["items"].as_array().into_iter().flatten()
}

/// A JSON value as a table cell: strings bare, `null` as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An id as one URL path segment.
fn path(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_json(v: &Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(v).map_err(|e| e.to_string())?
    );
    Ok(())
}

/// `method path` on the grid; the JSON answer (`null` for none), or the
/// problem the grid answered with as an error message.
async fn call(t: &Target, method: &str, path_and_query: &str) -> Result<Value, String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let url = format!("{}{path_and_query}", t.url.trim_end_matches('/'));
    let mut req = hyper::Request::builder().method(method).uri(&url);
    if let Some(token) = &t.token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| format!("bad URL {url}: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("cannot reach the grid at {}: {e}", t.url))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("the grid's answer broke off: {e}"))?
        .to_bytes();
    let v: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|_| {
            format!(
                "the grid answered {status} with something other than JSON (is {} a Gridiron grid?)",
                t.url
            )
        })?
    };
    if status.is_success() {
        Ok(v)
    } else {
        Err(format!(
            "{} ({}): {}",
            v["title"].as_str().unwrap_or("the grid refused"),
            status.as_u16(),
            v["detail"].as_str().unwrap_or(&v.to_string())
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_paths() {
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&serde_json::json!("x")), "x");
        assert_eq!(text(&serde_json::json!(3)), "3");
        assert_eq!(path("ab-9_.~"), "ab-9_.~");
        assert_eq!(path("a/b?c"), "a%2Fb%3Fc");
    }
}
