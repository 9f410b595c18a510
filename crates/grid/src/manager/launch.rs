//! Launching: a session that holds a slot gets its processes from the
//! provisioner, its browser from the driver (WebDriver) or directly (CDP),
//! and is then registered: listed, recorded, watched.

use super::records::{Write, Written};
use super::warm::TakenWarm;
use super::{Manager, Starting};
use crate::driver_client::{self, DriverError};
use crate::session::{Launched, Session, SessionKind};
use crate::slots::{NoSlot, SlotPermit};
use crate::timeline::Timeline;
use gridiron_domain::capabilities::{
    driver_capabilities, route_websockets, LaunchDefaults, Selection, WebSocketTargets,
};
use gridiron_domain::cdp::CdpRequest;
use gridiron_domain::events;
use gridiron_domain::launch::{downloads_enabled, mark_downloads};
use gridiron_domain::public_url::websocket_base;
use gridiron_domain::recording::{show_on_screen, Screen};
use gridiron_domain::{EndReason, ErrorCode, GridError, GridOptions, Origin};
use gridiron_provision::SessionHandle;
use gridiron_store::{now_ms, NewEvent};
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

/// What the client sent with a WebDriver request, beyond its capabilities.
pub(super) struct Asked {
    /// The capabilities exactly as requested, for the record.
    pub requested: Value,
    /// The grid's address as the client sees it, for websocket URLs.
    pub public_base: String,
    /// The API key that asked; the session will be its.
    pub owner: Option<String>,
    /// The request the session is started for (its `session.started` event names it).
    pub request: String,
    /// The request's steps so far.
    pub timeline: Timeline,
}

impl Manager {
    /// Starts a WebDriver session on `permit`'s slot and sends the W3C answer
    /// to `reply`; ends the session if nobody is there to take it.
    pub(super) async fn launch_webdriver(
        self: Arc<Self>,
        permit: SlotPermit,
        selection: Selection,
        options: GridOptions,
        asked: Asked,
        reply: oneshot::Sender<Result<Value, GridError>>,
        warm: Option<TakenWarm>,
    ) {
        let Asked {
            requested,
            public_base,
            owner,
            request,
            timeline,
        } = asked;
        let _starting = Starting::new(&self.starting);
        let since = std::time::Instant::now();
        let browser = self.catalog[selection.stereotype]
            .kind
            .driver_browser_name()
            .to_string();
        let from_warm = warm.is_some();
        let started = match warm {
            Some(warm) => {
                let (driver, driver_session_id, value) = warm.into_parts();
                let id = driver.session_id().to_string();
                let recorded = self.record_new(&id, &browser, requested, &options, owner.clone());
                info!(session = %id, browser = %browser, slot = permit.index, "warm session taken");
                timeline.step("warm_session_taken", None);
                Ok((
                    Started {
                        driver,
                        driver_session_id,
                        value,
                    },
                    recorded,
                ))
            }
            None => {
                let record = (requested, &options, &owner);
                self.start_cold(&selection, &browser, record, permit.index, &timeline)
                    .await
            }
        };
        let (started, recorded) = match started {
            Ok(s) => s,
            Err(e) => {
                // The slot is free before the client hears of the failure.
                drop(permit);
                let _ = reply.send(Err(e));
                return;
            }
        };
        let asked = Handover {
            public_base,
            owner,
            request,
            browser,
            options,
            since,
            warm: from_warm,
            timeline,
            downloads: downloads_enabled(&selection.merged),
        };
        self.hand_over(permit, started, asked, recorded, reply)
            .await;
    }

