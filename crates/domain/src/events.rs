//! The grid's lifecycle events as observers (feeds, webhooks, timelines)
//! see them: their types, the order of their ids, and which events a
//! subscriber asked for.

use std::cmp::Ordering;

/// A request waits in the queue (`position` field).
pub const REQUEST_QUEUED: &str = "request.queued";
/// A queued request was withdrawn before it got a session (`reason` field).
pub const REQUEST_CANCELLED: &str = "request.cancelled";
/// A session's browser answered.
pub const SESSION_STARTED: &str = "session.started";
/// A session received commands (`commands`: the total so far); at most one
/// per session per [`ACTIVITY_EVERY_MS`].
pub const SESSION_ACTIVITY: &str = "session.activity";
/// A session ended (`reason` field).
pub const SESSION_ENDED: &str = "session.ended";
/// A node joined the grid.
pub const NODE_UP: &str = "node.up";
/// A node stopped answering; its sessions ended.
pub const NODE_LOST: &str = "node.lost";
/// A node left the grid (it stopped, or finished draining).
pub const NODE_DOWN: &str = "node.down";
/// A node was told to take no new sessions.
pub const NODE_DRAINED: &str = "node.drained";
/// A pool was created, changed or deleted (`change` field).
pub const POOL_CHANGED: &str = "pool.changed";
/// An API key was created.
pub const KEY_CREATED: &str = "key.created";
/// An API key was revoked.
pub const KEY_REVOKED: &str = "key.revoked";

/// An artifact of a session was stored (`name`, `size` fields).
pub const ARTIFACT_READY: &str = "artifact.ready";
/// An artifact of a session was removed (`name`, `size`, `reason`: `api`,
/// `quota`, `max_age` or `missing`).
pub const ARTIFACT_DELETED: &str = "artifact.deleted";

/// Every event type, as subscriptions and filters name them.
pub const ALL_KINDS: [&str; 14] = [
    REQUEST_QUEUED,
    REQUEST_CANCELLED,
    SESSION_STARTED,
    SESSION_ACTIVITY,
    SESSION_ENDED,
    NODE_UP,
    NODE_LOST,
    NODE_DOWN,
    NODE_DRAINED,
    POOL_CHANGED,
    KEY_CREATED,
    KEY_REVOKED,
    ARTIFACT_READY,
    ARTIFACT_DELETED,
];

/// The shortest time between two activity events of one session, in ms.
pub const ACTIVITY_EVERY_MS: i64 = 1000;

/// Whether `kind` names an event type.
pub fn is_kind(kind: &str) -> bool {
    ALL_KINDS.contains(&kind)
}

/// The two numbers of an event id: a stream id `ms-seq`, or a plain sequence
/// number (`n` is `(n, 0)`). `None` for anything else.
fn id_parts(id: &str) -> Option<(u64, u64)> {
    match id.split_once('-') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((id.parse().ok()?, 0)),
    }
}

/// Whether `id` is an event id some log could have given.
pub fn is_event_id(id: &str) -> bool {
    id_parts(id).is_some()
}

/// The order of two event ids of one log: later events have greater ids.
/// Ids that are not event ids sort before every real one.
pub fn id_order(a: &str, b: &str) -> Ordering {
    id_parts(a).cmp(&id_parts(b))
}

/// What an event is about, as a filter sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Subject<'a> {
    /// Its type.
    pub kind: &'a str,
    /// The session it concerns.
    pub session: Option<&'a str>,
    /// The node it concerns.
    pub node: Option<&'a str>,
    /// The API key whose session or request it concerns.
    pub owner: Option<&'a str>,
}

/// Which events a subscriber wants. Empty lists want everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Types wanted (exact names, or a prefix ending in `.*`: `session.*`).
    pub kinds: Vec<String>,
    /// Sessions wanted.
    pub sessions: Vec<String>,
    /// Nodes wanted.
    pub nodes: Vec<String>,
}

impl EventFilter {
    /// A filter from comma-separated lists, as query strings carry them;
    /// an unknown type is an error, so a typo does not silently match nothing.
    pub fn parse(kinds: &str, sessions: &str, nodes: &str) -> Result<Self, String> {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect()
        };
        let kinds = list(kinds);
        for k in &kinds {
            let known = match k.strip_suffix(".*") {
                Some(prefix) => ALL_KINDS
                    .iter()
                    .any(|kind| kind.split('.').next() == Some(prefix)),
                None => is_kind(k) || k == "*",
            };
            if !known {
                return Err(format!(
                    "unknown event type {k:?}; known types: {}",
                    ALL_KINDS.join(", ")
                ));
            }
        }
        Ok(EventFilter {
            kinds,
            sessions: list(sessions),
            nodes: list(nodes),
        })
    }

    /// Whether the event about `s` is wanted.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        let kind_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|k| {
                k == "*"
                    || k == s.kind
                    || k.strip_suffix(".*").is_some_and(|prefix| {
                        s.kind
                            .strip_prefix(prefix)
                            .is_some_and(|rest| rest.starts_with('.'))
                    })
            });
        let within = |wanted: &[String], got: Option<&str>| {
            wanted.is_empty() || got.is_some_and(|g| wanted.iter().any(|w| w == g))
        };
        kind_ok && within(&self.sessions, s.session) && within(&self.nodes, s.node)
    }
}

