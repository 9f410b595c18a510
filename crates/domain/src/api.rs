//! Pure rules of the REST API (`/api/v1`): page sizes, opaque cursors,
//! session list filters, and the translation of an API session request into
//! W3C capabilities. The HTTP side lives in the grid crate.

use crate::capabilities::GRID_OPTIONS_KEY;
use crate::error::GridError;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Items per page when the client names no `limit`.
pub const DEFAULT_LIMIT: usize = 50;
/// The largest `limit` a client may ask for.
pub const MAX_LIMIT: usize = 500;

/// The page size of `?limit=`: [`DEFAULT_LIMIT`] if absent, 1..=[`MAX_LIMIT`] otherwise.
pub fn page_limit(limit: Option<&str>) -> Result<usize, GridError> {
    let Some(raw) = limit else {
        return Ok(DEFAULT_LIMIT);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(GridError::invalid_argument(format!(
            "limit must be a whole number from 1 to {MAX_LIMIT}, got {raw:?}"
        ))),
    }
}

/// A position in a list ordered newest first: the creation time and id of
/// the last item a page returned. The next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Unix ms of the last item.
    pub at: i64,
    /// Id of the last item (ties on `at` are ordered by id, descending).
    pub id: String,
}

impl Cursor {
    /// The opaque string clients pass back as `?cursor=`.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}:{}", self.at, self.id))
    }

    /// Reads a cursor made by [`Cursor::encode`].
    pub fn decode(s: &str) -> Result<Cursor, GridError> {
        let bad = || GridError::invalid_argument(format!("cursor {s:?} is not one this grid made"));
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = raw.split_once(':').ok_or_else(bad)?;
        Ok(Cursor {
            at: at.parse().map_err(|_| bad())?,
            id: id.to_string(),
        })
    }

    /// Whether an item created at `at` with `id` comes after this cursor
    /// in newest-first order.
    pub fn before(&self, at: i64, id: &str) -> bool {
        at < self.at || (at == self.at && id < self.id.as_str())
    }
}

/// Splits a list already in order into a page of at most `limit` items and
/// the cursor of the next page (`None` when this one is the last); `key`
/// gives each item's creation time and id. Callers fetch `limit + 1` items.
pub fn paginate<T>(
    mut items: Vec<T>,
    limit: usize,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    if items.len() <= limit {
        return (items, None);
    }
    items.truncate(limit);
    let next = items.last().map(|last| key(last).encode());
    (items, next)
}

/// Session states a list may filter on.
pub const SESSION_STATES: [&str; 4] = ["queued", "provisioning", "running", "ended"];

/// What a session list keeps (every field is optional; all given must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionFilter {
    /// `queued`, `provisioning`, `running` or `ended`.
    pub state: Option<String>,
    /// Browser name as recorded (`chrome`, `firefox`).
    pub browser: Option<String>,
    /// The API key that owns the session (`Some("")`: made without a key).
    pub owner: Option<String>,
    /// A label the session carries: key and value.
    pub label: Option<(String, String)>,
    /// The session's name, exactly.
    pub name: Option<String>,
    /// Free text found, ignoring case, in the session's id, name, owner,
    /// browser, or a label's key or value.
    pub q: Option<String>,
    /// Created at or after this Unix ms.
    pub created_after: Option<i64>,
    /// Created before this Unix ms.
    pub created_before: Option<i64>,
    /// Only sessions after this position (the next page).
    pub cursor: Option<Cursor>,
}

/// What a filter looks at in one session record.
#[derive(Debug, Clone, Copy)]
pub struct SessionFacts<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its state.
    pub state: &'a str,
    /// Its browser.
    pub browser: &'a str,
    /// Its owner key, if any.
    pub owner: Option<&'a str>,
    /// Its grid options as recorded (name and labels live there).
    pub grid_options: &'a Value,
    /// Unix ms when it was created.
    pub created_at: i64,
}

impl SessionFilter {
    /// Reads the filter from query parameters; unknown or malformed ones are errors.
    /// `created_after`/`created_before` are Unix milliseconds.
    pub fn from_query(params: &[(String, String)]) -> Result<SessionFilter, GridError> {
        let mut f = SessionFilter::default();
        for (k, v) in params {
            match k.as_str() {
                "state" => {
                    if !SESSION_STATES.contains(&v.as_str()) {
                        return Err(GridError::invalid_argument(format!(
                            "state must be one of {}, got {v:?}",
                            SESSION_STATES.join(", ")
                        )));
                    }
                    f.state = Some(v.clone());
                }
                "browser" => f.browser = Some(v.clone()),
                "owner" => f.owner = Some(v.clone()),
                "name" => f.name = Some(v.clone()),
                // An empty search keeps everything (a form's blank field).
                "q" => f.q = Some(v.trim().to_string()).filter(|q| !q.is_empty()),
                "label" => {
                    let (lk, lv) = v
                        .split_once('=')
                        .filter(|(k, _)| !k.is_empty())
                        .ok_or_else(|| {
                            GridError::invalid_argument(format!(
                                "label must be KEY=VALUE, got {v:?}"
                            ))
                        })?;
                    f.label = Some((lk.to_string(), lv.to_string()));
                }
                "created_after" => f.created_after = Some(unix_ms(k, v)?),
                "created_before" => f.created_before = Some(unix_ms(k, v)?),
                "cursor" => f.cursor = Some(Cursor::decode(v)?),
                // Paging, read by the caller.
                "limit" => {}
                other => {
                    return Err(GridError::invalid_argument(format!(
                        "unknown query parameter {other:?}"
                    )))
                }
            }
        }
        Ok(f)
    }

