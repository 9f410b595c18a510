//! Warm sessions: fully started, never-used WebDriver sessions kept ready
//! for requests of the grid's default capabilities (`--warm chrome=2`).
//!
//! A warm session holds a slot, so it counts against `--max-sessions`, but
//! it never makes a request wait: slots are taken for warm sessions only
//! when nobody waits, and a request that has to wait makes one warm session
//! give its slot up at once. A warm session is nobody's until a request
//! takes it: it is not in `/status`, the API, the records or the events, and
//! its session (with its timeouts) starts when it is taken. Each has its own
//! fresh profile, exactly like a session started for a request.

use super::Manager;
use crate::slots::SlotPermit;
use gridiron_domain::capabilities::{parse_new_session, select, Selection};
use gridiron_domain::launch::{driver_capabilities, LaunchDefaults};
use gridiron_domain::warm::{default_request, warm_key};
use gridiron_domain::{GridError, Origin};
use gridiron_provision::SessionHandle;
use serde_json::Value;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{debug, warn};

/// The slot group warm sessions hold their slots in. No API key can have
/// this name (it holds a NUL byte), so no key's limit counts them.
const WARM_GROUP: &str = "\u{0}warm";

/// The longest pause between attempts after warm starts failed in a row.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The warm sessions of one manager.
#[derive(Default)]
pub(crate) struct WarmPool {
    /// (install, how many to keep, key of its sessions), one per browser kept warm.
    targets: Vec<(usize, usize, Value)>,
    state: Mutex<State>,
    /// Wakes the refiller: a session was taken, a slot came free, a start ended.
    changed: Arc<Notify>,
}

#[derive(Default)]
struct State {
    ready: Vec<WarmSession>,
    starting: Vec<Start>,
    closed: bool,
    next_start: u64,
    /// Warm starts that failed in a row, for the pause before the next.
    failures: u32,
}

/// A warm session being started; its slot is taken away if a request needs it.
struct Start {
    id: u64,
    permit: Option<SlotPermit>,
}

/// A started, never-used session of the grid's default capabilities.
pub(crate) struct WarmSession {
    install: usize,
    key: Value,
    permit: Option<SlotPermit>,
    session: TakenWarm,
}

/// A warm session's driver and the driver's answer; what a request that
/// takes it gets. Dropped without being used, its processes end.
pub(crate) struct TakenWarm {
    process: Option<SessionHandle>,
    driver_session_id: String,
    value: Value,
}

impl TakenWarm {
    /// The driver (and its browser), the driver's id of the session and its
    /// answer to the new-session request (`value`).
    pub(crate) fn into_parts(mut self) -> (SessionHandle, String, Value) {
        let process = self.process.take().expect("a warm session has its process");
        (
            process,
            std::mem::take(&mut self.driver_session_id),
            self.value.take(),
        )
    }

    fn process(&self) -> &SessionHandle {
        self.process
            .as_ref()
            .expect("a warm session has its process")
    }
}

impl Drop for TakenWarm {
    fn drop(&mut self) {
        // Not used: its processes go, off the caller's path.
        if let Some(p) = self.process.take() {
            p.kill();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { p.shutdown().await });
            }
        }
    }
}

