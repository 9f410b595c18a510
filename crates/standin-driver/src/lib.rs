//! The answers of the **stand-in driver**, a fake chromedriver: used by the
//! `gridiron-standin-driver` binary (for benchmarks of Gridiron's scheduling)
//! and by in-process stand-ins in Gridiron's own tests.
//!
//! `POST /session` answers at once with a made-up session, every other
//! session command answers `{"value":null}`. If the environment variable
//! `STANDIN_LOG` names a file, each `POST /session` appends one line
//! `<unix time in ns> <bench:seq>` to it (see the binary's documentation).

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// The version this stand-in claims, as driver and as browser.
pub const VERSION: &str = "999.0.0.0";

/// The status and JSON body chromedriver would answer to `method path` with `body`.
pub fn answer(method: &str, path: &str, body: &[u8]) -> (u16, Value) {
    // Also accept the `/wd/hub` prefix (chromedriver's `--url-base=/wd/hub`).
    let full_path = path;
    let path = path.strip_prefix("/wd/hub").unwrap_or(path);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["status"]) => (
            200,
            json!({"value": {
                "ready": true,
                "message": "gridiron stand-in driver ready for new sessions.",
                "build": {"version": VERSION},
                "os": {"name": std::env::consts::OS, "arch": std::env::consts::ARCH},
            }}),
        ),
        ("POST", ["session"]) => new_session(body),
        ("DELETE", ["session", _]) => (200, json!({"value": null})),
        (_, ["session", _, ..]) => (200, json!({"value": null})),
        _ => (
            404,
            json!({"value": {
                "error": "unknown command",
                "message": format!("unknown command: {method} {full_path}"),
                "stacktrace": "",
            }}),
        ),
    }
}

/// Answers `POST /session` with a made-up Chrome session, logging its arrival.
fn new_session(body: &[u8]) -> (u16, Value) {
    let received = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return (
                400,
                json!({"value": {
                    "error": "invalid argument",
                    "message": format!("malformed JSON body: {e}"),
                    "stacktrace": "",
                }}),
            )
        }
    };
    if let Some(path) = std::env::var_os("STANDIN_LOG") {
        log_arrival(&path, received, bench_seq(&parsed));
    }
    let id = random_hex();
    (
        200,
        json!({"value": {
            "sessionId": id,
            "capabilities": {
                "acceptInsecureCerts": false,
                "browserName": "chrome",
                "browserVersion": VERSION,
                "chrome": {
                    "chromedriverVersion": format!("{VERSION} (gridiron stand-in driver)"),
                },
                "pageLoadStrategy": "normal",
                "platformName": "linux",
                "proxy": {},
                "setWindowRect": true,
                "strictFileInteractability": false,
                "timeouts": {"implicit": 0, "pageLoad": 300000, "script": 30000},
                "unhandledPromptBehavior": "dismiss and notify",
            },
        }}),
    )
}

/// The integer capability `bench:seq` from `alwaysMatch` or any `firstMatch`
/// entry of a new-session body, or -1.
fn bench_seq(body: &Value) -> i64 {
    let caps = &body["capabilities"];
    let first_match = caps["firstMatch"].as_array().into_iter().flatten();
    std::iter::once(&caps["alwaysMatch"])
        .chain(first_match)
        .find_map(|c| c.get("bench:seq").and_then(Value::as_i64))
        .unwrap_or(-1)
}

/// Appends `<ns> <seq>\n` to the log in a single write.
fn log_arrival(path: &std::ffi::OsStr, received_ns: u128, seq: i64) {
    let line = format!("{received_ns} {seq}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write(line.as_bytes()));
    match written {
        Ok(n) if n == line.len() => {}
        Ok(n) => eprintln!("gridiron-standin-driver: short write to STANDIN_LOG ({n} bytes)"),
        Err(e) => eprintln!("gridiron-standin-driver: cannot write STANDIN_LOG: {e}"),
    }
}

/// 32 random hex digits, like a chromedriver session id.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // Unique enough for a stand-in: time and pid.
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ (u128::from(std::process::id()) << 96);
        bytes = seed.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_seq_is_found_in_always_or_first_match() {
        let always = json!({"capabilities": {"alwaysMatch": {"bench:seq": 7}, "firstMatch": [{}]}});
        let first = json!({"capabilities": {"firstMatch": [{}, {"bench:seq": 9}]}});
        let none = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome"}}});
        assert_eq!(bench_seq(&always), 7);
        assert_eq!(bench_seq(&first), 9);
        assert_eq!(bench_seq(&none), -1);
    }

    #[test]
    fn routes_answer_like_chromedriver() {
        let (status, v) = answer("POST", "/session", br#"{"capabilities":{}}"#);
        assert_eq!(status, 200);
        assert_eq!(v["value"]["sessionId"].as_str().map(str::len), Some(32));
        assert_eq!(v["value"]["capabilities"]["browserName"], "chrome");
        assert_eq!(
            answer("DELETE", "/session/x", b""),
            (200, json!({"value": null}))
        );
        assert_eq!(
            answer("GET", "/session/x/title", b"").1["value"],
            Value::Null
        );
        assert_eq!(answer("GET", "/status", b"").1["value"]["ready"], true);
        assert_eq!(answer("GET", "/nothing", b"").0, 404);
        assert_eq!(answer("POST", "/session", b"{").0, 400);
    }
}
