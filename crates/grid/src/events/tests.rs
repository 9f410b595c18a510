//! The feed and subscriptions over an in-memory log: resuming, filters,
//! visibility, slow subscribers.

use super::feed::FEED_BUFFER;
use super::{Dropped, EventFeed, EventSink, Subscription};
use crate::auth::Caller;
use crate::tasks::Tasks;
use gridiron_domain::events::{self, EventFilter};
use gridiron_store::{EventLog, MemoryStore, NewEvent};
use std::sync::Arc;
use std::time::Duration;

fn user(key: &str) -> Caller {
    Caller {
        key: Some(key.into()),
        admin: false,
        max_sessions: None,
    }
}

async fn next_kind(sub: &mut Subscription) -> (String, String) {
    let e = tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("an event within 5 s")
        .expect("the subscription goes on");
    (e.id.clone(), e.kind.clone())
}

fn started(session: &str, owner: &str) -> NewEvent {
    NewEvent::now(events::SESSION_STARTED)
        .session(session)
        .owner(Some(owner))
}

#[tokio::test]
async fn a_subscriber_resumes_after_its_last_event_without_loss_or_repetition() {
    let log = Arc::new(MemoryStore::new());
    let tasks = Tasks::default();
    let feed = EventFeed::new(log.clone(), tasks.clone());
    let first = log.append(started("s1", "a")).await.unwrap();
    log.append(NewEvent::now(events::SESSION_ENDED).session("s1"))
        .await
        .unwrap();

    let mut sub =
        Subscription::start(&feed, EventFilter::default(), Caller::open(), Some(first)).await;
    assert_eq!(next_kind(&mut sub).await.1, events::SESSION_ENDED);
    // Appended after the subscription started: comes live, once.
    let third = log
        .append(NewEvent::now(events::NODE_UP).node("n1"))
        .await
        .unwrap();
    assert_eq!(
        next_kind(&mut sub).await,
        (third.clone(), events::NODE_UP.into())
    );
    let fourth = log
        .append(NewEvent::now(events::NODE_LOST).node("n1"))
        .await
        .unwrap();
    assert_eq!(next_kind(&mut sub).await.0, fourth);

    // From the start of the log: everything, in order.
    let mut all = Subscription::start(
        &feed,
        EventFilter::default(),
        Caller::open(),
        Some("0".into()),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(next_kind(&mut all).await.0);
    }
    assert_eq!(ids, ["1", "2", &third, &fourth]);
    tasks.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn without_a_resume_id_only_new_events_come() {
    let log = Arc::new(MemoryStore::new());
    let tasks = Tasks::default();
    let feed = EventFeed::new(log.clone(), tasks.clone());
    log.append(started("old", "a")).await.unwrap();
    let mut sub = Subscription::start(&feed, EventFilter::default(), Caller::open(), None).await;
    let new = log.append(started("new", "a")).await.unwrap();
    assert_eq!(next_kind(&mut sub).await.0, new);
    tasks.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn filters_and_visibility_choose_the_events() {
    let log = Arc::new(MemoryStore::new());
    let tasks = Tasks::default();
    let feed = EventFeed::new(log.clone(), tasks.clone());
    let ended_only = EventFilter::parse("session.ended", "", "").unwrap();
    let mut alice = Subscription::start(&feed, EventFilter::default(), user("alice"), None).await;
    let mut ends = Subscription::start(&feed, ended_only, Caller::open(), None).await;
    log.append(started("s1", "bob")).await.unwrap();
    log.append(NewEvent::now(events::NODE_UP).node("n1"))
        .await
        .unwrap();
    let mine = log.append(started("s2", "alice")).await.unwrap();
    let end = log
        .append(
            NewEvent::now(events::SESSION_ENDED)
                .session("s1")
                .owner(Some("bob")),
        )
        .await
        .unwrap();
    // Alice sees her own session only: not bob's, not the node's.
    assert_eq!(next_kind(&mut alice).await.0, mine);
    assert_eq!(next_kind(&mut ends).await.0, end);
    let none = tokio::time::timeout(Duration::from_millis(200), alice.next()).await;
    assert!(none.is_err(), "alice saw an event that is not hers");
    tasks.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_and_told_where_to_resume() {
    let log = Arc::new(MemoryStore::new());
    let tasks = Tasks::default();
    let feed = EventFeed::new(log.clone(), tasks.clone());
    let mut slow = Subscription::start(&feed, EventFilter::default(), Caller::open(), None).await;
    let first = log.append(started("s0", "a")).await.unwrap();
    assert_eq!(next_kind(&mut slow).await.0, first);
    // Far more than the feed holds arrive while it does not read; the
    // grid's appends never wait for it.
    for i in 0..FEED_BUFFER + 10 {
        log.append(started(&format!("s{i}"), "a")).await.unwrap();
    }
    crate::testing::eventually_within(
        Duration::from_secs(10),
        "the feed passed every event on",
        || async { feed.unread() >= FEED_BUFFER },
    )
    .await;
    let dropped = slow.next().await.unwrap_err();
    assert_eq!(dropped, Dropped::TooSlow(Some(first.clone())));
    assert!(dropped.reason().contains(&first));
    // Resuming from there misses nothing.
    let mut again =
        Subscription::start(&feed, EventFilter::default(), Caller::open(), Some(first)).await;
    for i in 0..FEED_BUFFER + 10 {
        let e = again.next().await.unwrap();
        assert_eq!(e.session.as_deref(), Some(format!("s{i}").as_str()));
    }
    tasks.close(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_sink_writes_in_order_and_flushes_when_stopped() {
    let log = Arc::new(MemoryStore::new());
    let tasks = Tasks::default();
    let sink = EventSink::start(log.clone(), &tasks);
    for i in 0..100 {
        sink.emit(started(&format!("s{i}"), "a"));
    }
    tasks.close(Duration::from_secs(5)).await;
    let all = log.read_after(None, 1000, Duration::ZERO).await.unwrap();
    let sessions: Vec<String> = all.iter().filter_map(|e| e.session.clone()).collect();
    let expected: Vec<String> = (0..100).map(|i| format!("s{i}")).collect();
    assert_eq!(sessions, expected);
}

#[tokio::test]
async fn subscriptions_end_when_the_grid_stops() {
    let log = Arc::new(MemoryStore::new());
    let tasks = Tasks::default();
    let feed = EventFeed::new(log.clone(), tasks.clone());
    let mut sub = Subscription::start(&feed, EventFilter::default(), Caller::open(), None).await;
    let stop = tasks.clone();
    tokio::spawn(async move { stop.close(Duration::from_secs(1)).await });
    let ended = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;
    assert_eq!(ended.expect("ends promptly").unwrap_err(), Dropped::Closed);
}
