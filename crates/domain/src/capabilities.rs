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

/// Defaults the grid adds so unmodified clients work on a headless server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchDefaults {
    /// Start browsers headless unless the client asked for a mode itself.
    pub headless: bool,
    /// The session's own profile directory.
    pub profile_dir: String,
}

/// Chromium switches every grid session gets unless the client set the same switch.
pub const CHROMIUM_DEFAULT_ARGS: &[&str] = &[
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
];

/// The capabilities the driver receives: the merged request without grid options
/// and with the grid's defaults filled where the client left them open.
pub fn driver_capabilities(
    merged: &Map<String, Value>,
    s: &Stereotype,
    defaults: &LaunchDefaults,
) -> Map<String, Value> {
    let mut caps = merged.clone();
    caps.remove(GRID_OPTIONS_KEY);
    caps.insert(
        "browserName".into(),
        Value::String(s.kind.driver_browser_name().into()),
    );
    // Matched by the grid already; drivers compare these exactly and would refuse
    // a prefix like "156" or a platform spelled "LINUX" or "any".
    caps.remove("browserVersion");
    caps.remove("platformName");
    match s.kind {
        BrowserKind::Chromium => {
            let opts = vendor_object(&mut caps, "goog:chromeOptions");
            opts.entry("binary")
                .or_insert_with(|| Value::String(s.binary.clone()));
            let args = chromium_args(string_list(opts.get("args")), defaults);
            opts.insert(
                "args".into(),
                Value::Array(args.into_iter().map(Value::String).collect()),
            );
        }
        BrowserKind::Firefox => {
            let opts = vendor_object(&mut caps, "moz:firefoxOptions");
            opts.entry("binary")
                .or_insert_with(|| Value::String(s.binary.clone()));
            let mut args = string_list(opts.get("args"));
            if defaults.headless && !args.iter().any(|a| a == "-headless" || a == "--headless") {
                args.push("-headless".into());
            }
            opts.insert(
                "args".into(),
                Value::Array(args.into_iter().map(Value::String).collect()),
            );
        }
    }
    caps
}

/// Chromium switches for a grid session: the client's `args` first, then each
/// grid default whose switch the client did not set itself.
pub fn chromium_args(mut args: Vec<String>, defaults: &LaunchDefaults) -> Vec<String> {
    let has = |args: &[String], switch: &str| {
        args.iter()
            .any(|a| a == switch || a.starts_with(&format!("{switch}=")))
    };
    if defaults.headless && !has(&args, "--headless") {
        args.push("--headless=new".into());
    }
    for d in CHROMIUM_DEFAULT_ARGS {
        if !has(&args, d) {
            args.push((*d).into());
        }
    }
    if !has(&args, "--user-data-dir") {
        args.push(format!("--user-data-dir={}", defaults.profile_dir));
    }
    args
}

/// Where a session's websockets really are, found in the driver's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSocketTargets {
    /// DevTools HTTP base of the browser (`http://127.0.0.1:PORT`), for CDP.
    pub cdp_http: Option<String>,
    /// The driver's BiDi websocket URL.
    pub bidi: Option<String>,
}

/// Rewrites the websocket URLs in granted capabilities so clients reach them
/// through the grid at `ws_base`, and returns where they really point.
/// Adds `se:cdp` and `se:cdpVersion` for Chromium sessions.
pub fn route_websockets(
    caps: &mut Map<String, Value>,
    ws_base: &str,
    grid_id: &str,
) -> WebSocketTargets {
    let mut targets = WebSocketTargets::default();
    let debugger = caps
        .get("goog:chromeOptions")
        .and_then(|o| o.get("debuggerAddress"))
        .and_then(Value::as_str)
        .map(|a| a.replacen("localhost:", "127.0.0.1:", 1));
    if let Some(addr) = debugger {
        targets.cdp_http = Some(format!("http://{addr}"));
        caps.insert(
            "se:cdp".into(),
            Value::String(format!("{ws_base}/session/{grid_id}/se/cdp")),
        );
        let version = caps
            .get("browserVersion")
            .cloned()
            .unwrap_or(Value::String(String::new()));
        caps.insert("se:cdpVersion".into(), version);
    }
    if let Some(url) = caps.get("webSocketUrl").and_then(Value::as_str) {
        targets.bidi = Some(url.to_string());
        caps.insert(
            "webSocketUrl".into(),
            Value::String(format!("{ws_base}/session/{grid_id}/se/bidi")),
        );
    }
    targets
}

