"""Cross-site requests are refused, and the operator's bounds hold: request
sizes, header read time, connections, websockets per session, timeouts a
client may only lower, a per-command timeout, and record retention."""

import json
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium.common.exceptions import InvalidSessionIdException, TimeoutException

from harness import chrome_caps, wait_until

EVIL = "http://evil.example"
MIB = 1024 * 1024


def assert_w3c_error(resp, status, error, *mentions):
    assert resp.status == status, resp
    value = resp.json()["value"]
    assert value["error"] == error, value
    assert isinstance(value["stacktrace"], str), value
    for m in mentions:
        assert m in value["message"], value


def raw_upgrade(port, path, headers=None, timeout=10.0):
    """Sends a websocket upgrade on a raw socket; returns (status, socket, head).
    The socket stays open (the tunnel, on a 101) until the caller closes it."""
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(65536)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else None
    if status != 101:
        # An error: its whole JSON body.
        head += read_response(s, timeout, head)
    return status, s, head


def body_of(head_and_body):
    """The JSON body after an HTTP head, read to its end."""
    return json.loads(head_and_body.split(b"\r\n\r\n", 1)[1])


def read_response(s, timeout, already=b""):
    """What the grid sends on `s` (after `already`, which was read before) until
    its response is complete, it closes `s`, or `timeout` passes."""
    s.settimeout(timeout)
    data = already
    try:
        while not complete(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return data[len(already) :]


def complete(data):
    """Whether `data` holds an HTTP head and all the body its Content-Length announces."""
    if b"\r\n\r\n" not in data:
        return False
    head, rest = data.split(b"\r\n\r\n", 1)
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(rest) >= int(line.split(b":")[1])
    return False


def session_count(grid):
    return len(grid.db_rows())


# --------------------------------------------------------------------------
# Cross-site requests
# --------------------------------------------------------------------------


def test_cross_site_new_session_is_refused(make_grid):
    grid = make_grid(max_sessions=1)
    caps = chrome_caps()
    resp = grid.request("POST", "/session", body=caps, headers={"Origin": EVIL})
    assert_w3c_error(resp, 403, "unknown error", EVIL, "--allowed-origin")
    # What a page can send without a preflight: a text/plain "simple request".
    resp = grid.request("POST", "/session", body=json.dumps(caps), headers={"Content-Type": "text/plain;charset=UTF-8"})
    assert_w3c_error(resp, 400, "invalid argument", "application/json")
    resp = grid.request("POST", "/session", body=json.dumps(caps), headers={"Content-Type": "text/plain", "Origin": EVIL})
    assert_w3c_error(resp, 403, "unknown error", EVIL)
    resp = grid.request("GET", "/status", headers={"Origin": EVIL})
    assert_w3c_error(resp, 403, "unknown error", EVIL)
    assert session_count(grid) == 0, grid.db_rows()
    assert grid.status()["sessions"] == 0


def test_an_allowed_origin_passes(make_grid):
    grid = make_grid(max_sessions=1, allowed_origin="https://dash.example")
    resp = grid.request("GET", "/status", headers={"Origin": "https://dash.example"})
    assert resp.status == 200, resp
    # The grid's own address (what websocket libraries send) is not cross-site.
    resp = grid.request("GET", "/status", headers={"Origin": grid.url})
    assert resp.status == 200, resp
    resp = grid.request("GET", "/status", headers={"Origin": EVIL})
    assert_w3c_error(resp, 403, "unknown error", EVIL)


def test_cross_site_websockets_are_refused(make_grid):
    grid = make_grid(max_sessions=2)
    status, s, head = raw_upgrade(grid.port, "/cdp", {"Origin": EVIL})
    s.close()
    assert status == 403, head
    assert body_of(head)["value"]["error"] == "unknown error"
    sid = grid.new_session_raw()
    try:
        for path in (f"/session/{sid}/se/cdp", f"/wd/hub/session/{sid}/se/cdp"):
            status, s, head = raw_upgrade(grid.port, path, {"Origin": EVIL})
            s.close()
            assert status == 403, head
            assert EVIL in body_of(head)["value"]["message"]
        # Without an Origin (Puppeteer, Playwright, Selenium) the tunnel opens.
        status, s, head = raw_upgrade(grid.port, f"/session/{sid}/se/cdp")
        s.close()
        assert status == 101, head
    finally:
        grid.delete_session_raw(sid)
    # The refused /cdp started no browser and left no record.
    assert [r["id"] for r in grid.db_rows()] == [sid]


ATTACK_PAGE = """<!doctype html>
<html><head><title>attack</title></head><body><div id="out"></div><script>
const grid = "http://127.0.0.1:GRIDPORT";
const caps = JSON.stringify({capabilities: {alwaysMatch: {browserName: "chrome"}}});
const results = {};
function done(name, value) {
  results[name] = value;
  document.getElementById("out").textContent = JSON.stringify(results);
}
fetch(grid + "/session", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: caps})
  .then(() => done("fetch", "sent"), e => done("fetch", "error " + e));
const xhr = new XMLHttpRequest();
xhr.open("POST", grid + "/session");
xhr.setRequestHeader("Content-Type", "text/plain");
xhr.onloadend = () => done("xhr", "status " + xhr.status);
xhr.send(caps);
const ws = new WebSocket("ws://127.0.0.1:GRIDPORT/cdp");
ws.onopen = () => done("ws", "open");
ws.onerror = () => done("ws", "error");
</script></body></html>
"""


class _AttackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = ATTACK_PAGE.replace("GRIDPORT", str(self.server.grid_port)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.mark.deadline(90)
def test_a_page_in_a_session_cannot_use_the_grid(make_grid, drivers):
    grid = make_grid(max_sessions=2)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AttackHandler)
    server.grid_port = grid.port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        d = grid.remote()
        drivers.append(d)
        d.get(f"http://127.0.0.1:{server.server_address[1]}/attack.html")

        def settled():
            text = d.find_element("id", "out").text
            results = json.loads(text) if text else {}
            return results if {"fetch", "xhr", "ws"} <= results.keys() else None

        results = wait_until(settled, 20, interval=0.2, what="the attack page's requests to settle")
        assert results["ws"] == "error", results
        assert results["xhr"] != "status 200", results
        # Give a started session time to show, then check none did.
        time.sleep(1)
        assert [r["id"] for r in grid.db_rows()] == [d.session_id], grid.db_rows()
        assert grid.status()["sessions"] == 1
        assert grid.log_text().count("refused a cross-site request") >= 3, grid.log_tail()
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------
# Sizes, connections, websockets
# --------------------------------------------------------------------------


def test_a_large_new_session_body_is_refused_at_once(make_grid):
    grid = make_grid(max_sessions=1)
    # Declared: answered before the body is sent.
    s = socket.create_connection(("127.0.0.1", grid.port), timeout=10)
    s.sendall(
        (
            "POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {2 * MIB}\r\n\r\n"
        ).encode()
        + b'{"capabilities": '
    )
    started = time.monotonic()
    data = read_response(s, 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:300]
    assert time.monotonic() - started < 3
    value = body_of(data)["value"]
    assert value["error"] == "invalid argument" and "--max-new-session-bytes" in value["message"], value

    # Chunked: refused once past the limit, before the body ends.
    s = socket.create_connection(("127.0.0.1", grid.port), timeout=10)
    s.sendall(b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b" " * (64 * 1024)
    sent = 0
    try:
        while sent < int(1.5 * MIB):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    data = read_response(s, 5)
    s.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:300]
    assert "--max-new-session-bytes" in body_of(data)["value"]["message"]
    assert session_count(grid) == 0


def test_a_slowloris_connection_is_closed(make_grid):
    grid = make_grid(max_sessions=1, header_read_timeout=2)
    s = socket.create_connection(("127.0.0.1", grid.port), timeout=10)
    s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    closed_after = None
    s.settimeout(0.5)
    while time.monotonic() - started < 10:
        try:
            s.sendall(b"a")
            if s.recv(4096) == b"":
                closed_after = time.monotonic() - started
                break
        except socket.timeout:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
            break
    s.close()
    assert closed_after is not None, "the grid kept a slowloris connection open for 10 s"
    assert 1.5 <= closed_after < 5, closed_after
    assert grid.status()["ready"] is True


def test_connections_over_the_cap_wait(make_grid):
    grid = make_grid(max_sessions=1, max_connections=2)
    idle = [socket.create_connection(("127.0.0.1", grid.port), timeout=10) for _ in range(2)]
    try:
        # Both places are held by silent clients: a third client waits...
        result = {}

        def third():
            try:
                result["resp"] = grid.request("GET", "/status", timeout=20)
            except OSError as e:
                result["error"] = e

        t = threading.Thread(target=third, daemon=True)
        t.start()
        time.sleep(1.5)
        assert not result, result
        # ...and is served as soon as one leaves.
        idle.pop().close()
        t.join(10)
        assert "resp" in result and result["resp"].status == 200, result
    finally:
        for s in idle:
            s.close()
    assert grid.running()


def test_websockets_per_session_are_capped(make_grid):
    grid = make_grid(max_sessions=1, max_websockets_per_session=2)
    sid = grid.new_session_raw()
    open_sockets = []
    try:
        for _ in range(2):
            status, s, head = raw_upgrade(grid.port, f"/session/{sid}/se/cdp")
            open_sockets.append(s)
            assert status == 101, head
        status, s, head = raw_upgrade(grid.port, f"/session/{sid}/se/cdp")
        s.close()
        assert status == 500, head
        value = body_of(head)["value"]
        assert value["error"] == "unknown error" and "--max-websockets-per-session" in value["message"], value
        # A closed tunnel gives its place back.
        open_sockets.pop().close()

        def reopened():
            status, s, _ = raw_upgrade(grid.port, f"/session/{sid}/se/cdp")
            if status == 101:
                open_sockets.append(s)
                return True
            s.close()
            return False

        wait_until(reopened, 5, interval=0.2, what="a websocket place to free up")
    finally:
        for s in open_sockets:
            s.close()
        grid.delete_session_raw(sid)


# --------------------------------------------------------------------------
# Timeouts
# --------------------------------------------------------------------------


@pytest.mark.deadline(60)
def test_a_client_cannot_raise_the_idle_timeout(make_grid):
    grid = make_grid(max_sessions=1, idle_timeout=2)
    sid = grid.new_session_raw(chrome_caps(grid_options={"idleTimeout": 600, "sessionTimeout": 99999}))
    row = grid.wait_ended(sid, reason="idle_timeout", timeout=15)
    assert row["ended_at"] - row["started_at"] < 8000, row


@pytest.mark.deadline(90)
def test_a_command_over_the_command_timeout_ends_the_session(make_grid, drivers):
    grid = make_grid(max_sessions=1, command_timeout=2)
    d = grid.remote()
    drivers.append(d)
    sid = d.session_id
    d.set_script_timeout(60)
    started = time.monotonic()
    with pytest.raises(TimeoutException) as e:
        d.execute_async_script("/* never calls back */")
    assert time.monotonic() - started < 15
    assert "--command-timeout" in str(e.value), e.value
    grid.wait_ended(sid, reason="command_timeout")
    with pytest.raises(InvalidSessionIdException) as e:
        d.title
    assert "command_timeout" in str(e.value), e.value
    wait_until(lambda: not grid.session_processes(sid), 10, what="the session's processes to exit")


def test_retention_prunes_old_records(make_grid):
    grid = make_grid(max_sessions=1, retention=86400)
    grid.stop()
    now_ms = int(time.time() * 1000)
    day = 86400 * 1000
    conn = sqlite3.connect(grid.db_path)
    with conn:
        for sid, ended in (("old-record", now_ms - 2 * day), ("recent-record", now_ms - day // 24)):
            conn.execute(
                "INSERT INTO sessions (id, state, browser, requested_caps, grid_options, created_at,"
                " started_at, ended_at, end_reason, command_count)"
                " VALUES (?, 'ended', 'chrome', '{}', '{}', ?, ?, ?, 'quit', 1)",
                (sid, ended - 1000, ended - 900, ended),
            )
    conn.close()
    grid.start()
    wait_until(lambda: grid.db_row("old-record") is None, 10, what="the old record to be pruned")
    assert grid.db_row("recent-record") is not None
