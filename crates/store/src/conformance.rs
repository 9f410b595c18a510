//! The behaviour every [`Store`] implementation must show. Each implementation's
//! tests call [`run_all`] with a fresh, empty store.

use crate::events::{EventLog, NewEvent};
use crate::{ApiKey, NewSession, Role, SessionFilter, Store};
use gridiron_domain::api::Cursor;
use gridiron_domain::events::id_order;
use gridiron_domain::EndReason;
use serde_json::json;

fn new(id: &str, at: i64) -> NewSession {
    NewSession {
        id: id.into(),
        browser: "chrome".into(),
        requested_caps: json!({"alwaysMatch": {"browserName": "chrome"}}),
        grid_options: json!({"name": id}),
        created_at: at,
        owner: Some("team-a".into()),
    }
}

/// Runs every check against an empty store; panics on the first failure.
pub async fn run_all(store: &dyn Store) {
    lifecycle_is_recorded(store).await;
    first_end_reason_is_kept(store).await;
    unknown_ids_are_none(store).await;
    list_is_newest_first(store).await;
    unfinished_records_are_closed(store).await;
    sessions_end_elsewhere_once(store).await;
    keys_are_created_listed_and_revoked(store).await;
    old_ended_records_are_pruned(store).await;
    queries_filter_and_page(store).await;
    event_log(store).await;
    artifact_index(store).await;
    stats_count_by_outcome(store).await;
}

fn artifact(session: &str, name: &str, size: u64, at: i64) -> crate::ArtifactRecord {
    crate::ArtifactRecord {
        session: session.into(),
        name: name.into(),
        size,
        content_type: "video/mp4".into(),
        owner: Some("team-a".into()),
        created_at: at,
        node: "n1".into(),
        location: "local".into(),
    }
}

/// The artifact index: put, read back, list by session and oldest first, replace, remove.
pub async fn artifact_index(store: &dyn Store) {
    assert!(store.all_artifacts().await.unwrap().is_empty());
    assert_eq!(store.artifact("s1", "video.mp4").await.unwrap(), None);
    let video = artifact("s1", "video.mp4", 1000, 300);
    let log = crate::ArtifactRecord {
        owner: None,
        content_type: "text/plain; charset=utf-8".into(),
        location: crate::artifacts::IN_BUCKET.into(),
        ..artifact("s1", "downloads/a b.log", 5, 100)
    };
    let other = artifact("s2", "video.mp4", 7, 200);
    for a in [&video, &log, &other] {
        store.put_artifact(a).await.unwrap();
    }
    assert_eq!(
        store.artifact("s1", "video.mp4").await.unwrap().as_ref(),
        Some(&video)
    );
    assert_eq!(
        store.session_artifacts("s1").await.unwrap(),
        vec![log.clone(), video.clone()],
        "by name"
    );
    assert!(store.session_artifacts("nope").await.unwrap().is_empty());
    assert_eq!(
        store.all_artifacts().await.unwrap(),
        vec![log.clone(), other.clone(), video.clone()],
        "oldest first"
    );
    // Same session and name: replaced, not added.
    let bigger = crate::ArtifactRecord {
        size: 2000,
        ..video.clone()
    };
    store.put_artifact(&bigger).await.unwrap();
    assert_eq!(store.session_artifacts("s1").await.unwrap().len(), 2);
    assert_eq!(
        store
            .artifact("s1", "video.mp4")
            .await
            .unwrap()
            .unwrap()
            .size,
        2000
    );
    assert!(store.remove_artifact("s1", "video.mp4").await.unwrap());
    assert!(!store.remove_artifact("s1", "video.mp4").await.unwrap());
    assert!(!store.remove_artifact("s9", "x").await.unwrap());
    assert!(store.remove_artifact("s2", "video.mp4").await.unwrap());
    assert_eq!(store.all_artifacts().await.unwrap(), vec![log.clone()]);
    // Ties in time: by session, then name.
    let (a, b) = (artifact("b", "x", 1, 50), artifact("a", "y", 1, 50));
    store.put_artifact(&a).await.unwrap();
    store.put_artifact(&b).await.unwrap();
    assert_eq!(store.all_artifacts().await.unwrap(), vec![b, a, log]);
}

