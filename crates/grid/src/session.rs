//! A running session as the grid holds it in memory.

use crate::slots::SlotPermit;
use gridiron_domain::lifecycle::{transition, SessionEvent, Timeouts};
use gridiron_domain::{EndReason, GridOptions, SessionState};
use gridiron_provision::SessionHandle;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Wakes the timeout watcher when a session's next timeout comes earlier than
/// the watcher planned to look: the watcher sleeps until the earliest timeout
/// of all sessions instead of looking at them on a fixed tick.
pub(crate) struct Alarm {
    /// Rung when the watcher must look again; keeps a ring that came while
    /// it was not waiting.
    notify: Notify,
    /// When the watcher will look next, in ms after `epoch`; `u64::MAX` while
    /// it looks at the sessions (a deadline that moves meanwhile rings, so
    /// the watcher looks again rather than miss it).
    wake_at_ms: AtomicU64,
    /// The origin of `wake_at_ms`.
    epoch: Instant,
}

impl Alarm {
    /// An alarm that nobody has planned with yet.
    pub(crate) fn new() -> Arc<Alarm> {
        Arc::new(Alarm {
            notify: Notify::new(),
            wake_at_ms: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        })
    }

    /// The watcher begins looking at the sessions.
    pub(crate) fn looking(&self) {
        self.wake_at_ms.store(u64::MAX, Ordering::SeqCst);
    }

    /// The watcher will look again after `wait` (`None`: only when rung).
    pub(crate) fn plan(&self, wait: Option<Duration>) {
        let at = wait.map_or(u64::MAX, |w| {
            let ms = (self.epoch.elapsed() + w).as_millis();
            u64::try_from(ms).unwrap_or(u64::MAX)
        });
        self.wake_at_ms.store(at, Ordering::SeqCst);
    }

    /// Waits for a ring, or `wait` (`None`: for a ring only).
    pub(crate) async fn sleep(&self, wait: Option<Duration>) {
        match wait {
            Some(w) => {
                let _ = tokio::time::timeout(w, self.notify.notified()).await;
            }
            None => self.notify.notified().await,
        }
    }

    /// Makes the watcher look again now.
    pub(crate) fn ring(&self) {
        self.notify.notify_one();
    }

    /// A session may now time out `after` from now: rings if that is before
    /// the watcher's next look.
    fn deadline_in(&self, after: Duration) {
        let at = (self.epoch.elapsed() + after).as_millis();
        if at < u128::from(self.wake_at_ms.load(Ordering::SeqCst)) {
            self.ring();
        }
    }
}

/// What kind of session runs: a WebDriver one behind a driver, or a bare
/// browser for a CDP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionKind {
    /// A driver runs the browser; commands are forwarded to it.
    WebDriver {
        /// The driver's own id for the session, used on the driver side.
        driver_session_id: String,
    },
    /// A browser alone, reached only through its DevTools websocket.
    CdpOnly,
}

