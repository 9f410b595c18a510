//! Warm sessions: browser sessions started ahead of demand with the grid's
//! default capabilities, and which requests one of them may serve.
//!
//! A request may take a warm session only if the driver would have received
//! exactly what the warm session was started with: the effective
//! capabilities (after the grid's defaults and the launch policy), with the
//! spellings that mean the same as leaving an entry out set aside.

use crate::capabilities::BrowserKind;
use serde_json::{Map, Value};

/// How many warm sessions to keep per browser, as `--warm chrome=2,firefox=1` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WarmCounts(pub Vec<(BrowserKind, usize)>);

impl WarmCounts {
    /// Parses `chrome=2,firefox=1` (any browser name the grid accepts; an
    /// empty text or `0` counts keep none).
    pub fn parse(text: &str) -> Result<WarmCounts, String> {
        let mut counts: Vec<(BrowserKind, usize)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, n) = part
                .split_once('=')
                .ok_or_else(|| format!("--warm takes browser=count pairs, got {part:?}"))?;
            let name = name.trim().to_ascii_lowercase();
            let kind = [BrowserKind::Chromium, BrowserKind::Firefox]
                .into_iter()
                .find(|k| k.accepted_names().contains(&name.as_str()))
                .ok_or_else(|| format!("--warm: unknown browser {name:?} (chrome or firefox)"))?;
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| format!("--warm: {part:?} needs a whole number of sessions"))?;
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some(entry) => entry.1 = n,
                None => counts.push((kind, n)),
            }
        }
        counts.retain(|(_, n)| *n > 0);
        Ok(WarmCounts(counts))
    }

    /// Sessions to keep warm of `kind`.
    pub fn of(&self, kind: BrowserKind) -> usize {
        self.0
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Whether no session is kept warm.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The capabilities a new session request of no particular kind sends for
/// `kind`: what a warm session of that browser is started from.
pub fn default_request(kind: BrowserKind) -> Value {
    serde_json::json!({
        "capabilities": {"alwaysMatch": {"browserName": kind.driver_browser_name()}}
    })
}

/// What decides whether two sessions are interchangeable: the capabilities
/// the driver receives (each session's profile is the driver's own), without
/// entries that only restate the driver's defaults:
/// `pageLoadStrategy: "normal"` and empty `args`/`extensions` lists, which
/// clients such as Selenium's send for every session, and Selenium's own
/// `se:` capabilities (`se:remoteUrl`), which drivers do not act on.
pub fn warm_key(driver_caps: &Map<String, Value>) -> Value {
    let mut caps = driver_caps.clone();
    caps.retain(|k, _| !k.starts_with("se:"));
    if caps.get("pageLoadStrategy").and_then(Value::as_str) == Some("normal") {
        caps.remove("pageLoadStrategy");
    }
    for vendor in ["goog:chromeOptions", "moz:firefoxOptions"] {
        if let Some(opts) = caps.get_mut(vendor).and_then(Value::as_object_mut) {
            opts.retain(|k, v| {
                !(matches!(k.as_str(), "args" | "extensions")
                    && v.as_array().is_some_and(Vec::is_empty))
            });
        }
    }
    Value::Object(caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capabilities::tests::chromium;
    use crate::capabilities::{parse_new_session, select};
    use crate::launch::{driver_capabilities, LaunchDefaults};
    use serde_json::json;

    fn key_of(body: Value) -> Value {
        let req = parse_new_session(&body).unwrap();
        let sel = select(&req, &[chromium()]).unwrap();
        let defaults = LaunchDefaults {
            headless: true,
            profile_dir: None,
            sandbox: false,
            download_dir: None,
        };
        warm_key(&driver_capabilities(&sel.merged, &chromium(), &defaults))
    }

    #[test]
    fn counts_parse_and_refuse_nonsense() {
        let c = WarmCounts::parse("chrome=2, firefox=1").unwrap();
        assert_eq!(c.of(BrowserKind::Chromium), 2);
        assert_eq!(c.of(BrowserKind::Firefox), 1);
        assert_eq!(WarmCounts::parse("chromium=3,chrome=1").unwrap().0.len(), 1);
        assert!(WarmCounts::parse("").unwrap().is_empty());
        assert!(WarmCounts::parse("chrome=0").unwrap().is_empty());
        assert!(WarmCounts::parse("safari=1").is_err());
        assert!(WarmCounts::parse("chrome").is_err());
        assert!(WarmCounts::parse("chrome=-1").is_err());
    }

    #[test]
    fn the_usual_default_requests_match_the_warm_one() {
        let warm = key_of(default_request(BrowserKind::Chromium));
        let selenium = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "pageLoadStrategy": "normal",
            "se:remoteUrl": "http://grid:4444",
            "goog:chromeOptions": {"extensions": [], "args": []}}}});
        assert_eq!(key_of(selenium), warm);
        // Grid options, version and platform never reach the driver.
        let named = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chromium", "platformName": "linux",
            "gridiron:options": {"name": "checkout", "idleTimeout": 30}}}});
        assert_eq!(key_of(named), warm);
        let legacy = json!({"capabilities": {"firstMatch": [{"browserName": "chrome"}]}});
        assert_eq!(key_of(legacy), warm);
    }

    #[test]
    fn anything_the_driver_would_see_differently_does_not() {
        let warm = key_of(default_request(BrowserKind::Chromium));
        for caps in [
            json!({"browserName": "chrome", "webSocketUrl": true}),
            json!({"browserName": "chrome", "pageLoadStrategy": "eager"}),
            json!({"browserName": "chrome", "acceptInsecureCerts": true}),
            json!({"browserName": "chrome", "goog:chromeOptions": {"args": ["--window-size=800,600"]}}),
            json!({"browserName": "chrome", "goog:chromeOptions": {"args": ["--headless=old"]}}),
            json!({"browserName": "chrome", "goog:chromeOptions": {"prefs": {"a": 1}}}),
            json!({"browserName": "chrome", "goog:chromeOptions": {"extensions": ["AAAA"]}}),
        ] {
            let body = json!({"capabilities": {"alwaysMatch": caps}});
            assert_ne!(key_of(body.clone()), warm, "{body}");
        }
    }
}
