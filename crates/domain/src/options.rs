//! Per-session grid options, read from `gridiron:options` in the capabilities.

use crate::capabilities::GRID_OPTIONS_KEY;
use crate::error::GridError;
use crate::recording::Screen;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// What a client may tell the grid about its session.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GridOptions {
    /// A display name (test name), kept with the session record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels, kept with the session record.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// End the session after this long without a command.
    #[serde(
        rename = "idleTimeout",
        skip_serializing_if = "Option::is_none",
        with = "secs"
    )]
    pub idle_timeout: Option<Duration>,
    /// End the session this long after it started, whatever it is doing.
    #[serde(
        rename = "sessionTimeout",
        skip_serializing_if = "Option::is_none",
        with = "secs"
    )]
    pub session_timeout: Option<Duration>,
    /// The work pool whose nodes must run the session (scaled-out grids).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// Labels a node must carry to run the session (scaled-out grids).
    #[serde(rename = "nodeLabels", skip_serializing_if = "BTreeMap::is_empty")]
    pub node_labels: BTreeMap<String, String>,
    /// The screen of the session's video, when it is recorded (asked by any
    /// spelling [`crate::recording::requested`] knows); the record shows it as
    /// `"recordVideo": "1366x768"`.
    #[serde(rename = "recordVideo", skip_serializing_if = "Option::is_none")]
    pub record_video: Option<Screen>,
    /// Record the session's network traffic as a HAR artifact (Chromium).
    #[serde(rename = "recordNetwork", skip_serializing_if = "std::ops::Not::not")]
    pub record_network: bool,
    /// Keep the browser console as a log artifact (Chromium; on unless `false`).
    #[serde(rename = "consoleLog", skip_serializing_if = "Option::is_none")]
    pub console_log: Option<bool>,
}

mod secs {
    use serde::Serializer;
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

const KNOWN: &[&str] = &[
    "name",
    "labels",
    "idleTimeout",
    "sessionTimeout",
    "pool",
    "nodeLabels",
    "recordVideo",
    "screenResolution",
    "recordNetwork",
    "consoleLog",
];

impl GridOptions {
    /// Reads `gridiron:options` from merged capabilities; absent means defaults.
    pub fn from_capabilities(caps: &Map<String, Value>) -> Result<Self, GridError> {
        let record_video = crate::recording::requested(caps)?;
        let obj = match caps.get(GRID_OPTIONS_KEY) {
            None | Some(Value::Null) => {
                return Ok(Self {
                    record_video,
                    ..Self::default()
                })
            }
            Some(Value::Object(o)) => o,
            Some(_) => {
                return Err(GridError::invalid_argument(format!(
                    "'{GRID_OPTIONS_KEY}' must be an object"
                )))
            }
        };
        let mut out = GridOptions {
            record_video,
            ..GridOptions::default()
        };
        for (key, value) in obj {
            let bad = || {
                GridError::invalid_argument(format!(
                    "{GRID_OPTIONS_KEY}.{key} has an invalid value {value}"
                ))
            };
            match key.as_str() {
                "name" => out.name = Some(value.as_str().ok_or_else(bad)?.to_string()),
                "labels" => out.labels = string_map(value).ok_or_else(bad)?,
                "nodeLabels" => out.node_labels = string_map(value).ok_or_else(bad)?,
                "pool" => {
                    let name = value.as_str().ok_or_else(bad)?;
                    crate::pool::check_name(name)?;
                    out.pool = Some(name.to_string());
                }
                "idleTimeout" => out.idle_timeout = Some(seconds(value).ok_or_else(bad)?),
                "sessionTimeout" => out.session_timeout = Some(seconds(value).ok_or_else(bad)?),
                // Read (and checked) with the other spellings of a recording above.
                "recordVideo" | "screenResolution" => {}
                "recordNetwork" => out.record_network = value.as_bool().ok_or_else(bad)?,
                "consoleLog" => out.console_log = Some(value.as_bool().ok_or_else(bad)?),
                other => {
                    return Err(GridError::invalid_argument(format!(
                        "unknown grid option {GRID_OPTIONS_KEY}.{other}; known options are {}",
                        KNOWN.join(", ")
                    )))
                }
            }
        }
        Ok(out)
    }

    /// Whether the session's browser console is kept as a log (the default).
    pub fn keeps_console_log(&self) -> bool {
        self.console_log != Some(false)
    }

    /// The options as JSON, for the session record.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

fn string_map(v: &Value) -> Option<BTreeMap<String, String>> {
    v.as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

fn seconds(v: &Value) -> Option<Duration> {
    positive_seconds(v.as_f64()?)
}

/// A timeout in seconds, if it is positive and not absurdly large (< 1e9 s).
pub fn positive_seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s > 0.0 && s < 1e9).then(|| Duration::from_secs_f64(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<GridOptions, GridError> {
        GridOptions::from_capabilities(v.as_object().unwrap())
    }

    #[test]
    fn absent_options_are_defaults() {
        assert_eq!(parse(json!({})).unwrap(), GridOptions::default());
    }

    #[test]
    fn all_known_options_parse() {
        let o = parse(json!({"gridiron:options": {
            "name": "login test", "labels": {"team": "web"}, "idleTimeout": 2, "sessionTimeout": 0.5,
            "pool": "gpu", "nodeLabels": {"region": "eu"}, "recordNetwork": true,
            "consoleLog": false
        }}))
        .unwrap();
        assert_eq!(o.pool.as_deref(), Some("gpu"));
        assert!(o.record_network);
        assert!(!o.keeps_console_log());
        assert!(GridOptions::default().keeps_console_log());
        assert_eq!(o.node_labels["region"], "eu");
        assert_eq!(o.name.as_deref(), Some("login test"));
        assert_eq!(o.labels["team"], "web");
        assert_eq!(o.idle_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.session_timeout, Some(Duration::from_millis(500)));
        let j = o.to_json();
        assert_eq!(j["idleTimeout"], json!(2.0));
        assert_eq!(j["labels"]["team"], json!("web"));
        assert!(j.get("recordVideo").is_none());
    }

    #[test]
    fn a_recording_is_an_option_in_any_spelling() {
        let o = parse(
            json!({"gridiron:options": {"recordVideo": true, "screenResolution": "800x600"}}),
        )
        .unwrap();
        assert_eq!(
            o.record_video.map(|s| s.to_string()).as_deref(),
            Some("800x600")
        );
        assert_eq!(o.to_json()["recordVideo"], json!("800x600"));
        let o = parse(json!({"se:recordVideo": true})).unwrap();
        assert_eq!(o.record_video, Some(crate::recording::DEFAULT_SCREEN));
        assert!(parse(json!({"se:recordVideo": 1})).is_err());
    }

    #[test]
    fn bad_options_are_invalid_arguments() {
        for v in [
            json!({"gridiron:options": 1}),
            json!({"gridiron:options": {"name": 1}}),
            json!({"gridiron:options": {"labels": {"a": 1}}}),
            json!({"gridiron:options": {"idleTimeout": -1}}),
            json!({"gridiron:options": {"idleTimeout": "10"}}),
            json!({"gridiron:options": {"idelTimeout": 10}}),
            json!({"gridiron:options": {"pool": "no spaces"}}),
            json!({"gridiron:options": {"nodeLabels": ["a"]}}),
            json!({"gridiron:options": {"recordNetwork": "yes"}}),
            json!({"gridiron:options": {"recordNetwork": 1}}),
            json!({"gridiron:options": {"consoleLog": null}}),
        ] {
            assert!(parse(v.clone()).is_err(), "{v}");
        }
    }
}
