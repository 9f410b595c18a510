//! W3C capability processing: validation, alwaysMatch x firstMatch merging,
//! matching against the browsers the grid can run, and the capabilities the
//! driver finally receives.

use crate::error::{ErrorCode, GridError, Origin};
use serde_json::{Map, Value};

/// The key under which clients pass grid options; never forwarded to a driver.
pub const GRID_OPTIONS_KEY: &str = "gridiron:options";

/// Which driver protocol family a browser belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrowserKind {
    /// Chromium or Chrome, driven by chromedriver.
    Chromium,
    /// Firefox, driven by geckodriver.
    Firefox,
}

impl BrowserKind {
    /// The W3C `browserName` the driver of this kind expects.
    pub fn driver_browser_name(self) -> &'static str {
        match self {
            BrowserKind::Chromium => "chrome",
            BrowserKind::Firefox => "firefox",
        }
    }

    /// Names clients may ask for to get this kind.
    pub fn accepted_names(self) -> &'static [&'static str] {
        match self {
            BrowserKind::Chromium => &["chrome", "chromium", "googlechrome", "google-chrome"],
            BrowserKind::Firefox => &["firefox", "firefox-esr"],
        }
    }
}

/// A browser the grid can start: what a slot offers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stereotype {
    /// Driver family.
    pub kind: BrowserKind,
    /// Browser version as reported by the binary, e.g. `156.0.8078.108`.
    pub version: String,
    /// Platform name, lower case (`linux`).
    pub platform: String,
    /// Absolute path of the browser binary the driver is told to use.
    pub binary: String,
}

/// A validated new-session request: the W3C pair, plus the original JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilityRequest {
    /// `alwaysMatch`, validated.
    pub always_match: Map<String, Value>,
    /// `firstMatch`, validated; `[{}]` when the client sent none.
    pub first_match: Vec<Map<String, Value>>,
}

const STANDARD_KEYS: &[&str] = &[
    "browserName",
    "browserVersion",
    "platformName",
    "acceptInsecureCerts",
    "pageLoadStrategy",
    "proxy",
    "setWindowRect",
    "timeouts",
    "strictFileInteractability",
    "unhandledPromptBehavior",
    "userAgent",
    "webSocketUrl",
];

/// Parses and validates the body of `POST /session`.
///
/// Accepts the W3C shape; a legacy `desiredCapabilities` object alone is
/// treated as `alwaysMatch` so older clients still get a session.
pub fn parse_new_session(body: &Value) -> Result<CapabilityRequest, GridError> {
    let body = body
        .as_object()
        .ok_or_else(|| GridError::invalid_argument("new session body must be a JSON object"))?;
    let caps = match (body.get("capabilities"), body.get("desiredCapabilities")) {
        (Some(Value::Object(c)), _) => c.clone(),
        (Some(other), _) => {
            return Err(GridError::invalid_argument(format!(
                "'capabilities' must be an object, got {}",
                type_name(other)
            )))
        }
        (None, Some(Value::Object(d))) => {
            // JSON-wire clients: keep what W3C knows (and vendor keys), drop the rest
            // (`version`, `platform`, `javascriptEnabled`, ...).
            let kept: Map<String, Value> = d
                .iter()
                .filter(|(k, _)| STANDARD_KEYS.contains(&k.as_str()) || k.contains(':'))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let mut c = Map::new();
            c.insert("alwaysMatch".into(), Value::Object(kept));
            c
        }
        _ => {
            return Err(GridError::invalid_argument(
                "new session body needs a 'capabilities' object",
            ))
        }
    };
    let always_match = match caps.get("alwaysMatch") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => without_nulls(m),
        Some(other) => {
            return Err(GridError::invalid_argument(format!(
                "'alwaysMatch' must be an object, got {}",
                type_name(other)
            )))
        }
    };
    validate(&always_match, "alwaysMatch")?;
    let first_match = match caps.get("firstMatch") {
        None | Some(Value::Null) => vec![Map::new()],
        Some(Value::Array(list)) if list.is_empty() => {
            return Err(GridError::invalid_argument(
                "'firstMatch' must contain at least one object",
            ))
        }
        Some(Value::Array(list)) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, entry) in list.iter().enumerate() {
                let m = entry.as_object().ok_or_else(|| {
                    GridError::invalid_argument(format!("firstMatch[{i}] must be an object"))
                })?;
                let m = &without_nulls(m);
                validate(m, &format!("firstMatch[{i}]"))?;
                if let Some(k) = m.keys().find(|k| always_match.contains_key(*k)) {
                    return Err(GridError::invalid_argument(format!(
                        "capability '{k}' appears in both alwaysMatch and firstMatch[{i}]"
                    )));
                }
                out.push(m.clone());
            }
            out
        }
        Some(other) => {
            return Err(GridError::invalid_argument(format!(
                "'firstMatch' must be an array, got {}",
                type_name(other)
            )))
        }
    };
    Ok(CapabilityRequest {
        always_match,
        first_match,
    })
}

