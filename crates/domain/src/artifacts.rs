//! Rules about session artifacts that need no I/O: which names are
//! acceptable (names come from clients and from files a browser wrote, so
//! they are untrusted), what content type a name is served with, how an HTTP
//! `Range` header reads, and which stored artifacts a quota or a maximum age
//! removes.

use std::collections::HashSet;

/// The longest artifact name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// The longest part of a name between slashes, in bytes (a file name's limit).
pub const MAX_PART_BYTES: usize = 255;
/// The deepest a name may go (parts between slashes).
pub const MAX_DEPTH: usize = 16;

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName(pub String);

impl std::fmt::Display for BadName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `name` is a relative path of plain parts (`video.mp4`,
/// `downloads/report.csv`): no empty, `.` or `..` part, no leading slash, no
/// backslash, no control character, within the length limits. Such a name,
/// joined to a directory, stays inside it.
pub fn check_name(name: &str) -> Result<(), BadName> {
    let bad = |why: &str| Err(BadName(format!("artifact name {name:?} {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("is too long");
    }
    if name.starts_with('/') {
        return bad("is absolute");
    }
    if name.contains('\\') {
        return bad("contains a backslash");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a control character");
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > MAX_DEPTH {
        return bad("is nested too deeply");
    }
    for part in parts {
        match part {
            "" => return bad("has an empty part"),
            "." | ".." => return bad("has a '.' or '..' part"),
            p if p.len() > MAX_PART_BYTES => return bad("has a part that is too long"),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `id` can be a session id in a file path: 1 to 128 ASCII letters,
/// digits, `-` or `_`.
pub fn is_path_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The content type an artifact is served with, by its name's extension.
/// Anything a browser would run as a page (HTML, SVG, ...) is served as
/// `application/octet-stream`: artifacts come from pages and must not
/// execute in the grid's origin.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit('/')
        .next()
        .and_then(|file| file.rsplit_once('.'))
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "json" | "har" => "application/json",
        "log" | "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Whether a browser may show an artifact of this content type inline (media,
/// text, JSON); others are served as attachments.
pub fn shown_inline(content_type: &str) -> bool {
    content_type.starts_with("video/")
        || content_type.starts_with("image/")
        || content_type.starts_with("text/plain")
        || content_type == "application/json"
}

/// How to answer a request for a file of a known length, given its `Range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// The whole file (no range, several ranges, or one that does not parse:
    /// RFC 9110 lets a server ignore those).
    Full,
    /// Bytes `start..=end` (206).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// A range that selects nothing of the file (416).
    Unsatisfiable,
}

/// Reads a `Range` header (`bytes=a-b`, `bytes=a-`, `bytes=-n`) for a file
/// of `len` bytes.
pub fn range(header: Option<&str>, len: u64) -> RangeAnswer {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeAnswer::Full;
    };
    if spec.contains(',') {
        return RangeAnswer::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Full;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (first.trim().is_empty(), last.trim().is_empty()) {
        // bytes=-n: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if len == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
            None => RangeAnswer::Full,
        },
        // bytes=a-: from a to the end.
        (false, true) => match number(first) {
            Some(a) if a >= len => RangeAnswer::Unsatisfiable,
            Some(a) => RangeAnswer::Partial {
                start: a,
                end: len - 1,
            },
            None => RangeAnswer::Full,
        },
        (false, false) => match (number(first), number(last)) {
            (Some(a), Some(b)) if a > b => RangeAnswer::Full,
            (Some(a), Some(_)) if a >= len => RangeAnswer::Unsatisfiable,
            (Some(a), Some(b)) => RangeAnswer::Partial {
                start: a,
                end: b.min(len - 1),
            },
            _ => RangeAnswer::Full,
        },
        (true, true) => RangeAnswer::Full,
    }
}

/// A stored artifact, as the collector weighs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weighed<'a> {
    /// Its session.
    pub session: &'a str,
    /// Its name.
    pub name: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Unix ms when it was stored.
    pub created: i64,
}

/// Why the collector removes an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Older than the maximum age.
    MaxAge,
    /// The oldest while the total exceeded the quota.
    Quota,
}

impl Eviction {
    /// As events name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Eviction::MaxAge => "max_age",
            Eviction::Quota => "quota",
        }
    }
}

/// The limits the collector keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes all artifacts may take; `None`: no quota.
    pub max_bytes: Option<u64>,
    /// The oldest an artifact may get, in ms; `None`: no maximum age.
    pub max_age_ms: Option<i64>,
}