/// One running session: where its driver is, its clocks and counters.
pub struct Session {
    /// The grid's id, seen by clients.
    pub id: String,
    /// WebDriver (with the driver's session id) or CDP-only.
    pub kind: SessionKind,
    /// `http://127.0.0.1:PORT` of the session's driver; for a CDP-only
    /// session, the browser's DevTools websocket URL.
    pub driver_url: String,
    /// `chrome` or `firefox`.
    pub browser: String,
    /// Options the client gave.
    pub options: GridOptions,
    /// Effective timeouts (client overrides applied).
    pub timeouts: Timeouts,
    /// When the driver granted it.
    pub started: Instant,
    /// Unix ms when the driver granted it.
    pub started_at_ms: i64,
    /// Which slot it holds.
    pub slot: usize,
    /// The API key that created it; only it (and admins) may use it.
    pub owner: Option<String>,
    /// The client asked for managed downloads (`se:downloadsEnabled`): the
    /// grid serves `/se/files` from the session's download directory.
    pub downloads: bool,
    /// The grid's account of the session's life, kept as `timeline.json`.
    pub timeline: crate::timeline::Timeline,
    /// Milliseconds after `started` of the last command start or end.
    last_activity_ms: AtomicU64,
    /// Commands being proxied right now; a session is never idle while one runs.
    in_flight: AtomicUsize,
    /// Of those, commands (not tunnels): they see the browser's fate first-hand.
    commands_running: AtomicUsize,
    /// Commands proxied so far.
    commands: AtomicU64,
    /// Something (a command, a tunnel) used it since its start.
    used: AtomicBool,
    /// Ms after `started` by which an unconfirmed session must be used (0: no
    /// doubt its client has it; see [`Session::expect_claim`]).
    claim_by_ms: AtomicU64,
    /// When the last activity event was due (ms since the start, plus one; 0: never).
    activity_reported_ms: AtomicU64,
    /// Websockets (CDP, BiDi) open right now, held under the grid's cap.
    websockets: AtomicUsize,
    /// The timeout watcher's alarm, once the watcher has seen this session.
    alarm: OnceLock<Arc<Alarm>>,
    /// DevTools HTTP base of the browser, for CDP tunnels.
    pub cdp_http: Option<String>,
    /// The driver's BiDi websocket, for BiDi tunnels.
    pub bidi_url: Option<String>,
    /// The session's processes, asked whether the browser still runs.
    process: SessionHandle,
    state: Mutex<SessionState>,
    /// The processes and the slot, taken exactly once by whoever ends the session.
    resources: Mutex<Option<(SessionHandle, SlotPermit)>>,
    /// What must be finished when the session ends, before its artifacts are collected.
    end_hooks: Mutex<Vec<EndHook>>,
    /// Its DevTools observer (console log, HAR) and live view.
    pub(crate) devtools: crate::devtools::SessionTools,
}

/// Work that completes one of a session's artifacts once the session has
/// ended (its processes are killed by then): a log flushed, a file written.
pub type EndHook =
    Box<dyn FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send>;

/// What a session is made of once its browser is up.
pub struct Launched {
    /// The driver (or, for CDP sessions, the browser) process.
    pub process: SessionHandle,
    /// The slot it holds.
    pub permit: SlotPermit,
    /// WebDriver or CDP-only.
    pub kind: SessionKind,
    /// `chrome` or `firefox`.
    pub browser: String,
    /// Client options.
    pub options: GridOptions,
    /// Effective timeouts.
    pub timeouts: Timeouts,
    /// Unix ms of the start.
    pub started_at_ms: i64,
    /// Where its websockets really are.
    pub targets: gridiron_domain::capabilities::WebSocketTargets,
    /// The API key that asked for it.
    pub owner: Option<String>,
    /// Managed downloads are on (see [`Session::downloads`]).
    pub downloads: bool,
    /// Its steps since it was requested.
    pub timeline: crate::timeline::Timeline,
}

impl Session {
    /// Whether this is a bare browser for a CDP client, with no WebDriver driver.
    pub fn is_cdp_only(&self) -> bool {
        self.kind == SessionKind::CdpOnly
    }

    /// A running session from its launched parts.
    pub fn new(l: Launched) -> Self {
        let Launched {
            process,
            permit,
            kind,
            browser,
            options,
            timeouts,
            started_at_ms,
            targets,
            owner,
            downloads,
            timeline,
        } = l;
        Session {
            cdp_http: targets.cdp_http,
            bidi_url: targets.bidi,
            id: process.session_id().to_string(),
            kind,
            driver_url: process.endpoint().to_string(),
            browser,
            options,
            timeouts,
            started: Instant::now(),
            started_at_ms,
            slot: permit.index,
            owner,
            downloads,
            timeline,
            last_activity_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            commands_running: AtomicUsize::new(0),
            commands: AtomicU64::new(0),
            used: AtomicBool::new(false),
            claim_by_ms: AtomicU64::new(0),
            activity_reported_ms: AtomicU64::new(0),
            websockets: AtomicUsize::new(0),
            alarm: OnceLock::new(),
            process: process.clone(),
            state: Mutex::new(SessionState::Running),
            resources: Mutex::new(Some((process, permit))),
            end_hooks: Mutex::new(Vec::new()),
            devtools: Default::default(),
        }
    }