/// The behaviour every [`EventLog`] must show, from an empty log.
pub async fn event_log(log: &dyn EventLog) {
    use std::cmp::Ordering::Less;
    use std::time::Duration;
    assert_eq!(log.last_id().await.unwrap(), None);
    assert!(log
        .read_after(None, 10, Duration::ZERO)
        .await
        .unwrap()
        .is_empty());
    let first = log
        .append(
            NewEvent::now("session.started")
                .session("s1")
                .node("n1")
                .owner(Some("team-a"))
                .with("request", "r1"),
        )
        .await
        .unwrap();
    let second = log
        .append(
            NewEvent::now("session.ended")
                .session("s1")
                .with("reason", "quit"),
        )
        .await
        .unwrap();
    assert_eq!(id_order(&first, &second), Less);
    assert_eq!(
        log.last_id().await.unwrap().as_deref(),
        Some(second.as_str())
    );

    let all = log.read_after(None, 10, Duration::ZERO).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].id, first);
    assert_eq!(all[0].kind, "session.started");
    assert_eq!(all[0].session.as_deref(), Some("s1"));
    assert_eq!(all[0].node.as_deref(), Some("n1"));
    assert_eq!(all[0].owner.as_deref(), Some("team-a"));
    assert_eq!(all[0].field("request"), Some("r1"));
    assert_eq!(all[1].owner, None);
    assert_eq!(all[1].field("reason"), Some("quit"));

    let rest = log
        .read_after(Some(&first), 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rest.iter().map(|e| &e.id).collect::<Vec<_>>(), [&second]);
    let limited = log.read_after(None, 1, Duration::ZERO).await.unwrap();
    assert_eq!(limited.len(), 1);
    assert_eq!(limited[0].id, first);

    // Nothing after the newest: the read waits, and ends with nothing.
    let none = log
        .read_after(Some(&second), 10, Duration::from_millis(50))
        .await
        .unwrap();
    assert!(none.is_empty());

    // A waiting reader gets what is appended while it waits.
    let (got, third) = tokio::join!(
        log.read_after(Some(&second), 10, Duration::from_secs(5)),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            log.append(NewEvent::now("node.up").node("n2"))
                .await
                .unwrap()
        }
    );
    let got = got.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, third);
    assert_eq!(got[0].kind, "node.up");

    // A session's events, without the others.
    let of_s1 = log.session_events("s1", 10).await.unwrap();
    assert_eq!(
        of_s1.iter().map(|e| &e.id).collect::<Vec<_>>(),
        [&first, &second]
    );
    let last_only = log.session_events("s1", 1).await.unwrap();
    assert_eq!(last_only.len(), 1);
    assert_eq!(last_only[0].id, second);
    assert!(log.session_events("nobody", 10).await.unwrap().is_empty());
}

async fn lifecycle_is_recorded(s: &dyn Store) {
    s.insert(new("life", 1_000), true).await.unwrap();
    let r = s.get("life").await.unwrap().unwrap();
    assert_eq!(r.state, "queued");
    assert_eq!(r.grid_options, json!({"name": "life"}));
    assert_eq!(r.granted_caps, serde_json::Value::Null);
    s.mark_running("life", json!({"browserName": "chrome"}), 1_100)
        .await
        .unwrap();
    let r = s.get("life").await.unwrap().unwrap();
    assert_eq!(r.state, "running");
    assert_eq!(r.started_at, Some(1_100));
    assert_eq!(r.granted_caps["browserName"], "chrome");
    s.mark_ended("life", EndReason::Quit, 1_200, 7)
        .await
        .unwrap();
    let r = s.get("life").await.unwrap().unwrap();
    assert_eq!(r.state, "ended");
    assert_eq!(r.end_reason, Some(EndReason::Quit));
    assert_eq!(r.ended_at, Some(1_200));
    assert_eq!(r.command_count, 7);
    assert_eq!(r.requested_caps["alwaysMatch"]["browserName"], "chrome");
}

async fn first_end_reason_is_kept(s: &dyn Store) {
    s.insert(new("twice", 2_000), false).await.unwrap();
    assert_eq!(s.get("twice").await.unwrap().unwrap().state, "provisioning");
    s.mark_ended("twice", EndReason::DriverCrashed, 2_100, 1)
        .await
        .unwrap();
    s.mark_ended("twice", EndReason::Shutdown, 2_200, 5)
        .await
        .unwrap();
    let r = s.get("twice").await.unwrap().unwrap();
    assert_eq!(r.end_reason, Some(EndReason::DriverCrashed));
    assert_eq!(r.ended_at, Some(2_100));
    // A late "running" must not revive an ended session.
    s.mark_running("twice", json!({}), 2_300).await.unwrap();
    assert_eq!(s.get("twice").await.unwrap().unwrap().state, "ended");
}