    /// Whether a session with these facts belongs in the list.
    pub fn matches(&self, s: &SessionFacts<'_>) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        let options = s.grid_options;
        let name = options.get("name").and_then(Value::as_str).unwrap_or("");
        let label_ok = self.label.as_ref().is_none_or(|(k, v)| {
            options
                .get("labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                == Some(v.as_str())
        });
        eq(&self.state, s.state)
            && eq(&self.browser, s.browser)
            && eq(&self.owner, s.owner.unwrap_or(""))
            && (self.name.is_none() || eq(&self.name, name))
            && label_ok
            && self.q.as_deref().is_none_or(|q| found(q, s))
            && self.created_after.is_none_or(|t| s.created_at >= t)
            && self.created_before.is_none_or(|t| s.created_at < t)
            && self
                .cursor
                .as_ref()
                .is_none_or(|c| c.before(s.created_at, s.id))
    }
}

/// Whether `q` occurs, ignoring case, in the id, name, owner, browser, or
/// a label's key or value of session `s`.
fn found(q: &str, s: &SessionFacts<'_>) -> bool {
    let q = q.to_lowercase();
    let has = |text: &str| text.to_lowercase().contains(&q);
    let options = s.grid_options;
    let labels = options.get("labels").and_then(Value::as_object);
    has(s.id)
        || has(s.browser)
        || s.owner.is_some_and(has)
        || options.get("name").and_then(Value::as_str).is_some_and(has)
        || labels.is_some_and(|l| l.iter().any(|(k, v)| has(k) || v.as_str().is_some_and(has)))
}

fn unix_ms(name: &str, v: &str) -> Result<i64, GridError> {
    v.parse::<i64>().ok().filter(|t| *t >= 0).ok_or_else(|| {
        GridError::invalid_argument(format!("{name} must be Unix milliseconds, got {v:?}"))
    })
}

/// A session's state as the API shows it: what its record says, except that
/// a session some node (or this process) runs is `running` even while the
/// record of its start is still being written (its client may hold it already).
pub fn session_state(recorded: &str, runs: bool, ended: bool) -> &str {
    if runs && !ended {
        "running"
    } else {
        recorded
    }
}

/// Window size of a browser made through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WindowSize {
    /// Pixels.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 16384))]
    pub width: u32,
    /// Pixels.
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 16384))]
    pub height: u32,
}

/// `POST /api/v1/sessions`: a browser as hosted browser APIs ask for one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// `chrome` (default), `chromium` or `firefox`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(chrome|chromium|firefox)$"))]
    pub browser: Option<String>,
    /// A browser version the grid must offer.
    pub version: Option<String>,
    /// The pool whose nodes must run it (scaled-out grids).
    pub pool: Option<String>,
    /// Without a visible window (default true).
    pub headless: Option<bool>,
    /// The browser window's size.
    pub window: Option<WindowSize>,
    /// Seconds without a command (or CDP/BiDi traffic) before the session ends.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1e8))]
    pub idle_timeout: Option<f64>,
    /// Seconds after which the session ends whatever it does.
    #[cfg_attr(feature = "openapi", schema(exclusive_minimum = 0, maximum = 1e8))]
    pub session_timeout: Option<f64>,
    /// A display name.
    pub name: Option<String>,
    /// Free-form labels.
    pub labels: Option<BTreeMap<String, String>>,
}

/// Largest window side accepted, in pixels.
const MAX_WINDOW: u32 = 16_384;

