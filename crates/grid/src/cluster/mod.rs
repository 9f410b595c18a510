//! The scaled-out roles: hubs accept clients and route them, nodes own the
//! browsers of one host. They share state through [`gridiron_store::Cluster`]
//! and authenticate each other with a cluster secret.

mod hub;
mod node;
mod node_gate;
pub mod signing;

pub use hub::{Hub, HubConfig};

/// The header in which a hub tells a node why it ends a session (a CDP
/// client's tunnel closing is a quit, a client that left is `client_gone`).
pub const END_REASON_HEADER: &str = "x-gridiron-end-reason";
pub use node::{NodeAgent, NodeConfig};
pub use node_gate::node_router;

use gridiron_domain::{ErrorCode, GridError, Origin};
use serde_json::{json, Value};

/// Key of a queued request body that asks for a CDP-only session; its value
/// is the `/cdp` query string.
const CDP_KEY: &str = "gridiron:cdp";

/// The secret hubs and nodes share. It keys the signatures of hub -> node
/// requests and never travels itself; its `Debug` shows no part of it, so a
/// config holding it can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(String);

impl ClusterSecret {
    /// Wraps `secret`.
    pub fn new(secret: impl Into<String>) -> ClusterSecret {
        ClusterSecret(secret.into())
    }

    /// The key bytes, for signing.
    pub(crate) fn key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<&str> for ClusterSecret {
    fn from(s: &str) -> ClusterSecret {
        ClusterSecret::new(s)
    }
}

impl From<String> for ClusterSecret {
    fn from(s: String) -> ClusterSecret {
        ClusterSecret(s)
    }
}

impl std::fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterSecret(***)")
    }
}

/// The clock signatures are checked against, in milliseconds since the Unix epoch.
fn unix_ms() -> u64 {
    u64::try_from(gridiron_store::now_ms()).unwrap_or(0)
}

/// Headers only a hub may set: a hub drops them from what its clients send
/// before it sets its own and signs, a node removes them after checking.
fn hub_only_headers() -> [&'static str; 4] {
    [
        END_REASON_HEADER,
        signing::TIMESTAMP_HEADER,
        signing::NONCE_HEADER,
        signing::SIGNATURE_HEADER,
    ]
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
