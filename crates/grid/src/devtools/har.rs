//! A HAR 1.2 log built from CDP `Network` events. Pure: events go in, the
//! HAR document comes out; memory is bounded (entries, requests in flight,
//! header, URL and post-data sizes). Response bodies are not kept.

use gridiron_domain::civil::Civil;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Entries kept at most; later requests are counted, not kept.
pub const MAX_ENTRIES: usize = 10_000;
/// Requests followed at once; beyond, new ones are not followed.
const MAX_IN_FLIGHT: usize = 2_000;
/// Longest URL or post data kept (a `data:` URL can be megabytes).
const MAX_TEXT: usize = 64 * 1024;
/// Longest header value kept, and headers kept per request or response.
const MAX_HEADER: usize = 8 * 1024;
const MAX_HEADERS: usize = 100;
/// What all kept requests and entries may weigh together (about their bytes).
const MAX_BYTES: usize = 64 << 20;

/// A request seen, not yet finished.
struct Pending {
    pageref: Option<String>,
    /// Unix ms when it was sent.
    wall_ms: f64,
    /// The browser's monotonic clock (s) when it was sent.
    started: f64,
    request: Value,
    response: Option<Value>,
    /// The browser's monotonic clock (s) when the response headers came.
    responded: Option<f64>,
    /// Bytes of body received (decoded).
    data: i64,
    /// Its share of the log's byte budget.
    weight: usize,
}

/// The HAR being built for one session.
#[derive(Default)]
pub struct Har {
    pages: Vec<Value>,
    entries: Vec<Value>,
    pending: HashMap<(String, String), Pending>,
    /// The latest page of each target (its top-level document).
    current_page: HashMap<String, String>,
    dropped: usize,
    /// Weight of what is kept, against [`MAX_BYTES`].
    bytes: usize,
}

impl Har {
    /// An empty log.
    pub fn new() -> Har {
        Har::default()
    }

    /// Entries kept so far.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing was kept yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes one event of target `target` (a page target id, which is also
    /// the id of its main frame).
    pub fn event(&mut self, target: &str, method: &str, p: &Value) {
        let key = |p: &Value| (target.to_string(), str_of(&p["requestId"]).to_string());
        match method {
            "Network.requestWillBeSent" => {
                let k = key(p);
                // A redirect reuses the request id: the hop before ends here.
                if let Some(redirect) = p.get("redirectResponse") {
                    if let Some(mut prev) = self.pending.remove(&k) {
                        prev.response = Some(response(redirect));
                        prev.responded = p["timestamp"].as_f64();
                        self.finish(prev, p["timestamp"].as_f64(), 0, None);
                    }
                }
                let request = request(&p["request"]);
                let weight = weight(&request);
                if self.pending.len() >= MAX_IN_FLIGHT || self.bytes + weight > MAX_BYTES {
                    self.dropped += 1;
                    return;
                }
                self.bytes += weight;
                let is_navigation = p["type"] == "Document"
                    && p["requestId"] == p["loaderId"]
                    && str_of(&p["frameId"]) == target;
                let wall_ms = p["wallTime"].as_f64().unwrap_or(0.0) * 1000.0;
                if is_navigation {
                    let id = format!("page_{}", self.pages.len() + 1);
                    self.pages.push(json!({
                        "startedDateTime": iso(wall_ms),
                        "id": id,
                        "title": bounded(str_of(&p["request"]["url"])),
                        "pageTimings": {"onContentLoad": -1, "onLoad": -1},
                    }));
                    self.current_page.insert(target.to_string(), id);
                }
                self.pending.insert(
                    k,
                    Pending {
                        pageref: self.current_page.get(target).cloned(),
                        wall_ms,
                        started: p["timestamp"].as_f64().unwrap_or(0.0),
                        request,
                        response: None,
                        responded: None,
                        data: 0,
                        weight,
                    },
                );
            }
            "Network.responseReceived" => {
                let k = key(p);
                if self.pending.contains_key(&k) {
                    let mut r = response(&p["response"]);
                    let mut w = weight(&r);
                    if self.bytes + w > MAX_BYTES {
                        // Over budget: the status is kept, not the headers.
                        r["headers"] = json!([]);
                        w = weight(&r);
                    }
                    self.bytes += w;
                    if let Some(e) = self.pending.get_mut(&k) {
                        e.weight += w;
                        e.response = Some(r);
                        e.responded = p["timestamp"].as_f64();
                    }
                }
            }
            "Network.dataReceived" => {
                if let Some(e) = self.pending.get_mut(&key(p)) {
                    e.data = e.data.saturating_add(p["dataLength"].as_i64().unwrap_or(0));
                }
            }
            "Network.loadingFinished" => {
                if let Some(e) = self.pending.remove(&key(p)) {
                    let size = p["encodedDataLength"].as_f64().unwrap_or(-1.0) as i64;
                    self.finish(e, p["timestamp"].as_f64(), size, None);
                }
            }
            "Network.loadingFailed" => {
                if let Some(e) = self.pending.remove(&key(p)) {
                    let error = str_of(&p["errorText"]).to_string();
                    self.finish(e, p["timestamp"].as_f64(), 0, Some(error));
                }
            }
            _ => {}
        }
    }