impl CreateSession {
    /// The W3C new-session body this request stands for: the browser and
    /// its switches, `webSocketUrl: true` (so the session has a BiDi
    /// websocket), and the grid options (name, labels, timeouts, pool).
    pub fn to_new_session_body(&self) -> Result<Value, GridError> {
        let browser = self.browser.as_deref().unwrap_or("chrome");
        let firefox = match browser {
            "chrome" | "chromium" => false,
            "firefox" => true,
            other => {
                return Err(GridError::invalid_argument(format!(
                    "browser must be chrome, chromium or firefox, got {other:?}"
                )))
            }
        };
        let headless = self.headless.unwrap_or(true);
        let mut args: Vec<String> = Vec::new();
        if headless {
            args.push(
                if firefox {
                    "-headless"
                } else {
                    "--headless=new"
                }
                .into(),
            );
        }
        if let Some(w) = self.window {
            if !(1..=MAX_WINDOW).contains(&w.width) || !(1..=MAX_WINDOW).contains(&w.height) {
                return Err(GridError::invalid_argument(format!(
                    "window width and height must be 1 to {MAX_WINDOW} pixels"
                )));
            }
            if firefox {
                args.push(format!("--width={}", w.width));
                args.push(format!("--height={}", w.height));
            } else {
                args.push(format!("--window-size={},{}", w.width, w.height));
            }
        }
        let mut always = Map::new();
        always.insert(
            "browserName".into(),
            json!(if firefox { "firefox" } else { "chrome" }),
        );
        if let Some(v) = &self.version {
            always.insert("browserVersion".into(), json!(v));
        }
        always.insert("webSocketUrl".into(), json!(true));
        let vendor = if firefox {
            "moz:firefoxOptions"
        } else {
            "goog:chromeOptions"
        };
        always.insert(vendor.into(), json!({ "args": args }));
        let mut options = Map::new();
        if let Some(n) = &self.name {
            options.insert("name".into(), json!(n));
        }
        if let Some(l) = &self.labels {
            options.insert("labels".into(), json!(l));
        }
        if let Some(p) = &self.pool {
            options.insert("pool".into(), json!(p));
        }
        for (key, secs) in [
            ("idleTimeout", self.idle_timeout),
            ("sessionTimeout", self.session_timeout),
        ] {
            if let Some(s) = secs {
                if crate::options::positive_seconds(s).is_none() {
                    return Err(GridError::invalid_argument(format!(
                        "{key} must be a positive number of seconds"
                    )));
                }
                options.insert(key.into(), json!(s));
            }
        }
        always.insert(GRID_OPTIONS_KEY.into(), Value::Object(options));
        Ok(json!({"capabilities": {"alwaysMatch": always, "firstMatch": [{}]}}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_that_runs_is_running_whatever_its_record_says_yet() {
        assert_eq!(session_state("provisioning", true, false), "running");
        assert_eq!(session_state("provisioning", false, false), "provisioning");
        assert_eq!(session_state("ended", true, true), "ended");
        assert_eq!(session_state("running", false, false), "running");
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn limits() {
        assert_eq!(page_limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(page_limit(Some("1")).unwrap(), 1);
        assert_eq!(page_limit(Some("500")).unwrap(), 500);
        for bad in ["0", "501", "-1", "x", ""] {
            assert!(page_limit(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            at: 1_700_000_000_123,
            id: "abc:def".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "!!!", "bm9jb2xvbg", "eDph"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_order_is_newest_first_then_id_descending() {
        let c = Cursor {
            at: 10,
            id: "m".into(),
        };
        assert!(c.before(9, "z"));
        assert!(c.before(10, "a"));
        assert!(!c.before(10, "m"));
        assert!(!c.before(10, "z"));
        assert!(!c.before(11, "a"));
    }

    #[test]
    fn paginate_gives_a_cursor_only_when_more_remain() {
        let key = |n: &i64| Cursor {
            at: *n,
            id: n.to_string(),
        };
        let (page, next) = paginate(vec![5, 4, 3], 3, key);
        assert_eq!((page, next), (vec![5, 4, 3], None));
        let (page, next) = paginate(vec![5, 4, 3], 2, key);
        assert_eq!(page, vec![5, 4]);
        assert_eq!(Cursor::decode(&next.unwrap()).unwrap(), key(&4));
    }

    #[test]
    fn filters_parse_and_refuse_bad_input() {
        let f = SessionFilter::from_query(&q(&[
            ("state", "running"),
            ("label", "team=web=x"),
            ("created_after", "5"),
            ("limit", "3"),
        ]))
        .unwrap();
        assert_eq!(f.state.as_deref(), Some("running"));
        assert_eq!(f.label, Some(("team".into(), "web=x".into())));
        assert_eq!(f.created_after, Some(5));
        assert_eq!(f.q, None);
        let f = SessionFilter::from_query(&q(&[("q", "  Login ")])).unwrap();
        assert_eq!(f.q.as_deref(), Some("Login"));
        assert_eq!(
            SessionFilter::from_query(&q(&[("q", " ")])).unwrap().q,
            None
        );
        for bad in [
            ("state", "sleeping"),
            ("label", "novalue"),
            ("label", "=x"),
            ("created_before", "yesterday"),
            ("created_after", "-3"),
            ("cursor", "zz"),
            ("colour", "red"),
        ] {
            assert!(SessionFilter::from_query(&q(&[bad])).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn filters_match_each_field() {
        let options = json!({"name": "login", "labels": {"team": "web"}});
        let facts = SessionFacts {
            id: "s1",
            state: "running",
            browser: "chrome",
            owner: Some("alice"),
            grid_options: &options,
            created_at: 100,
        };
        let yes = |f: SessionFilter| assert!(f.matches(&facts), "{f:?}");
        let no = |f: SessionFilter| assert!(!f.matches(&facts), "{f:?}");
        let d = SessionFilter::default;
        yes(d());
        yes(SessionFilter {
            state: Some("running".into()),
            ..d()
        });
        no(SessionFilter {
            state: Some("ended".into()),
            ..d()
        });
        yes(SessionFilter {
            browser: Some("chrome".into()),
            ..d()
        });
        no(SessionFilter {
            browser: Some("firefox".into()),
            ..d()
        });
        yes(SessionFilter {
            owner: Some("alice".into()),
            ..d()
        });
        no(SessionFilter {
            owner: Some("bob".into()),
            ..d()
        });
        no(SessionFilter {
            owner: Some("".into()),
            ..d()
        });
        yes(SessionFilter {
            name: Some("login".into()),
            ..d()
        });
        no(SessionFilter {
            name: Some("logout".into()),
            ..d()
        });
        yes(SessionFilter {
            label: Some(("team".into(), "web".into())),
            ..d()
        });
        no(SessionFilter {
            label: Some(("team".into(), "api".into())),
            ..d()
        });
        let search = |q: &str| SessionFilter {
            q: Some(q.into()),
            ..d()
        };
        // Id, name, owner, browser, label key and value, in any case.
        for q in ["S1", "LOG", "gin", "Alice", "chrom", "TEAM", "web"] {
            yes(search(q));
        }
        for q in ["firefox", "bob", "team=web", "s2"] {
            no(search(q));
        }
        no(SessionFilter {
            label: Some(("zone".into(), "web".into())),
            ..d()
        });
        yes(SessionFilter {
            created_after: Some(100),
            created_before: Some(101),
            ..d()
        });
        no(SessionFilter {
            created_after: Some(101),
            ..d()
        });
        no(SessionFilter {
            created_before: Some(100),
            ..d()
        });
        yes(SessionFilter {
            cursor: Some(Cursor {
                at: 100,
                id: "s2".into(),
            }),
            ..d()
        });
        no(SessionFilter {
            cursor: Some(Cursor {
                at: 100,
                id: "s1".into(),
            }),
            ..d()
        });
    }

    #[test]
    fn create_translates_to_capabilities() {
        let req: CreateSession = serde_json::from_value(json!({
            "browser": "chrome", "window": {"width": 800, "height": 600},
            "idle_timeout": 30, "session_timeout": 600, "name": "agent",
            "labels": {"team": "web"}, "pool": "gpu"
        }))
        .unwrap();
        let body = req.to_new_session_body().unwrap();
        let a = &body["capabilities"]["alwaysMatch"];
        assert_eq!(a["browserName"], "chrome");
        assert_eq!(a["webSocketUrl"], true);
        assert_eq!(
            a["goog:chromeOptions"]["args"],
            json!(["--headless=new", "--window-size=800,600"])
        );
        assert_eq!(
            a["gridiron:options"],
            json!({"name": "agent", "labels": {"team": "web"}, "pool": "gpu",
                   "idleTimeout": 30.0, "sessionTimeout": 600.0})
        );
        let ff = CreateSession {
            browser: Some("firefox".into()),
            headless: Some(false),
            ..Default::default()
        };
        let a = ff.to_new_session_body().unwrap()["capabilities"]["alwaysMatch"].clone();
        assert_eq!(a["moz:firefoxOptions"]["args"], json!([]));
    }

    #[test]
    fn create_refuses_bad_requests() {
        let bad = [
            CreateSession {
                browser: Some("safari".into()),
                ..Default::default()
            },
            CreateSession {
                window: Some(WindowSize {
                    width: 0,
                    height: 10,
                }),
                ..Default::default()
            },
            CreateSession {
                window: Some(WindowSize {
                    width: 10,
                    height: 100_000,
                }),
                ..Default::default()
            },
            CreateSession {
                idle_timeout: Some(-1.0),
                ..Default::default()
            },
            CreateSession {
                session_timeout: Some(f64::NAN),
                ..Default::default()
            },
        ];
        for b in bad {
            assert!(b.to_new_session_body().is_err(), "{b:?}");
        }
        assert!(serde_json::from_value::<CreateSession>(json!({"browsr": "chrome"})).is_err());
    }
}