/// Whether a caller who owns sessions of key `caller_key` (`None`: no key)
/// may see an event about `s`; admins see every event. Events about a key's
/// sessions and requests belong to that key; events of the grid itself
/// (nodes, pools, keys) are the operators'.
pub fn visible_to(s: &Subject<'_>, admin: bool, caller_key: Option<&str>) -> bool {
    if admin {
        return true;
    }
    let about_sessions = s.kind.starts_with("session.") || s.kind.starts_with("request.");
    about_sessions && caller_key.is_some() && s.owner == caller_key
}

/// Whether an activity event is due for a session that last had one at
/// `last_ms` (`None`: never), now at `now_ms`.
pub fn activity_due(last_ms: Option<i64>, now_ms: i64) -> bool {
    last_ms.is_none_or(|last| now_ms - last >= ACTIVITY_EVERY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(kind: &'a str, session: Option<&'a str>, owner: Option<&'a str>) -> Subject<'a> {
        Subject {
            kind,
            session,
            node: Some("n1"),
            owner,
        }
    }

    #[test]
    fn ids_order_numerically_not_as_text() {
        assert_eq!(id_order("9", "10"), Ordering::Less);
        assert_eq!(
            id_order("1700000000000-9", "1700000000000-10"),
            Ordering::Less
        );
        assert_eq!(
            id_order("1700000000001-0", "1700000000000-10"),
            Ordering::Greater
        );
        assert_eq!(id_order("5", "5"), Ordering::Equal);
        assert_eq!(id_order("junk", "0"), Ordering::Less);
        assert!(is_event_id("12-3") && is_event_id("7"));
        assert!(!is_event_id("") && !is_event_id("1-") && !is_event_id("a-1"));
    }

    #[test]
    fn filters_match_types_prefixes_sessions_and_nodes() {
        let f = EventFilter::parse("session.*, request.queued", "s1", "").unwrap();
        assert!(f.matches(&subject(SESSION_ENDED, Some("s1"), None)));
        assert!(f.matches(&subject(REQUEST_QUEUED, Some("s1"), None)));
        assert!(!f.matches(&subject(REQUEST_CANCELLED, Some("s1"), None)));
        assert!(!f.matches(&subject(SESSION_ENDED, Some("s2"), None)));
        assert!(!f.matches(&subject(SESSION_ENDED, None, None)));
        let nodes = EventFilter::parse("", "", "n2").unwrap();
        assert!(!nodes.matches(&subject(NODE_UP, None, None)));
        assert!(EventFilter::default().matches(&subject(NODE_UP, None, None)));
        assert!(EventFilter::parse("*", "", "").unwrap().matches(&subject(
            KEY_CREATED,
            None,
            None
        )));
    }

    #[test]
    fn a_prefix_matches_whole_words_only() {
        let f = EventFilter::parse("node.*", "", "").unwrap();
        assert!(f.matches(&subject(NODE_LOST, None, None)));
        assert!(!f.matches(&Subject {
            kind: "nodes_are_not_nodes",
            ..Default::default()
        }));
    }

    #[test]
    fn unknown_types_are_refused() {
        assert!(EventFilter::parse("session.begun", "", "").is_err());
        assert!(EventFilter::parse("bogus.*", "", "").is_err());
        assert!(EventFilter::parse("", "", "").is_ok());
    }

    #[test]
    fn users_see_their_own_sessions_events_only() {
        let mine = subject(SESSION_STARTED, Some("s1"), Some("alice"));
        let theirs = subject(SESSION_STARTED, Some("s2"), Some("bob"));
        let keyless = subject(SESSION_STARTED, Some("s3"), None);
        let node = subject(NODE_LOST, None, None);
        assert!(visible_to(&mine, false, Some("alice")));
        assert!(!visible_to(&theirs, false, Some("alice")));
        assert!(!visible_to(&keyless, false, Some("alice")));
        assert!(!visible_to(&keyless, false, None));
        assert!(!visible_to(&node, false, Some("alice")));
        for s in [mine, theirs, keyless, node] {
            assert!(visible_to(&s, true, None));
        }
    }

    #[test]
    fn activity_is_sampled_once_a_second() {
        assert!(activity_due(None, 0));
        assert!(!activity_due(Some(1000), 1999));
        assert!(activity_due(Some(1000), 2000));
    }
}
