//! The passive DevTools observer of a Chromium session: its own CDP
//! connection to the browser, attached to every page, writing the console log
//! (unless the session opts out) and the HAR (with `recordNetwork`), and the source of the live
//! view's frames. It only enables event domains and reads; it never sends a
//! command that changes what a page does.

use super::cdp::{Cdp, Event};
use super::{console, har::Har};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

/// Largest console log kept; past it one line says so and the rest is dropped.
const MAX_CONSOLE_BYTES: u64 = 32 << 20;

/// What an observer keeps of a session.
#[derive(Debug, Clone, Copy)]
pub struct Keep {
    /// The console log.
    pub console: bool,
    /// The HAR.
    pub network: bool,
}

/// The observer of one session's browser.
pub struct Observer {
    cdp: Arc<Cdp>,
    state: Mutex<State>,
    /// `None` unless the session asked for `recordNetwork`.
    har: Mutex<Option<Har>>,
    outbox: PathBuf,
    keep: Keep,
    /// Set once the event loop has ended (the browser is gone).
    ended: watch::Receiver<bool>,
}

/// The pages the observer follows, and where the live view takes frames from.
#[derive(Default)]
struct State {
    /// Page target id -> its flattened session id (once attached).
    pages: HashMap<String, Option<String>>,
    /// Session id -> page target id.
    sessions: HashMap<String, String>,
    /// Page targets being attached or attached: says when their domains are enabled.
    ready: HashMap<String, watch::Sender<bool>>,
    /// Page targets in the order they were attached (the newest last).
    order: Vec<String>,
    /// The live view's frames: the page session being cast and where its
    /// frames go; `None` while nobody watches.
    cast: Option<(Option<String>, watch::Sender<Option<Bytes>>)>,
    console: Option<ConsoleFile>,
}

impl State {
    /// Page `target` is attached as session `sid` (said once or twice).
    fn attached(&mut self, sid: &str, target: &str) {
        self.sessions.insert(sid.to_string(), target.to_string());
        self.pages.insert(target.to_string(), Some(sid.to_string()));
        if !self.order.iter().any(|t| t == target) {
            self.order.push(target.to_string());
        }
    }
}

/// The console log being written.
struct ConsoleFile {
    file: std::io::LineWriter<std::fs::File>,
    written: u64,
}

impl Observer {
    /// Connects to the browser behind `ws_url`, follows its pages and
    /// starts writing into `outbox`. Returns once the pages that exist now
    /// have their event domains enabled, so nothing they log from now on is missed.
    pub async fn start(ws_url: &str, outbox: &Path, keep: Keep) -> Result<Arc<Observer>, String> {
        let (cdp, events) = Cdp::connect(ws_url).await?;
        let console = if keep.console {
            let file = super::outbox::create(outbox, "console.log")
                .map_err(|e| format!("{}/console.log: {e}", outbox.display()))?;
            Some(ConsoleFile {
                file: std::io::LineWriter::new(file),
                written: 0,
            })
        } else {
            None
        };
        let (ended_tx, ended) = watch::channel(false);
        let obs = Arc::new(Observer {
            cdp,
            state: Mutex::new(State {
                console,
                ..State::default()
            }),
            har: Mutex::new(keep.network.then(Har::new)),
            keep,
            outbox: outbox.to_path_buf(),
            ended,
        });
        tokio::spawn(obs.clone().run(events, ended_tx));
        obs.cdp
            .call(None, "Target.setDiscoverTargets", json!({"discover": true}))
            .await?;
        let targets = obs.cdp.call(None, "Target.getTargets", json!({})).await?;
        for t in targets["targetInfos"].as_array().into_iter().flatten() {
            if t["type"] == "page" {
                obs.clone()
                    .attach(t["targetId"].as_str().unwrap_or_default().to_string())
                    .await;
            }
        }
        Ok(obs)
    }

    /// Attaches to page `target` (once) and enables its event domains.
    async fn attach(self: Arc<Self>, target: String) {
        if target.is_empty() {
            return;
        }
        let in_progress = {
            let mut s = self.lock();
            match s.ready.get(&target) {
                Some(ready) => Some(ready.subscribe()),
                None => {
                    s.ready.insert(target.clone(), watch::channel(false).0);
                    s.pages.insert(target.clone(), None);
                    None
                }
            }
        };
        // Attached by someone else (the initial pages are seen twice): done
        // when they are done, so `start` returns only once they are followed.
        if let Some(mut ready) = in_progress {
            let _ = ready.wait_for(|r| *r).await;
            return;
        }
        self.enable(&target).await;
        if let Some(ready) = self.lock().ready.get(&target) {
            ready.send_replace(true);
        }
    }

