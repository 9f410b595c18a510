use super::*;
use crate::events::{NODE_UP, SESSION_ENDED, SESSION_STARTED};
use proptest::prelude::*;

const SECRET: &str = "0123456789abcdef";

fn types(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn valid_subscriptions_pass_and_lose_repeated_types() {
    let v = validate(
        "https://example.com:8443/hooks?x=1",
        &types(&["session.ended", "session.*", "session.ended"]),
        SECRET,
    )
    .unwrap();
    assert_eq!(v.events, types(&["session.ended", "session.*"]));
    assert!(validate("http://127.0.0.1:9/h", &types(&["*"]), SECRET).is_ok());
    assert!(validate("http://[::1]:9/h", &types(&["*"]), SECRET).is_ok());
}

#[test]
fn bad_urls_are_refused() {
    let all = types(&["*"]);
    for url in [
        "ftp://example.com/",
        "file:///etc/passwd",
        "example.com/hook",
        "http://",
        "http:///path",
        "http://user:pw@example.com/",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://example.com:x/",
        "http://exa mple.com/",
        "http://example.com/#frag",
        "http://exämple.com/",
        "http://[::1/",
    ] {
        assert!(validate(url, &all, SECRET).is_err(), "{url} passed");
    }
    let long = format!("http://e.com/{}", "a".repeat(MAX_URL_LEN));
    assert!(validate(&long, &all, SECRET).is_err());
}

#[test]
fn event_types_must_be_known() {
    let url = "http://e.com/";
    assert!(validate(url, &[], SECRET).is_err());
    assert!(validate(url, &types(&["session.begun"]), SECRET).is_err());
    assert!(validate(url, &types(&["session.ended,node.up"]), SECRET).is_err());
    assert!(validate(url, &types(&[" session.ended"]), SECRET).is_err());
    let many: Vec<String> = (0..=MAX_EVENT_TYPES).map(|_| "*".to_string()).collect();
    assert!(validate(url, &many, SECRET).is_err());
}

#[test]
fn secrets_must_be_long_printable_ascii() {
    let url = "http://e.com/";
    let all = types(&["*"]);
    assert!(validate(url, &all, "short").is_err());
    assert!(validate(url, &all, &"x".repeat(MAX_SECRET_LEN + 1)).is_err());
    assert!(validate(url, &all, "with a space inside!").is_err());
    assert!(validate(url, &all, "ünïcödé-sëcrët-xx").is_err());
    assert!(validate(url, &all, &"x".repeat(MAX_SECRET_LEN)).is_ok());
}

#[test]
fn signatures_match_a_known_vector() {
    // HMAC-SHA256("0123456789abcdef", "1700000000.{}"), computed independently
    // (python3: hmac.new(b"0123456789abcdef", b"1700000000.{}", "sha256").hexdigest()).
    assert_eq!(
        sign(SECRET, 1_700_000_000, b"{}"),
        "t=1700000000,v1=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
    );
}

#[test]
fn verification_checks_body_secret_and_time() {
    let body = br#"{"id":"1"}"#;
    let h = sign(SECRET, 1000, body);
    assert_eq!(verify(&h, SECRET, body, 1000, 300), Ok(()));
    assert_eq!(verify(&h, SECRET, body, 1300, 300), Ok(()));
    assert_eq!(
        verify(&h, SECRET, body, 1301, 300),
        Err(BadSignature::Stale)
    );
    assert_eq!(verify(&h, SECRET, body, 699, 300), Err(BadSignature::Stale));
    assert_eq!(
        verify(&h, "another-secret-123", body, 1000, 300),
        Err(BadSignature::Mismatch)
    );
    assert_eq!(
        verify(&h, SECRET, b"{}", 1000, 300),
        Err(BadSignature::Mismatch)
    );
    // A second v1 (say, made with a new secret) may match.
    let v1 = h.split_once(",v1=").unwrap().1;
    let two = format!("t=1000,v1={},v1={v1}", "0".repeat(64));
    assert_eq!(verify(&two, SECRET, body, 1000, 300), Ok(()));
    for bad in ["", "t=1000", "v1=abc", "t=x,v1=abc", "garbage"] {
        assert_eq!(
            verify(bad, SECRET, body, 1000, 300),
            Err(BadSignature::Malformed),
            "{bad}"
        );
    }
}

#[test]
fn payload_is_the_event() {
    let mut fields = BTreeMap::new();
    fields.insert("reason".to_string(), "quit".to_string());
    let p: serde_json::Value = serde_json::from_str(&payload(
        "7",
        SESSION_ENDED,
        1234,
        Some("s1"),
        None,
        &fields,
    ))
    .unwrap();
    assert_eq!(
        p,
        serde_json::json!({"id": "7", "type": "session.ended", "at": 1234,
            "session": "s1", "node": null, "fields": {"reason": "quit"}})
    );
}

#[test]
fn user_subscriptions_get_their_own_sessions_only() {
    let all = types(&["*"]);
    let mine = Subject {
        kind: SESSION_STARTED,
        session: Some("s1"),
        node: None,
        owner: Some("alice"),
    };
    let theirs = Subject {
        owner: Some("bob"),
        ..mine
    };
    let node = Subject {
        kind: NODE_UP,
        ..Subject::default()
    };
    assert!(wants(&all, false, Some("alice"), &mine));
    assert!(!wants(&all, false, Some("alice"), &theirs));
    assert!(!wants(&all, false, Some("alice"), &node));
    assert!(wants(&all, true, None, &theirs));
    assert!(wants(&all, true, None, &node));
    assert!(!wants(&types(&["session.ended"]), true, None, &mine));
    assert!(wants(&types(&["session.*"]), true, None, &mine));
    assert!(!wants(&[], true, None, &mine));
}

#[test]
fn backoff_doubles_up_to_the_cap_with_full_jitter() {
    let p = RetryPolicy {
        base_ms: 1000,
        cap_ms: 10_000,
        window_ms: 60_000,
        disable_after: 3,
    };
    assert_eq!(p.backoff_ms(1, 0.999_999), 999);
    assert_eq!(p.backoff_ms(2, 0.5), 1000);
    assert_eq!(p.backoff_ms(4, 1.0), 8000);
    assert_eq!(p.backoff_ms(5, 1.0), 10_000);
    assert_eq!(p.backoff_ms(200, 1.0), 10_000);
    assert_eq!(p.backoff_ms(3, 0.0), 0);
    assert_eq!(p.backoff_ms(3, f64::NAN), 0);
}

#[test]
fn deliveries_retry_until_the_window_then_fail() {
    let p = RetryPolicy::default();
    let fail = Attempt::Status(500);
    assert_eq!(
        after_attempt(&p, &Attempt::Status(204), 9, 0, 10, 0.5),
        Next::Delivered
    );
    assert_eq!(after_attempt(&p, &fail, 1, 0, 0, 0.5), Next::RetryAt(2_500));
    assert_eq!(
        after_attempt(&p, &Attempt::Error("refused".into()), 2, 0, 1_000, 1.0),
        Next::RetryAt(11_000)
    );
    let hour = 3_600_000;
    assert!(matches!(
        after_attempt(&p, &fail, 30, 0, hour - 1, 0.5),
        Next::RetryAt(_)
    ));
    assert_eq!(after_attempt(&p, &fail, 30, 0, hour, 0.5), Next::Failed);
    assert!(!Attempt::Status(302).succeeded());
    assert!(Attempt::Status(200).succeeded() && Attempt::Status(299).succeeded());
}

#[test]
fn a_small_base_shrinks_the_whole_schedule() {
    let p = RetryPolicy::with_base(50);
    assert_eq!(p.base_ms, 50);
    assert_eq!(p.cap_ms, 6_000);
    assert_eq!(p.window_ms, 36_000);
    assert_eq!(RetryPolicy::with_base(5_000), RetryPolicy::default());
    let tiny = RetryPolicy::with_base(0);
    assert!(tiny.base_ms >= 1 && tiny.cap_ms >= 1 && tiny.window_ms >= 1);
}

#[test]
fn a_streak_disables_after_the_threshold_and_the_window() {
    let p = RetryPolicy {
        base_ms: 1,
        cap_ms: 1,
        window_ms: 100,
        disable_after: 3,
    };
    let mut s = Streak::default();
    for t in [0, 10, 20] {
        s = s.after(false, t);
    }
    assert_eq!(
        s,
        Streak {
            failures: 3,
            since: Some(0)
        }
    );
    // Enough failures but not for long enough: kept.
    assert!(!s.should_disable(&p, 99));
    assert!(s.should_disable(&p, 100));
    // A success in between starts again.
    let s = s.after(true, 120).after(false, 130);
    assert_eq!(s.failures, 1);
    assert!(!s.should_disable(&p, 10_000));
    assert!(s.disable_reason().contains('1'));
}

proptest! {
    #[test]
    fn signatures_verify_and_any_change_breaks_them(
        body in proptest::collection::vec(any::<u8>(), 0..200),
        t in 0i64..4_000_000_000,
        flip in any::<usize>(),
    ) {
        let h = sign(SECRET, t, &body);
        prop_assert_eq!(verify(&h, SECRET, &body, t, 0), Ok(()));
        if !body.is_empty() {
            let mut changed = body.clone();
            let i = flip % changed.len();
            changed[i] ^= 1;
            prop_assert_eq!(verify(&h, SECRET, &changed, t, 0), Err(BadSignature::Mismatch));
        }
    }

    #[test]
    fn backoff_stays_within_its_ceiling(
        base in 1u64..100_000, cap in 1u64..10_000_000, retry in 1u32..100, j in 0.0f64..1.0,
    ) {
        let p = RetryPolicy { base_ms: base, cap_ms: cap, window_ms: 1, disable_after: 1 };
        let d = p.backoff_ms(retry, j);
        prop_assert!(d <= cap);
        prop_assert!(d <= base.saturating_mul(1u64 << (retry - 1).min(62)));
    }

    #[test]
    fn deliveries_are_tried_for_at_least_the_window(
        jitters in proptest::collection::vec(0.0f64..1.0, 1..400),
    ) {
        // Whatever the draws, a receiver that always fails is given up on
        // only once the first attempt is a window old.
        let p = RetryPolicy::with_base(1_000);
        let mut now = 0i64;
        for (i, j) in jitters.iter().enumerate() {
            match after_attempt(&p, &Attempt::Status(503), i as u32 + 1, 0, now, *j) {
                Next::RetryAt(t) => { prop_assert!(t >= now); now = t; }
                Next::Failed => { prop_assert!(now >= p.window_ms as i64); break; }
                Next::Delivered => prop_assert!(false),
            }
        }
    }
}