fn vendor_object<'a>(caps: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = caps
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot.as_object_mut().expect("just made an object")
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chromium() -> Stereotype {
        Stereotype {
            kind: BrowserKind::Chromium,
            version: "156.0.8078.108".into(),
            platform: "linux".into(),
            binary: "/usr/bin/chromium".into(),
        }
    }

    fn firefox() -> Stereotype {
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
    fn driver_capabilities_fill_defaults_and_strip_grid_options() {
        let merged = json!({
            "browserName": "chromium",
            "browserVersion": "156",
            "platformName": "ANY",
            "gridiron:options": {"name": "t"},
            "goog:chromeOptions": {"args": ["--window-size=800,600"]}
        });
        let d = LaunchDefaults {
            headless: true,
            profile_dir: "/data/s1/profile".into(),
        };
        let caps = driver_capabilities(merged.as_object().unwrap(), &chromium(), &d);
        assert!(!caps.contains_key(GRID_OPTIONS_KEY));
        assert!(!caps.contains_key("browserVersion"));
        assert!(!caps.contains_key("platformName"));
        assert_eq!(caps["browserName"], json!("chrome"));
        let opts = &caps["goog:chromeOptions"];
        assert_eq!(opts["binary"], json!("/usr/bin/chromium"));
        let args: Vec<&str> = opts["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert_eq!(args[0], "--window-size=800,600");
        assert!(args.contains(&"--headless=new"));
        assert!(args.contains(&"--no-sandbox"));
        assert!(args.contains(&"--user-data-dir=/data/s1/profile"));
    }

    #[test]
    fn client_choices_win_over_defaults() {
        let merged = json!({"goog:chromeOptions": {
            "binary": "/opt/chrome",
            "args": ["--headless", "--user-data-dir=/mine"]
        }});
        let d = LaunchDefaults {
            headless: true,
            profile_dir: "/data/p".into(),
        };
        let caps = driver_capabilities(merged.as_object().unwrap(), &chromium(), &d);
        let opts = &caps["goog:chromeOptions"];
        assert_eq!(opts["binary"], json!("/opt/chrome"));
        let args = opts["args"].as_array().unwrap();
        assert_eq!(
            args.iter()
                .filter(|a| a.as_str().unwrap().starts_with("--headless"))
                .count(),
            1
        );
        assert_eq!(
            args.iter()
                .filter(|a| a.as_str().unwrap().starts_with("--user-data-dir"))
                .count(),
            1
        );
        assert!(args.contains(&json!("--user-data-dir=/mine")));
    }

    #[test]
    fn websockets_are_routed_through_the_grid() {
        let mut caps = json!({
            "browserVersion": "156.0.1",
            "goog:chromeOptions": {"debuggerAddress": "localhost:39001"},
            "webSocketUrl": "ws://127.0.0.1:9515/session/drv"
        })
        .as_object()
        .unwrap()
        .clone();
        let t = route_websockets(&mut caps, "ws://grid.example:4444", "g1");
        assert_eq!(t.cdp_http.as_deref(), Some("http://127.0.0.1:39001"));
        assert_eq!(t.bidi.as_deref(), Some("ws://127.0.0.1:9515/session/drv"));
        assert_eq!(
            caps["se:cdp"],
            json!("ws://grid.example:4444/session/g1/se/cdp")
        );
        assert_eq!(caps["se:cdpVersion"], json!("156.0.1"));
        assert_eq!(
            caps["webSocketUrl"],
            json!("ws://grid.example:4444/session/g1/se/bidi")
        );
        let mut plain = Map::new();
        assert_eq!(
            route_websockets(&mut plain, "ws://g", "x"),
            WebSocketTargets::default()
        );
        assert!(plain.is_empty());
    }

    #[test]
    fn firefox_gets_headless() {
        let d = LaunchDefaults {
            headless: true,
            profile_dir: "/p".into(),
        };
        let caps = driver_capabilities(&Map::new(), &firefox(), &d);
        assert_eq!(caps["moz:firefoxOptions"]["args"], json!(["-headless"]));
        assert_eq!(caps["browserName"], json!("firefox"));
    }
}
