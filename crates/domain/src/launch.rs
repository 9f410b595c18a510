//! What the driver finally receives: the capabilities of a new session with
//! the grid's launch defaults filled in and its own options stripped, and the
//! websocket URLs of the answer rewritten to go through the grid.

use crate::capabilities::{BrowserKind, Stereotype, GRID_OPTIONS_KEY};
use serde_json::{Map, Value};

/// Defaults the grid adds so unmodified clients work on a headless server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchDefaults {
    /// Start browsers headless unless the client asked for a mode itself.
    pub headless: bool,
    /// The session's own profile directory; `None` leaves the profile to
    /// the driver, which makes a temporary one (in the session's `TMPDIR`)
    /// and, because it is temporary, kills the browser at once on quit
    /// instead of waiting for it to save a profile nobody will read.
    pub profile_dir: Option<String>,
    /// Chromium keeps its sandbox; when false it gets `--no-sandbox` (it cannot
    /// sandbox itself as root, or without unprivileged user namespaces).
    pub sandbox: bool,
    /// The session's own download directory when the client asked for managed
    /// downloads (`se:downloadsEnabled`): the browser saves there without asking,
    /// whatever the client's preferences said.
    pub download_dir: Option<String>,
}

/// The capability a Selenium 4 client sets for managed downloads.
pub const DOWNLOADS_ENABLED: &str = "se:downloadsEnabled";

/// Whether a (merged) request asks for managed downloads.
pub fn downloads_enabled(merged: &Map<String, Value>) -> bool {
    merged.get(DOWNLOADS_ENABLED) == Some(&Value::Bool(true))
}

/// Chromium switches every grid session gets unless the client set the same switch
/// (and `--no-sandbox` when [`LaunchDefaults::sandbox`] is false).
pub const CHROMIUM_DEFAULT_ARGS: &[&str] = &[
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
    crate::recording::strip(&mut caps);
    // The grid serves downloads itself; drivers do not know the capability.
    caps.remove(DOWNLOADS_ENABLED);
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
            if let Some(dir) = &defaults.download_dir {
                set_prefs(opts, &chromium_download_prefs(dir));
            }
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
            // The page's console calls are printed with the browser's output,
            // where the grid keeps them as the session's console log.
            set_prefs(
                opts,
                &[("devtools.console.stdout.content", Value::Bool(true))],
            );
            if let Some(dir) = &defaults.download_dir {
                set_prefs(opts, &firefox_download_prefs(dir));
            }
        }
    }
    caps
}

/// Chromium preferences that save every download in `dir`, without a prompt.
fn chromium_download_prefs(dir: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("download.default_directory", Value::String(dir.into())),
        ("download.prompt_for_download", Value::Bool(false)),
        ("download.directory_upgrade", Value::Bool(true)),
        ("savefile.default_directory", Value::String(dir.into())),
    ]
}

/// Firefox preferences that save every download in `dir`, without a dialog.
fn firefox_download_prefs(dir: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("browser.download.dir", Value::String(dir.into())),
        ("browser.download.folderList", Value::from(2)),
        ("browser.download.useDownloadDir", Value::Bool(true)),
        (
            "browser.download.always_ask_before_handling_new_types",
            Value::Bool(false),
        ),
        (
            "browser.download.manager.showWhenStarting",
            Value::Bool(false),
        ),
        (
            "browser.download.start_downloads_in_tmp_dir",
            Value::Bool(false),
        ),
        ("pdfjs.disabled", Value::Bool(true)),
    ]
}

/// Sets the grid's `prefs` in a vendor options object, over the client's:
/// a client's nested spelling of the same preference (`{"download":
/// {"default_directory": ..}}`) is removed so it cannot win either.
fn set_prefs(opts: &mut Map<String, Value>, prefs: &[(&str, Value)]) {
    let all = vendor_object(opts, "prefs");
    for (name, value) in prefs {
        remove_nested(all, name);
        all.insert((*name).to_string(), value.clone());
    }
}

/// Removes the nested form of the dotted preference `name` from `prefs`.
fn remove_nested(prefs: &mut Map<String, Value>, name: &str) {
    let Some((head, rest)) = name.split_once('.') else {
        return;
    };
    if let Some(Value::Object(inner)) = prefs.get_mut(head) {
        inner.remove(rest);
        remove_nested(inner, rest);
    }
}

