//! The web dashboard's rules that need no I/O: which cookie carries a
//! browser's sign-in, the cross-site request check of its forms, where its
//! pages live under a reverse proxy's path prefix, and how times read.

use crate::auth::ct_eq;

/// The cookie that carries a signed-in browser's API key.
pub const KEY_COOKIE: &str = "gridiron_key";
/// The cookie whose value every state-changing form must repeat (its
/// `csrf` field): a page of another site can neither read it nor, the
/// cookie being `SameSite=Strict`, have the browser send it.
pub const CSRF_COOKIE: &str = "gridiron_csrf";
/// The form field that repeats [`CSRF_COOKIE`].
pub const CSRF_FIELD: &str = "csrf";

/// Whether `path` is the dashboard's.
pub fn is_dashboard(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// The value of cookie `name` in a `Cookie` header (`a=1; b=2`).
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value: only for the dashboard's path, never readable by
/// script, never sent on another site's requests; `Secure` when the grid is
/// reached over HTTPS. `max_age` `Some(0)` deletes it; `None` keeps it until
/// the browser closes.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    secure: bool,
    max_age: Option<u64>,
) -> String {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

/// Whether a form's `csrf` field repeats the browser's [`CSRF_COOKIE`]
/// (compared in constant time). Either missing is a refusal.
pub fn csrf_ok(cookie: Option<&str>, field: Option<&str>) -> bool {
    match (cookie, field) {
        (Some(c), Some(f)) if !c.is_empty() => ct_eq(c.as_bytes(), f.as_bytes()),
        _ => false,
    }
}

/// The path prefix the grid is reached under: the path of its public URL
/// (`https://ci.example/grid` → `/grid`), without a trailing slash; empty
/// when it is served at the root or has no public URL.
pub fn path_prefix(public_url: Option<&str>) -> String {
    let Some(url) = public_url else {
        return String::new();
    };
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.trim_end_matches('/').to_string()
}

/// A duration for people: `850 ms`, `12 s`, `4 min 5 s`, `3 h 20 min`, `2 d 4 h`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..60 => format!("{s} s"),
        60..3600 if s % 60 == 0 => format!("{} min", s / 60),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 if (s % 3600) / 60 == 0 => format!("{} h", s / 3600),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ if (s % 86400) / 3600 == 0 => format!("{} d", s / 86400),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

/// How long ago `at` was, at `now` (both Unix ms): `just now`, `12 s ago`.
pub fn ago(at: i64, now: i64) -> String {
    let d = now - at;
    if d < 1000 {
        "just now".to_string()
    } else {
        format!("{} ago", duration(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_by_exact_name() {
        let h = "a=1; gridiron_key=abc; gridiron_keyx=no";
        assert_eq!(cookie(h, KEY_COOKIE), Some("abc"));
        assert_eq!(cookie(h, "a"), Some("1"));
        assert_eq!(cookie(h, "gridiron"), None);
        assert_eq!(cookie("gridiron_key=", KEY_COOKIE), None);
    }

    #[test]
    fn cookies_are_strict_and_script_proof() {
        let c = set_cookie(KEY_COOKIE, "t", "/grid/ui", true, None);
        assert_eq!(
            c,
            "gridiron_key=t; Path=/grid/ui; HttpOnly; SameSite=Strict; Secure"
        );
        let gone = set_cookie(KEY_COOKIE, "", "/ui", false, Some(0));
        assert!(gone.ends_with("SameSite=Strict; Max-Age=0"), "{gone}");
    }

    #[test]
    fn a_form_must_repeat_the_cookie() {
        assert!(csrf_ok(Some("x1"), Some("x1")));
        assert!(!csrf_ok(Some("x1"), Some("x2")));
        assert!(
            !csrf_ok(None, Some("x1")),
            "a cross-site post carries no cookie"
        );
        assert!(!csrf_ok(Some("x1"), None));
        assert!(!csrf_ok(Some(""), Some("")));
    }

    #[test]
    fn prefixes_come_from_the_public_url() {
        assert_eq!(path_prefix(None), "");
        assert_eq!(path_prefix(Some("http://grid:4444")), "");
        assert_eq!(path_prefix(Some("http://grid:4444/")), "");
        assert_eq!(
            path_prefix(Some("https://ci.example/tools/grid/")),
            "/tools/grid"
        );
        assert_eq!(path_prefix(Some("https://ci.example/grid?x=1")), "/grid");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(12_400), "12 s");
        assert_eq!(duration(245_000), "4 min 5 s");
        assert_eq!(duration(120_000), "2 min");
        assert_eq!(duration(3 * 3_600_000 + 20 * 60_000), "3 h 20 min");
        assert_eq!(duration(2 * 86_400_000 + 4 * 3_600_000), "2 d 4 h");
        assert_eq!(duration(-5), "0 ms");
        assert_eq!(ago(1_000, 1_500), "just now");
        assert_eq!(ago(0, 61_000), "1 min 1 s ago");
    }
}
