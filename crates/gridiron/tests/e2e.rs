//! End to end through the real binary, real chromedriver and real Chromium,
//! driven by the fantoccini WebDriver client.

mod common;

use common::{eventually, http, serve_pages, Grid};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PAGE: &str = r#"<!doctype html><html><head><title>Gridiron test page</title></head>
<body><h1 id="h">hello</h1>
<input id="name" value=""><button id="go" onclick="document.getElementById('out').textContent = 'Hi ' + document.getElementById('name').value">go</button>
<p id="out"></p>
<iframe id="f" srcdoc="<p id='inner'>inside the frame</p>"></iframe>
</body></html>"#;

async fn connect(url: &str, caps: Value) -> Client {
    let caps = caps.as_object().cloned().unwrap_or_default();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(url)
        .await
        .expect("new session")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn webdriver_commands_work_through_the_grid() {
    let grid = Grid::start(&["--max-sessions", "2"]);
    let pages = serve_pages(PAGE);
    runtime().block_on(async {
        let c = connect(&grid.url(), json!({"browserName": "chrome"})).await;
        let page = format!("http://127.0.0.1:{pages}/index.html");
        c.goto(&page).await.unwrap();
        assert_eq!(c.title().await.unwrap(), "Gridiron test page");
        assert_eq!(c.current_url().await.unwrap().as_str(), page);
        // Elements, typing, clicking.
        let input = c.find(Locator::Id("name")).await.unwrap();
        input.send_keys("grid").await.unwrap();
        c.find(Locator::Id("go"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        assert_eq!(
            c.find(Locator::Css("#out"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "Hi grid"
        );
        // Scripts.
        let v = c
            .execute("return arguments[0] + 1", vec![json!(41)])
            .await
            .unwrap();
        assert_eq!(v, json!(42));
        // Screenshots are PNGs.
        let png = c.screenshot().await.unwrap();
        assert_eq!(&png[..4], b"\x89PNG");
        // Frames.
        c.clone().enter_frame(0).await.unwrap();
        assert_eq!(
            c.find(Locator::Id("inner"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            "inside the frame"
        );
        c.clone().enter_parent_frame().await.unwrap();
        // Cookies.
        c.goto(&format!("http://127.0.0.1:{pages}/setcookie"))
            .await
            .unwrap();
        let cookie = c.get_named_cookie("from_server").await.unwrap();
        assert_eq!(cookie.value(), "yes");
        // Windows.
        let first = c.window().await.unwrap();
        let new = c.new_window(true).await.unwrap();
        c.switch_to_window(new.handle).await.unwrap();
        assert_eq!(c.windows().await.unwrap().len(), 2);
        c.close_window().await.unwrap();
        c.switch_to_window(first).await.unwrap();
        c.close().await.unwrap();
    });
    let rows =
        grid.store_value("SELECT count(*), min(end_reason), min(command_count) FROM sessions");
    let parts: Vec<&str> = rows.split('|').collect();
    assert_eq!(parts[0], "1");
    assert_eq!(parts[1], "quit");
    assert!(
        parts[2].parse::<u32>().unwrap() > 10,
        "commands counted: {rows}"
    );
}

#[test]
fn parallel_sessions_beyond_capacity_all_complete_without_sharing_cookies() {
    let grid = Grid::start(&["--max-sessions", "2"]);
    let pages = serve_pages(PAGE);
    let url = grid.url();
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let c = connect(&url, json!({})).await;
                c.goto(&format!("http://127.0.0.1:{pages}/")).await.unwrap();
                let cookies = c.get_all_cookies().await.unwrap();
                assert!(
                    cookies.is_empty(),
                    "a fresh session sees no cookies: {cookies:?}"
                );
                c.execute(
                    &format!("document.cookie = 'who=client{i}; path=/'"),
                    vec![],
                )
                .await
                .unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mine = c.get_named_cookie("who").await.unwrap();
                assert_eq!(mine.value(), format!("client{i}"));
                c.close().await.unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    assert_eq!(
        grid.store_value("SELECT count(*), group_concat(end_reason) FROM sessions"),
        "4|quit,quit,quit,quit",
        "{}",
        grid.log()
    );
}

#[test]
fn wd_hub_prefix_works() {
    let grid = Grid::start(&["--max-sessions", "1"]);
    runtime().block_on(async {
        let c = connect(&format!("{}/wd/hub/", grid.url()), json!({})).await;
        c.goto("data:text/html,<title>hub</title>").await.unwrap();
        assert_eq!(c.title().await.unwrap(), "hub");
        c.close().await.unwrap();
    });
}

#[test]
fn killed_driver_ends_the_session_and_frees_the_slot() {
    let grid = Grid::start(&["--max-sessions", "1"]);
    let id = grid.new_session();
    let pid = grid.driver_pid(&id);
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    eventually(Duration::from_secs(5), "session ends", || {
        grid.store_value(&format!(
            "SELECT end_reason FROM sessions WHERE id = '{id}'"
        )) == "driver_crashed"
    });
    let t = Instant::now();
    let (status, body) = grid.request("GET", &format!("/session/{id}/title"), None);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("invalid session id"), "{body}");
    assert!(body.contains("driver_crashed"), "{body}");
    // The end is recorded once the kill is sent; the exit itself follows.
    eventually(
        Duration::from_secs(5),
        "the browser died with the driver",
        || grid.session_processes(&id).is_empty(),
    );
    // The only slot is free again.
    let id2 = grid.new_session();
    let (status, _) = grid.request("DELETE", &format!("/session/{id2}"), None);
    assert_eq!(status, 200);
}

#[test]
fn client_that_leaves_the_queue_gets_no_session() {
    let grid = Grid::start(&["--max-sessions", "1", "--queue-timeout", "60"]);
    let id = grid.new_session();
    // A second client queues, then hangs up.
    let s = grid.send_new_session_request();
    eventually(Duration::from_secs(5), "request is queued", || {
        let (_, st) = grid.request("GET", "/status", None);
        serde_json::from_str::<Value>(&st).unwrap()["value"]["queue"] == 1
    });
    drop(s);
    eventually(Duration::from_secs(5), "queue is empty again", || {
        let (_, st) = grid.request("GET", "/status", None);
        serde_json::from_str::<Value>(&st).unwrap()["value"]["queue"] == 0
    });
    let (status, _) = grid.request("DELETE", &format!("/session/{id}"), None);
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_secs(2));
    let (_, st) = grid.request("GET", "/status", None);
    let st: Value = serde_json::from_str(&st).unwrap();
    assert_eq!(
        st["value"]["sessions"], 0,
        "no session was started for the departed client"
    );
    // The departed request is on record, as ended in the queue.
    assert_eq!(
        grid.store_value("SELECT count(*), sum(end_reason = 'client_gone'), sum(end_reason = 'quit') FROM sessions"),
        "2|1|1"
    );
}

#[test]
fn sigterm_ends_sessions_and_leaves_nothing() {
    let mut grid = Grid::start(&["--max-sessions", "2"]);
    let ids: Vec<String> = (0..2).map(|_| grid.new_session()).collect();
    assert!(!grid.processes().is_empty());
    assert!(grid.terminate(), "clean exit\n{}", grid.log());
    grid.assert_clean();
    for id in ids {
        assert_eq!(
            grid.store_value(&format!(
                "SELECT state, end_reason FROM sessions WHERE id = '{id}'"
            )),
            "ended|shutdown"
        );
    }
}

#[test]
fn errors_have_the_w3c_shape() {
    let grid = Grid::start(&["--max-sessions", "1", "--max-new-session-bytes", "1024"]);
    let check = |(status, body): (u16, String), want_status: u16, want_error: &str| {
        assert_eq!(status, want_status, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(v["value"]["error"], want_error, "{body}");
        assert!(v["value"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        assert!(v["value"]["stacktrace"].is_string());
    };
    check(
        grid.request("POST", "/session", Some("{not json")),
        400,
        "invalid argument",
    );
    check(
        grid.request("POST", "/session", Some(r#"{"capabilities":5}"#)),
        400,
        "invalid argument",
    );
    let t = Instant::now();
    check(
        grid.request(
            "POST",
            "/session",
            Some(r#"{"capabilities":{"alwaysMatch":{"browserName":"netscape"}}}"#),
        ),
        500,
        "session not created",
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "impossible requests fail at once"
    );
    check(
        grid.request("GET", "/session/deadbeef/title", None),
        404,
        "invalid session id",
    );
    check(
        grid.request("GET", "/no/such/route", None),
        404,
        "unknown command",
    );
    check(
        grid.request("PUT", "/session", Some("{}")),
        405,
        "unknown method",
    );
    let big = format!(r#"{{"capabilities":{{}},"pad":"{}"}}"#, "x".repeat(4096));
    check(
        grid.request("POST", "/session", Some(&big)),
        400,
        "invalid argument",
    );
    // Still healthy afterwards.
    assert_eq!(http(grid.port, "GET", "/status", None).0, 200);
}

#[test]
fn driver_start_failure_is_reported_and_frees_the_slot() {
    // The operator allows the broken binary, so the driver gets to fail on it.
    let grid = Grid::start(&[
        "--max-sessions",
        "1",
        "--allow-binary",
        "/nonexistent/chrome",
    ]);
    let (status, body) = grid.request(
        "POST",
        "/session",
        Some(r#"{"capabilities":{"alwaysMatch":{"goog:chromeOptions":{"binary":"/nonexistent/chrome"}}}}"#),
    );
    assert_eq!(status, 500, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["value"]["error"], "session not created");
    let msg = v["value"]["message"].as_str().unwrap();
    assert!(
        msg.contains("/nonexistent/chrome"),
        "the driver's own message: {msg}"
    );
    assert_eq!(
        grid.store_value("SELECT end_reason FROM sessions"),
        "failed_to_start"
    );
    // The slot came back: status is ready and a normal session starts.
    let (_, st) = grid.request("GET", "/status", None);
    assert_eq!(
        serde_json::from_str::<Value>(&st).unwrap()["value"]["ready"],
        true
    );
    let (status, body) = grid.request("POST", "/session", Some(r#"{"capabilities":{}}"#));
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    let (_, st) = grid.request("GET", "/status", None);
    assert_eq!(
        serde_json::from_str::<Value>(&st).unwrap()["value"]["ready"],
        false,
        "the only slot is busy"
    );
    let id = v["value"]["sessionId"].as_str().unwrap();
    assert_eq!(
        grid.request("DELETE", &format!("/session/{id}"), None).0,
        200
    );
}

#[test]
fn client_that_leaves_during_start_leaves_no_session() {
    let grid = Grid::start(&["--max-sessions", "1"]);
    let s = grid.send_new_session_request();
    // The browser takes longer than this to start, so the client is gone before the hand-over.
    std::thread::sleep(Duration::from_millis(150));
    drop(s);
    eventually(
        Duration::from_secs(30),
        "session ended as client_gone",
        || grid.store_value("SELECT end_reason FROM sessions") == "client_gone",
    );
    eventually(Duration::from_secs(5), "its processes are gone", || {
        let id = grid.store_value("SELECT id FROM sessions");
        grid.session_processes(&id).is_empty()
    });
    let (_, st) = grid.request("GET", "/status", None);
    let st: Value = serde_json::from_str(&st).unwrap();
    assert_eq!(st["value"]["sessions"], 0);
    assert_eq!(st["value"]["ready"], true);
}

#[test]
fn idle_sessions_end_and_report_why() {
    let grid = Grid::start(&["--max-sessions", "1"]);
    let (status, body) = grid.request(
        "POST",
        "/session",
        Some(r#"{"capabilities":{"alwaysMatch":{"gridiron:options":{"idleTimeout":1,"name":"idle"}}}}"#),
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["value"]["capabilities"].get("gridiron:options").is_none());
    let id = v["value"]["sessionId"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(5), "idle session ends", || {
        grid.store_value(&format!(
            "SELECT end_reason FROM sessions WHERE id = '{id}'"
        )) == "idle_timeout"
    });
    let (status, body) = grid.request("GET", &format!("/session/{id}/title"), None);
    assert_eq!(status, 404);
    assert!(body.contains("idle_timeout"), "{body}");
    // The end is recorded once the kill is sent; the exit itself follows.
    eventually(Duration::from_secs(5), "its processes are gone", || {
        grid.session_processes(&id).is_empty()
    });
    assert_eq!(
        grid.store_value(&format!(
            "SELECT grid_options FROM sessions WHERE id = '{id}'"
        )),
        r#"{"idleTimeout":1.0,"name":"idle"}"#
    );
}

#[test]
fn a_restart_after_kill_9_closes_records_and_kills_leftovers() {
    let grid = Grid::start(&["--max-sessions", "1"]);
    let id = grid.new_session();
    let data_dir = grid.data_dir.clone();
    let tmp = grid.kill_hard();
    // The driver dies with the grid and the browser with its driver (both
    // have a parent-death signal), before any restart.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !common::processes_with_env(&format!("{}={id}", gridiron_provision::ENV_SESSION))
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "processes of the killed grid's session outlived it: {:?}",
            common::processes_with_env(&format!("{}={id}", gridiron_provision::ENV_SESSION))
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The record was written before the client had its session; its state
    // may be a step behind (later writes are queued), never missing or ended.
    let state = grid_store(
        &data_dir,
        &format!("SELECT state FROM sessions WHERE id = '{id}'"),
    );
    assert!(
        state == "running" || state == "provisioning",
        "the killed grid's session is recorded, unfinished: {state:?}"
    );
    let grid = Grid::start_in(tmp, &["--max-sessions", "1"]);
    assert!(
        common::processes_with_env(&format!("{}={id}", gridiron_provision::ENV_SESSION)).is_empty(),
        "leftovers of the killed grid are gone"
    );
    assert_eq!(
        grid.store_value(&format!(
            "SELECT state, end_reason FROM sessions WHERE id = '{id}'"
        )),
        "ended|shutdown"
    );
    let left = data_dir.join("sessions").join(&id);
    assert!(
        !left.exists(),
        "{:?}\n{}",
        std::fs::read_dir(&left).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>()),
        grid.log()
    );
    // And the new grid works.
    let id2 = grid.new_session();
    assert_eq!(
        grid.request("DELETE", &format!("/session/{id2}"), None).0,
        200
    );
}

fn grid_store(data_dir: &std::path::Path, sql: &str) -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sqlite3,sys; c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro', uri=True); r=c.execute(sys.argv[2]).fetchone(); print('' if r is None else '|'.join(str(x) for x in r))"])
        .arg(data_dir.join("gridiron.db"))
        .arg(sql)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