    /// Attaches to page `target` and enables its event domains.
    async fn enable(self: &Arc<Self>, target: &str) {
        let attached = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        let Some(sid) = attached
            .ok()
            .and_then(|r| r["sessionId"].as_str().map(str::to_string))
        else {
            // Closed before it could be attached.
            self.lock().pages.remove(target);
            return;
        };
        // Known at once (its event may still be queued for the loop): a
        // live view that starts next finds the page.
        self.lock().attached(&sid, target);
        let s = Some(sid.as_str());
        for d in self.domains() {
            if let Err(e) = self.cdp.call(s, d, json!({})).await {
                debug!(target = %target, "{d}: {e}");
            }
        }
        self.follow_children(s);
        let casting = self.lock().cast.is_some();
        if casting {
            self.recast();
        }
    }

    /// The event domains this observer enables on each page (and its frames).
    fn domains(&self) -> Vec<&'static str> {
        let mut domains = Vec::new();
        if self.keep.console {
            domains.extend(["Runtime.enable", "Log.enable"]);
        }
        if self.keep.network {
            domains.push("Network.enable");
        }
        domains
    }

    /// Attaches to the out-of-process frames and workers of target session
    /// `s` as they come, without pausing them.
    fn follow_children(&self, s: Option<&str>) {
        if self.domains().is_empty() {
            return;
        }
        self.cdp.send(
            s,
            "Target.setAutoAttach",
            json!({"autoAttach": true, "waitForDebuggerOnStart": false, "flatten": true}),
        );
    }

    /// The event loop: until the connection closes.
    async fn run(self: Arc<Self>, mut events: mpsc::Receiver<Event>, ended: watch::Sender<bool>) {
        while let Some(e) = events.recv().await {
            self.event(e);
        }
        let mut s = self.lock();
        s.cast = None;
        if let Some(mut c) = s.console.take() {
            let _ = c.file.flush();
        }
        drop(s);
        let _ = ended.send(true);
    }

    fn event(self: &Arc<Self>, e: Event) {
        let p = &e.params;
        match e.method.as_str() {
            "Target.targetCreated" | "Target.targetInfoChanged" => {
                let info = &p["targetInfo"];
                if info["type"] == "page" {
                    let id = info["targetId"].as_str().unwrap_or_default().to_string();
                    tokio::spawn(self.clone().attach(id));
                }
            }
            "Target.attachedToTarget" => {
                let (sid, target) = (
                    p["sessionId"].as_str(),
                    p["targetInfo"]["targetId"].as_str(),
                );
                let Some((sid, target)) = sid.zip(target) else {
                    return;
                };
                if p["targetInfo"]["type"] == "page" {
                    self.lock().attached(sid, target);
                } else {
                    // A page's out-of-process frame or worker, attached with
                    // it: its console and traffic are the page's too.
                    self.lock()
                        .sessions
                        .insert(sid.to_string(), target.to_string());
                    for d in self.domains() {
                        self.cdp.send(Some(sid), d, json!({}));
                    }
                    self.follow_children(Some(sid));
                }
            }
            "Target.detachedFromTarget" | "Target.targetDestroyed" => {
                let target = {
                    let mut s = self.lock();
                    let target = match p["sessionId"].as_str() {
                        Some(sid) => s.sessions.remove(sid),
                        None => p["targetId"].as_str().map(str::to_string),
                    };
                    if let Some(t) = &target {
                        if let Some(Some(sid)) = s.pages.remove(t) {
                            s.sessions.remove(&sid);
                        }
                        s.ready.remove(t);
                        s.order.retain(|o| o != t);
                    }
                    target
                };
                if target.is_some() {
                    self.recast();
                }
            }
            "Page.screencastFrame" => self.frame(e.session.as_deref(), p),
            _ => self.page_event(&e),
        }
    }

    /// A console or network event of a page.
    fn page_event(&self, e: &Event) {
        let Some(sid) = &e.session else { return };
        let mut s = self.lock();
        let Some(target) = s.sessions.get(sid).cloned() else {
            return;
        };
        if e.method.starts_with("Network.") {
            if let Some(h) = self.har.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                h.event(&target, &e.method, &e.params);
            }
        } else if let Some(line) = console::line(&e.method, &e.params, &target) {
            if let Some(c) = s.console.as_mut() {
                c.append(&line);
            }
        }
    }

    /// A screencast frame: acknowledged (or the browser sends no more) and
    /// handed to the watchers.
    fn frame(&self, session: Option<&str>, p: &Value) {
        self.cdp.send(
            session,
            "Page.screencastFrameAck",
            json!({"sessionId": p["sessionId"]}),
        );
        use base64::Engine;
        let Some(jpeg) = p["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
        else {
            return;
        };
        let s = self.lock();
        if let Some((Some(cast), tx)) = &s.cast {
            if Some(cast.as_str()) == session {
                tx.send_replace(Some(Bytes::from(jpeg)));
            }
        }
    }

    /// Sends frames of the newest page to `frames` from now on, until
    /// [`Observer::stop_frames`]. `false` if the browser is gone.
    pub fn start_frames(self: &Arc<Self>, frames: watch::Sender<Option<Bytes>>) -> bool {
        if *self.ended.borrow() {
            return false;
        }
        self.lock().cast = Some((None, frames));
        self.recast();
        true
    }

    /// Stops the screencast the live view started.
    pub fn stop_frames(&self) {
        let cast = self.lock().cast.take();
        if let Some((Some(sid), _)) = cast {
            self.cdp.send(Some(&sid), "Page.stopScreencast", json!({}));
        }
    }

    /// Casts the newest page, if that is not the one being cast.
    fn recast(self: &Arc<Self>) {
        let mut s = self.lock();
        let newest = s
            .order
            .iter()
            .rev()
            .find_map(|t| s.pages.get(t).cloned().flatten());
        let Some((current, tx)) = s.cast.as_mut() else {
            return;
        };
        if *current == newest {
            return;
        }
        if let Some(old) = current.take() {
            self.cdp.send(Some(&old), "Page.stopScreencast", json!({}));
        }
        let Some(sid) = newest else { return };
        *current = Some(sid.clone());
        let tx = tx.clone();
        drop(s);
        let cdp = self.cdp.clone();
        tokio::spawn(async move {
            // A first frame at once: the screencast sends one only when
            // something is painted, and a still page paints nothing.
            let shot = cdp
                .call(
                    Some(&sid),
                    "Page.captureScreenshot",
                    json!({"format": "jpeg", "quality": JPEG_QUALITY}),
                )
                .await;
            use base64::Engine;
            if let Some(jpeg) = shot.ok().and_then(|r| {
                base64::engine::general_purpose::STANDARD
                    .decode(r["data"].as_str()?)
                    .ok()
            }) {
                if tx.borrow().is_none() {
                    tx.send_replace(Some(Bytes::from(jpeg)));
                }
            }
            cdp.send(
                Some(&sid),
                "Page.startScreencast",
                json!({"format": "jpeg", "quality": JPEG_QUALITY, "maxWidth": 1920, "maxHeight": 1920}),
            );
        });
    }

    /// Whether the browser connection has ended.
    pub fn ended(&self) -> watch::Receiver<bool> {
        self.ended.clone()
    }

    /// At the session's end (the browser is killed by then): waits for the
    /// last events and writes the HAR.
    pub async fn finish(&self) {
        self.cdp.close();
        let mut ended = self.ended.clone();
        if tokio::time::timeout(Duration::from_secs(5), ended.wait_for(|e| *e))
            .await
            .is_err()
        {
            warn!("the DevTools observer did not see its connection end");
        }
        let har = self.har.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = har {
            let doc = h.finish_all(env!("CARGO_PKG_VERSION"));
            let outbox = self.outbox.clone();
            let written = tokio::task::spawn_blocking(move || {
                let mut f = std::io::BufWriter::new(super::outbox::create(&outbox, "network.har")?);
                serde_json::to_writer(&mut f, &doc)?;
                f.flush()
            })
            .await;
            if let Ok(Err(e)) = written {
                warn!(outbox = %self.outbox.display(), "the HAR could not be written: {e}");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// JPEG quality of live frames (0-100): readable text, small frames.
const JPEG_QUALITY: u32 = 70;

impl ConsoleFile {
    fn append(&mut self, line: &Value) {
        if self.written >= MAX_CONSOLE_BYTES {
            return;
        }
        let mut text = line.to_string();
        text.push('\n');
        self.written += text.len() as u64;
        if self.written >= MAX_CONSOLE_BYTES {
            text = json!({"level": "warning", "source": "gridiron",
                "text": format!("console log truncated at {MAX_CONSOLE_BYTES} bytes")})
            .to_string()
                + "\n";
        }
        let _ = self.file.write_all(text.as_bytes());
    }
}