    /// Adds a finished request as an entry.
    fn finish(&mut self, e: Pending, ended: Option<f64>, encoded: i64, error: Option<String>) {
        if self.entries.len() >= MAX_ENTRIES {
            self.bytes = self.bytes.saturating_sub(e.weight);
            self.dropped += 1;
            return;
        }
        let mut response = e.response.unwrap_or_else(|| response(&Value::Null));
        let timing = response
            .as_object_mut()
            .and_then(|r| r.remove("_timing"))
            .unwrap_or(Value::Null);
        let timings = timings(&timing, e.started, e.responded, ended);
        let total: f64 = ["blocked", "dns", "connect", "send", "wait", "receive"]
            .iter()
            .filter_map(|k| timings[k].as_f64())
            .filter(|t| *t > 0.0)
            .sum();
        response["content"]["size"] = json!(e.data.max(0));
        // Chromium counts the bytes on the wire with the headers: kept as
        // the transfer size; the body's size is known only when uncompressed.
        let compressed = header_list(&response["headers"], "content-encoding").is_some();
        response["bodySize"] = json!(if compressed || error.is_some() {
            -1
        } else {
            e.data.max(0)
        });
        if encoded > 0 {
            response["_transferSize"] = json!(encoded);
        }
        if let Some(err) = error {
            response["_error"] = Value::String(err);
        }
        let mut entry = json!({
            "startedDateTime": iso(e.wall_ms),
            "time": total,
            "request": e.request,
            "response": response,
            "cache": {},
            "timings": timings,
        });
        if let Some(page) = e.pageref {
            entry["pageref"] = Value::String(page);
        }
        self.entries.push(entry);
    }

    /// The HAR document; requests still in flight are entries without an end.
    pub fn finish_all(mut self, creator_version: &str) -> Value {
        let mut open: Vec<_> = self.pending.drain().map(|(_, e)| e).collect();
        open.sort_by(|a, b| a.started.total_cmp(&b.started));
        for e in open {
            self.finish(e, None, 0, Some("unfinished when the session ended".into()));
        }
        self.entries
            .sort_by(|a, b| str_of(&a["startedDateTime"]).cmp(str_of(&b["startedDateTime"])));
        let mut log = json!({
            "version": "1.2",
            "creator": {"name": "Gridiron", "version": creator_version},
            "pages": self.pages,
            "entries": self.entries,
        });
        if self.dropped > 0 {
            log["comment"] = json!(format!(
                "{} requests were not kept (at most {MAX_ENTRIES} entries)",
                self.dropped
            ));
        }
        json!({ "log": log })
    }
}

/// The HAR request of a CDP `Request`.
fn request(r: &Value) -> Value {
    let url = bounded(str_of(&r["url"]));
    let query: Vec<Value> = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or_default())
        .map(|q| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .unwrap_or_default()
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect()
        })
        .unwrap_or_default();
    let headers = headers(&r["headers"]);
    let mut out = json!({
        "method": str_of(&r["method"]),
        "url": url,
        "httpVersion": "",
        "cookies": [],
        "headers": headers,
        "queryString": query,
        "headersSize": -1,
        "bodySize": -1,
    });
    if let Some(text) = r["postData"].as_str() {
        let mime = header(&r["headers"], "content-type").unwrap_or_default();
        out["bodySize"] = json!(text.len());
        out["postData"] = json!({"mimeType": mime, "text": bounded(text)});
    }
    out
}