impl WarmPool {
    /// A pool keeping `targets` (install, count, key) warm.
    pub(crate) fn new(targets: Vec<(usize, usize, Value)>) -> WarmPool {
        WarmPool {
            targets,
            ..WarmPool::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether any browser is kept warm.
    pub(crate) fn enabled(&self) -> bool {
        !self.targets.is_empty()
    }

    /// Slots held by warm sessions (ready or starting): free for any request.
    pub(crate) fn held(&self) -> usize {
        let st = self.lock();
        st.ready.len() + st.starting.iter().filter(|s| s.permit.is_some()).count()
    }

    /// Warm sessions ready to be taken.
    pub(crate) fn ready(&self) -> usize {
        self.lock().ready.len()
    }

    /// Takes a ready warm session of `install` whose key is `key`. Its slot
    /// is given back: the taker asks for one of its own (its key's limits apply).
    fn take(&self, install: usize, key: &Value) -> Option<WarmSession> {
        let mut st = self.lock();
        loop {
            let at = st
                .ready
                .iter()
                .position(|w| w.install == install && w.key == *key)?;
            let w = st.ready.remove(at);
            if !w.session.process().browser_gone() {
                return Some(w);
            }
            // Died while it waited: dropped (and cleaned up), the next is tried.
        }
    }

    /// A request has to wait for a slot: one warm session gives its slot up,
    /// a starting one first (it cost the least so far).
    pub(crate) fn give_way(&self) {
        // Let go of outside the pool's lock: a slot, or a whole warm session.
        let freed: (Option<SlotPermit>, Option<WarmSession>) = {
            let mut st = self.lock();
            match st.starting.iter_mut().find_map(|s| s.permit.take()) {
                Some(permit) => (Some(permit), None),
                None if !st.ready.is_empty() => (None, Some(st.ready.remove(0))),
                None => return,
            }
        };
        debug!("a warm session gave its slot to a waiting request");
        drop(freed);
    }

    /// Wakes the refiller.
    pub(crate) fn changed(&self) {
        self.changed.notify_one();
    }

    /// Stops keeping sessions warm and ends the ready ones; starts under way
    /// end theirs when they finish.
    pub(crate) async fn close(&self) {
        let (ready, starting) = {
            let mut st = self.lock();
            st.closed = true;
            let starting: Vec<Option<SlotPermit>> =
                st.starting.iter_mut().map(|s| s.permit.take()).collect();
            (std::mem::take(&mut st.ready), starting)
        };
        drop(starting);
        let mut ends = tokio::task::JoinSet::new();
        for w in ready {
            let (p, ..) = w.session.into_parts();
            ends.spawn(async move { p.shutdown().await });
        }
        while ends.join_next().await.is_some() {}
        self.changed.notify_one();
    }
}

impl Manager {
    /// The selection a default request of each browser in `counts` makes,
    /// with the key of its sessions: what the pool keeps warm.
    pub(super) fn warm_targets(
        catalog: &[gridiron_domain::Stereotype],
        config: &crate::config::GridConfig,
        sandbox: bool,
    ) -> Vec<(usize, usize, Value)> {
        config
            .warm
            .0
            .iter()
            .filter_map(|(kind, n)| {
                let sel = default_selection(*kind, catalog, config.warm_pool.as_ref())?;
                let key = key_of(&sel, catalog, config.headless, sandbox);
                Some((sel.stereotype, *n, key))
            })
            .collect()
    }

    /// Takes a warm session for a request of `selection`, if one was started
    /// with what this request's driver would receive.
    pub(super) fn take_warm(&self, selection: &Selection) -> Option<TakenWarm> {
        // A warm browser was started without a download directory.
        if !self.warm.enabled() || gridiron_domain::launch::downloads_enabled(&selection.merged) {
            return None;
        }
        let key = key_of(
            selection,
            &self.catalog,
            self.config.headless,
            self.provisioner.chromium_sandbox(),
        );
        // Its slot goes back now: the request asks for one of its own next.
        self.warm
            .take(selection.stereotype, &key)
            .map(|w| w.session)
    }

    /// A request is about to ask for a slot and none is free: a warm
    /// session gives its own up first, so the request does not queue.
    pub(super) fn make_room(&self) {
        if self.warm.enabled() && !self.slots.snapshot().3 {
            self.warm.give_way();
        }
    }

    /// Starts warm sessions while some are missing and a slot is free that
    /// nobody waits for; one start at a time, so warm starts never crowd out
    /// the sessions clients are starting.
    fn fill_warm(self: &Arc<Self>) {
        if self.is_shutting_down() {
            return;
        }
        let mut st = self.warm.lock();
        if st.closed || !st.starting.is_empty() {
            return;
        }
        for (install, want, key) in &self.warm.targets {
            let have = st.ready.iter().filter(|w| w.install == *install).count();
            if have >= *want {
                continue;
            }
            let Some(permit) = self.slots.try_acquire(WARM_GROUP) else {
                return;
            };
            let id = st.next_start;
            st.next_start += 1;
            st.starting.push(Start {
                id,
                permit: Some(permit),
            });
            let (m, install, key) = (self.clone(), *install, key.clone());
            self.tasks
                .spawn(async move { m.start_warm(id, install, key).await });
            return;
        }
    }

    async fn start_warm(self: Arc<Self>, id: u64, install: usize, key: Value) {
        let started = self.start_warm_session(install).await;
        let (outcome, pause) = {
            let mut st = self.warm.lock();
            let permit = st
                .starting
                .iter()
                .position(|s| s.id == id)
                .and_then(|at| st.starting.remove(at).permit);
            match started {
                Ok(taken) => {
                    st.failures = 0;
                    let w = WarmSession {
                        install,
                        key,
                        permit,
                        session: taken,
                    };
                    // Gave its slot away (or the pool closed) while starting: not kept.
                    if w.permit.is_some() && !st.closed {
                        let p = w.session.process();
                        let exit = Some((p.exit_watch(), p.session_id().to_string()));
                        st.ready.push(w);
                        (exit, None)
                    } else {
                        drop(st);
                        drop(w);
                        (None, None)
                    }
                }
                Err(e) => {
                    st.failures += 1;
                    let pause = Duration::from_secs(1 << st.failures.min(6)).min(MAX_BACKOFF);
                    warn!(error = %e, retry_in = ?pause, "a warm session could not be started");
                    (None, Some(pause))
                }
            }
        };
        if let Some((mut exit, process_id)) = outcome {
            // A warm browser that dies while it waits leaves the pool (and its slot).
            let weak = Arc::downgrade(&self);
            self.tasks.spawn_until_stopped(async move {
                let _ = exit.wait_for(Option::is_some).await;
                if let Some(m) = weak.upgrade() {
                    m.drop_dead_warm(&process_id);
                }
            });
        }
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        self.warm.changed();
    }

    fn drop_dead_warm(&self, process_id: &str) {
        let dead = {
            let mut st = self.warm.lock();
            st.ready
                .iter()
                .position(|w| w.session.process().session_id() == process_id)
                .map(|at| st.ready.remove(at))
        };
        if dead.is_some() {
            warn!("a warm browser exited while it waited; starting another");
            drop(dead);
            self.warm.changed();
        }
    }

    /// Starts a driver and its browser with the grid's default capabilities.
    async fn start_warm_session(&self, install: usize) -> Result<TakenWarm, GridError> {
        let stereotype = &self.catalog[install];
        let sel = default_selection(
            stereotype.kind,
            &self.catalog,
            self.config.warm_pool.as_ref(),
        )
        .ok_or_else(|| GridError::not_created(Origin::Grid, "no browser for warm sessions"))?;
        let driver = self.provisioner.start_driver(install).await?;
        let answer = self.ask_driver(&driver, &sel).await;
        self.provisioner.replenish(install);
        match answer {
            Ok((driver_session_id, value)) => {
                driver.browser_started().await;
                Ok(TakenWarm {
                    process: Some(driver),
                    driver_session_id,
                    value,
                })
            }
            Err(e) => {
                driver.shutdown().await;
                Err(e.into())
            }
        }
    }
}

/// What a request of no particular kind for `kind` selects (with `pool`'s
/// defaults, as a hub fills them in for the pool's requests).
fn default_selection(
    kind: gridiron_domain::BrowserKind,
    catalog: &[gridiron_domain::Stereotype],
    pool: Option<&gridiron_domain::pool::Pool>,
) -> Option<Selection> {
    let mut body = default_request(kind);
    if let Some(pool) = pool {
        gridiron_domain::pool::apply_defaults(&mut body, pool);
    }
    let req = parse_new_session(&body).ok()?;
    select(&req, catalog).ok()
}

/// The warm key of a request of `selection`: what its driver would receive.
fn key_of(
    selection: &Selection,
    catalog: &[gridiron_domain::Stereotype],
    headless: bool,
    sandbox: bool,
) -> Value {
    let defaults = LaunchDefaults {
        headless,
        profile_dir: None,
        sandbox,
        download_dir: None,
    };
    warm_key(&driver_capabilities(
        &selection.merged,
        &catalog[selection.stereotype],
        &defaults,
    ))
}

/// How long the refiller waits after a change before it takes a free slot:
/// a client that quits and asks again at once (a suite opening a session per
/// test) finds the slot still free instead of making a just-started warm
/// session give it up.
const REFILL_AFTER: Duration = Duration::from_millis(100);

/// Keeps the pool full: wakes whenever something changed, never on a timer.
pub(super) async fn keep_warm(weak: Weak<Manager>) {
    let Some(notify) = weak.upgrade().map(|m| m.warm.changed.clone()) else {
        return;
    };
    loop {
        let changed = notify.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let Some(m) = weak.upgrade() else { return };
        m.fill_warm();
        drop(m);
        changed.await;
        tokio::time::sleep(REFILL_AFTER).await;
    }
}
