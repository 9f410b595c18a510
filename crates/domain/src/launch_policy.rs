//! The launch policy: what a client may make the grid run.
//!
//! The grid chooses binaries, profiles and logs. A client may add browser
//! switches that change the page (window size, language, features), but never
//! ones that start programs, load code or move files, unless the operator
//! allowed them by name. Everything a client sends is checked here before
//! anything is queued or started: the capabilities of a new session, the
//! switches of a CDP request, and the arguments of a pool (which come from the
//! shared store, so they are input from strangers too).
//!
//! Matching is deliberately stricter than the browsers' own parsers: names are
//! compared after trimming whitespace, dropping every leading dash (ASCII or
//! Unicode), lower-casing and reading `_` as `-`, so no spelling that some
//! browser, wrapper script or future parser would accept slips through.

use crate::capabilities::{CapabilityRequest, GRID_OPTIONS_KEY};
use crate::error::GridError;
use serde_json::{Map, Value};

/// What the operator allowed beyond the default policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchAllowances {
    /// Browser binaries a client may name in `binary`, compared exactly
    /// (no path normalisation, so `/usr/bin/../bin/x` is not `/usr/bin/x`).
    pub binaries: Vec<String>,
    /// Prefixes of refused names a client may use anyway: switches
    /// (`--renderer-cmd-prefix`) and option names (`debuggerAddress`,
    /// `prefs.download.default_directory`), compared after normalisation.
    pub arg_prefixes: Vec<String>,
}

impl LaunchAllowances {
    /// Allowances from the operator's `--allow-binary` and `--allow-arg`
    /// values; refuses a relative binary and a prefix that would allow
    /// everything (empty once its dashes and spaces are gone).
    pub fn new(binaries: Vec<String>, arg_prefixes: Vec<String>) -> Result<Self, String> {
        if let Some(b) = binaries.iter().find(|b| !b.starts_with('/')) {
            return Err(format!(
                "--allow-binary must be an absolute path, got {b:?}"
            ));
        }
        if let Some(p) = arg_prefixes.iter().find(|p| normalise(p).is_empty()) {
            return Err(format!(
                "--allow-arg must name a switch or option (e.g. --allow-arg=--renderer-cmd-prefix), got {p:?}"
            ));
        }
        Ok(LaunchAllowances {
            binaries,
            arg_prefixes,
        })
    }

    /// Whether a client may name this browser binary.
    pub fn allows_binary(&self, binary: &str) -> bool {
        self.binaries.iter().any(|b| b == binary)
    }

    /// Whether a refused switch or option name was allowed by the operator.
    pub fn allows(&self, name: &str) -> bool {
        let name = normalise(name);
        self.arg_prefixes.iter().any(|p| {
            let p = normalise(p);
            !p.is_empty() && name.starts_with(&p)
        })
    }
}

/// Checks every capability set of a new-session request (`alwaysMatch` and
/// each `firstMatch` entry), so the answer does not depend on which
/// alternative a node would pick.
pub fn check_request(
    request: &CapabilityRequest,
    allow: &LaunchAllowances,
) -> Result<(), GridError> {
    check_capabilities(&request.always_match, allow)?;
    for first in &request.first_match {
        check_capabilities(first, allow)?;
    }
    Ok(())
}

/// Checks one capability set: every vendor options object (`goog:chromeOptions`,
/// `moz:firefoxOptions`, `ms:edgeOptions`, ...) for a client `binary`,
/// `debuggerAddress`, `env`, `profile`, `minidumpPath`, refused `args` and
/// refused `prefs`/`localState` entries.
pub fn check_capabilities(
    caps: &Map<String, Value>,
    allow: &LaunchAllowances,
) -> Result<(), GridError> {
    for (key, value) in caps {
        // Grid options never reach a driver; other keys without a vendor
        // prefix are the W3C ones, validated elsewhere.
        if key == GRID_OPTIONS_KEY || !key.contains(':') {
            continue;
        }
        if let Value::Object(opts) = value {
            check_vendor_options(key, opts, allow)?;
        }
    }
    Ok(())
}

/// Checks browser switches from somewhere other than capabilities: a CDP
/// request's query (`/cdp`) or a pool's arguments. `what` names the source.
pub fn check_switches(
    what: &str,
    args: &[String],
    allow: &LaunchAllowances,
) -> Result<(), GridError> {
    args.iter().try_for_each(|a| check_arg(what, a, allow))
}

