//! Webhooks: what a subscription may name, how a delivery is signed and
//! verified, when a failed delivery is tried again, and when a receiver that
//! keeps failing is disabled.
//!
//! A delivery moves `pending -> in_flight(lease) -> delivered | retry_at(t) |
//! failed` ([`after_attempt`]); a lease that runs out (its sender died) makes
//! the delivery pending again. A subscription moves `active -> disabled(reason)`
//! ([`Streak::should_disable`]).

use crate::events::{EventFilter, Subject};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

#[cfg(test)]
mod tests;

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "Gridiron-Signature";
/// Header carrying the event's id (the receiver's de-duplication key).
pub const EVENT_ID_HEADER: &str = "Gridiron-Event-Id";
/// Header carrying the event's type.
pub const EVENT_TYPE_HEADER: &str = "Gridiron-Event-Type";
/// Header carrying the delivery's id (one per subscription and event, the
/// same on every attempt).
pub const DELIVERY_HEADER: &str = "Gridiron-Delivery";

/// Shortest secret accepted, in bytes: shorter ones can be guessed.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest secret accepted, in bytes.
pub const MAX_SECRET_LEN: usize = 256;
/// Longest URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Most event types one subscription may list.
pub const MAX_EVENT_TYPES: usize = 32;
/// How far a signature's time may be from the receiver's clock, by default.
pub const DEFAULT_TOLERANCE_S: i64 = 300;

/// A subscription's settings once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// Where deliveries go (`http://` or `https://`).
    pub url: String,
    /// Event types wanted (known types, `prefix.*`, or `*`), without repeats.
    pub events: Vec<String>,
    /// The signing secret.
    pub secret: String,
}

/// Checks what an operator asked to subscribe: an `http`/`https` URL with a
/// host and no user part (the list shows URLs, so they must hold no
/// passwords), at least one known event type (or `*`), and a secret of
/// [`MIN_SECRET_LEN`]..=[`MAX_SECRET_LEN`] printable ASCII characters.
pub fn validate(url: &str, events: &[String], secret: &str) -> Result<Valid, String> {
    check_url(url)?;
    if events.is_empty() {
        return Err("list at least one event type (or \"*\" for all)".into());
    }
    if events.len() > MAX_EVENT_TYPES {
        return Err(format!("list at most {MAX_EVENT_TYPES} event types"));
    }
    // The feed's filter syntax, so both accept the same names.
    EventFilter::parse(&events.join(","), "", "")?;
    if events.iter().any(|e| e.contains(',') || e.trim() != e) {
        return Err("an event type may not hold commas or spaces".into());
    }
    let mut unique: Vec<String> = Vec::new();
    for e in events {
        if !unique.contains(e) {
            unique.push(e.clone());
        }
    }
    check_secret(secret)?;
    Ok(Valid {
        url: url.to_string(),
        events: unique,
        secret: secret.to_string(),
    })
}

fn check_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_URL_LEN {
        return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || !url.is_ascii() {
        return Err("the URL may hold no spaces, control or non-ASCII characters".into());
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or("the URL must start with http:// or https://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err("the URL may not hold a user or password".into());
    }
    if url.contains('#') {
        return Err("the URL may not hold a fragment".into());
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    if host.is_empty() {
        return Err("the URL has no host".into());
    }
    let port = match authority.rsplit_once(']') {
        Some((_, p)) => p.strip_prefix(':'),
        None => authority.split_once(':').map(|(_, p)| p),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("the URL's port {p:?} is not a port number"));
        }
    }
    Ok(())
}

fn check_secret(secret: &str) -> Result<(), String> {
    if secret.len() < MIN_SECRET_LEN || secret.len() > MAX_SECRET_LEN {
        return Err(format!(
            "the secret must be {MIN_SECRET_LEN} to {MAX_SECRET_LEN} characters long"
        ));
    }
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the secret may hold printable ASCII characters only, no spaces".into());
    }
    Ok(())
}

/// Whether a subscription for `events`, made by an admin (`admin`) or by the
/// user key `owner`, gets the event about `s`. User keys only get events
/// about their own sessions and requests, as on the event feed.
pub fn wants(events: &[String], admin: bool, owner: Option<&str>, s: &Subject<'_>) -> bool {
    let filter = EventFilter {
        kinds: events.to_vec(),
        ..EventFilter::default()
    };
    !events.is_empty() && filter.matches(s) && crate::events::visible_to(s, admin, owner)
}

/// The JSON body of a delivery: the event as `{"id","type","at","session","node","fields"}`.
pub fn payload(
    id: &str,
    kind: &str,
    at: i64,
    session: Option<&str>,
    node: Option<&str>,
    fields: &BTreeMap<String, String>,
) -> String {
    serde_json::json!({
        "id": id,
        "type": kind,
        "at": at,
        "session": session,
        "node": node,
        "fields": fields,
    })
    .to_string()
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at unix second `t`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex(&mac(secret, t, body).finalize().into_bytes())
    )
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadSignature {
    /// The header is not `t=...,v1=...`.
    Malformed,
    /// Its time is further than the tolerance from now (a replay, or a bad clock).
    Stale,
    /// No `v1` matches the body and secret.
    Mismatch,
}