async fn unknown_ids_are_none(s: &dyn Store) {
    assert!(s.get("no-such-session").await.unwrap().is_none());
    // Writes for unknown ids are harmless no-ops.
    s.mark_ended("no-such-session", EndReason::Quit, 1, 0)
        .await
        .unwrap();
    assert!(s.get("no-such-session").await.unwrap().is_none());
}

async fn list_is_newest_first(s: &dyn Store) {
    for i in 0..3 {
        s.insert(new(&format!("list{i}"), 10_000 + i), false)
            .await
            .unwrap();
    }
    let l = s.list(2).await.unwrap();
    assert_eq!(l.len(), 2);
    assert_eq!(l[0].id, "list2");
    assert_eq!(l[1].id, "list1");
}

async fn unfinished_records_are_closed(s: &dyn Store) {
    let mut before: Vec<String> = s.unfinished_ids().await.unwrap();
    before.sort();
    assert_eq!(before, ["list0", "list1", "list2"]);
    s.insert(new("left-running", 20_000), false).await.unwrap();
    s.mark_running("left-running", json!({}), 20_001)
        .await
        .unwrap();
    s.insert(new("left-queued", 20_002), true).await.unwrap();
    let before_ended = s.get("life").await.unwrap().unwrap();
    let n = s
        .close_unfinished(EndReason::Shutdown, 30_000)
        .await
        .unwrap();
    // list0..list2 were left provisioning above, plus the two here.
    assert_eq!(n, 5);
    for id in ["left-running", "left-queued", "list0"] {
        let r = s.get(id).await.unwrap().unwrap();
        assert_eq!(r.state, "ended", "{id}");
        assert_eq!(r.end_reason, Some(EndReason::Shutdown), "{id}");
        assert_eq!(r.ended_at, Some(30_000));
    }
    assert_eq!(s.get("life").await.unwrap().unwrap(), before_ended);
    assert!(s.unfinished_ids().await.unwrap().is_empty());
    assert_eq!(
        s.close_unfinished(EndReason::Shutdown, 31_000)
            .await
            .unwrap(),
        0
    );
}

async fn sessions_end_elsewhere_once(s: &dyn Store) {
    s.insert(new("elsewhere", 40_000), false).await.unwrap();
    s.mark_running("elsewhere", json!({}), 40_001)
        .await
        .unwrap();
    assert_eq!(s.unfinished_ids().await.unwrap(), ["elsewhere"]);
    assert!(s
        .end_elsewhere("elsewhere", EndReason::NodeLost, 40_002)
        .await
        .unwrap());
    assert!(s.unfinished_ids().await.unwrap().is_empty());
    // The first end stands; unknown ids are refused without error.
    assert!(!s
        .end_elsewhere("elsewhere", EndReason::Quit, 40_003)
        .await
        .unwrap());
    assert!(!s
        .end_elsewhere("no-such-session", EndReason::NodeLost, 40_004)
        .await
        .unwrap());
    let r = s.get("elsewhere").await.unwrap().unwrap();
    assert_eq!(r.state, "ended");
    assert_eq!(r.end_reason, Some(EndReason::NodeLost));
    assert_eq!(r.ended_at, Some(40_002));
    assert_eq!(r.command_count, 0);
}

fn api_key(name: &str, role: Role) -> ApiKey {
    ApiKey {
        name: name.into(),
        role,
        token_hash: gridiron_domain::auth::hash_token(&format!("token-of-{name}")),
        max_sessions: Some(2),
        rate: Some(1.5),
        created_at: 50_000,
    }
}