/// Checks the body of geckodriver's add-on install command
/// (`POST /session/{id}/moz/addon/install`): the add-on itself may come with
/// the request (`addon`, base64), but never a `path` on the grid's host.
pub fn check_addon_install(body: &[u8]) -> Result<(), GridError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| GridError::invalid_argument(format!("malformed JSON body: {e}")))?;
    let names_path = v
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k.trim().eq_ignore_ascii_case("path")));
    if names_path {
        return Err(GridError::invalid_argument(
            "launch policy refuses path in moz/addon/install: an add-on is loaded from a file \
             on the grid's host; send the add-on itself as base64 in `addon`",
        ));
    }
    Ok(())
}

fn check_vendor_options(
    key: &str,
    opts: &Map<String, Value>,
    allow: &LaunchAllowances,
) -> Result<(), GridError> {
    for (name, value) in opts {
        // Drivers read these keys case-sensitively; comparing without case
        // costs nothing and leaves no spelling to argue about.
        match name.to_ascii_lowercase().as_str() {
            "binary" => match value.as_str() {
                Some(b) if allow.allows_binary(b) => {}
                _ => {
                    return Err(refused(
                        &format!("{key}.{name}"),
                        &format!("{} (the grid chooses the browser binary; an operator can allow one with --allow-binary=PATH)", shown(value)),
                    ))
                }
            },
            "env" if value.as_object().is_some_and(Map::is_empty) => {}
            item @ ("debuggeraddress" | "env" | "profile" | "minidumppath")
                if !allow.allows(name) =>
            {
                let why = match item {
                    "debuggeraddress" => "attaches the driver to a browser the grid did not start",
                    "env" => "sets the browser's environment",
                    "profile" => "replaces the profile the grid made for the session",
                    _ => "moves the browser's crash dumps",
                };
                return Err(refused(
                    &format!("{key}.{name}"),
                    &format!("{why}; an operator can allow it with --allow-arg={name}"),
                ));
            }
            "args" => {
                let where_ = format!("{key}.args");
                let list = value.as_array().ok_or_else(|| {
                    GridError::invalid_argument(format!("{where_} must be an array of strings"))
                })?;
                for a in list {
                    let a = a.as_str().ok_or_else(|| {
                        GridError::invalid_argument(format!(
                            "{where_} must be an array of strings, got {}",
                            shown(a)
                        ))
                    })?;
                    check_arg(&where_, a, allow)?;
                }
            }
            "prefs" | "localstate" => {
                let mut flat = Vec::new();
                flatten(value, String::new(), &mut flat);
                for pref in flat {
                    if pref_refused(&pref) && !allow.allows(&format!("prefs.{pref}")) {
                        return Err(refused(
                            &format!("{key}.{name}: {pref}"),
                            &format!("preferences that move files or start programs are chosen by the grid; an operator can allow it with --allow-arg=prefs.{pref}"),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks one browser argument: its own switch name, and every
/// whitespace-separated word in it that looks like a switch (so a wrapper
/// that splits on spaces cannot be fed two switches in one argument).
fn check_arg(where_: &str, arg: &str, allow: &LaunchAllowances) -> Result<(), GridError> {
    if ephemeral_debugging_port(arg) {
        return Ok(());
    }
    if let Some(name) = switch_name(arg) {
        if let Some(canonical) = refused_switch(&name) {
            if !allow.allows(arg) {
                return Err(refused_arg(where_, arg, &canonical));
            }
            // The operator allowed this switch, value and all.
            return Ok(());
        }
    }
    for word in arg.split(char::is_whitespace) {
        if let Some(canonical) = switch_name(word).and_then(|n| refused_switch(&n)) {
            if !allow.allows(word) && !ephemeral_debugging_port(word) {
                return Err(refused_arg(where_, arg, &canonical));
            }
        }
    }
    // A NUL would cut the argument short where the browser reads it.
    if arg.trim().chars().any(char::is_control) {
        return Err(GridError::invalid_argument(format!(
            "launch policy: {where_} may not hold control characters, got {}",
            shown(&Value::String(arg.to_string()))
        )));
    }
    Ok(())
}

/// The normalised switch name of an argument (`--Gpu-Launcher=x` ->
/// `gpu-launcher`), or `None` if it is not a switch (a URL, a value).
fn switch_name(arg: &str) -> Option<String> {
    let t = arg.trim();
    if !t.starts_with(is_dash) {
        return None;
    }
    let name = t.split('=').next().unwrap_or_default();
    Some(normalise(name))
}

/// `--remote-debugging-port=0`: an ephemeral DevTools port on loopback, what
/// chromedriver asks for itself and what Playwright's Selenium mode sends.
/// It opens nothing the session does not already have; any other port (a
/// fixed, guessable one) and every other `--remote-debugging-*` stay refused.
fn ephemeral_debugging_port(arg: &str) -> bool {
    let t = arg.trim();
    let Some((name, value)) = t.split_once('=') else {
        return false;
    };
    t.starts_with(is_dash) && normalise(name) == "remote-debugging-port" && value.trim() == "0"
}

/// Trims whitespace and leading dashes, lower-cases, and reads `_` as `-`.
fn normalise(s: &str) -> String {
    s.trim()
        .trim_start_matches(|c: char| is_dash(c) || c.is_whitespace())
        .trim()
        .to_lowercase()
        .replace('_', "-")
}

/// ASCII `-` and the Unicode dashes and minus signs that look like it.
fn is_dash(c: char) -> bool {
    matches!(
        c,
        '-' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}'
    )
}

/// Switches (normalised) that start programs, load code or move files.
const REFUSED_NAMES: &[&str] = &[
    // Code from the host: extensions, plugins, V8 flags (which can write logs anywhere).
    "load-extension",
    "disable-extensions-except",
    "load-apps",
    "register-pepper-plugins",
    "js-flags",
    "nacl-gdb",
    "nacl-gdb-script",
    // Files written where the client says.
    "log-net-log",
    "trace-to-file",
    "screenshot",
    "print-to-pdf",
    // Firefox: profiles, applications, debugger servers, override files.
    "profile",
    "p",
    "createprofile",
    "profilemanager",
    "app",
    "start-debugger-server",
    "override",
];

/// Prefixes (normalised) of refused switches: debugging endpoints that give
/// the whole browser to whoever connects, and families of file writers.
const REFUSED_PREFIXES: &[&str] = &[
    "remote-debugging",
    "remote-allow-",
    "trace-startup",
    "user-data",
    "moz-log",
];

/// Suffixes (normalised) of refused switches: `--*-cmd-prefix` and
/// `--*-launcher` start programs; `--*-dir`, `--*-path`, `--*-file` and
/// their kin name places on the host.
const REFUSED_SUFFIXES: &[&str] = &[
    "cmd-prefix",
    "-launcher",
    "-dir",
    "-directory",
    "-folder",
    "-path",
    "-file",
];

/// The canonical spelling (`--name`) of a refused switch, if `name` is one.
fn refused_switch(name: &str) -> Option<String> {
    let refused = REFUSED_NAMES.contains(&name)
        || REFUSED_PREFIXES.iter().any(|p| name.starts_with(p))
        || REFUSED_SUFFIXES.iter().any(|s| name.ends_with(s));
    refused.then(|| format!("--{name}"))
}

/// Whether a browser preference (flattened, dotted) moves files or starts
/// programs: download and cache directories, protocol and MIME helpers,
/// auto-opened downloads, autoconfig scripts, remote debugging, sandbox levels.
/// (Selenium itself sets `remote.active-protocols`, so the `remote.` family
/// of geckodriver's own protocols stays open.)
fn pref_refused(pref: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "network.protocol-handler.app",
        "network.protocol-handler.external",
        "helpers.",
        "general.config.",
        "devtools.debugger.remote",
        "security.sandbox.",
        "download.extensions-to-open",
        "browser.helperapps.neverask.openfile",
    ];
    const LAST_SUFFIXES: &[&str] = &["dir", "directory", "folder", "path", "file"];
    let p = normalise(pref);
    let last = p.rsplit('.').next().unwrap_or_default();
    PREFIXES.iter().any(|x| p.starts_with(x)) || LAST_SUFFIXES.iter().any(|s| last.ends_with(s))
}

/// Dotted names of every leaf of a (possibly nested) preferences object.
fn flatten(v: &Value, prefix: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let name = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(v, name, out);
            }
        }
        _ if prefix.is_empty() => {}
        _ => out.push(prefix),
    }
}

fn refused(item: &str, why: &str) -> GridError {
    GridError::invalid_argument(format!("launch policy refuses {item}: {why}"))
}

fn refused_arg(where_: &str, arg: &str, canonical: &str) -> GridError {
    refused(
        &format!("{canonical} in {where_}"),
        &format!(
            "{} starts programs, loads code or moves files, which the grid decides; an operator can allow it with --allow-arg={canonical}",
            shown(&Value::String(arg.to_string()))
        ),
    )
}

/// A client value for an error message, cut so an answer stays small.
fn shown(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s,
    }
}

#[cfg(test)]
mod tests;
