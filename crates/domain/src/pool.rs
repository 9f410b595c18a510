//! Work pools and node eligibility in a scaled-out grid.
//!
//! A pool is a named group of nodes with defaults for the sessions that
//! target it; a node decides from its profile whether a request is for it.

use crate::capabilities::GRID_OPTIONS_KEY;
use crate::error::GridError;
use crate::options::GridOptions;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A named work pool and the defaults of the sessions that target it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// Unique name (`[A-Za-z0-9._-]`, at most 64 characters).
    pub name: String,
    /// Default `browserName` for requests that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// Default `browserVersion` (prefix) for requests that name none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Browser arguments added to every session of the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Labels of the pool's nodes, and default labels of its sessions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Sessions that may run in the pool at once, over all its nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Warm sessions each of its nodes keeps (`chrome=2`), started with the
    /// pool's defaults, unless the node sets `--warm` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<String>,
}

/// Whether `name` is 1 to 64 of `A-Z a-z 0-9 . _ -`: safe in store keys,
/// logs, URLs and Basic auth user names.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Checks a pool name: 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> Result<(), GridError> {
    if is_plain_name(name) {
        Ok(())
    } else {
        Err(GridError::invalid_argument(format!(
            "invalid pool name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        )))
    }
}

/// Fills a new-session body with `pool`'s defaults, without overriding what
/// the client set: browser name and version go into `alwaysMatch` unless any
/// capability set names them, arguments are appended to the browser's
/// options, and the pool's labels become default session labels.
pub fn apply_defaults(body: &mut Value, pool: &Pool) {
    let Some(caps) = body.get_mut("capabilities").and_then(Value::as_object_mut) else {
        return;
    };
    let first: Vec<Map<String, Value>> = caps
        .get("firstMatch")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_object().cloned()).collect())
        .unwrap_or_default();
    let always = caps
        .entry("alwaysMatch")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(always) = always else { return };
    let named = |key: &str, always: &Map<String, Value>| {
        always.contains_key(key) || first.iter().any(|f| f.contains_key(key))
    };
    for (key, value) in [
        ("browserName", &pool.browser),
        ("browserVersion", &pool.version),
    ] {
        if let Some(v) = value {
            if !named(key, always) {
                always.insert(key.into(), Value::String(v.clone()));
            }
        }
    }
    if !pool.args.is_empty() {
        let browser = pool
            .browser
            .clone()
            .or_else(|| always.get("browserName")?.as_str().map(str::to_string))
            .unwrap_or_default();
        let key = if browser.starts_with("firefox") {
            "moz:firefoxOptions"
        } else {
            "goog:chromeOptions"
        };
        let opts = always.entry(key).or_insert_with(|| json!({}));
        if let Some(opts) = opts.as_object_mut() {
            let args = opts.entry("args").or_insert_with(|| json!([]));
            if let Some(args) = args.as_array_mut() {
                args.extend(pool.args.iter().cloned().map(Value::String));
            }
        }
    }
    if !pool.labels.is_empty() {
        let grid = always.entry(GRID_OPTIONS_KEY).or_insert_with(|| json!({}));
        if let Some(grid) = grid.as_object_mut() {
            let labels = grid.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                for (k, v) in &pool.labels {
                    labels
                        .entry(k.clone())
                        .or_insert_with(|| Value::String(v.clone()));
                }
            }
        }
    }
}

/// What a node offers the scheduler besides its browsers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeProfile {
    /// Pools the node belongs to.
    #[serde(default)]
    pub pools: Vec<String>,
    /// The node's labels (its own, plus those of its pools).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Whether a node with `profile` may run a session with `options`: it must be
/// in the requested pool (if any) and carry every requested node label.
/// Requests that name no pool may run on any node.
pub fn node_accepts(profile: &NodeProfile, options: &GridOptions) -> bool {
    let pool_ok = options
        .pool
        .as_ref()
        .is_none_or(|p| profile.pools.iter().any(|q| q == p));
    pool_ok
        && options
            .node_labels
            .iter()
            .all(|(k, v)| profile.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Pool {
        Pool {
            name: "web".into(),
            browser: Some("chrome".into()),
            version: Some("156".into()),
            args: vec!["--lang=de".into()],
            labels: BTreeMap::from([("team".into(), "web".into())]),
            max_concurrency: Some(2),
            warm: None,
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("gpu-eu.1_x").is_ok());
        for bad in ["", "a b", "x/y", &"a".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_fill_what_the_client_left_out() {
        let mut body = json!({"capabilities": {"alwaysMatch": {
            "gridiron:options": {"labels": {"team": "mine"}}
        }}});
        apply_defaults(&mut body, &pool());
        let a = &body["capabilities"]["alwaysMatch"];
        assert_eq!(a["browserName"], "chrome");
        assert_eq!(a["browserVersion"], "156");
        assert_eq!(a["goog:chromeOptions"]["args"], json!(["--lang=de"]));
        assert_eq!(a["gridiron:options"]["labels"]["team"], "mine");
    }

    #[test]
    fn defaults_never_override_the_client() {
        let mut body = json!({"capabilities": {
            "alwaysMatch": {"goog:chromeOptions": {"args": ["--a"]}},
            "firstMatch": [{"browserName": "firefox"}]
        }});
        apply_defaults(&mut body, &pool());
        let a = &body["capabilities"]["alwaysMatch"];
        assert!(a.get("browserName").is_none());
        assert_eq!(a["goog:chromeOptions"]["args"], json!(["--a", "--lang=de"]));
        assert_eq!(a["gridiron:options"]["labels"]["team"], "web");
        let mut no_caps = json!({"desiredCapabilities": {}});
        apply_defaults(&mut no_caps, &pool());
        assert_eq!(no_caps, json!({"desiredCapabilities": {}}));
    }

    #[test]
    fn nodes_accept_by_pool_and_labels() {
        let node = NodeProfile {
            pools: vec!["web".into()],
            labels: BTreeMap::from([("region".into(), "eu".into())]),
        };
        let mut o = GridOptions::default();
        assert!(node_accepts(&node, &o));
        o.pool = Some("web".into());
        assert!(node_accepts(&node, &o));
        o.node_labels.insert("region".into(), "eu".into());
        assert!(node_accepts(&node, &o));
        o.node_labels.insert("region".into(), "us".into());
        assert!(!node_accepts(&node, &o));
        o.node_labels.clear();
        o.pool = Some("gpu".into());
        assert!(!node_accepts(&node, &o));
        assert!(!node_accepts(&NodeProfile::default(), &o));
    }
}
