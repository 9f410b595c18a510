"""Session videos: `gridiron:options.recordVideo` (and `se:recordVideo`,
`selenoid:options.enableVideo`) records the session's screen with a real
Xvfb and ffmpeg, Chromium and Firefox alike. Each recorded page cycles its
background through known colours, one a second; the test decodes frames of
the video it fetches through the artifacts API and checks the colours and
the duration. Whatever ends a session, its video plays, and no Xvfb or
ffmpeg outlives it.
"""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import chrome_caps, fetch_artifact, list_artifacts, wait_until
from pages import COLOURS

SCREEN = (800, 600)
RECORD = {"recordVideo": True, "screenResolution": "%dx%d" % SCREEN}
# How far a video's length may be from its session's life, in seconds.
DURATION_SLACK = 2.0


def probe(path):
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,width,height,pix_fmt",
         "-of", "json", path],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert len(info["streams"]) == 1, info
    return info["streams"][0], float(info["format"]["duration"])


def colours(path, fps=10):
    """The colour of the middle of the screen, `fps` times a second of video."""
    out = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-vf",
         f"fps={fps},crop=64:64:(iw-64)/2:(ih-64)/2,scale=1:1:flags=area",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    raw = out.stdout
    return [tuple(raw[i:i + 3]) for i in range(0, len(raw) - 2, 3)]


def palette_index(rgb):
    """Which of the page's colours `rgb` is (None: something else)."""
    for i, c in enumerate(COLOURS):
        if all(abs(a - b) < 60 for a, b in zip(rgb, c)):
            return i
    return None


def check_cycle(path, fps=10):
    """The page's colours appear in their order, each for about a second:
    sampled half a second into each second after the first red frame, the
    video shows the colour the page had then. Returns how many seconds of
    the cycle were seen."""
    seen = [palette_index(c) for c in colours(path, fps)]
    assert 0 in seen, f"the page never shows in the video: {seen}"
    first = seen.index(0)
    last = max(i for i, k in enumerate(seen) if k is not None)
    seconds = 0
    while first + (seconds + 1) * fps <= last:
        at = first + seconds * fps + fps // 2
        assert seen[at] == seconds % len(COLOURS), (
            f"at {at / fps:.1f} s the video shows colour {seen[at]}, expected {seconds % len(COLOURS)}: {seen}"
        )
        seconds += 1
    return seconds


