//! Signed hub -> node requests: pure code, no I/O.
//!
//! A hub signs every request it sends a node with an HMAC-SHA256 keyed by the
//! cluster secret over the method, the path and query (relative to the node's
//! advertised URL), a timestamp, a random nonce, the SHA-256 digest of the
//! body and the headers a node trusts ([`SIGNED_HEADERS`]). The secret itself
//! never travels. A node recomputes the signature, refuses timestamps outside
//! [`MAX_SKEW`] of its clock, and refuses a nonce it has already seen inside
//! that window ([`NonceCache`]), so a captured request cannot be replayed or
//! altered.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::time::Duration;

/// Header holding the request's timestamp, in milliseconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "x-gridiron-timestamp";
/// Header holding the request's random nonce.
pub const NONCE_HEADER: &str = "x-gridiron-nonce";
/// Header holding the hex HMAC-SHA256 of the request.
pub const SIGNATURE_HEADER: &str = "x-gridiron-signature";

/// Headers whose values are covered by the signature, in signing order: a
/// node acts on them, so only a hub may set them.
pub const SIGNED_HEADERS: [&str; 1] = [super::END_REASON_HEADER];

/// How far a request's timestamp may be from the node's clock, either way.
/// Short enough that a captured request is soon useless, long enough for
/// ordinary clock drift between hosts kept in sync by NTP.
pub const MAX_SKEW: Duration = Duration::from_secs(30);

/// The most nonces a node remembers. Within [`MAX_SKEW`] either side this
/// allows about 8,000 signed requests a second before the cache starts
/// shrinking the window instead (see [`NonceCache`]).
pub const NONCE_CAPACITY: usize = 500_000;

/// What a signature covers, apart from the secret.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    /// The HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// The path and query as the node sees them, e.g. `/session/x/url?a=b`.
    pub path_and_query: &'a str,
    /// Milliseconds since the Unix epoch, as sent in [`TIMESTAMP_HEADER`].
    pub timestamp_ms: u64,
    /// The nonce, as sent in [`NONCE_HEADER`].
    pub nonce: &'a str,
    /// SHA-256 of the body ([`body_digest`]).
    pub body_digest: &'a [u8; 32],
    /// The values of [`SIGNED_HEADERS`], in that order; `None` if absent.
    pub headers: [Option<&'a [u8]>; SIGNED_HEADERS.len()],
}

/// Why a node refused a request's signature. Says nothing about the secret
/// or the expected signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A signature header is missing or malformed.
    Missing(&'static str),
    /// The signature does not match the request.
    BadSignature,
    /// The timestamp is more than [`MAX_SKEW`] from the node's clock.
    Stale,
    /// The nonce was seen before inside the window.
    Replayed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Missing(h) => write!(f, "the request has no valid {h} header"),
            Refusal::BadSignature => f.write_str("the request's signature does not match it"),
            Refusal::Stale => write!(
                f,
                "the request's timestamp is more than {} s from the node's clock",
                MAX_SKEW.as_secs()
            ),
            Refusal::Replayed => f.write_str("the request was already received once"),
        }
    }
}

/// SHA-256 of a body.
pub fn body_digest(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}

/// A fresh random nonce: 122 random bits from the OS generator.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The MAC over `parts`. Each field is length-prefixed, so no two different
/// requests have the same input (no ambiguity at field boundaries).
fn mac(secret: &[u8], parts: &Parts<'_>) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    let mut field = |bytes: &[u8]| {
        mac.update(&(bytes.len() as u64).to_be_bytes());
        mac.update(bytes);
    };
    field(b"gridiron-hub-request-v1");
    field(parts.method.as_bytes());
    field(parts.path_and_query.as_bytes());
    field(&parts.timestamp_ms.to_be_bytes());
    field(parts.nonce.as_bytes());
    field(parts.body_digest);
    for (name, value) in SIGNED_HEADERS.iter().zip(parts.headers) {
        field(name.as_bytes());
        match value {
            // Absent and empty differ, so a hub's "no reason" cannot become "".
            None => field(b"absent"),
            Some(v) => {
                field(b"present");
                field(v);
            }
        }
    }
    mac
}

/// The hex signature of `parts` under `secret`.
pub fn sign(secret: &[u8], parts: &Parts<'_>) -> String {
    hex(&mac(secret, parts).finalize().into_bytes())
}

