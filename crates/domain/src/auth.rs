//! API keys: who a request comes from, what it may see, how many sessions it
//! may run and how often it may ask. Pure rules: key names, token hashing,
//! credential parsing, constant-time comparison, and the rate bucket.
//!
//! A key is a name, a role and limits; its token is shown once when the key
//! is made and only its SHA-256 is kept, so a copy of the store lets nobody in.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::fmt;

/// What a key may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Sees and may end every session; sees every session in `/status`.
    Admin,
    /// Sees only the sessions it created.
    User,
}

impl Role {
    /// The name used in the CLI and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    /// The role with this name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// One API key as the store keeps it: never the token, only its hash.
#[derive(Clone, PartialEq)]
pub struct ApiKey {
    /// Unique name; the user name of Basic auth.
    pub name: String,
    /// What it may see.
    pub role: Role,
    /// Hex SHA-256 of the token ([`hash_token`]).
    pub token_hash: String,
    /// Sessions it may run at once; more requests wait in the queue.
    pub max_sessions: Option<u32>,
    /// Requests per second it may make (any request); more get 429.
    pub rate: Option<f64>,
    /// Unix ms when it was made.
    pub created_at: i64,
}

impl fmt::Debug for ApiKey {
    // The hash is not the token, but it is nobody's business in a log either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("max_sessions", &self.max_sessions)
            .field("rate", &self.rate)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// Checks a key name: 1 to 64 of `A-Z a-z 0-9 . _ -`. Names appear in Basic
/// auth user names, logs and store keys, so nothing else is allowed.
pub fn check_key_name(name: &str) -> Result<(), String> {
    if crate::pool::is_plain_name(name) {
        Ok(())
    } else {
        Err(format!(
            "invalid key name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"
        ))
    }
}

/// The hex SHA-256 of a token: what the store keeps and lookups compare.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two byte strings in time that does not depend on where they differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What a request presented: a token, and with Basic auth the key's name.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The key name (Basic auth's user), when given.
    pub name: Option<String>,
    /// The secret token.
    pub token: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .finish()
    }
}

/// Reads the credential of a request from, in this order, its
/// `Authorization` header (`Bearer TOKEN` or `Basic base64(NAME:TOKEN)`), its
/// `X-API-Key` header, or a `token` query parameter (websocket clients such as
/// Puppeteer cannot set headers). `Ok(None)` if it presented none; `Err` with
/// the reason if what it presented is malformed.
pub fn credential(
    authorization: Option<&str>,
    api_key: Option<&str>,
    query: Option<&str>,
) -> Result<Option<Credential>, String> {
    if let Some(auth) = authorization.map(str::trim) {
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
            return Ok(Some(Credential {
                name: None,
                token: rest.to_string(),
            }));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .map_err(|_| "malformed Basic credentials: not base64".to_string())?;
            let text = String::from_utf8(raw)
                .map_err(|_| "malformed Basic credentials: not UTF-8".to_string())?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| "malformed Basic credentials: no ':'".to_string())?;
            if pass.is_empty() {
                return Err("Basic credentials without a token (use NAME:TOKEN)".into());
            }
            return Ok(Some(Credential {
                name: Some(user.to_string()).filter(|u| !u.is_empty()),
                token: pass.to_string(),
            }));
        }
        return Err(format!(
            "unsupported Authorization scheme {scheme:?}: use Bearer or Basic"
        ));
    }
    if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
        return Ok(Some(Credential {
            name: None,
            token: key.to_string(),
        }));
    }
    let token = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == "token")
        .map(|(_, v)| v);
    Ok(token.filter(|t| !t.is_empty()).map(|t| Credential {
        name: None,
        token: percent_decode(t),
    }))
}

/// Decodes `%XX` escapes (tokens are hex, but a client may escape anything).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string without its `token` parameters, so that a token given in
/// a websocket URL is never forwarded to a node, driver or browser; `None` if
/// nothing is left.
pub fn strip_token(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty() && p.split('=').next() != Some("token"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The key a credential belongs to. Every key's hash is compared (in
/// constant time, without stopping at the first match), so the time taken
/// says nothing about which keys exist; a name, if given, must match too.
pub fn find_key<'a>(keys: &'a [ApiKey], cred: &Credential) -> Option<&'a ApiKey> {
    let hash = hash_token(&cred.token);
    let mut found = None;
    for k in keys {
        let same = ct_eq(hash.as_bytes(), k.token_hash.as_bytes());
        if same && found.is_none() && cred.name.as_deref().is_none_or(|n| n == k.name) {
            found = Some(k);
        }
    }
    found
}

