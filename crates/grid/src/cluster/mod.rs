//! The scaled-out roles: hubs accept clients and route them, nodes own the
//! browsers of one host. They share state through [`gridiron_store::Cluster`]
//! and authenticate each other with a cluster secret.

mod hub;
mod node;

pub use hub::{Hub, HubConfig};

/// The header in which a hub tells a node why it ends a session (a CDP
/// client's tunnel closing is a quit, a client that left is `client_gone`).
pub const END_REASON_HEADER: &str = "x-gridiron-end-reason";
pub use node::{node_router, NodeAgent, NodeConfig};

use gridiron_domain::{ErrorCode, GridError, Origin};
use serde_json::{json, Value};

/// The header a hub sends its cluster secret in; nodes refuse requests without it.
pub const SECRET_HEADER: &str = "x-gridiron-cluster-secret";

/// Key of a queued request body that asks for a CDP-only session; its value
/// is the `/cdp` query string.
const CDP_KEY: &str = "gridiron:cdp";

/// Compares secrets in time independent of where they differ.
fn secret_matches(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// A node's answer to a queued request, as it travels to the hub.
fn encode_answer(r: &Result<Value, GridError>) -> String {
    match r {
        Ok(v) => json!({ "ok": v }),
        Err(e) => json!({
            "error": e.code.as_str(),
            "origin": e.origin.as_str(),
            "message": e.message,
        }),
    }
    .to_string()
}

/// The hub's view of a node's answer: the W3C response body, or the error.
fn decode_answer(s: &str) -> Result<Value, GridError> {
    let v: Value = serde_json::from_str(s).map_err(|e| {
        GridError::new(
            ErrorCode::UnknownError,
            Origin::Grid,
            format!("malformed answer from the node: {e}"),
        )
    })?;
    if let Some(ok) = v.get("ok") {
        return Ok(ok.clone());
    }
    let code = v
        .get("error")
        .and_then(Value::as_str)
        .and_then(ErrorCode::parse)
        .unwrap_or(ErrorCode::SessionNotCreated);
    // Whoever caused it on the node (the client's capabilities, the node, its
    // driver) caused it for the hub's client too.
    let origin = v
        .get("origin")
        .and_then(Value::as_str)
        .and_then(Origin::parse)
        .unwrap_or(Origin::Grid);
    let message = v.get("message").and_then(Value::as_str).unwrap_or("");
    Err(GridError::new(code, origin, message))
}

#[cfg(test)]
mod tests;