    /// Starts a driver and its browser for a request of `selection`, and
    /// queues its record (requested capabilities, options, owner) meanwhile.
    /// A failed start is recorded and cleaned up here.
    async fn start_cold(
        self: &Arc<Self>,
        selection: &Selection,
        browser: &str,
        (requested, options, owner): (Value, &GridOptions, &Option<String>),
        slot: usize,
        timeline: &Timeline,
    ) -> Result<(Started, Written), GridError> {
        let since = std::time::Instant::now();
        timeline.step("provisioning", None);
        let screen = options.record_video;
        let driver = match screen {
            // Its display and recorder run before its browser starts.
            Some(screen) => {
                self.provisioner
                    .start_recorded_driver(selection.stereotype, screen)
                    .await
            }
            None => self.provisioner.start_driver(selection.stereotype).await,
        };
        let driver = match driver {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "driver failed to start");
                self.provisioner.replenish(selection.stereotype);
                return Err(e.into());
            }
        };
        let id = driver.session_id().to_string();
        let driver_ready = since.elapsed();
        timeline.step("driver_ready", None);
        // Written while the browser starts; awaited before the client is answered.
        let recorded = self.record_new(&id, browser, requested, options, owner.clone());
        info!(session = %id, browser = %browser, slot, "session provisioning");
        let answer = self.ask_driver(&driver, selection, screen).await;
        self.provisioner.replenish(selection.stereotype);
        let (driver_session_id, value) = match answer {
            Ok(ok) => ok,
            Err(e) => {
                let output = driver.recent_output();
                driver.shutdown().await;
                self.metrics.session_ended(EndReason::FailedToStart);
                self.records.write(Write::Ended {
                    id: id.clone(),
                    reason: EndReason::FailedToStart,
                    at: now_ms(),
                    commands: 0,
                });
                warn!(session = %id, error = %e, "session failed to start");
                return Err(refused(browser, e, &output));
            }
        };
        let browser_ready = since.elapsed();
        timeline.step("browser_started", None);
        driver.browser_started().await;
        // Where a start's time goes (GRIDIRON_LOG=debug), for tuning.
        debug!(
            session = %id,
            driver_ms = driver_ready.as_secs_f64() * 1e3,
            new_session_ms = (browser_ready - driver_ready).as_secs_f64() * 1e3,
            watch_ms = (since.elapsed() - browser_ready).as_secs_f64() * 1e3,
            "browser started"
        );
        let started = Started {
            driver,
            driver_session_id,
            value,
        };
        Ok((started, recorded))
    }

    /// Asks `driver` for a new session of `selection`, with the grid's launch
    /// defaults (the profile is the driver's own, in the session's `TMPDIR`); the driver's session id and
    /// its answer's `value`. A recorded session's browser (`screen`) shows
    /// on its display instead of running headless.
    pub(super) async fn ask_driver(
        &self,
        driver: &SessionHandle,
        selection: &Selection,
        screen: Option<Screen>,
    ) -> Result<(String, Value), DriverError> {
        let download_dir = if downloads_enabled(&selection.merged) {
            let dir = crate::files::prepare_download_dir(driver.dir())
                .await
                .map_err(|e| DriverError::Refused {
                    status: 500,
                    error: None,
                    message: format!(
                        "the grid could not make the session's download directory: {e}"
                    ),
                })?;
            Some(dir.to_string_lossy().into_owned())
        } else {
            None
        };
        let mut caps = driver_capabilities(
            &selection.merged,
            &self.catalog[selection.stereotype],
            &LaunchDefaults {
                headless: self.config.headless,
                profile_dir: None,
                sandbox: self.provisioner.chromium_sandbox(),
                download_dir,
            },
        );
        if let Some(screen) = screen {
            show_on_screen(&mut caps, screen);
        }
        let body = json!({"capabilities": {"alwaysMatch": caps, "firstMatch": [{}]}});
        let url = format!("{}/session", driver.endpoint());
        tokio::time::timeout(
            self.config.new_session_timeout,
            driver_client::post_json(&self.client, &url, &body),
        )
        .await
        .unwrap_or(Err(DriverError::Timeout(self.config.new_session_timeout)))
        .and_then(|(s, v)| granted(s, v))
    }

    /// Makes a session whose driver has granted it the client's: registers
    /// it, waits for its record, answers the client.
    async fn hand_over(
        self: &Arc<Self>,
        permit: SlotPermit,
        started: Started,
        asked: Handover,
        recorded: Written,
        reply: oneshot::Sender<Result<Value, GridError>>,
    ) {
        let Started {
            driver,
            driver_session_id,
            mut value,
        } = started;
        let Handover {
            public_base,
            owner,
            request,
            browser,
            options,
            since,
            warm,
            timeline,
            downloads,
        } = asked;
        let id = driver.session_id().to_string();
        value["sessionId"] = Value::String(id.clone());
        let mut targets = WebSocketTargets::default();
        if let Some(caps) = value.get_mut("capabilities").and_then(Value::as_object_mut) {
            targets = route_websockets(caps, &websocket_base(&public_base), &id);
            if downloads {
                mark_downloads(caps);
            }
        }
        let granted_caps = value.get("capabilities").cloned().unwrap_or(Value::Null);
        let launched = Launched {
            timeouts: self.timeouts(&options),
            process: driver,
            permit,
            kind: SessionKind::WebDriver { driver_session_id },
            browser,
            options,
            started_at_ms: now_ms(),
            targets,
            owner,
            downloads,
            timeline,
        };
        // The record exists before the client can know the session.
        recorded.await;
        if let Err(e) = self
            .register(launched, granted_caps, Some(&request), warm)
            .await
        {
            let _ = reply.send(Err(e));
            return;
        }
        self.metrics.session_started(since.elapsed());
        if reply.send(Ok(json!({ "value": value }))).is_err() {
            info!(session = %id, "client left before the session was handed over");
            self.end(&id, EndReason::ClientGone).await;
        }
    }

    /// Starts a CDP-only session (a bare browser) on `permit`'s slot.
    pub(super) async fn launch_cdp(
        self: &Arc<Self>,
        permit: SlotPermit,
        install: usize,
        request: CdpRequest,
        owner: Option<String>,
    ) -> Result<Arc<Session>, GridError> {
        let _starting = Starting::new(&self.starting);
        let since = std::time::Instant::now();
        let timeline = Timeline::starting("provisioning", Some(json!({ "slot": permit.index })));
        let headless = request.headless.unwrap_or(self.config.headless);
        let browser = self
            .provisioner
            .start_browser(install, request.args.clone(), headless)
            .await?;
        let id = browser.session_id().to_string();
        let requested = json!({"cdp": request.args, "headless": headless});
        self.record_new(&id, "chrome", requested, &request.options, owner.clone())
            .await;
        // ws://127.0.0.1:PORT/devtools/browser/ID -> http://127.0.0.1:PORT
        let cdp_http = browser
            .endpoint()
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .map(|hostport| format!("http://{hostport}"));
        let granted = json!({"browserName": "chrome", "webSocketDebuggerUrl": browser.endpoint()});
        browser.browser_started().await;
        let launched = Launched {
            timeouts: self.timeouts(&request.options),
            process: browser,
            permit,
            kind: SessionKind::CdpOnly,
            browser: "chrome".into(),
            options: request.options,
            started_at_ms: now_ms(),
            targets: WebSocketTargets {
                cdp_http,
                bidi: None,
            },
            owner,
            downloads: false,
            timeline,
        };
        let session = self.register(launched, granted, None, false).await?;
        self.metrics.session_started(since.elapsed());
        Ok(session)
    }

    /// Makes a launched session visible: listed, recorded as running, and
    /// watched for its process exiting.
    async fn register(
        self: &Arc<Self>,
        launched: Launched,
        granted_caps: Value,
        request: Option<&str>,
        warm: bool,
    ) -> Result<Arc<Session>, GridError> {
        let exit = launched.process.exit_watch();
        let session = Arc::new(Session::new(launched));
        session.timeline.step("started", None);
        crate::timeline::keep_on_end(&session);
        // Follows the browser's pages before the client can drive them.
        crate::devtools::observe(self, &session).await;
        let id = session.id.clone();
        self.sessions
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), session.clone());
        self.records.write(Write::Running {
            id: id.clone(),
            caps: granted_caps,
            at: session.started_at_ms,
        });
        info!(session = %id, "session started");
        let mut started = NewEvent {
            fields: request
                .map(|r| [("request".to_string(), r.to_string())].into())
                .unwrap_or_default(),
            ..NewEvent::now(events::SESSION_STARTED)
        }
        .session(&id)
        .owner(session.owner.as_deref())
        .with("browser", &session.browser);
        if warm {
            started = started.with("warm", true);
        }
        self.emit(started);
        let weak = Arc::downgrade(self);
        let watched = id.clone();
        self.tasks.spawn_until_stopped(async move {
            let mut exit = exit;
            let _ = exit.wait_for(Option::is_some).await;
            if let Some(m) = weak.upgrade() {
                m.end(&watched, EndReason::DriverCrashed).await;
            }
        });
        if self.shutting_down.load(Ordering::SeqCst) {
            self.end(&id, EndReason::Shutdown).await;
            return Err(self.no_slot_error(NoSlot::Closed));
        }
        Ok(session)
    }
}

