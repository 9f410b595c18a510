"""Warm sessions (`--warm chrome=N`): started ahead of demand, handed to
requests of the default capabilities, isolated from each other, never
visible until taken, never in the way of other requests, and gone with
the grid."""

import os
import signal
import time

from selenium.webdriver.common.by import By

import harness
from harness import chrome_caps, in_background, wait_until

WARM_READY_TIMEOUT = 60.0


def wait_warm(grid, n):
    wait_until(lambda: grid.status()["warmSessions"] >= n, WARM_READY_TIMEOUT, what=f"{n} warm sessions")


def started_event(grid, session_id):
    """The session.started entry of the session's timeline."""
    def find():
        r = grid.request("GET", f"/api/v1/sessions/{session_id}")
        assert r.status == 200, r
        # The event itself (it names the browser), not the entry the API
        # rebuilds from the record while the event is still on its way.
        found = [e for e in r.json()["timeline"] if e["kind"] == "session.started" and "browser" in e["fields"]]
        return found[0] if found else None

    return wait_until(find, 5.0, what=f"session.started of {session_id}")


def was_warm(grid, session_id):
    return started_event(grid, session_id)["fields"].get("warm") == "true"


def profile_dir(driver):
    return driver.capabilities["chrome"]["userDataDir"]


def files_named(root, name):
    found = []
    for d, _, files in os.walk(root):
        found += [os.path.join(d, f) for f in files if f.startswith(name)]
    return found


def test_a_taken_warm_session_shares_nothing_with_the_next(make_grid, drivers, pages):
    g = make_grid(max_sessions=2, warm="chrome=1")
    wait_warm(g, 1)
    first = g.remote()
    drivers.append(first)
    assert was_warm(g, first.session_id)
    first.get(pages.url("/cookies.html"))
    first.add_cookie({"name": "flavour", "value": "oatmeal", "path": "/"})
    first.execute_script("localStorage.setItem('secret', 'first session')")
    first.get(pages.url("/second.html"))
    first.get(pages.url("/download.txt"))
    first_dir = profile_dir(first)
    session_dir = os.path.join(g.sessions_dir, first.session_id)
    wait_until(lambda: files_named(session_dir, "gridiron-download"), 10.0, what="the download")
    assert first.execute_script("return history.length") >= 3
    first.quit()
    wait_until(lambda: not os.path.exists(session_dir), harness.LEAK_TIMEOUT, what="the first session's files to go")

    wait_warm(g, 1)
    second = g.remote()
    drivers.append(second)
    assert was_warm(g, second.session_id)
    assert profile_dir(second) != first_dir
    assert second.execute_script("return history.length") == 1, "a fresh tab with no history"
    second.get(pages.url("/echo-cookies.html"))
    assert second.find_element(By.ID, "cookie-header").text == "", "no cookie of the first session"
    assert second.get_cookies() == []
    assert second.execute_script("return localStorage.getItem('secret')") is None
    second_dir = os.path.join(g.sessions_dir, second.session_id)
    assert files_named(second_dir, "gridiron-download") == [], "no download of the first session"
    second.quit()


def test_warm_sessions_are_never_handed_out_twice(make_grid):
    g = make_grid(max_sessions=4, warm="chrome=2")
    wait_warm(g, 2)
    starts = [in_background(lambda: g.new_session_raw()) for _ in range(4)]
    ids = []
    for thread, box in starts:
        thread.join(timeout=90)
        assert "result" in box, box
        ids.append(box["result"])
    assert len(set(ids)) == 4, ids
    warm = [i for i in ids if was_warm(g, i)]
    assert len(warm) == 2, "both warm sessions were taken, each once"
    browsers = {g.chromium_main_of(i).pid for i in ids}
    assert len(browsers) == 4, "every session has a browser of its own"
    for i in ids:
        assert g.delete_session_raw(i).status == 200


def test_a_request_never_waits_for_a_warm_sessions_slot(make_grid):
    g = make_grid(max_sessions=1, warm="chrome=1")
    wait_warm(g, 1)
    # Not the warm session's capabilities: it starts cold, in the warm session's slot.
    caps = chrome_caps()
    caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"] = {"args": ["--window-size=800,600"]}
    sid = g.new_session_raw(caps)
    assert not was_warm(g, sid)
    status = g.status()
    assert (status["warmSessions"], status["sessions"], status["freeSlots"]) == (0, 1, 0)
    # While the only slot is in use no warm session is started.
    time.sleep(1)
    assert g.status()["warmSessions"] == 0
    assert g.delete_session_raw(sid).status == 200
    wait_warm(g, 1)
    before = events_until_started(g, sid)
    assert [e for e in before if e["event"] == "request.queued"] == [], "the request was never queued"