/// W3C: a capability whose value is null is treated as absent.
fn without_nulls(m: &Map<String, Value>) -> Map<String, Value> {
    m.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Type checks of the standard capabilities; extension keys (with a `:`) pass.
fn validate(caps: &Map<String, Value>, where_: &str) -> Result<(), GridError> {
    for (key, value) in caps {
        if value.is_null() {
            continue;
        }
        let ok = match key.as_str() {
            "browserName" | "browserVersion" | "platformName" | "userAgent" => value.is_string(),
            "acceptInsecureCerts" | "setWindowRect" | "strictFileInteractability"
            | "webSocketUrl" => value.is_boolean(),
            "pageLoadStrategy" => matches!(value.as_str(), Some("none" | "eager" | "normal")),
            "proxy" | "timeouts" => value.is_object(),
            "unhandledPromptBehavior" => value.is_string() || value.is_object(),
            k if k.contains(':') => true,
            other => {
                return Err(GridError::invalid_argument(format!(
                    "{where_}: '{other}' is not a W3C capability (extension capabilities need a vendor prefix such as 'goog:'); standard ones are {}",
                    STANDARD_KEYS.join(", ")
                )))
            }
        };
        if !ok {
            return Err(GridError::invalid_argument(format!(
                "{where_}: capability '{key}' has an invalid value {value}"
            )));
        }
    }
    Ok(())
}

/// The merged capabilities of one alternative, and the browser that satisfies them.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    /// alwaysMatch merged with the winning firstMatch entry (grid options included).
    pub merged: Map<String, Value>,
    /// Index into the catalog passed to [`select`].
    pub stereotype: usize,
}