    /// Marks activity now (a command, or bytes through a tunnel).
    pub fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_activity_ms.store(ms, Ordering::Relaxed);
        self.used.store(true, Ordering::Relaxed);
    }

    /// The answer of this session's start may not have reached its client:
    /// unless something uses it within `grace` from now, it ends
    /// ([`EndReason::ClientGone`]) long before its idle timeout would.
    pub fn expect_claim(&self, grace: Duration) {
        let by = self.started.elapsed() + grace;
        let ms = (by.as_millis() as u64).max(1);
        // An earlier deadline stands.
        let _ = self
            .claim_by_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                (old == 0 || ms < old).then_some(ms)
            });
        if let Some(alarm) = self.alarm.get() {
            alarm.deadline_in(grace);
        }
    }

    /// Whether a command or tunnel has used this session since its start.
    pub fn used(&self) -> bool {
        self.used.load(Ordering::Relaxed)
    }

    /// The age by which [`Session::expect_claim`] wants it used, and whether it was.
    fn claim(&self) -> (Option<Duration>, bool) {
        let ms = self.claim_by_ms.load(Ordering::Relaxed);
        (
            (ms > 0).then(|| Duration::from_millis(ms)),
            self.used.load(Ordering::Relaxed),
        )
    }

    /// A command starts: counts it and marks activity. Ends with [`Session::command_done`].
    /// `true` when an activity event is due (at most one a second per session).
    pub fn command_started(&self) -> bool {
        self.commands.fetch_add(1, Ordering::Relaxed);
        self.commands_running.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        // Times are ms since the start, plus one: 0 means never reported.
        let now = self.started.elapsed().as_millis() as u64 + 1;
        let last = self.activity_reported_ms.load(Ordering::Relaxed);
        let last = (last > 0).then_some(last as i64);
        gridiron_domain::events::activity_due(last, now as i64)
            && self
                .activity_reported_ms
                .compare_exchange(
                    last.unwrap_or(0) as u64,
                    now,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// A websocket tunnel opened: the session is busy until it closes.
    pub fn tunnel_opened(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// A command finished (or failed).
    pub fn command_done(&self) {
        self.commands_running.fetch_sub(1, Ordering::Relaxed);
        self.tunnel_closed();
    }

    /// A tunnel closed (and, through [`Session::command_done`], a command ended).
    pub fn tunnel_closed(&self) {
        self.touch();
        // After the touch: a watcher that sees the count drop sees the new time.
        // SeqCst, as the alarm below: a watcher either sees the count at 0, or
        // has its alarm set before this looks for it.
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            // The idle clock starts now: its deadline may be before the
            // watcher's next look (which planned none while this ran).
            if let Some(alarm) = self.alarm.get() {
                alarm.deadline_in(self.timeouts.idle);
            }
        }
    }

    /// Whether a command is being proxied right now. Its outcome tells why a
    /// browser went away (a closed last window is a quit, not a crash).
    pub fn command_running(&self) -> bool {
        self.commands_running.load(Ordering::Relaxed) > 0
    }

    /// Counts a websocket opening, unless `cap` are open already (`false`).
    /// Each `true` is matched by one [`Session::websocket_closed`].
    pub fn websocket_opening(&self, cap: usize) -> bool {
        self.websockets
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    /// A websocket counted by [`Session::websocket_opening`] closed.
    pub fn websocket_closed(&self) {
        self.websockets.fetch_sub(1, Ordering::AcqRel);
    }

    /// Commands so far.
    pub fn command_count(&self) -> u64 {
        self.commands.load(Ordering::Relaxed)
    }

    /// Whether a timeout says this session must end now.
    pub fn timeout_due(&self) -> Option<EndReason> {
        let (age, since_activity, in_flight) = self.clocks();
        let (grace, used) = self.claim();
        if gridiron_domain::lifecycle::unclaimed_due(grace, age, used || in_flight) {
            return Some(EndReason::ClientGone);
        }
        gridiron_domain::lifecycle::timeout_due(self.timeouts, age, since_activity, in_flight)
    }

    /// How long until a timeout would end this session if nothing changes
    /// (`None`: none can while a command runs and there is no maximum).
    pub fn next_timeout(&self) -> Option<Duration> {
        let (age, since_activity, in_flight) = self.clocks();
        let (grace, used) = self.claim();
        let unclaimed = gridiron_domain::lifecycle::unclaimed_in(grace, age, used || in_flight);
        let timeout =
            gridiron_domain::lifecycle::next_timeout(self.timeouts, age, since_activity, in_flight);
        unclaimed.into_iter().chain(timeout).min()
    }

    /// The session's age, the time since its last activity, and whether a
    /// command or tunnel is open.
    fn clocks(&self) -> (Duration, Duration, bool) {
        // The count first (SeqCst, paired with `tunnel_closed`), then the time it guards.
        let in_flight = self.in_flight.load(Ordering::SeqCst) > 0;
        let age = self.started.elapsed();
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        (age, age.saturating_sub(last), in_flight)
    }

    /// The timeout watcher looks at this session from now on: it is told
    /// through `alarm` when the session's next timeout comes earlier. Set
    /// before the watcher reads the session's clocks.
    pub(crate) fn watched_by(&self, alarm: &Arc<Alarm>) {
        if self.alarm.get().is_none() {
            let _ = self.alarm.set(alarm.clone());
            // The alarm is set before the clocks are read (pairs with the
            // SeqCst decrement in `tunnel_closed`).
            std::sync::atomic::fence(Ordering::SeqCst);
        }
    }

    /// Applies a lifecycle event; `false` if the state machine refuses it.
    pub fn apply(&self, event: SessionEvent) -> bool {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match transition(*s, event) {
            Ok(next) => {
                *s = next;
                true
            }
            Err(_) => false,
        }
    }

    /// The session's directory (its outbox is `artifacts/` in it).
    pub fn dir(&self) -> &std::path::Path {
        self.process.dir()
    }

    /// Whether the session's driver or browser process has died.
    pub fn browser_gone(&self) -> bool {
        self.process.browser_gone()
    }

    /// The session's processes (its directory, its display).
    pub fn process(&self) -> &SessionHandle {
        &self.process
    }

    /// Runs `hook` when the session ends, after its processes are killed and
    /// before its artifacts are collected.
    pub fn on_end(&self, hook: EndHook) {
        self.end_hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// The end hooks, taken once by whoever ends the session.
    pub(crate) fn take_end_hooks(&self) -> Vec<EndHook> {
        std::mem::take(&mut *self.end_hooks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes the processes and slot out, for the one caller that ends the session.
    pub fn take_resources(&self) -> Option<(SessionHandle, SlotPermit)> {
        self.resources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

#[cfg(test)]
mod tests {
    use super::Alarm;
    use futures_util::FutureExt;
    use std::time::Duration;

    /// Whether the alarm has rung (and keeps the ring for its sleeper).
    fn rang(alarm: &Alarm) -> bool {
        alarm.sleep(None).now_or_never().is_some()
    }

    #[test]
    fn a_deadline_before_the_planned_look_rings_and_a_later_one_does_not() {
        let alarm = Alarm::new();
        alarm.plan(Some(Duration::from_secs(60)));
        alarm.deadline_in(Duration::from_secs(300));
        assert!(
            !rang(&alarm),
            "later than planned: the watcher looks in time"
        );
        alarm.deadline_in(Duration::from_secs(1));
        assert!(rang(&alarm), "earlier than planned");
        assert!(!rang(&alarm), "one ring, one look");
    }

    #[test]
    fn while_the_watcher_looks_or_plans_no_look_every_deadline_rings() {
        let alarm = Alarm::new();
        alarm.looking();
        alarm.deadline_in(Duration::from_secs(3600));
        assert!(rang(&alarm), "moved while the sessions were looked at");
        alarm.plan(None);
        alarm.deadline_in(Duration::from_secs(3600));
        assert!(rang(&alarm), "the watcher planned to sleep until rung");
    }
}