def events_until_started(grid, session_id):
    """Every event of the grid's log before `session_id` started."""
    stream = harness.EventStream(grid.port, last_event_id="0", timeout=10)
    try:
        seen = []
        while True:
            e = stream.next()
            assert e is not None, f"the stream ended after {seen}"
            if e["event"] == "session.started" and e["data"].get("session") == session_id:
                return seen
            seen.append(e)
    finally:
        stream.close()


def test_warm_sessions_follow_the_launch_policy(make_grid):
    g = make_grid(max_sessions=2, warm="chrome=1")
    wait_warm(g, 1)
    hostile = chrome_caps()
    hostile["capabilities"]["alwaysMatch"]["goog:chromeOptions"] = {
        "args": ["--renderer-cmd-prefix=/bin/sh -c id"]
    }
    r = g.request("POST", "/session", body=hostile)
    assert r.status == 400 and r.value["error"] == "invalid argument", r
    assert g.status()["warmSessions"] == 1, "a refused request takes no warm session"
    # The warm browser was started with the grid's defaults only.
    warm_browsers = [p for p in g.processes() if p.is_chromium_main()]
    assert warm_browsers and all("--renderer-cmd-prefix" not in p.cmd_text for p in warm_browsers)
    # A switch the policy allows but the warm session lacks: a cold start.
    caps = chrome_caps()
    caps["capabilities"]["alwaysMatch"]["goog:chromeOptions"] = {"args": ["--lang=de"]}
    sid = g.new_session_raw(caps)
    assert not was_warm(g, sid)
    assert "--lang=de" in g.chromium_main_of(sid).cmd_text
    assert g.delete_session_raw(sid).status == 200


def test_the_idle_time_of_a_warm_session_does_not_count(make_grid, drivers):
    g = make_grid(max_sessions=2, warm="chrome=1", idle_timeout=2)
    wait_warm(g, 1)
    time.sleep(3)  # the warm session waits longer than a session may idle
    d = g.remote()
    drivers.append(d)
    assert was_warm(g, d.session_id)
    assert d.execute_script("return 1 + 1") == 2
    g.wait_ended(d.session_id, reason="idle_timeout", timeout=10)


def test_warm_sessions_are_nobodys_until_taken(make_grid):
    g = make_grid(max_sessions=2, warm="chrome=2")
    wait_warm(g, 2)
    status = g.status()
    assert status["sessions"] == 0 and status["freeSlots"] == 2 and status["ready"] is True
    assert all(s["session"] is None for s in status["nodes"][0]["slots"])
    assert g.request("GET", "/api/v1/sessions").json()["items"] == []
    assert g.db_rows() == []
    assert len([p for p in g.processes() if p.is_chromium_main()]) == 2
    sid = g.new_session_raw()
    assert was_warm(g, sid)
    before = events_until_started(g, sid)
    assert [e for e in before if e["event"].startswith(("session.", "request."))] == [], before
    assert g.delete_session_raw(sid).status == 200


def test_warm_sessions_die_with_the_grid(make_grid):
    g = make_grid(max_sessions=2, warm="chrome=2")
    wait_warm(g, 2)
    assert [p for p in g.processes() if p.is_chromium_main()]
    code, _ = g.terminate()
    assert code == 0
    assert g.wait_no_processes() == []
    assert g.session_dirs() == []

    g = make_grid(max_sessions=2, warm="chrome=2")
    wait_warm(g, 2)
    g.kill_hard()
    # Every browser dies with the grid that started it, even one killed outright.
    assert g.wait_no_processes(timeout=10) == []


def test_a_pool_keeps_its_nodes_sessions_warm_with_its_defaults(make_cluster, drivers):
    c = make_cluster()
    made = c.cli("pools", "create", "warmed", "--warm", "chrome=1", "--arg=--lang=de", "--label", "team=web")
    assert made.returncode == 0, made.stderr
    refused = c.cli("pools", "create", "bad", "--warm", "safari=1")
    assert refused.returncode != 0 and "safari" in refused.stderr, refused
    node = c.node(pool="warmed")
    hub = c.hub()
    c.capacity(hub, 1)
    wait_warm(node, 1)
    d = hub.remote(grid_options={"pool": "warmed"})
    drivers.append(d)
    assert c.node_of(d.session_id) is node
    assert was_warm(hub, d.session_id), "the pool's request took the warm session"
    assert "--lang=de" in node.chromium_main_of(d.session_id).cmdline
    d.quit()
    drivers.remove(d)