/// Checks `signature` (hex) against `parts` and the clock `now_ms`, in
/// constant time for the comparison. Does not record the nonce: see
/// [`NonceCache::admit`], called only for requests this accepted.
pub fn verify(
    secret: &[u8],
    parts: &Parts<'_>,
    signature: &str,
    now_ms: u64,
) -> Result<(), Refusal> {
    let given = unhex(signature).ok_or(Refusal::Missing(SIGNATURE_HEADER))?;
    // Checked before the clock, so a forger learns nothing from the answer.
    mac(secret, parts)
        .verify_slice(&given)
        .map_err(|_| Refusal::BadSignature)?;
    let skew = now_ms.abs_diff(parts.timestamp_ms);
    if u128::from(skew) > MAX_SKEW.as_millis() {
        return Err(Refusal::Stale);
    }
    Ok(())
}

/// The nonces a node has accepted within the window, bounded in size.
///
/// Nonces older than [`MAX_SKEW`] are forgotten: their requests are refused
/// as stale anyway. When the cache is full the oldest nonce is dropped and
/// its timestamp becomes a floor: requests at or before it are refused from
/// then on, so a forgotten nonce can never be replayed (the window shrinks
/// under extreme load instead of opening).
#[derive(Debug)]
pub struct NonceCache {
    /// (timestamp, nonce), oldest first.
    by_time: BTreeSet<(u64, String)>,
    seen: HashSet<String>,
    capacity: usize,
    /// Requests with a timestamp at or before this are refused.
    floor_ms: u64,
}

impl Default for NonceCache {
    fn default() -> Self {
        NonceCache::with_capacity(NONCE_CAPACITY)
    }
}

impl NonceCache {
    /// An empty cache holding at most `capacity` nonces (at least 1).
    pub fn with_capacity(capacity: usize) -> NonceCache {
        NonceCache {
            by_time: BTreeSet::new(),
            seen: HashSet::new(),
            capacity: capacity.max(1),
            floor_ms: 0,
        }
    }

    /// Records `nonce` sent at `timestamp_ms`, or refuses it as a replay.
    /// Call only after [`verify`] accepted the request, so that only hubs
    /// can fill the cache.
    pub fn admit(&mut self, nonce: &str, timestamp_ms: u64, now_ms: u64) -> Result<(), Refusal> {
        let oldest = now_ms.saturating_sub(MAX_SKEW.as_millis() as u64);
        while let Some(first) = self.by_time.first() {
            if first.0 >= oldest {
                break;
            }
            let (_, n) = self.by_time.pop_first().expect("not empty");
            self.seen.remove(&n);
        }
        if timestamp_ms <= self.floor_ms || self.seen.contains(nonce) {
            return Err(Refusal::Replayed);
        }
        while self.by_time.len() >= self.capacity {
            let (t, n) = self.by_time.pop_first().expect("not empty");
            self.seen.remove(&n);
            self.floor_ms = self.floor_ms.max(t);
        }
        if timestamp_ms <= self.floor_ms {
            return Err(Refusal::Replayed);
        }
        self.seen.insert(nonce.to_string());
        self.by_time.insert((timestamp_ms, nonce.to_string()));
        Ok(())
    }

    /// How many nonces are remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no nonce is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-cluster-secret";
    const NOW: u64 = 1_700_000_000_000;

