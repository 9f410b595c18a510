use super::*;

fn sent(id: &str, url: &str, kind: &str, ts: f64) -> Value {
    json!({"requestId": id, "loaderId": id, "frameId": "T", "type": kind,
           "timestamp": ts, "wallTime": 1_700_000_000.0 + ts,
           "request": {"url": url, "method": "GET", "headers": {"Accept": "*/*"}}})
}

fn answered(id: &str, status: i64, ts: f64) -> Value {
    json!({"requestId": id, "timestamp": ts, "response": {
        "url": "x", "status": status, "statusText": "OK", "protocol": "http/1.1",
        "mimeType": "text/html", "headers": {"Content-Type": "text/html", "Location": "/next"},
        "timing": {"requestTime": ts - 0.05, "dnsStart": -1, "dnsEnd": -1,
                   "connectStart": 1.0, "connectEnd": 3.0, "sslStart": -1, "sslEnd": -1,
                   "sendStart": 4.0, "sendEnd": 5.0, "receiveHeadersEnd": 45.0}}})
}

#[test]
fn a_navigation_makes_a_page_and_a_complete_entry() {
    let mut h = Har::new();
    h.event(
        "T",
        "Network.requestWillBeSent",
        &sent("1", "http://a/p?x=1&y=2", "Document", 10.0),
    );
    h.event("T", "Network.responseReceived", &answered("1", 200, 10.05));
    h.event(
        "T",
        "Network.dataReceived",
        &json!({"requestId": "1", "dataLength": 300}),
    );
    h.event(
        "T",
        "Network.loadingFinished",
        &json!({"requestId": "1", "timestamp": 10.1, "encodedDataLength": 420}),
    );
    let har = h.finish_all("1.0");
    let log = &har["log"];
    assert_eq!(log["version"], "1.2");
    assert_eq!(log["pages"][0]["id"], "page_1");
    assert_eq!(log["pages"][0]["title"], "http://a/p?x=1&y=2");
    let e = &log["entries"][0];
    assert_eq!(e["pageref"], "page_1");
    assert_eq!(e["startedDateTime"], "2023-11-14T22:13:30.000Z");
    assert_eq!(e["request"]["url"], "http://a/p?x=1&y=2");
    assert_eq!(
        e["request"]["queryString"][1],
        json!({"name": "y", "value": "2"})
    );
    assert_eq!(
        e["request"]["headers"][0],
        json!({"name": "Accept", "value": "*/*"})
    );
    assert_eq!(e["response"]["status"], 200);
    assert_eq!(e["response"]["content"]["size"], 300);
    assert_eq!(e["response"]["bodySize"], 300);
    assert_eq!(e["response"]["_transferSize"], 420);
    assert!(e["response"].get("_timing").is_none());
    let t = &e["timings"];
    assert_eq!(t["connect"], 2.0);
    assert_eq!(t["dns"], -1.0);
    assert_eq!(t["send"], 1.0);
    assert_eq!(t["wait"], 40.0);
    // Ended 100 ms after the request time; headers came at 45 ms.
    assert!((t["receive"].as_f64().unwrap() - 55.0).abs() < 1e-6, "{t}");
    assert_eq!(t["blocked"], 1.0, "until the connection started");
    assert!((e["time"].as_f64().unwrap() - 99.0).abs() < 1e-6, "{e}");
}

#[test]
fn subresources_belong_to_the_latest_page_of_their_target() {
    let mut h = Har::new();
    h.event(
        "T",
        "Network.requestWillBeSent",
        &sent("1", "http://a/", "Document", 1.0),
    );
    let mut img = sent("2", "http://a/i.png", "Image", 2.0);
    img["loaderId"] = json!("1");
    h.event("T", "Network.requestWillBeSent", &img);
    h.event(
        "U",
        "Network.requestWillBeSent",
        &sent("3", "http://b/", "Script", 3.0),
    );
    let har = h.finish_all("1");
    let e = har["log"]["entries"].as_array().unwrap();
    assert_eq!(e.len(), 3, "unfinished requests are still entries");
    assert_eq!(e[1]["pageref"], "page_1");
    assert!(e[2].get("pageref").is_none());
    assert_eq!(e[2]["response"]["status"], 0);
    assert!(e[2]["response"]["_error"].is_string());
}

