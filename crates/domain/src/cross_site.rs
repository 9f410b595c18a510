//! Cross-site requests: what a web page can make a browser send to the grid.
//!
//! Any page a user opens (a page loaded in a grid session among them) can
//! send requests to the grid's address. Browsers mark such requests with an
//! `Origin` header, and without a CORS preflight they can only send "simple"
//! bodies (`text/plain`, form encodings). WebDriver, Puppeteer and Playwright
//! clients send no `Origin`, and a JSON content type (or none) on
//! `POST /session`. So: a request with an `Origin` the operator did not allow
//! is refused, and a new session needs a JSON body.

use crate::error::GridError;

/// Why a request was refused as cross-site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSiteRefusal {
    /// The origin the request came from, as sent.
    pub origin: String,
}

impl CrossSiteRefusal {
    /// The message of the W3C error the client gets (status 403).
    pub fn message(&self) -> String {
        format!(
            "requests from web pages are refused: origin {:?} is not allowed \
             (an operator allows it with --allowed-origin {})",
            self.origin, self.origin
        )
    }
}

/// Whether a request with this `Origin` header, sent to `host` (its `Host`
/// header), may reach the grid.
///
/// No header: not a cross-site browser request (WebDriver and CDP clients
/// send none). The grid's own origin when the client reached it by IP address
/// or `localhost` is not cross-site either: websocket libraries send it, and
/// no page can have that origin unless the grid served it (a page on a DNS
/// name rebound to the grid's address has its name in both headers, so only
/// names the browser never looks up are trusted this way). Otherwise the
/// origin must be listed in `allowed` (compared without case and without a
/// trailing `/`), or `allowed` holds `*`. The opaque origin `null`
/// (sandboxed frames, `file:` pages) is allowed only if listed, or by `*`.
pub fn check_origin(
    origin: Option<&str>,
    host: Option<&str>,
    allowed: &[String],
) -> Result<(), CrossSiteRefusal> {
    let Some(origin) = origin else {
        return Ok(());
    };
    if host.is_some_and(|h| is_own_literal_origin(origin, h)) {
        return Ok(());
    }
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    let given = norm(origin);
    if allowed.iter().any(|a| a == "*" || norm(a) == given) {
        Ok(())
    } else {
        Err(CrossSiteRefusal {
            origin: origin.to_string(),
        })
    }
}

/// Whether `origin` is `http(s)://HOST` for a `host` that is an IP address
/// or `localhost` (with its port, if any).
fn is_own_literal_origin(origin: &str, host: &str) -> bool {
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    if !rest.eq_ignore_ascii_case(host) {
        return false;
    }
    if host.starts_with('[') {
        // An IPv6 literal, `[::1]:4444`.
        return host
            .split(']')
            .next()
            .and_then(|a| a.strip_prefix('['))
            .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Whether a `POST /session` body may be parsed as JSON, from its
/// `Content-Type`: none, or `application/json` with any parameters
/// (`charset=utf-8`). Anything else (`text/plain`, form encodings, which a
/// page may send without a preflight) is an `invalid argument`.
pub fn check_json_content_type(content_type: Option<&str>) -> Result<(), GridError> {
    let Some(ct) = content_type else {
        return Ok(());
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(GridError::invalid_argument(format!(
            "a new session request must have Content-Type: application/json, not {ct:?}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;

    fn allowed(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn requests_without_origin_pass() {
        assert_eq!(check_origin(None, None, &[]), Ok(()));
    }

    #[test]
    fn origins_must_be_listed() {
        let list = allowed(&["https://dash.example", "http://127.0.0.1:8080/"]);
        assert_eq!(
            check_origin(
                Some("https://dash.example"),
                Some("grid.example:4444"),
                &list
            ),
            Ok(())
        );
        assert_eq!(
            check_origin(
                Some("HTTPS://Dash.Example/"),
                Some("grid.example:4444"),
                &list
            ),
            Ok(())
        );
        assert_eq!(
            check_origin(
                Some("http://127.0.0.1:8080"),
                Some("grid.example:4444"),
                &list
            ),
            Ok(())
        );
        let refused = check_origin(
            Some("http://evil.example"),
            Some("grid.example:4444"),
            &list,
        )
        .unwrap_err();
        assert_eq!(refused.origin, "http://evil.example");
        assert!(refused.message().contains("http://evil.example"));
        assert!(refused.message().contains("--allowed-origin"));
        assert!(check_origin(
            Some("https://dash.example.evil"),
            Some("grid.example:4444"),
            &list
        )
        .is_err());
        assert!(check_origin(Some("null"), Some("grid.example:4444"), &list).is_err());
        assert!(check_origin(Some("http://evil.example"), Some("grid.example:4444"), &[]).is_err());
    }

    #[test]
    fn the_grids_own_address_is_not_cross_site_when_it_is_literal() {
        let own = |origin, host| check_origin(Some(origin), Some(host), &[]);
        assert_eq!(own("http://127.0.0.1:4444", "127.0.0.1:4444"), Ok(()));
        assert_eq!(own("https://10.0.0.5:4444", "10.0.0.5:4444"), Ok(()));
        assert_eq!(own("http://localhost:4444", "LOCALHOST:4444"), Ok(()));
        assert_eq!(own("http://localhost", "localhost"), Ok(()));
        assert_eq!(own("http://[::1]:4444", "[::1]:4444"), Ok(()));
        // Another port of the same machine is another site.
        assert!(own("http://127.0.0.1:8000", "127.0.0.1:4444").is_err());
        // A name may have been rebound to the grid's address by its owner.
        assert!(own("http://evil.example:4444", "evil.example:4444").is_err());
        assert!(own(
            "http://127.0.0.1.evil.example:4444",
            "127.0.0.1.evil.example:4444"
        )
        .is_err());
        assert!(own("ftp://127.0.0.1:4444", "127.0.0.1:4444").is_err());
        assert!(check_origin(Some("http://127.0.0.1:4444"), None, &[]).is_err());
    }

    #[test]
    fn a_star_allows_every_origin() {
        let list = allowed(&["*"]);
        assert_eq!(
            check_origin(
                Some("http://evil.example"),
                Some("grid.example:4444"),
                &list
            ),
            Ok(())
        );
        assert_eq!(
            check_origin(Some("null"), Some("grid.example:4444"), &list),
            Ok(())
        );
    }

    #[test]
    fn new_sessions_need_json() {
        for ok in [
            None,
            Some("application/json"),
            Some("application/json; charset=utf-8"),
            Some("application/json;charset=UTF-8"),
            Some("Application/JSON"),
        ] {
            assert_eq!(check_json_content_type(ok), Ok(()), "{ok:?}");
        }
        for bad in [
            "text/plain",
            "text/plain;charset=UTF-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            let e = check_json_content_type(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{bad:?}");
        }
    }
}