async fn keys_are_created_listed_and_revoked(s: &dyn Store) {
    // Sessions remember who made them.
    assert_eq!(
        s.get("life").await.unwrap().unwrap().owner.as_deref(),
        Some("team-a")
    );
    let mut anonymous = new("anonymous", 50_000);
    anonymous.owner = None;
    s.insert(anonymous, false).await.unwrap();
    assert_eq!(s.get("anonymous").await.unwrap().unwrap().owner, None);
    s.mark_ended("anonymous", EndReason::Quit, 50_100, 0)
        .await
        .unwrap();

    assert!(s.keys().await.unwrap().is_empty());
    assert!(s.create_key(api_key("zed", Role::User)).await.unwrap());
    let mut admin = api_key("admin", Role::Admin);
    admin.max_sessions = None;
    admin.rate = None;
    assert!(s.create_key(admin.clone()).await.unwrap());
    // A name is taken once; the first key stands.
    let mut again = api_key("zed", Role::Admin);
    again.token_hash = "other".into();
    assert!(!s.create_key(again).await.unwrap());
    let keys = s.keys().await.unwrap();
    assert_eq!(keys, vec![admin, api_key("zed", Role::User)]);
    assert!(s.revoke_key("zed").await.unwrap());
    assert!(!s.revoke_key("zed").await.unwrap());
    assert_eq!(s.keys().await.unwrap().len(), 1);
    assert!(s.revoke_key("admin").await.unwrap());
    assert!(s.keys().await.unwrap().is_empty());
}