#[test]
fn redirects_and_failures_end_their_hop() {
    let mut h = Har::new();
    h.event(
        "T",
        "Network.requestWillBeSent",
        &sent("1", "http://a/old", "Document", 1.0),
    );
    let mut next = sent("1", "http://a/next", "Document", 1.1);
    next["redirectResponse"] = answered("1", 302, 1.1)["response"].clone();
    h.event("T", "Network.requestWillBeSent", &next);
    h.event(
        "T",
        "Network.loadingFailed",
        &json!({"requestId": "1", "timestamp": 1.2, "errorText": "net::ERR_FAILED"}),
    );
    let har = h.finish_all("1");
    let e = har["log"]["entries"].as_array().unwrap();
    assert_eq!(e[0]["response"]["status"], 302);
    assert_eq!(e[0]["response"]["redirectURL"], "/next");
    assert_eq!(e[1]["request"]["url"], "http://a/next");
    assert_eq!(e[1]["response"]["_error"], "net::ERR_FAILED");
}

#[test]
fn memory_is_bounded() {
    let mut h = Har::new();
    let huge = format!("data:text/plain,{}", "a".repeat(1 << 20));
    for i in 0..(MAX_ENTRIES + 5) {
        let id = i.to_string();
        let url = if i == 0 { huge.as_str() } else { "http://a/" };
        h.event(
            "T",
            "Network.requestWillBeSent",
            &sent(&id, url, "Image", 1.0),
        );
        h.event(
            "T",
            "Network.loadingFinished",
            &json!({"requestId": id, "timestamp": 1.0}),
        );
    }
    assert_eq!(h.len(), MAX_ENTRIES);
    let har = h.finish_all("1");
    assert!(
        har["log"]["entries"][0]["request"]["url"]
            .as_str()
            .unwrap()
            .len()
            <= MAX_TEXT + 3
    );
    assert!(har["log"]["comment"]
        .as_str()
        .unwrap()
        .starts_with("5 requests"));
}

#[test]
fn what_requests_and_responses_weigh_is_bounded() {
    let mut h = Har::new();
    let big = "é".repeat(MAX_HEADER);
    let headers: Map<String, Value> = (0..500).map(|i| (format!("h{i}"), json!(big))).collect();
    let mut n = 0;
    for i in 0..2_000 {
        let mut s = sent(&i.to_string(), "http://a/", "Image", 1.0);
        s["request"]["headers"] = Value::Object(headers.clone());
        h.event("T", "Network.requestWillBeSent", &s);
        h.event(
            "T",
            "Network.loadingFinished",
            &json!({"requestId": i.to_string(), "timestamp": 1.0}),
        );
        n = i;
        if h.len() < i + 1 {
            break;
        }
    }
    assert!(h.bytes <= MAX_BYTES, "{}", h.bytes);
    assert!(n < 2_000, "the budget ran out before the entries did");
    let har = h.finish_all("1");
    let first = &har["log"]["entries"][0]["request"]["headers"];
    assert_eq!(first.as_array().unwrap().len(), MAX_HEADERS);
    assert!(first[0]["value"].as_str().unwrap().len() <= MAX_HEADER + 3);
}

#[test]
fn events_it_does_not_know_and_unknown_requests_change_nothing() {
    let mut h = Har::new();
    h.event("T", "Network.responseReceived", &answered("9", 200, 1.0));
    h.event("T", "Network.loadingFinished", &json!({"requestId": "9"}));
    h.event("T", "Page.loadEventFired", &json!({}));
    assert!(h.is_empty());
    assert_eq!(h.finish_all("1")["log"]["entries"], json!([]));
}