def save(data):
    fd, path = tempfile.mkstemp(suffix=".mp4", prefix="gridiron-video-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def fetch_video(grid, session_id, thumbnail=True):
    names = {a["name"]: a for a in list_artifacts(grid.url, session_id)}
    assert "video.mp4" in names, names
    assert names["video.mp4"]["contentType"].startswith("video/mp4"), names
    assert not thumbnail or "thumbnail.jpg" in names, names
    return save(fetch_artifact(grid.url, session_id, "video.mp4"))


def recorders(grid):
    return [p for p in grid.processes() if p.comm in ("Xvfb", "ffmpeg")]


def assert_playable(path, life=None):
    stream, duration = probe(path)
    assert stream["codec_name"] == "h264" and stream["pix_fmt"] == "yuv420p", stream
    assert (stream["width"], stream["height"]) == SCREEN, stream
    if life is not None:
        assert abs(duration - life) < DURATION_SLACK, f"video of {duration:.2f} s, session lived {life:.2f} s"
    # Every frame decodes.
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-f", "null", "-"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr
    return duration


def record_colours(grid, pages, drivers, browser, seconds=5.5):
    began = time.monotonic()
    driver = grid.remote(browser_name=browser, grid_options=RECORD)
    drivers.append(driver)
    sid = driver.session_id
    # The recorder runs before the client knows the session.
    running = [p for p in recorders(grid) if p.session == sid]
    assert {p.comm for p in running} == {"Xvfb", "ffmpeg"}, running
    driver.get(pages.url("/colours.html"))
    time.sleep(seconds)
    driver.quit()
    drivers.remove(driver)
    life = time.monotonic() - began
    path = fetch_video(grid, sid)
    try:
        assert_playable(path, life)
        assert check_cycle(path) >= 4
    finally:
        os.remove(path)
    assert not recorders(grid), recorders(grid)


@pytest.mark.deadline(150)
def test_a_recorded_chromium_session_shows_its_page_in_time(make_grid, pages, drivers):
    g = make_grid(max_sessions=1)
    record_colours(g, pages, drivers, "chrome")


@pytest.mark.deadline(150)
def test_a_recorded_firefox_session_shows_its_page_in_time(make_grid, pages, drivers):
    g = make_grid(max_sessions=1)
    record_colours(g, pages, drivers, "firefox")


def start_recorded(grid, extra=None):
    caps = chrome_caps(grid_options=dict(RECORD, **(extra or {})))
    return grid.new_session_raw(caps)


def end_and_fetch(grid, sid, reason, began, timeout=30):
    grid.wait_ended(sid, reason=reason, timeout=timeout)
    path = fetch_video(grid, sid)
    try:
        assert_playable(path)
    finally:
        os.remove(path)
    wait_until(lambda: not recorders(grid), 10, what="no Xvfb or ffmpeg left")


@pytest.mark.deadline(240)
def test_a_recorded_session_is_finished_whatever_ends_it(make_grid):
    g = make_grid(max_sessions=2)
    began = time.monotonic()
    # Idle timeout and maximum duration.
    idle = start_recorded(g, {"idleTimeout": 2})
    longest = start_recorded(g, {"sessionTimeout": 3})
    end_and_fetch(g, idle, "idle_timeout", began)
    end_and_fetch(g, longest, "max_duration", began)
    # The driver's whole process group (driver and browser) killed outright:
    # the recorder, in a group of its own, outlives it and is stopped gracefully.
    crashed = start_recorded(g)
    os.killpg(g.chromedriver_of(crashed).pid, signal.SIGKILL)
    end_and_fetch(g, crashed, "driver_crashed", began)
    # Deleted through WebDriver (what quit sends).
    quit_ = start_recorded(g)
    time.sleep(1)
    assert g.delete_session_raw(quit_).status == 200
    end_and_fetch(g, quit_, "quit", began)


@pytest.mark.deadline(120)
def test_a_client_gone_before_the_answer_still_leaves_a_video(make_grid):
    g = make_grid(max_sessions=1)
    body = json.dumps(chrome_caps(grid_options=RECORD)).encode()
    sock = socket.create_connection(("127.0.0.1", g.port))
    sock.sendall(b"POST /session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    # Gone once its recorder runs, before its browser has started.
    wait_until(lambda: [p for p in recorders(g) if p.comm == "ffmpeg"], 30, what="the recorder to start")
    sock.close()
    rows = g.wait_row_matching("end_reason = 'client_gone'", timeout=60)
    end_and_fetch(g, rows[0]["id"], "client_gone", time.monotonic())


@pytest.mark.deadline(120)
def test_shutdown_waits_for_the_video(make_grid):
    g = make_grid(max_sessions=1)
    sid = start_recorded(g)
    time.sleep(2)
    code, _ = g.terminate()
    assert code == 0
    assert not recorders(g)
    # The grid kept it: a grid started again on the same data lists and serves it.
    g.start()
    path = fetch_video(g, sid)
    try:
        assert assert_playable(path) > 1.0
    finally:
        os.remove(path)


@pytest.mark.deadline(120)
def test_other_spellings_record_and_never_reach_the_driver(make_grid):
    g = make_grid(max_sessions=1)
    for caps in (
        {"browserName": "chrome", "se:recordVideo": True},
        {"browserName": "chrome", "selenoid:options": {"enableVideo": True, "screenResolution": "800x600x24"}},
    ):
        resp = g.request("POST", "/session", body={"capabilities": {"alwaysMatch": caps}}, timeout=60)
        assert resp.status == 200, resp
        sid = resp.value["sessionId"]
        granted = resp.value["capabilities"]
        assert "se:recordVideo" not in granted and "selenoid:options" not in granted, granted
        assert [p for p in recorders(g) if p.session == sid]
        assert g.delete_session_raw(sid).status == 200
        path = fetch_video(g, sid)
        os.remove(path)


def test_bad_recording_options_are_invalid_arguments(make_grid):
    g = make_grid(max_sessions=1)
    for opts in ({"recordVideo": "yes"}, {"recordVideo": True, "screenResolution": "99999x1"},
                 {"screenResolution": "800x600x8"}):
        resp = g.request("POST", "/session", body=chrome_caps(grid_options=opts), timeout=30)
        assert resp.status == 400, resp
        assert resp.value["error"] == "invalid argument", resp
    assert not recorders(g)


@pytest.mark.deadline(150)
def test_a_recorded_request_never_takes_a_warm_session(make_grid):
    g = make_grid(max_sessions=2, warm="chrome=1")

    def warm_ready():
        return [p for p in g.processes() if p.is_chromium_main() and p.session not in g.known_session_ids()]

    warm = wait_until(warm_ready, 60, what="a warm session")
    warm_ids = {p.session for p in warm}
    sid = start_recorded(g)
    assert sid not in warm_ids
    assert [p for p in recorders(g) if p.session == sid]
    assert g.delete_session_raw(sid).status == 200
    os.remove(fetch_video(g, sid))


@pytest.mark.deadline(180)
def test_a_drained_node_finishes_its_recorded_session(make_cluster):
    c = make_cluster()
    node = c.node(max_sessions=1, drain_timeout=2)
    hub = c.hub()
    c.capacity(hub, 1)
    sid = hub.new_session_raw(chrome_caps(grid_options=RECORD))
    assert [p for p in recorders(node) if p.session == sid]
    # SIGTERM drains: the session outlasts the drain timeout and is ended.
    node.signal(signal.SIGTERM)
    assert node.proc.wait(timeout=60) == 0
    node.stopped = True
    assert not node.processes()
    # Kept by the node, in its local storage.
    path = os.path.join(node.data_dir, "artifacts", sid, "video.mp4")
    assert_playable(path)


@pytest.mark.deadline(120)
def test_no_recorder_outlives_a_grid_killed_outright(make_grid):
    g = make_grid(max_sessions=1)
    sid = start_recorded(g)
    assert {p.comm for p in recorders(g) if p.session == sid} == {"Xvfb", "ffmpeg"}
    time.sleep(3)
    g.kill_hard()
    left = g.wait_no_processes()
    assert not left, left
    # The fragmented recording plays up to its last fragment: a grid started
    # again on the same data keeps it with the session's artifacts.
    g.start()
    path = fetch_video(g, sid, thumbnail=False)
    try:
        assert assert_playable(path) > 1.0
    finally:
        os.remove(path)
