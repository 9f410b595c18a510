"""The DevTools observer and the live view, with real Chromium through the grid.

* every Chromium session gets `console.log` (console calls, uncaught errors)
* `gridiron:options.recordNetwork` gets `network.har`
* `GET /api/v1/sessions/{id}/live` is MJPEG of what the browser shows, for
  the session's owner only, captured only while somebody watches
"""

import http.client
import json
import os
import re
import subprocess
import time

import pytest

import harness
from harness import chrome_caps, fetch_artifact, list_artifacts, wait_until
from test_keys import bearer, make_keys

GRID_OPTIONS = {"max_sessions": 2, "queue_timeout": 60}


def outbox_file(grid, session_id, name):
    return os.path.join(grid.sessions_dir, session_id, "artifacts", name)


def console_lines(grid, session_id):
    try:
        with open(outbox_file(grid, session_id, "console.log"), encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


def artifact(grid, session_id, name, key=None):
    """An artifact through the API, once the session's artifacts are collected."""
    names = [a["name"] for a in list_artifacts(grid.url, session_id, key=key)]
    assert name in names, names
    return fetch_artifact(grid.url, session_id, name, key=key)


# ---- console log ----------------------------------------------------------


def test_the_console_log_holds_what_the_page_logged_and_its_uncaught_error(grid, pages, drivers):
    d = grid.remote()
    drivers.append(d)
    sid = d.session_id
    before = time.time() * 1000
    d.get(pages.url("/devtools.html"))

    def logged():
        lines = console_lines(grid, sid)
        texts = " | ".join(str(line.get("text")) for line in lines)
        return lines if "gridiron-uncaught-marker" in texts and "gridiron-console-marker" in texts else None

    lines = wait_until(logged, 15, what="the page's console output in console.log")
    after = time.time() * 1000
    log = next(line for line in lines if "gridiron-console-marker" in line["text"])
    assert log["text"] == "gridiron-console-marker 42", log
    assert log["level"] == "log" and log["source"] == "console", log
    assert log["url"] == pages.url("/devtools.html"), log
    assert before - 1000 <= log["timestamp"] <= after + 1000, (before, log, after)
    warning = next(line for line in lines if "gridiron-warning-marker" in line["text"])
    assert warning["level"] == "warning", warning
    error = next(line for line in lines if "gridiron-uncaught-marker" in line["text"])
    assert error["level"] == "error" and error["source"] == "exception", error
    d.quit()
    drivers.remove(d)
    kept = artifact(grid, sid, "console.log").decode()
    assert "gridiron-console-marker 42" in kept and "gridiron-uncaught-marker" in kept


def test_a_firefox_sessions_console_log_holds_what_the_page_logged(grid, pages, drivers):
    d = grid.remote(browser_name="firefox")
    drivers.append(d)
    sid = d.session_id
    before = time.time() * 1000
    d.get(pages.url("/devtools.html"))
    d.quit()
    drivers.remove(d)
    after = time.time() * 1000
    lines = [json.loads(x) for x in artifact(grid, sid, "console.log").decode().splitlines()]
    log = next((x for x in lines if "gridiron-console-marker" in x["text"]), None)
    assert log is not None, lines
    assert log["level"] == "log" and log["source"] == "console", log
    assert before - 1000 <= log["timestamp"] <= after + 1000, (before, log, after)
    warning = next(x for x in lines if "gridiron-warning-marker" in x["text"])
    assert warning["level"] == "warning", warning
    error = next(x for x in lines if "gridiron-uncaught-marker" in x["text"])
    assert error["level"] == "error", error


def test_the_console_log_holds_what_a_frame_of_another_site_logged(grid, pages, drivers):
    d = grid.remote()
    drivers.append(d)
    sid = d.session_id
    # 127.0.0.1 and localhost are different sites: the frame runs in a process of its own.
    frame = pages.url("/devtools_frame.html").replace("127.0.0.1", "localhost")
    d.get(pages.url("/index.html"))
    d.execute_script("const f = document.createElement('iframe'); f.src = arguments[0]; document.body.appendChild(f)",
                     frame)
    line = wait_until(lambda: next((x for x in console_lines(grid, sid) if x["text"] == "gridiron-frame-marker"), None),
                      15, what="the frame's console output in console.log")
    assert line["url"] == frame, line


# ---- HAR -------------------------------------------------------------------


def test_record_network_gives_a_har_of_the_sessions_requests(grid, pages, drivers):
    d = grid.remote(grid_options={"recordNetwork": True})
    drivers.append(d)
    sid = d.session_id
    d.get(pages.url("/devtools.html"))
    d.get(pages.url("/no-such-page.html"))
    d.quit()
    drivers.remove(d)
    har = json.loads(artifact(grid, sid, "network.har"))["log"]
    assert har["version"] == "1.2"
    by_url = {e["request"]["url"]: e for e in har["entries"]}
    assert pages.url("/devtools.html") in by_url, json.dumps(har)[:3000]
    page = by_url[pages.url("/devtools.html")]
    assert page["request"]["method"] == "GET"
    assert page["response"]["status"] == 200
    assert page["response"]["content"]["mimeType"] == "text/html"
    assert page["pageref"] in {p["id"] for p in har["pages"]}
    assert page["time"] >= 0 and set(page["timings"]) >= {"send", "wait", "receive"}
    assert by_url[pages.url("/no-such-page.html")]["response"]["status"] == 404


def test_a_har_only_when_asked_for(grid, pages, drivers):
    d = grid.remote()
    drivers.append(d)
    sid = d.session_id
    d.get(pages.url("/devtools.html"))
    d.quit()
    drivers.remove(d)
    names = [a["name"] for a in list_artifacts(grid.url, sid)]
    assert "console.log" in names and "network.har" not in names, names


def test_a_session_may_keep_no_console_log(grid, pages, drivers):
    d = grid.remote(grid_options={"consoleLog": False})
    drivers.append(d)
    sid = d.session_id
    d.get(pages.url("/devtools.html"))
    assert not os.path.exists(outbox_file(grid, sid, "console.log"))
    # Its live view starts an observer that keeps nothing.
    live = Live(grid.port, sid)
    try:
        assert live.status == 200
        live.frame()
    finally:
        live.close()
    d.quit()
    drivers.remove(d)
    names = [a["name"] for a in list_artifacts(grid.url, sid)]
    assert "console.log" not in names and "network.har" not in names, names


def test_record_network_must_be_a_boolean(grid):
    resp = grid.request("POST", "/session", body=chrome_caps(grid_options={"recordNetwork": "yes"}))
    assert resp.status == 400, resp
    assert resp.value["error"] == "invalid argument" and "recordNetwork" in resp.value["message"]


# ---- live view -------------------------------------------------------------


class Live:
    """A live view being read: its multipart parts, as (arrival time, JPEG)."""

    def __init__(self, port, session_id, headers=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        self.conn.request("GET", f"/api/v1/sessions/{session_id}/live", headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        self.content_type = self.resp.getheader("Content-Type", "")

    def boundary(self):
        m = re.match(r"multipart/x-mixed-replace;\s*boundary=(\S+)$", self.content_type)
        assert m, self.content_type
        return m.group(1).encode()

    def frame(self):
        boundary = b"--" + self.boundary()
        line = self.resp.readline()
        while line.strip() == b"":
            line = self.resp.readline()
        assert line.strip() == boundary, line
        headers = {}
        while True:
            line = self.resp.readline().strip()
            if not line:
                break
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        assert headers.get("content-type") == "image/jpeg", headers
        jpeg = self.resp.read(int(headers["content-length"]))
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9", "not a whole JPEG"
        return time.monotonic(), jpeg

    def close(self):
        self.conn.close()


def mean_colour(jpeg):
    """The JPEG's mean (r, g, b), decoded by ffmpeg."""
    out = subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-i", "pipe:0", "-vf", "scale=1:1:flags=area",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"],
        input=jpeg, capture_output=True, timeout=30, check=True,
    ).stdout
    assert len(out) == 3, out
    return tuple(out)


def log_count(grid, text):
    with open(grid.log_path, errors="replace") as f:
        return f.read().count(text)


def live_stops(grid):
    return log_count(grid, "live view stopped")


def test_the_live_view_streams_what_the_page_shows_and_stops_when_left(grid, pages, drivers):
    d = grid.remote()
    drivers.append(d)
    d.get(pages.url("/devtools.html"))
    stopped = live_stops(grid)
    live = Live(grid.port, d.session_id)
    try:
        assert live.status == 200, live.resp.read()
        frames = [live.frame()]
        r, g, b = mean_colour(frames[0][1])
        assert g > 150 and r < 60 and b < 60, (r, g, b)
        # A page that does not change still gives frames: five seconds of them.
        while frames[-1][0] - frames[0][0] < 5:
            frames.append(live.frame())
        assert len(frames) >= 6, [round(t - frames[0][0], 2) for t, _ in frames]
        # What the page shows next comes through.
        d.execute_script("document.body.style.background = '#0000c0'")
        blue = wait_until(lambda: (lambda c: c if c[2] > 150 and c[1] < 60 else None)(mean_colour(live.frame()[1])),
                          10, interval=0, what="a blue frame")
        assert blue[0] < 60, blue
    finally:
        live.close()
    wait_until(lambda: live_stops(grid) > stopped, 10, what="the capture to stop once its watcher left")


def test_watchers_share_one_capture(grid, pages, drivers):
    d = grid.remote()
    drivers.append(d)
    d.get(pages.url("/devtools.html"))
    log_before = log_count(grid, "live view started")
    a, b = Live(grid.port, d.session_id), Live(grid.port, d.session_id)
    try:
        a.frame(), b.frame()
        assert log_count(grid, "live view started") == log_before + 1
        a.close()
        b.frame()  # the second watcher still gets frames
    finally:
        b.close()


def test_a_live_view_ends_with_its_session(grid, pages, drivers):
    d = grid.remote()
    drivers.append(d)
    d.get(pages.url("/devtools.html"))
    live = Live(grid.port, d.session_id)
    try:
        live.frame()
        d.quit()
        drivers.remove(d)
        # The stream ends (the rest of it reads to its end, not forever).
        deadline = time.monotonic() + 15
        while live.resp.read1(65536):
            assert time.monotonic() < deadline, "the live view outlived its session"
    finally:
        live.close()
    resp = grid.request("GET", f"/api/v1/sessions/{d.session_id}/live")
    assert resp.status == 409, resp


def test_no_live_view_of_unknown_sessions_or_headless_firefox(grid, drivers):
    resp = grid.request("GET", "/api/v1/sessions/no-such-session/live")
    assert resp.status == 404 and resp.content_type == "application/problem+json", resp
    d = grid.remote(browser_name="firefox")
    drivers.append(d)
    resp = grid.request("GET", f"/api/v1/sessions/{d.session_id}/live")
    assert resp.status == 400, resp
    assert "no live view" in resp.json()["detail"], resp


@pytest.mark.deadline(180)
def test_a_user_key_cannot_watch_another_keys_session(make_grid, grid_binary, pages):
    g = make_grid(max_sessions=2, queue_timeout=60)
    a, b, root = make_keys(grid_binary, g, "a", "b").values()
    resp = g.request("POST", "/session", body=chrome_caps(), headers=bearer(a), timeout=90)
    assert resp.status == 200, resp
    sid = resp.value["sessionId"]
    try:
        other = g.request("GET", f"/api/v1/sessions/{sid}/live", headers=bearer(b))
        assert other.status == 404, other
        # Nor on the path a hub asks a node on.
        other = g.request("GET", f"/session/{sid}/gridiron/live", headers=bearer(b))
        assert other.status == 404 and other.value["error"] == "invalid session id", other
        nobody = g.request("GET", f"/api/v1/sessions/{sid}/live")
        assert nobody.status == 401, nobody
        for token in (a, root):
            live = Live(g.port, sid, headers=bearer(token))
            try:
                assert live.status == 200
                live.frame()
            finally:
                live.close()
    finally:
        g.request("DELETE", f"/session/{sid}", headers=bearer(a))


@pytest.mark.deadline(180)
def test_a_hub_routes_the_live_view_to_the_node_that_runs_the_session(make_cluster, pages, drivers):
    c = make_cluster()
    c.node(max_sessions=1)
    hub = c.hub()
    c.capacity(hub, 1)
    d = hub.remote()
    drivers.append(d)
    d.get(pages.url("/devtools.html"))
    live = Live(hub.port, d.session_id)
    try:
        assert live.status == 200, live.resp.read()
        r, g, b = mean_colour(live.frame()[1])
        assert g > 150 and r < 60 and b < 60, (r, g, b)
    finally:
        live.close()


@pytest.mark.deadline(180)
def test_a_recorded_firefox_session_is_watched_through_its_display(grid, pages):
    resp = grid.request("POST", "/session", body=chrome_caps("firefox", {"recordVideo": True}), timeout=90)
    if resp.status == 400 and "recordVideo" in resp.value.get("message", ""):
        pytest.skip("this build records no video (no session has a display of its own)")
    assert resp.status == 200, resp
    sid = resp.value["sessionId"]
    try:
        nav = grid.request("POST", f"/session/{sid}/url", body={"url": pages.url("/devtools.html")})
        assert nav.status == 200, nav
        live = Live(grid.port, sid)
        try:
            assert live.status == 200, live.resp.read()
            frames = [live.frame()]
            while frames[-1][0] - frames[0][0] < 3:
                frames.append(live.frame())
            assert len(frames) >= 4, [round(t - frames[0][0], 2) for t, _ in frames]
            # The page's green fills most of the screen (the browser's own bars the rest).
            r, g, b = mean_colour(frames[-1][1])
            assert g > 90 and g > 2 * r and g > 2 * b, (r, g, b)
            grabbers = [p for p in harness.processes_with_env(f"__GRIDIRON_SWEEP_SESSION={sid}") if p.comm == "ffmpeg"
                        and "x11grab" in p.cmdline and "image2pipe" in p.cmdline]
            assert len(grabbers) == 1, grabbers
        finally:
            live.close()
        # Leaving stops the grab.
        wait_until(lambda: not [p for p in harness.processes_with_env(f"__GRIDIRON_SWEEP_SESSION={sid}")
                                if "image2pipe" in p.cmdline], 10, what="the live view's ffmpeg to go")
    finally:
        grid.request("DELETE", f"/session/{sid}")