    fn parts<'a>(digest: &'a [u8; 32]) -> Parts<'a> {
        Parts {
            method: "POST",
            path_and_query: "/session/abc/url?x=1",
            timestamp_ms: NOW,
            nonce: "n1",
            body_digest: digest,
            headers: [None],
        }
    }

    #[test]
    fn a_good_signature_is_accepted() {
        let d = body_digest(b"{\"url\":\"about:blank\"}");
        let p = parts(&d);
        let sig = sign(SECRET, &p);
        assert_eq!(sig.len(), 64);
        assert_eq!(verify(SECRET, &p, &sig, NOW), Ok(()));
        assert_eq!(verify(SECRET, &p, &sig.to_uppercase(), NOW), Ok(()));
    }

    #[test]
    fn any_change_is_refused() {
        let d = body_digest(b"body");
        let other = body_digest(b"bodY");
        let p = parts(&d);
        let sig = sign(SECRET, &p);
        let changed: Vec<Parts<'_>> = vec![
            Parts { method: "GET", ..p },
            Parts {
                path_and_query: "/session/abd/url?x=1",
                ..p
            },
            Parts {
                path_and_query: "/session/abc/url?x=2",
                ..p
            },
            Parts {
                path_and_query: "/session/abc/url",
                ..p
            },
            Parts {
                timestamp_ms: NOW + 1,
                ..p
            },
            Parts { nonce: "n2", ..p },
            Parts {
                body_digest: &other,
                ..p
            },
            Parts {
                headers: [Some(b"quit")],
                ..p
            },
            Parts {
                headers: [Some(b"")],
                ..p
            },
        ];
        for c in &changed {
            assert_eq!(verify(SECRET, c, &sig, NOW), Err(Refusal::BadSignature));
        }
        assert_eq!(
            verify(b"another-secret", &p, &sig, NOW),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_signed_header_is_bound_to_its_value() {
        let d = body_digest(b"");
        let p = Parts {
            headers: [Some(b"client_gone")],
            ..parts(&d)
        };
        let sig = sign(SECRET, &p);
        assert_eq!(verify(SECRET, &p, &sig, NOW), Ok(()));
        let q = Parts {
            headers: [Some(b"quit")],
            ..p
        };
        assert_eq!(verify(SECRET, &q, &sig, NOW), Err(Refusal::BadSignature));
        let r = Parts {
            headers: [None],
            ..p
        };
        assert_eq!(verify(SECRET, &r, &sig, NOW), Err(Refusal::BadSignature));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let d = body_digest(b"");
        let a = Parts {
            method: "GET",
            path_and_query: "/x",
            ..parts(&d)
        };
        let b = Parts {
            method: "GET/",
            path_and_query: "x",
            ..parts(&d)
        };
        assert_ne!(sign(SECRET, &a), sign(SECRET, &b));
    }

    #[test]
    fn stale_and_future_timestamps_are_refused() {
        let d = body_digest(b"");
        let p = parts(&d);
        let sig = sign(SECRET, &p);
        let skew = MAX_SKEW.as_millis() as u64;
        assert_eq!(verify(SECRET, &p, &sig, NOW + skew), Ok(()));
        assert_eq!(verify(SECRET, &p, &sig, NOW - skew), Ok(()));
        assert_eq!(
            verify(SECRET, &p, &sig, NOW + skew + 1),
            Err(Refusal::Stale)
        );
        assert_eq!(
            verify(SECRET, &p, &sig, NOW - skew - 1),
            Err(Refusal::Stale)
        );
    }

    #[test]
    fn malformed_signatures_are_refused_without_panicking() {
        let d = body_digest(b"");
        let p = parts(&d);
        for bad in [
            "",
            "zz",
            &"g".repeat(64),
            &"é".repeat(32),
            &"0".repeat(63),
            &"0".repeat(66),
        ] {
            assert_eq!(
                verify(SECRET, &p, bad, NOW),
                Err(Refusal::Missing(SIGNATURE_HEADER)),
                "{bad:?}"
            );
        }
        assert_eq!(
            verify(SECRET, &p, &"0".repeat(64), NOW),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_replayed_nonce_is_refused() {
        let mut cache = NonceCache::default();
        assert_eq!(cache.admit("n1", NOW, NOW), Ok(()));
        assert_eq!(cache.admit("n1", NOW, NOW + 10), Err(Refusal::Replayed));
        assert_eq!(cache.admit("n2", NOW, NOW), Ok(()));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn nonces_are_forgotten_once_out_of_the_window() {
        let mut cache = NonceCache::default();
        cache.admit("n1", NOW, NOW).unwrap();
        let later = NOW + MAX_SKEW.as_millis() as u64 + 1;
        cache.admit("n2", later, later).unwrap();
        assert_eq!(
            cache.len(),
            1,
            "n1 is out of the window: verify refuses it as stale"
        );
    }

    #[test]
    fn a_full_cache_shrinks_the_window_instead_of_forgetting_live_nonces() {
        let mut cache = NonceCache::with_capacity(2);
        cache.admit("a", NOW, NOW).unwrap();
        cache.admit("b", NOW + 1, NOW).unwrap();
        cache.admit("c", NOW + 2, NOW).unwrap();
        assert_eq!(cache.len(), 2);
        // "a" was dropped: replaying it, or anything as old, is still refused.
        assert_eq!(cache.admit("a", NOW, NOW), Err(Refusal::Replayed));
        assert_eq!(cache.admit("z", NOW, NOW), Err(Refusal::Replayed));
        assert_eq!(cache.admit("b", NOW + 1, NOW), Err(Refusal::Replayed));
        assert_eq!(cache.admit("d", NOW + 3, NOW), Ok(()));
    }

    #[test]
    fn refusals_never_show_the_secret() {
        for r in [
            Refusal::Missing(SIGNATURE_HEADER),
            Refusal::BadSignature,
            Refusal::Stale,
            Refusal::Replayed,
        ] {
            let text = format!("{r} {r:?}");
            assert!(!text.contains("a-cluster-secret"));
        }
    }
}