/// Adds `se:downloadsEnabled: true` to a granted session's capabilities: the
/// Selenium clients look for it before they ask for a session's downloads.
pub fn mark_downloads(caps: &mut Map<String, Value>) {
    caps.insert(DOWNLOADS_ENABLED.into(), Value::Bool(true));
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
    let no_sandbox = (!defaults.sandbox).then_some("--no-sandbox");
    for d in no_sandbox.iter().chain(CHROMIUM_DEFAULT_ARGS) {
        if !has(&args, d) {
            args.push((*d).into());
        }
    }
    if let Some(dir) = &defaults.profile_dir {
        if !has(&args, "--user-data-dir") {
            args.push(format!("--user-data-dir={dir}"));
        }
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

    use crate::capabilities::tests::{chromium, firefox};

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
            profile_dir: Some("/data/s1/profile".into()),
            sandbox: false,
            download_dir: None,
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
    fn a_sandboxed_chromium_gets_no_no_sandbox() {
        let d = LaunchDefaults {
            headless: true,
            profile_dir: Some("/p".into()),
            sandbox: true,
            download_dir: None,
        };
        let args = chromium_args(vec![], &d);
        assert!(!args.iter().any(|a| a == "--no-sandbox"), "{args:?}");
        assert!(args.iter().any(|a| a == "--disable-gpu"), "{args:?}");
    }

    #[test]
    fn client_choices_win_over_defaults() {
        let merged = json!({"goog:chromeOptions": {
            "binary": "/opt/chrome",
            "args": ["--headless", "--user-data-dir=/mine"]
        }});
        let d = LaunchDefaults {
            headless: true,
            profile_dir: Some("/data/p".into()),
            sandbox: false,
            download_dir: None,
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
            profile_dir: Some("/p".into()),
            sandbox: false,
            download_dir: None,
        };
        let caps = driver_capabilities(&Map::new(), &firefox(), &d);
        assert_eq!(caps["moz:firefoxOptions"]["args"], json!(["-headless"]));
        assert_eq!(caps["browserName"], json!("firefox"));
    }

    #[test]
    fn downloads_go_where_the_grid_says_and_the_capability_stays_behind() {
        let merged = json!({
            "se:downloadsEnabled": true,
            "goog:chromeOptions": {"prefs": {
                "download": {"default_directory": "/etc", "prompt_for_download": true},
                "download.default_directory": "/root",
                "intl.accept_languages": "de"
            }}
        });
        let merged = merged.as_object().unwrap();
        assert!(downloads_enabled(merged));
        let d = LaunchDefaults {
            headless: true,
            profile_dir: None,
            sandbox: true,
            download_dir: Some("/data/s1/artifacts/downloads".into()),
        };
        let caps = driver_capabilities(merged, &chromium(), &d);
        assert!(!caps.contains_key(DOWNLOADS_ENABLED), "{caps:?}");
        let prefs = &caps["goog:chromeOptions"]["prefs"];
        assert_eq!(
            prefs["download.default_directory"],
            json!("/data/s1/artifacts/downloads")
        );
        assert_eq!(prefs["download.prompt_for_download"], json!(false));
        assert_eq!(prefs["download"], json!({}), "the nested spelling is gone");
        assert_eq!(prefs["intl.accept_languages"], json!("de"));

        let caps = driver_capabilities(merged, &firefox(), &d);
        let prefs = &caps["moz:firefoxOptions"]["prefs"];
        assert_eq!(
            prefs["browser.download.dir"],
            json!("/data/s1/artifacts/downloads")
        );
        assert_eq!(prefs["browser.download.folderList"], json!(2));
        assert!(!caps.contains_key(DOWNLOADS_ENABLED));
    }

    #[test]
    fn without_downloads_no_download_prefs_are_set() {
        let merged = json!({"se:downloadsEnabled": false});
        let merged = merged.as_object().unwrap();
        assert!(!downloads_enabled(merged));
        assert!(!downloads_enabled(&Map::new()));
        let d = LaunchDefaults {
            headless: true,
            profile_dir: None,
            sandbox: true,
            download_dir: None,
        };
        let caps = driver_capabilities(merged, &chromium(), &d);
        assert!(!caps.contains_key(DOWNLOADS_ENABLED));
        assert!(caps["goog:chromeOptions"].get("prefs").is_none());
        let mut granted = Map::new();
        mark_downloads(&mut granted);
        assert_eq!(granted[DOWNLOADS_ENABLED], json!(true));
    }
}