/// Merges alwaysMatch with each firstMatch entry in order and returns the first
/// one a catalog browser satisfies. `Err` means no configured browser could
/// ever satisfy the request, so it must fail at once rather than queue.
pub fn select(req: &CapabilityRequest, catalog: &[Stereotype]) -> Result<Selection, GridError> {
    for first in &req.first_match {
        let mut merged = req.always_match.clone();
        merged.extend(first.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(i) = catalog.iter().position(|s| matches(&merged, s)) {
            return Ok(Selection {
                merged,
                stereotype: i,
            });
        }
    }
    let offered = if catalog.is_empty() {
        "none (run `gridiron doctor`)".to_string()
    } else {
        catalog
            .iter()
            .map(|s| {
                format!(
                    "{} {} on {}",
                    s.kind.driver_browser_name(),
                    s.version,
                    s.platform
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(GridError::new(
        ErrorCode::SessionNotCreated,
        Origin::Client,
        format!(
            "no configured browser matches the requested capabilities; this grid offers: {offered}"
        ),
    ))
}

/// Whether one merged capability set can run on a stereotype.
pub fn matches(caps: &Map<String, Value>, s: &Stereotype) -> bool {
    let name_ok = match caps.get("browserName").and_then(Value::as_str) {
        None | Some("") => true,
        Some(n) => s
            .kind
            .accepted_names()
            .iter()
            .any(|a| a.eq_ignore_ascii_case(n.trim())),
    };
    let version_ok = match caps.get("browserVersion").and_then(Value::as_str) {
        None => true,
        Some(v) => version_matches(v, &s.version),
    };
    let platform_ok = match caps.get("platformName").and_then(Value::as_str) {
        None => true,
        Some(p) => p.eq_ignore_ascii_case("any") || p.eq_ignore_ascii_case(&s.platform),
    };
    name_ok && version_ok && platform_ok
}

/// Prefix match by dotted components: `156` and `156.0` match `156.0.8078.1`, `15` does not.
pub fn version_matches(requested: &str, actual: &str) -> bool {
    let requested = requested.trim();
    if requested.is_empty()
        || requested.eq_ignore_ascii_case("latest")
        || requested.eq_ignore_ascii_case("stable")
    {
        return true;
    }
    let mut have = actual.split('.');
    requested.split('.').all(|want| have.next() == Some(want))
}

pub use crate::launch::{
    chromium_args, driver_capabilities, route_websockets, LaunchDefaults, WebSocketTargets,
    CHROMIUM_DEFAULT_ARGS,
};

/// The largest requested capabilities a record keeps, serialized, in bytes.
pub const RECORDED_CAPABILITIES_LIMIT: usize = 64 * 1024;

/// The requested capabilities as a session's record keeps them: whole when
/// their JSON fits in `limit` bytes, else a note of their size (a record is
/// kept for weeks; an extension or profile inlined in the capabilities is
/// not worth keeping that long).
pub fn for_record(capabilities: Value, limit: usize) -> Value {
    /// Counts the bytes serializing writes, without keeping them.
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut size = Count(0);
    if serde_json::to_writer(&mut size, &capabilities).is_err() || size.0 <= limit {
        return capabilities;
    }
    serde_json::json!({ "gridiron:omitted": { "reason": "too large to keep", "bytes": size.0 } })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn chromium() -> Stereotype {
        Stereotype {
            kind: BrowserKind::Chromium,
            version: "156.0.8078.108".into(),
            platform: "linux".into(),
            binary: "/usr/bin/chromium".into(),
        }
    }

    pub(crate) fn firefox() -> Stereotype {
        Stereotype {
            kind: BrowserKind::Firefox,
            version: "128.5.0".into(),
            platform: "linux".into(),
            binary: "/usr/bin/firefox-esr".into(),
        }
    }

    fn req(v: Value) -> Result<CapabilityRequest, GridError> {
        parse_new_session(&v)
    }

    #[test]
    fn empty_capabilities_match_the_first_browser() {
        let r = req(json!({"capabilities": {}})).unwrap();
        assert_eq!(r.first_match, vec![Map::new()]);
        let s = select(&r, &[chromium(), firefox()]).unwrap();
        assert_eq!(s.stereotype, 0);
    }

    #[test]
    fn first_match_order_decides() {
        let r = req(json!({"capabilities": {
            "alwaysMatch": {"acceptInsecureCerts": true},
            "firstMatch": [{"browserName": "safari"}, {"browserName": "firefox"}, {"browserName": "chrome"}]
        }}))
        .unwrap();
        let s = select(&r, &[chromium(), firefox()]).unwrap();
        assert_eq!(s.stereotype, 1);
        assert_eq!(s.merged["acceptInsecureCerts"], json!(true));
        assert_eq!(s.merged["browserName"], json!("firefox"));
    }

    #[test]
    fn overlapping_keys_are_invalid() {
        let e = req(json!({"capabilities": {
            "alwaysMatch": {"browserName": "chrome"},
            "firstMatch": [{"browserName": "chrome"}]
        }}))
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        assert!(e.message.contains("browserName"));
    }

    #[test]
    fn malformed_shapes_are_invalid_arguments() {
        for body in [
            json!([]),
            json!({}),
            json!({"capabilities": 5}),
            json!({"capabilities": {"alwaysMatch": []}}),
            json!({"capabilities": {"firstMatch": {}}}),
            json!({"capabilities": {"firstMatch": []}}),
            json!({"capabilities": {"firstMatch": [3]}}),
            json!({"capabilities": {"alwaysMatch": {"browserName": 7}}}),
            json!({"capabilities": {"alwaysMatch": {"acceptInsecureCerts": "yes"}}}),
            json!({"capabilities": {"alwaysMatch": {"pageLoadStrategy": "fast"}}}),
            json!({"capabilities": {"alwaysMatch": {"browser": "chrome"}}}),
        ] {
            let e = req(body.clone()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{body}");
        }
    }

    #[test]
    fn legacy_desired_capabilities_are_accepted() {
        let r = req(json!({"desiredCapabilities": {
            "browserName": "chrome", "version": "", "platform": "ANY", "javascriptEnabled": true,
            "goog:chromeOptions": {}
        }}))
        .unwrap();
        assert_eq!(r.always_match["browserName"], json!("chrome"));
        assert!(r.always_match.contains_key("goog:chromeOptions"));
        assert!(!r.always_match.contains_key("platform"));
    }

    #[test]
    fn null_capabilities_are_absent() {
        let r = req(json!({"capabilities": {
            "alwaysMatch": {"platformName": null},
            "firstMatch": [{"platformName": "linux", "browserName": null}]
        }}))
        .unwrap();
        assert!(!r.always_match.contains_key("platformName"));
        assert_eq!(r.first_match[0].len(), 1);
    }

    #[test]
    fn impossible_requests_fail_with_session_not_created() {
        let r = req(json!({"capabilities": {"alwaysMatch": {"browserName": "netscape"}}})).unwrap();
        let e = select(&r, &[chromium()]).unwrap_err();
        assert_eq!(e.code, ErrorCode::SessionNotCreated);
        assert!(e.message.contains("chrome 156.0.8078.108"));
        let r = req(json!({"capabilities": {"alwaysMatch": {"platformName": "windows"}}})).unwrap();
        assert!(select(&r, &[chromium()]).is_err());
        assert!(select(&req(json!({"capabilities": {}})).unwrap(), &[]).is_err());
    }

    #[test]
    fn names_platforms_and_versions() {
        let m = |v: Value| matches(v.as_object().unwrap(), &chromium());
        assert!(m(json!({"browserName": "chromium"})));
        assert!(m(json!({"browserName": "Chrome"})));
        assert!(!m(json!({"browserName": "firefox"})));
        assert!(m(json!({"platformName": "LINUX"})));
        assert!(m(json!({"platformName": "any"})));
        assert!(!m(json!({"platformName": "mac"})));
        assert!(m(json!({"browserVersion": "156"})));
        assert!(m(json!({"browserVersion": "156.0.8078"})));
        assert!(m(json!({"browserVersion": "latest"})));
        assert!(!m(json!({"browserVersion": "15"})));
        assert!(!m(json!({"browserVersion": "157"})));
    }

    #[test]
    fn version_prefix_is_by_component() {
        assert!(version_matches("1", "1.2.3"));
        assert!(version_matches("1.2", "1.2.3"));
        assert!(!version_matches("1.2.3.4", "1.2.3"));
        assert!(!version_matches("1.20", "1.2.3"));
    }

    #[test]
    fn records_keep_capabilities_up_to_a_size() {
        let small = json!({"alwaysMatch": {"browserName": "chrome"}});
        assert_eq!(for_record(small.clone(), 1024), small);
        let big =
            json!({"alwaysMatch": {"goog:chromeOptions": {"extensions": ["x".repeat(5000)]}}});
        let kept = for_record(big, 1024);
        let omitted = &kept["gridiron:omitted"];
        assert!(omitted["bytes"].as_u64().unwrap() > 5000, "{kept}");
        assert!(kept.to_string().len() < 1024);
    }
}
