//! A small Chrome DevTools Protocol client: commands matched to their
//! answers by id, events handed to one consumer. It runs over a websocket of
//! its own to the browser, so nothing it does mixes with a client's CDP.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

/// One CDP event: the flattened session it came from (`None`: the browser's),
/// its method and its parameters.
#[derive(Debug, Clone)]
pub struct Event {
    /// The target session (`sessionId` of flattened attachments).
    pub session: Option<String>,
    /// e.g. `Runtime.consoleAPICalled`.
    pub method: String,
    /// The event's `params`.
    pub params: Value,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A connection to a browser's DevTools websocket. Dropping every clone of
/// it closes the connection.
pub struct Cdp {
    out: mpsc::UnboundedSender<Message>,
    pending: Pending,
    next_id: AtomicU64,
}

/// How long a command may wait for its answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Events buffered for the consumer; beyond that the reader waits (the
/// browser then buffers on its side), so memory stays bounded.
const EVENT_BUFFER: usize = 1024;
/// Largest message taken from the browser (a screencast frame of a large
/// screen is a few MB of base64).
const MAX_MESSAGE: usize = 64 << 20;

impl Cdp {
    /// Connects to `ws_url` (`ws://127.0.0.1:PORT/devtools/browser/ID`);
    /// returns the client and its events, which end when the connection does.
    pub async fn connect(ws_url: &str) -> Result<(Arc<Cdp>, mpsc::Receiver<Event>), String> {
        let authority = ws_url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .filter(|a| !a.is_empty())
            .ok_or_else(|| format!("not a ws:// DevTools URL: {ws_url}"))?;
        let tcp = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connecting to {authority}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let (ws, _) = tokio_tungstenite::client_async_with_config(ws_url, tcp, Some(config))
            .await
            .map_err(|e| format!("DevTools handshake with {ws_url}: {e}"))?;
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (events_tx, events) = mpsc::channel(EVENT_BUFFER);
        let pending: Pending = Arc::default();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if sink.send(m).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let answers = pending.clone();
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                let Ok(mut v) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if let Some(id) = v.get("id").and_then(Value::as_u64) {
                    let waiter = answers
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    if let Some(w) = waiter {
                        let r = match v.get_mut("error") {
                            Some(e) => Err(e.to_string()),
                            None => Ok(v.get_mut("result").map(Value::take).unwrap_or_default()),
                        };
                        let _ = w.send(r);
                    }
                    continue;
                }
                let Some(method) = v.get("method").and_then(Value::as_str) else {
                    continue;
                };
                let event = Event {
                    method: method.to_string(),
                    session: v
                        .get("sessionId")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    params: v.get_mut("params").map(Value::take).unwrap_or_default(),
                };
                if events_tx.send(event).await.is_err() {
                    break;
                }
            }
            // Whoever still waits learns that no answer will come.
            answers.lock().unwrap_or_else(|e| e.into_inner()).clear();
        });
        let cdp = Arc::new(Cdp {
            out,
            pending,
            next_id: AtomicU64::new(1),
        });
        Ok((cdp, events))
    }

    /// Sends a command without waiting for its answer.
    pub fn send(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .out
            .send(Message::text(message(id, session, method, params)));
    }

    /// Sends a command and waits for its result (an error's JSON as `Err`).
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        let sent = self
            .out
            .send(Message::text(message(id, session, method, params)));
        let answer = match sent {
            Ok(()) => tokio::time::timeout(CALL_TIMEOUT, rx).await.map(|r| r.ok()),
            Err(_) => Ok(None),
        };
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        match answer {
            Ok(Some(r)) => r,
            Ok(None) => Err(format!("{method}: the DevTools connection closed")),
            Err(_) => Err(format!("{method}: no answer in {CALL_TIMEOUT:?}")),
        }
    }

    /// Closes the connection (the browser then ends what this client started).
    pub fn close(&self) {
        let _ = self.out.send(Message::Close(None));
    }
}

/// The text of a command.
fn message(id: u64, session: Option<&str>, method: &str, params: Value) -> String {
    let mut m = json!({"id": id, "method": method, "params": params});
    if let Some(s) = session {
        m["sessionId"] = Value::String(s.to_string());
    }
    m.to_string()
}

/// The browser-level DevTools websocket of the browser whose DevTools HTTP
/// base is `cdp_http` (`http://127.0.0.1:PORT`), from `/json/version`.
pub async fn browser_websocket(
    m: &crate::manager::Manager,
    cdp_http: &str,
) -> Result<String, String> {
    let (_, v) = m
        .get_json(&format!("{cdp_http}/json/version"))
        .await
        .map_err(|e| e.to_string())?;
    v.get("webSocketDebuggerUrl")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| format!("{cdp_http}/json/version has no webSocketDebuggerUrl"))
}
