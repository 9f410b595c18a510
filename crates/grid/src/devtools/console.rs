//! The browser console as a log: `console.*` calls, uncaught exceptions and
//! the browser's own log entries, one JSON object per line. Pure: fed with
//! CDP events, it says what line (if any) each one makes.

use serde_json::{json, Value};

/// Longest text kept of one entry; a page logging megabytes per call would
/// otherwise fill the disk through one line.
const MAX_TEXT: usize = 16 * 1024;

/// The line `method` with `params` adds to the console log, if it is a
/// console event. `target` is the page it came from (its target id).
pub fn line(method: &str, params: &Value, target: &str) -> Option<Value> {
    let mut out = match method {
        "Runtime.consoleAPICalled" => console_call(params),
        "Runtime.exceptionThrown" => exception(params),
        "Log.entryAdded" => log_entry(params),
        _ => return None,
    };
    out["target"] = Value::String(target.to_string());
    Some(out)
}

/// A `console.log(...)` (or `.error`, `.warn`, ...) call.
fn console_call(p: &Value) -> Value {
    let kind = p["type"].as_str().unwrap_or("log");
    let text = p["args"]
        .as_array()
        .map(|args| args.iter().map(remote_text).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let frame = &p["stackTrace"]["callFrames"][0];
    json!({
        "timestamp": millis(&p["timestamp"]),
        "level": console_level(kind),
        "source": "console",
        "type": kind,
        "text": bounded(text),
        "url": frame["url"].as_str().unwrap_or_default(),
        "line": frame["lineNumber"].as_i64().map(|l| l + 1),
    })
}

/// An uncaught exception (or unhandled promise rejection).
fn exception(p: &Value) -> Value {
    let d = &p["exceptionDetails"];
    let text = d["exception"]["description"]
        .as_str()
        .or_else(|| d["text"].as_str())
        .unwrap_or("uncaught exception");
    let frame = &d["stackTrace"]["callFrames"][0];
    let url = d["url"]
        .as_str()
        .or_else(|| frame["url"].as_str())
        .unwrap_or_default();
    json!({
        "timestamp": millis(&p["timestamp"]),
        "level": "error",
        "source": "exception",
        "text": bounded(text.to_string()),
        "url": url,
        "line": d["lineNumber"].as_i64().map(|l| l + 1),
    })
}

/// An entry of the browser's own log (a failed resource, a violation).
fn log_entry(p: &Value) -> Value {
    let e = &p["entry"];
    let level = match e["level"].as_str().unwrap_or("info") {
        "verbose" => "debug",
        "warning" => "warning",
        "error" => "error",
        _ => "info",
    };
    json!({
        "timestamp": millis(&e["timestamp"]),
        "level": level,
        "source": e["source"].as_str().unwrap_or("other"),
        "text": bounded(e["text"].as_str().unwrap_or_default().to_string()),
        "url": e["url"].as_str().unwrap_or_default(),
        "line": e["lineNumber"].as_i64().map(|l| l + 1),
    })
}

/// The level of a console call's type.
fn console_level(kind: &str) -> &'static str {
    match kind {
        "error" | "assert" => "error",
        "warning" => "warning",
        "debug" => "debug",
        "info" => "info",
        _ => "log",
    }
}

/// How the console shows one argument (a CDP `RemoteObject`).
fn remote_text(o: &Value) -> String {
    match &o["value"] {
        Value::String(s) => s.clone(),
        Value::Null => o["unserializableValue"]
            .as_str()
            .or_else(|| o["description"].as_str())
            .or_else(|| o["type"].as_str())
            .unwrap_or_default()
            .to_string(),
        v => v.to_string(),
    }
}

/// CDP times are Unix milliseconds as a float.
fn millis(v: &Value) -> i64 {
    v.as_f64().map_or(0, |f| f as i64)
}

fn bounded(mut s: String) -> String {
    if gridiron_domain::text::cut(&mut s, MAX_TEXT) {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_call_joins_its_arguments_and_keeps_where_it_came_from() {
        let p = json!({
            "type": "warning", "timestamp": 1_700_000_000_123.4,
            "args": [{"type": "string", "value": "hello"}, {"type": "number", "value": 42},
                     {"type": "object", "description": "Object"}, {"type": "undefined"},
                     {"type": "number", "unserializableValue": "NaN"}],
            "stackTrace": {"callFrames": [{"url": "http://x/a.js", "lineNumber": 9}]}
        });
        let l = line("Runtime.consoleAPICalled", &p, "T1").unwrap();
        assert_eq!(l["text"], "hello 42 Object undefined NaN");
        assert_eq!(l["level"], "warning");
        assert_eq!(l["timestamp"], 1_700_000_000_123i64);
        assert_eq!(l["url"], "http://x/a.js");
        assert_eq!(l["line"], 10);
        assert_eq!(l["target"], "T1");
    }

    #[test]
    fn an_uncaught_error_is_an_error_line_with_its_message() {
        let p = json!({"timestamp": 5.0, "exceptionDetails": {
            "text": "Uncaught", "url": "http://x/", "lineNumber": 0,
            "exception": {"description": "Error: boom\n    at http://x/:1:7"}}});
        let l = line("Runtime.exceptionThrown", &p, "T").unwrap();
        assert_eq!(l["level"], "error");
        assert_eq!(l["source"], "exception");
        assert!(l["text"].as_str().unwrap().starts_with("Error: boom"));
    }

    #[test]
    fn browser_log_entries_and_other_events() {
        let p = json!({"entry": {"source": "network", "level": "error",
            "text": "Failed to load resource", "timestamp": 7.0, "url": "http://x/missing"}});
        let l = line("Log.entryAdded", &p, "T").unwrap();
        assert_eq!(
            (l["level"].as_str(), l["source"].as_str()),
            (Some("error"), Some("network"))
        );
        assert!(line("Network.requestWillBeSent", &p, "T").is_none());
    }

    #[test]
    fn huge_texts_are_cut_on_a_character_boundary() {
        let big = "é".repeat(MAX_TEXT);
        let p = json!({"type": "log", "args": [{"type": "string", "value": big}]});
        let l = line("Runtime.consoleAPICalled", &p, "T").unwrap();
        let t = l["text"].as_str().unwrap();
        assert!(t.len() <= MAX_TEXT + "…".len() && t.ends_with('…'));
    }
}