/// Which of `items` to remove (their indices, with why) so that none is
/// older than the maximum age and the total fits the quota, removing the
/// oldest first. Artifacts of `protected` sessions (running, or being
/// collected) are never chosen, but their bytes count towards the quota.
pub fn evictions(
    items: &[Weighed<'_>],
    protected: &HashSet<&str>,
    limits: Limits,
    now_ms: i64,
) -> Vec<(usize, Eviction)> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    // Oldest first; ties in a fixed order so every run chooses alike.
    order.sort_by(|&a, &b| {
        let (x, y) = (&items[a], &items[b]);
        (x.created, x.session, x.name).cmp(&(y.created, y.session, y.name))
    });
    let mut total: u64 = items.iter().map(|i| i.size).sum();
    let mut out = Vec::new();
    for &i in &order {
        let item = &items[i];
        if protected.contains(item.session) {
            continue;
        }
        let reason = if limits
            .max_age_ms
            .is_some_and(|age| now_ms.saturating_sub(item.created) > age)
        {
            Eviction::MaxAge
        } else if limits.max_bytes.is_some_and(|max| total > max) {
            Eviction::Quota
        } else {
            continue;
        };
        total -= item.size;
        out.push((i, reason));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_names_pass() {
        for ok in [
            "video.mp4",
            "downloads/report.csv",
            "a/b/c.txt",
            "..hidden",
            "x..y",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_that_could_leave_the_directory_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "..",
            "a//b",
            "a/",
            "a\\..\\b",
            "a\0b",
            "a\nb",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} passed");
        }
        assert!(check_name(&"a".repeat(MAX_PART_BYTES + 1)).is_err());
        assert!(check_name(&format!("{}b", "a/".repeat(MAX_DEPTH))).is_err());
        assert!(check_name(&"ab/".repeat(400)).is_err());
    }

    #[test]
    fn ids_in_paths_are_plain() {
        assert!(is_path_safe_id("0123abcdef"));
        assert!(is_path_safe_id("a-b_c"));
        for bad in ["", "..", "a/b", "a.b", &"a".repeat(129)] {
            assert!(!is_path_safe_id(bad), "{bad}");
        }
    }

    #[test]
    fn content_types_follow_the_extension_and_never_run_as_pages() {
        assert_eq!(content_type("video.mp4"), "video/mp4");
        assert_eq!(content_type("x/VIDEO.WEBM"), "video/webm");
        assert_eq!(content_type("network.har"), "application/json");
        assert_eq!(content_type("timeline.json"), "application/json");
        assert_eq!(content_type("driver.log"), "text/plain; charset=utf-8");
        assert_eq!(content_type("shot.jpg"), "image/jpeg");
        assert_eq!(content_type("page.html"), "application/octet-stream");
        assert_eq!(content_type("logo.svg"), "application/octet-stream");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("dir.mp4/file"), "application/octet-stream");
        assert!(shown_inline("video/mp4"));
        assert!(!shown_inline("application/octet-stream"));
    }

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        use RangeAnswer::*;
        assert_eq!(range(None, 10), Full);
        assert_eq!(range(Some("bytes=0-4"), 10), Partial { start: 0, end: 4 });
        assert_eq!(range(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(range(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(range(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(range(Some("bytes=8-100"), 10), Partial { start: 8, end: 9 });
        assert_eq!(range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(range(Some("bytes=10-12"), 10), Unsatisfiable);
        assert_eq!(range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(range(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(range(Some("bytes=-1"), 0), Unsatisfiable);
        // Ignored: malformed, reversed, several, other units.
        for ignored in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=+1-2",
            "bytes=1",
        ] {
            assert_eq!(range(Some(ignored), 10), Full, "{ignored}");
        }
    }

    fn item<'a>(session: &'a str, name: &'a str, size: u64, created: i64) -> Weighed<'a> {
        Weighed {
            session,
            name,
            size,
            created,
        }
    }

    #[test]
    fn the_quota_removes_the_oldest_first() {
        let items = [
            item("b", "2", 10, 200),
            item("a", "1", 10, 100),
            item("c", "3", 10, 300),
        ];
        let limits = Limits {
            max_bytes: Some(15),
            max_age_ms: None,
        };
        let out = evictions(&items, &HashSet::new(), limits, 1000);
        assert_eq!(out, vec![(1, Eviction::Quota), (0, Eviction::Quota)]);
        // Within quota: nothing.
        let roomy = Limits {
            max_bytes: Some(30),
            max_age_ms: None,
        };
        assert!(evictions(&items, &HashSet::new(), roomy, 1000).is_empty());
    }

    #[test]
    fn protected_sessions_are_never_removed_but_count() {
        let items = [item("run", "old", 50, 1), item("done", "new", 10, 2)];
        let protected: HashSet<&str> = ["run"].into();
        let limits = Limits {
            max_bytes: Some(20),
            max_age_ms: Some(0),
        };
        // The running session's 50 bytes exceed the quota alone: the ended
        // one goes, the running one stays.
        let out = evictions(&items, &protected, limits, 100);
        assert_eq!(out, vec![(1, Eviction::MaxAge)]);
    }

    #[test]
    fn the_maximum_age_removes_old_ones_whatever_the_quota() {
        let items = [item("a", "1", 1, 100), item("a", "2", 1, 900)];
        let limits = Limits {
            max_bytes: None,
            max_age_ms: Some(500),
        };
        assert_eq!(
            evictions(&items, &HashSet::new(), limits, 1000),
            vec![(0, Eviction::MaxAge)]
        );
        assert!(evictions(&items, &HashSet::new(), Limits::default(), 1000).is_empty());
    }

    #[test]
    fn ties_in_age_are_broken_by_session_and_name() {
        let items = [
            item("b", "x", 5, 1),
            item("a", "y", 5, 1),
            item("a", "x", 5, 1),
        ];
        let limits = Limits {
            max_bytes: Some(5),
            max_age_ms: None,
        };
        let out: Vec<usize> = evictions(&items, &HashSet::new(), limits, 2)
            .into_iter()
            .map(|(i, _)| i)
            .collect();
        assert_eq!(out, vec![2, 1]);
    }
}