/// A session its driver has granted.
struct Started {
    driver: SessionHandle,
    driver_session_id: String,
    value: Value,
}

/// What the client asked that the answer needs.
struct Handover {
    public_base: String,
    owner: Option<String>,
    request: String,
    browser: String,
    options: GridOptions,
    since: std::time::Instant,
    /// The session was started ahead of demand (`--warm`).
    warm: bool,
    /// Its steps so far.
    timeline: Timeline,
    /// Managed downloads are on.
    downloads: bool,
}

/// Checks a driver's new-session answer; returns the driver's session id and
/// the `value`, or the driver's refusal.
fn granted(status: u16, v: Value) -> Result<(String, Value), DriverError> {
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    match value.get("sessionId").and_then(Value::as_str) {
        Some(sid) if status == 200 => Ok((sid.to_string(), value)),
        _ => Err(DriverError::Refused {
            status,
            error: value
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string),
            message: value
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("driver answered status {status}: {v}")),
        }),
    }
}

/// The answer to a client whose session the driver would not start: its
/// arguments' fault if the driver said so, else `session not created`.
fn refused(browser: &str, e: DriverError, output: &str) -> GridError {
    let code = if e.is_invalid_argument() {
        ErrorCode::InvalidArgument
    } else {
        ErrorCode::SessionNotCreated
    };
    let msg = e.to_string();
    let detail = if output.is_empty() || msg.contains(output) {
        msg
    } else {
        format!("{msg}; driver output: {output}")
    };
    GridError::new(
        code,
        Origin::Driver,
        format!("the {browser} driver could not start a session: {detail}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_the_drivers_blame() {
        let v = json!({"value": {"error": "invalid argument", "message": "bad arg"}});
        let e = granted(400, v).unwrap_err();
        let g = refused("chrome", e, "");
        assert_eq!(g.code, ErrorCode::InvalidArgument);
        assert_eq!(
            g.message,
            "the chrome driver could not start a session: bad arg"
        );
        let e = granted(500, json!({"value": {"error": "session not created"}})).unwrap_err();
        let g = refused("chrome", e, "chrome crashed");
        assert_eq!(g.code, ErrorCode::SessionNotCreated);
        assert!(
            g.message.ends_with("; driver output: chrome crashed"),
            "{}",
            g.message
        );
        let (sid, _) = granted(200, json!({"value": {"sessionId": "abc"}})).unwrap();
        assert_eq!(sid, "abc");
    }
}