/// The HAR response of a CDP `Response` (`Null`: none came); its CDP timing
/// rides along as `_timing` until the entry is finished.
fn response(r: &Value) -> Value {
    let status = r["status"].as_i64().unwrap_or(0);
    let location = header(&r["headers"], "location").unwrap_or_default();
    json!({
        "status": status,
        "statusText": str_of(&r["statusText"]),
        "httpVersion": str_of(&r["protocol"]),
        "cookies": [],
        "headers": headers(&r["headers"]),
        "content": {"size": 0, "mimeType": str_of(&r["mimeType"])},
        "redirectURL": bounded(&location),
        "headersSize": -1,
        "bodySize": -1,
        "_timing": r["timing"].clone(),
    })
}

/// HAR timings (ms) from a CDP `ResourceTiming` (offsets in ms from its
/// `requestTime`, -1 when a phase did not happen) and the monotonic times
/// (s) the request was sent, answered and ended.
fn timings(t: &Value, started: f64, responded: Option<f64>, ended: Option<f64>) -> Value {
    let at = |k: &str| t[k].as_f64().unwrap_or(-1.0);
    let span = |a: f64, b: f64| if a >= 0.0 && b >= a { b - a } else { -1.0 };
    let Some(request_time) = t["requestTime"].as_f64() else {
        // No network timing (a data: URL, the memory cache, a failure).
        let wait = responded.map_or(0.0, |r| ((r - started) * 1000.0).max(0.0));
        let receive = match (responded, ended) {
            (Some(r), Some(e)) => ((e - r) * 1000.0).max(0.0),
            _ => 0.0,
        };
        return json!({"blocked": -1, "dns": -1, "connect": -1, "send": 0,
                      "wait": wait, "receive": receive, "ssl": -1});
    };
    let queued = ((request_time - started) * 1000.0).max(0.0);
    let first = [at("dnsStart"), at("connectStart"), at("sendStart")]
        .into_iter()
        .find(|v| *v >= 0.0)
        .unwrap_or(0.0);
    let headers_end = at("receiveHeadersEnd").max(0.0);
    let receive = ended.map_or(0.0, |e| {
        ((e - request_time) * 1000.0 - headers_end).max(0.0)
    });
    json!({
        "blocked": queued + first,
        "dns": span(at("dnsStart"), at("dnsEnd")),
        "connect": span(at("connectStart"), at("connectEnd")),
        "ssl": span(at("sslStart"), at("sslEnd")),
        "send": span(at("sendStart"), at("sendEnd")).max(0.0),
        "wait": (headers_end - at("sendEnd").max(0.0)).max(0.0),
        "receive": receive,
    })
}

/// CDP headers (an object) as HAR headers (a list).
fn headers(h: &Value) -> Vec<Value> {
    h.as_object()
        .map(Map::iter)
        .into_iter()
        .flatten()
        .take(MAX_HEADERS)
        .map(
            |(name, v)| json!({"name": cut(name, MAX_HEADER), "value": cut(str_of(v), MAX_HEADER)}),
        )
        .collect()
}

/// A HAR header's value, whatever the case of its name.
fn header_list(h: &Value, name: &str) -> Option<String> {
    h.as_array()?
        .iter()
        .find(|x| str_of(&x["name"]).eq_ignore_ascii_case(name))
        .map(|x| str_of(&x["value"]).to_string())
}

/// A header's value, whatever the case of its name.
fn header(h: &Value, name: &str) -> Option<String> {
    h.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| str_of(v).to_string())
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn bounded(s: &str) -> String {
    cut(s, MAX_TEXT)
}

/// At most `max` bytes of `s` (and an ellipsis if cut).
fn cut(s: &str, max: usize) -> String {
    let p = gridiron_domain::text::prefix(s, max);
    if p.len() < s.len() {
        format!("{p}…")
    } else {
        s.to_string()
    }
}

/// About how many bytes `v` holds (its strings, and a little per value).
fn weight(v: &Value) -> usize {
    16 + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(weight).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| k.len() + weight(v)).sum(),
        _ => 0,
    }
}

fn iso(ms: f64) -> String {
    Civil::from_unix_ms(ms as i64).iso8601()
}

#[cfg(test)]
#[path = "har_tests.rs"]
mod tests;