async fn old_ended_records_are_pruned(s: &dyn Store) {
    s.insert(new("old", 50_000), false).await.unwrap();
    s.mark_ended("old", EndReason::Quit, 50_100, 1)
        .await
        .unwrap();
    s.insert(new("recent", 50_000), false).await.unwrap();
    s.mark_ended("recent", EndReason::Quit, 60_000, 1)
        .await
        .unwrap();
    // Still running, however old: only ended records go.
    s.insert(new("ancient-running", 10), false).await.unwrap();
    s.mark_running("ancient-running", json!({}), 11)
        .await
        .unwrap();
    let pruned = s.prune(55_000).await.unwrap();
    // Every record ended before 55_000 by the checks above goes too.
    assert!(pruned >= 1, "pruned {pruned}");
    assert_eq!(s.get("old").await.unwrap(), None);
    assert!(s.get("recent").await.unwrap().is_some());
    assert!(s.get("ancient-running").await.unwrap().is_some());
    assert!(s
        .unfinished_ids()
        .await
        .unwrap()
        .contains(&"ancient-running".to_string()));
    let listed: Vec<String> = s
        .list(1_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert!(!listed.contains(&"old".to_string()), "{listed:?}");
    assert!(
        listed
            .iter()
            .all(|id| id == "recent" || id == "ancient-running"),
        "{listed:?}"
    );
    assert_eq!(s.prune(55_000).await.unwrap(), 0, "nothing left to prune");
}

/// Filters keep what they name, newest first with ties by id descending, and
/// a cursor continues right after the record it names.
async fn queries_filter_and_page(s: &dyn Store) {
    const T: i64 = 9_000_000;
    let rec = |id: &str, at: i64, browser: &str, owner: Option<&str>, options| NewSession {
        id: id.into(),
        browser: browser.into(),
        requested_caps: json!({}),
        grid_options: options,
        created_at: T + at,
        owner: owner.map(str::to_string),
    };
    s.insert(
        rec(
            "qa",
            1,
            "chrome",
            Some("alice"),
            json!({"name": "one", "labels": {"team": "web"}}),
        ),
        false,
    )
    .await
    .unwrap();
    s.insert(
        rec(
            "qb",
            2,
            "firefox",
            Some("bob"),
            json!({"labels": {"team": "api"}}),
        ),
        false,
    )
    .await
    .unwrap();
    s.insert(rec("qc", 3, "chrome", None, json!({})), false)
        .await
        .unwrap();
    // Same creation time: ordered by id, descending.
    s.insert(rec("qd", 3, "chrome", Some("alice"), json!({})), false)
        .await
        .unwrap();
    s.mark_running("qa", json!({}), T + 10).await.unwrap();
    let ids = |f: SessionFilter, limit| async move {
        let all = s.query(&f, limit).await.unwrap();
        all.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let base = || SessionFilter {
        created_after: Some(T),
        ..Default::default()
    };
    assert_eq!(ids(base(), 10).await, ["qd", "qc", "qb", "qa"]);
    assert_eq!(ids(base(), 2).await, ["qd", "qc"]);
    let f = SessionFilter {
        browser: Some("chrome".into()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qd", "qc", "qa"]);
    let f = SessionFilter {
        owner: Some("alice".into()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qd", "qa"]);
    let f = SessionFilter {
        owner: Some(String::new()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qc"]);
    let f = SessionFilter {
        state: Some("running".into()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qa"]);
    let f = SessionFilter {
        label: Some(("team".into(), "api".into())),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qb"]);
    let f = SessionFilter {
        name: Some("one".into()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qa"]);
    // Search: a label's value, a name, an owner, in any case.
    let f = SessionFilter {
        q: Some("API".into()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qb"]);
    let f = SessionFilter {
        q: Some("ALI".into()),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qd", "qa"]);
    let f = SessionFilter {
        created_before: Some(T + 3),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qb", "qa"]);
    let f = SessionFilter {
        created_after: Some(T + 2),
        created_before: Some(T + 3),
        ..base()
    };
    assert_eq!(ids(f, 10).await, ["qb"]);
    // Paging through the tie.
    let after = |id: &str, at| SessionFilter {
        cursor: Some(Cursor {
            at: T + at,
            id: id.into(),
        }),
        ..base()
    };
    assert_eq!(ids(after("qd", 3), 10).await, ["qc", "qb", "qa"]);
    assert_eq!(ids(after("qc", 3), 1).await, ["qb"]);
    assert_eq!(ids(after("qa", 1), 10).await, Vec::<String>::new());
}

/// Stats count the sessions created since a time by what became of them,
/// everyone's or one owner's, and no others.
pub async fn stats_count_by_outcome(s: &dyn Store) {
    const T: i64 = 20_000_000;
    let rec = |id: &str, at: i64, owner: Option<&str>| NewSession {
        owner: owner.map(str::to_string),
        ..new(id, T + at)
    };
    let run = |id: &'static str, at: i64| async move {
        s.mark_running(id, json!({}), T + at).await.unwrap();
    };
    let end = |id: &'static str, reason: EndReason, at: i64| async move {
        s.mark_ended(id, reason, T + at, 0).await.unwrap();
    };
    // Started and ended before the window, or started before it and still
    // running: not counted.
    s.insert(rec("st-before", -50, Some("alice")), false)
        .await
        .unwrap();
    run("st-before", -49).await;
    end("st-before", EndReason::Quit, -10).await;
    s.insert(rec("st-old", -100, Some("alice")), false)
        .await
        .unwrap();
    run("st-old", -99).await;
    // Started before the window, ended in it: counted as ended.
    s.insert(rec("st-long", -100, Some("alice")), false)
        .await
        .unwrap();
    run("st-long", -99).await;
    end("st-long", EndReason::Quit, 3).await;
    // Started in it and running.
    s.insert(rec("st-run", 0, Some("alice")), false)
        .await
        .unwrap();
    run("st-run", 1).await;
    // Started and ended in it.
    s.insert(rec("st-idle", 2, Some("bob")), false)
        .await
        .unwrap();
    run("st-idle", 3).await;
    end("st-idle", EndReason::IdleTimeout, 4).await;
    // Never started: ended in the queue.
    s.insert(rec("st-gave-up", 3, Some("bob")), true)
        .await
        .unwrap();
    end("st-gave-up", EndReason::QueueTimeout, 5).await;
    // Still waiting: neither.
    s.insert(rec("st-waits", 4, None), true).await.unwrap();

    let ended = |st: &crate::SessionStats| -> Vec<(String, u64)> {
        st.ended.iter().map(|(k, n)| (k.clone(), *n)).collect()
    };
    let pairs = |p: &[(&str, u64)]| -> Vec<(String, u64)> {
        p.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    };
    let all = s.session_stats(T, None).await.unwrap();
    assert_eq!((all.started, all.running), (2, 1), "{all:?}");
    assert_eq!(
        ended(&all),
        pairs(&[("idle_timeout", 1), ("queue_timeout", 1), ("quit", 1)])
    );
    let alice = s.session_stats(T, Some("alice")).await.unwrap();
    assert_eq!((alice.started, alice.running), (1, 1), "{alice:?}");
    assert_eq!(ended(&alice), pairs(&[("quit", 1)]));
    let keyless = s.session_stats(T, Some("")).await.unwrap();
    assert_eq!(keyless, crate::SessionStats::default(), "{keyless:?}");
    assert_eq!(
        s.session_stats(T, Some("carol")).await.unwrap(),
        crate::SessionStats::default()
    );
    let later = s.session_stats(T + 4, None).await.unwrap();
    assert_eq!((later.started, later.running), (0, 0), "{later:?}");
    assert_eq!(
        ended(&later),
        pairs(&[("idle_timeout", 1), ("queue_timeout", 1)])
    );
}