/// A token bucket: `rate` requests per second on average, bursts of up to
/// `max(rate, 1)`. Time is passed in (Unix ms), so it is testable.
#[derive(Debug, Clone, PartialEq)]
pub struct RateBucket {
    tokens: f64,
    last_ms: i64,
}

impl RateBucket {
    /// A full bucket at `now_ms`.
    pub fn new(rate: f64, now_ms: i64) -> RateBucket {
        RateBucket {
            tokens: rate.max(1.0),
            last_ms: now_ms,
        }
    }

    /// Takes one request's token; if there is none, `Err` with the whole
    /// seconds to wait before one is there (at least 1, for `Retry-After`).
    pub fn take(&mut self, rate: f64, now_ms: i64) -> Result<(), u64> {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            return Err(1);
        };
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, token: &str) -> ApiKey {
        ApiKey {
            name: name.into(),
            role: Role::User,
            token_hash: hash_token(token),
            max_sessions: None,
            rate: None,
            created_at: 0,
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_key_name("ci-team_1.x").is_ok());
        for bad in ["", "a b", "a:b", "é", &"x".repeat(65)] {
            assert!(check_key_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::Admin, Role::User] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn hashes_are_sha256_hex() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(ct_eq(b"same", b"same"));
        assert!(!ct_eq(b"same", b"sane"));
        assert!(!ct_eq(b"same", b"same!"));
    }

    #[test]
    fn credentials_from_each_place() {
        let bearer = credential(Some("Bearer tok"), None, None).unwrap().unwrap();
        assert_eq!((bearer.name, bearer.token.as_str()), (None, "tok"));
        // "alice:tok" in base64, as Selenium sends http://alice:tok@grid.
        let basic = credential(Some("Basic YWxpY2U6dG9r"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(basic.name.as_deref(), Some("alice"));
        assert_eq!(basic.token, "tok");
        let header = credential(None, Some("tok"), None).unwrap().unwrap();
        assert_eq!(header.token, "tok");
        let query = credential(None, None, Some("browser=chrome&token=t%6Fk"))
            .unwrap()
            .unwrap();
        assert_eq!(query.token, "tok");
        assert_eq!(credential(None, None, Some("browser=x")).unwrap(), None);
        assert_eq!(credential(None, None, None).unwrap(), None);
        assert!(credential(Some("Basic !!!"), None, None).is_err());
        assert!(credential(Some("Basic YWxpY2U="), None, None).is_err());
        assert!(credential(Some("Digest x"), None, None).is_err());
        assert!(!format!("{:?}", credential(Some("Bearer sekrit"), None, None)).contains("sekrit"));
    }

    #[test]
    fn tokens_are_stripped_from_queries() {
        assert_eq!(
            strip_token("browser=chrome&token=abc&x=1").as_deref(),
            Some("browser=chrome&x=1")
        );
        assert_eq!(strip_token("token=abc"), None);
        assert_eq!(strip_token("tokens=1").as_deref(), Some("tokens=1"));
    }

    #[test]
    fn keys_are_found_by_token_and_name() {
        let keys = vec![key("a", "ta"), key("b", "tb")];
        let find = |name: Option<&str>, token: &str| {
            let c = Credential {
                name: name.map(str::to_string),
                token: token.into(),
            };
            find_key(&keys, &c).map(|k| k.name.clone())
        };
        assert_eq!(find(None, "tb").as_deref(), Some("b"));
        assert_eq!(find(Some("a"), "ta").as_deref(), Some("a"));
        assert_eq!(find(Some("a"), "tb"), None, "a name must match its token");
        assert_eq!(find(None, "nope"), None);
        assert!(!format!("{:?}", keys[0]).contains(&keys[0].token_hash));
    }

    #[test]
    fn rate_bucket_allows_bursts_then_says_when() {
        let mut b = RateBucket::new(2.0, 0);
        assert_eq!(b.take(2.0, 0), Ok(()));
        assert_eq!(b.take(2.0, 0), Ok(()));
        assert_eq!(b.take(2.0, 0), Err(1));
        // Half a second later one token is back.
        assert_eq!(b.take(2.0, 500), Ok(()));
        assert_eq!(b.take(2.0, 500), Err(1));
        // A slow rate says how long to wait.
        let mut slow = RateBucket::new(0.1, 0);
        assert_eq!(slow.take(0.1, 0), Ok(()));
        assert_eq!(slow.take(0.1, 1000), Err(9));
        assert_eq!(slow.take(0.1, 10_000), Ok(()));
        // The bucket never fills beyond its burst.
        assert_eq!(b.take(2.0, 100_000), Ok(()));
        assert_eq!(b.take(2.0, 100_000), Ok(()));
        assert_eq!(b.take(2.0, 100_000), Err(1));
    }
}