/// Checks a [`SIGNATURE_HEADER`] value against `body` and `secret`, at unix
/// second `now`, allowing `tolerance_s` of clock difference either way. Any
/// of several `v1` values may match (a receiver rotating secrets).
pub fn verify(
    header: &str,
    secret: &str,
    body: &[u8],
    now: i64,
    tolerance_s: i64,
) -> Result<(), BadSignature> {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.parse::<i64>().map_err(|_| BadSignature::Malformed)?),
            Some(("v1", v)) => sigs.push(v),
            Some(_) => {}
            None => return Err(BadSignature::Malformed),
        }
    }
    let (Some(t), false) = (t, sigs.is_empty()) else {
        return Err(BadSignature::Malformed);
    };
    let expected = hex(&mac(secret, t, body).finalize().into_bytes());
    // Checked before the clock, so a forger learns nothing from the answer.
    if !sigs
        .iter()
        .any(|s| crate::auth::ct_eq(s.as_bytes(), expected.as_bytes()))
    {
        return Err(BadSignature::Mismatch);
    }
    if (now - t).abs() > tolerance_s {
        return Err(BadSignature::Stale);
    }
    Ok(())
}

/// When deliveries are tried again and when a receiver is given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry waits up to this long; each further one up to twice
    /// as long as the one before (ms).
    pub base_ms: u64,
    /// No retry waits longer than this (ms).
    pub cap_ms: u64,
    /// A delivery is retried until its first attempt is this old; the
    /// attempt that fails after that is the last (ms). So a delivery is
    /// tried for at least this long.
    pub window_ms: u64,
    /// A subscription is disabled once this many attempts in a row failed
    /// (across its events) over at least `window_ms` without one success.
    pub disable_after: u32,
}

impl Default for RetryPolicy {
    /// Retries from 5 s up to 10 min apart for an hour; disabled after 20
    /// failures in a row spanning an hour.
    fn default() -> Self {
        RetryPolicy {
            base_ms: 5_000,
            cap_ms: 600_000,
            window_ms: 3_600_000,
            disable_after: 20,
        }
    }
}

impl RetryPolicy {
    /// The policy with the first retry after up to `base_ms`; the cap and the
    /// window shrink with it when it is small (tests and demos), keeping the
    /// default's proportions, but never below `base_ms`.
    pub fn with_base(base_ms: u64) -> Self {
        let d = RetryPolicy::default();
        let base_ms = base_ms.max(1);
        let scale = |v: u64| (v as u128 * base_ms as u128 / d.base_ms as u128).max(1) as u64;
        RetryPolicy {
            base_ms,
            cap_ms: scale(d.cap_ms).max(base_ms),
            window_ms: scale(d.window_ms).max(base_ms),
            disable_after: d.disable_after,
        }
    }

    /// The wait before retry number `retry` (1 for the first), with full
    /// jitter: uniform in `[0, min(cap, base * 2^(retry-1))]`, `jitter` being
    /// a uniform draw in `[0, 1)` the caller makes (so tests choose it).
    pub fn backoff_ms(&self, retry: u32, jitter: f64) -> u64 {
        let exp = retry.saturating_sub(1).min(63);
        let ceiling = self
            .base_ms
            .saturating_mul(1u64 << exp.min(62))
            .min(self.cap_ms);
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        (ceiling as f64 * j) as u64
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered with this HTTP status.
    Status(u16),
    /// No answer: connection refused, timeout, bad URL (the reason).
    Error(String),
}

impl Attempt {
    /// Whether the receiver took the delivery (any 2xx).
    pub fn succeeded(&self) -> bool {
        matches!(self, Attempt::Status(s) if (200..300).contains(s))
    }
}

/// Where a delivery stands after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Done: the receiver has it.
    Delivered,
    /// Try again at this unix ms.
    RetryAt(i64),
    /// Given up: it failed for the whole retry window.
    Failed,
}

impl Next {
    /// Its name in the delivery log.
    pub fn as_str(&self) -> &'static str {
        match self {
            Next::Delivered => "delivered",
            Next::RetryAt(_) => "retrying",
            Next::Failed => "failed",
        }
    }
}

/// What follows attempt number `attempt` (1 for the first) of a delivery
/// whose first attempt was at `first_at`, made at `now` (unix ms).
pub fn after_attempt(
    policy: &RetryPolicy,
    result: &Attempt,
    attempt: u32,
    first_at: i64,
    now: i64,
    jitter: f64,
) -> Next {
    if result.succeeded() {
        return Next::Delivered;
    }
    if now.saturating_sub(first_at) >= policy.window_ms as i64 {
        return Next::Failed;
    }
    Next::RetryAt(now + policy.backoff_ms(attempt, jitter) as i64)
}

/// A subscription's run of failed attempts with no success between them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Streak {
    /// Failed attempts in a row.
    pub failures: u32,
    /// Unix ms of the first of them (`None` with no failures).
    pub since: Option<i64>,
}

impl Streak {
    /// The streak after an attempt at `now` that `succeeded` or not.
    pub fn after(self, succeeded: bool, now: i64) -> Streak {
        if succeeded {
            return Streak::default();
        }
        Streak {
            failures: self.failures.saturating_add(1),
            since: Some(self.since.unwrap_or(now)),
        }
    }

    /// Whether the subscription should be disabled at `now`: at least
    /// `disable_after` failures in a row over at least the retry window, so
    /// a receiver that was down briefly under heavy traffic keeps its
    /// subscription, and one down for the whole window (whose deliveries
    /// are given up on anyway) loses it.
    pub fn should_disable(&self, policy: &RetryPolicy, now: i64) -> bool {
        self.failures >= policy.disable_after.max(1)
            && self
                .since
                .is_some_and(|s| now.saturating_sub(s) >= policy.window_ms as i64)
    }

    /// The reason the log and the subscription give when it is disabled.
    pub fn disable_reason(&self) -> String {
        format!(
            "disabled after {} failed delivery attempts in a row",
            self.failures
        )
    }
}
