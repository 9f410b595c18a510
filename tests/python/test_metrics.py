"""`/metrics` and `/api/v1/scaling` on a real grid, read with the official
Prometheus parser (`prometheus_client`): a scripted scenario, then exact
counts. Standalone with real Chromium; a Redis cluster of two hubs with the
stand-in driver, where a scrape of either hub answers for the whole grid;
per-key series visible to their key and to admins only.
"""

import json
import os
import subprocess
import time

import pytest
import websocket
from prometheus_client.parser import text_string_to_metric_families

from harness import chrome_caps, find_standin_binary, request_in_background, standin_driver_dir, wait_until

# Keys are read through a one-second cache.
KEY_DELAY = 1.3
# How long the scenario keeps a request queued: its recorded wait is at least this.
HELD = 1.0
PROM_TEXT = "text/plain; version=0.0.4"


def scrape(grid, headers=None):
    """{(sample name, frozenset of labels): value} of the grid's /metrics."""
    resp = grid.request("GET", "/metrics", headers=headers)
    assert resp.status == 200, resp
    assert resp.content_type.startswith(PROM_TEXT), resp.headers
    text = resp.body.decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def series(samples, name):
    """{labels as a dict's items: value} of every sample named `name`."""
    return {k[1]: v for k, v in samples.items() if k[0] == name}


def scaling(grid, headers=None, query=""):
    resp = grid.request("GET", "/api/v1/scaling" + query, headers=headers)
    assert resp.status == 200, resp
    return resp.json()


def new_session(grid, grid_options=None, headers=None):
    resp = grid.request("POST", "/session", body=chrome_caps(grid_options=grid_options), headers=headers, timeout=90)
    assert resp.status == 200, resp
    return resp.value


def ended_counts(samples):
    return {dict(labels)["reason"]: v for labels, v in series(samples, "gridiron_sessions_ended_total").items()}


def run_scenario(enter, other, commands):
    """Two sessions on a one-slot grid: A runs `commands` commands and quits
    while B waits in the queue; B then idles out. `enter` takes the new
    sessions and the quit, `other` the commands and the scrapes in between.
    Returns (A's id, B's id)."""
    a = new_session(enter, {"idleTimeout": 120})["sessionId"]
    for _ in range(commands):
        assert other.request("GET", f"/session/{a}/title").status == 200
    t, box = request_in_background(enter, "POST", "/session", body=chrome_caps(grid_options={"idleTimeout": 2}), timeout=90)
    wait_until(lambda: value(scrape(other), "gridiron_queue_depth") == 1, 20, what="the request to be queued")
    s = scrape(other)
    assert value(s, "gridiron_scaling_desired_slots") == 2 and value(s, "gridiron_scaling_slot_delta") == 1
    assert scaling(other) == {
        "desired_slots": 2, "slot_delta": 1, "queued": 1, "running": 1, "free_slots": 0, "total_slots": 1, "headroom": 0,
    }
    assert scaling(other, query="?headroom=2")["desired_slots"] == 4
    running = series(s, "gridiron_sessions_running")
    assert sum(running.values()) == 1, running
    assert [dict(k)["browser"] for k, v in running.items() if v] == ["chrome"], running
    time.sleep(HELD)  # the scenario itself: B waits at least this long
    assert enter.request("DELETE", f"/session/{a}").status == 200
    t.join(90)
    assert "resp" in box and box["resp"].status == 200, box
    b = box["resp"].value["sessionId"]
    return a, b


def settled(grid, node="local"):
    """The scrape once B's end is counted and its slot free again, else None."""
    s = scrape(grid)
    done = value(s, "gridiron_sessions_ended_total", reason="idle_timeout") == 1
    return s if done and value(s, "gridiron_slots_free", node=node, browser="chrome") == 1 else None


def check_counts(s, commands):
    # A's commands and its DELETE; nothing sent to B.
    assert value(s, "gridiron_commands_total") == commands + 1
    ended = ended_counts(s)
    assert ended.pop("quit") == 1 and ended.pop("idle_timeout") == 1, ended
    assert set(ended.values()) == {0}, ended
    for h in ["gridiron_queue_wait_seconds", "gridiron_session_start_seconds"]:
        assert value(s, h + "_count") == 2, h
        assert value(s, h + "_bucket", le="+Inf") == 2, h
    # B waited at least HELD; A not at all.
    assert value(s, "gridiron_queue_wait_seconds_sum") >= HELD
    assert value(s, "gridiron_queue_wait_seconds_bucket", le="0.5") <= 1
    assert value(s, "gridiron_queue_depth") == 0
    assert sum(series(s, "gridiron_sessions_running").values()) == 0
    assert value(s, "gridiron_tunnels_open") == 0


def test_standalone_counts_a_scripted_scenario_exactly(make_grid):
    g = make_grid(max_sessions=1, queue_timeout=60)
    before = scrape(g)
    assert value(before, "gridiron_commands_total") == 0
    assert value(before, "gridiron_slots_total", node="local", browser="chrome") == 1
    assert value(before, "gridiron_slots_free", node="local", browser="chrome") == 1
    assert value(before, "gridiron_queue_wait_seconds_count") == 0
    assert set(ended_counts(before).values()) == {0}

    a = new_session(g, {"idleTimeout": 120})
    # A tunnel open counts while it lives.
    ws = websocket.create_connection(a["capabilities"]["se:cdp"], timeout=20)
    try:
        ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        assert '"id":1' in ws.recv().replace(" ", "")
        assert value(scrape(g), "gridiron_tunnels_open") == 1
    finally:
        ws.close()
    wait_until(lambda: value(scrape(g), "gridiron_tunnels_open") == 0, 10, what="the tunnel to close")
    assert g.request("DELETE", f"/session/{a['sessionId']}").status == 200

    _, b = run_scenario(g, g, commands=3)
    g.wait_ended(b, reason="idle_timeout", timeout=20)
    s = wait_until(lambda: settled(g), 10, what="B's end to be counted")
    # Counted on top of the first session (created, quit by its DELETE).
    assert value(s, "gridiron_commands_total") == 3 + 1 + 1
    ended = ended_counts(s)
    assert (ended.pop("quit"), ended.pop("idle_timeout")) == (2, 1), ended
    assert set(ended.values()) == {0}
    assert value(s, "gridiron_queue_wait_seconds_count") == 3
    assert value(s, "gridiron_session_start_seconds_count") == 3
    assert value(s, "gridiron_queue_wait_seconds_sum") >= HELD
    assert value(s, "gridiron_slots_free", node="local", browser="chrome") == 1
    # Every session record: inserted, marked running, marked ended, each timed once.
    for op in ["insert", "mark_running", "mark_ended"]:
        assert value(s, "gridiron_store_seconds_count", op=op) == 3, op
        assert value(s, "gridiron_store_seconds_bucket", op=op, le="+Inf") == 3, op
    assert value(s, "gridiron_tunnels_open") == 0
    assert g.db_row(b)["end_reason"] == "idle_timeout"


def test_bad_scaling_queries_get_problem_details(make_grid):
    g = make_grid(max_sessions=1)
    resp = g.request("GET", "/api/v1/scaling?headroom=lots")
    assert resp.status == 400, resp
    assert resp.content_type.startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == 400 and "headroom" in body["detail"], body
    assert body["type"].startswith("urn:gridiron:problem:"), body
    unknown = g.request("GET", "/api/v1/scaling?slots=3")
    assert unknown.status == 400 and "slots" in unknown.json()["detail"], unknown
    assert g.request("POST", "/metrics").status == 405
    # Described in the OpenAPI document.
    doc = g.request("GET", "/api/v1/openapi.json").json()
    assert "/api/v1/scaling" in doc["paths"], sorted(doc["paths"])
    assert "ScalingReport" in doc["components"]["schemas"]


def create_key(binary, name, *args, where):
    r = subprocess.run([binary, "keys", "create", name, *args, *where], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_a_user_sees_only_its_own_keys_series_an_admin_all(make_grid, grid_binary):
    g = make_grid(max_sessions=3, queue_timeout=60)
    where = ["--data-dir", g.data_dir]
    t = {
        "alice": create_key(grid_binary, "alice", where=where),
        "bob": create_key(grid_binary, "bob", where=where),
        "root": create_key(grid_binary, "root", "--role", "admin", where=where),
    }
    time.sleep(KEY_DELAY)
    sessions = [
        new_session(g, headers=bearer(t["alice"]))["sessionId"],
        new_session(g, headers=bearer(t["bob"]))["sessionId"],
        new_session(g, headers=bearer(t["bob"]))["sessionId"],
    ]
    try:
        def by_key(who):
            s = scrape(g, headers=bearer(t[who]))
            return {dict(k)["key"]: v for k, v in series(s, "gridiron_sessions_running_by_key").items()}

        assert by_key("root") == {"alice": 1, "bob": 2}
        assert by_key("alice") == {"alice": 1}
        assert by_key("bob") == {"bob": 2}
        # The rest is the same for everyone with a key.
        s = scrape(g, headers=bearer(t["alice"]))
        assert sum(series(s, "gridiron_sessions_running").values()) == 3
        assert "bob" not in g.request("GET", "/metrics", headers=bearer(t["alice"])).body.decode()
        # Without a key: refused, as every route but /status.
        for path in ["/metrics", "/api/v1/scaling"]:
            resp = g.request("GET", path)
            assert resp.status == 401, resp
        assert scaling(g, headers=bearer(t["alice"]))["running"] == 3
    finally:
        for sid, who in zip(sessions, ["alice", "bob", "bob"]):
            g.request("DELETE", f"/session/{sid}", headers=bearer(t[who]))


@pytest.mark.deadline(150)
def test_either_hub_of_a_cluster_answers_for_the_whole_grid(make_cluster, tmp_path):
    standin = find_standin_binary()
    if standin is None:
        pytest.fail("gridiron-standin-driver not found: build it (cargo build -p gridiron-standin-driver) "
                    "or set GRIDIRON_STANDIN_BIN", pytrace=False)
    home = os.path.join(str(tmp_path), "home")
    os.makedirs(home)
    env = {"PATH": f"{standin_driver_dir(str(tmp_path), standin)}:/usr/bin:/bin", "HOME": home}
    c = make_cluster(heartbeat_ttl=3, env=env)
    c.node(max_sessions=1, no_prewarm=True)
    h0, h1 = c.hub(), c.hub()
    c.capacity(h0, 1)
    node_id = c.nodes[0].node_id()
    for h in (h0, h1):
        s = scrape(h)
        assert value(s, "gridiron_slots_total", node=node_id, browser="chrome") == 1
        assert value(s, "gridiron_commands_total") == 0

    # New sessions and the quit through one hub, commands and scrapes through the other.
    commands = 4
    _, b = run_scenario(h0, h1, commands=commands)
    c.redis.wait_ended(b, reason="idle_timeout", timeout=30)

    for h in (h0, h1):
        # The node flushes its counts once a second: wait for them, then exact.
        s = wait_until(lambda: settled(h, node_id), 15, what="the node's counts to reach the hub")
        check_counts(s, commands)
        assert value(s, "gridiron_slots_free", node=node_id, browser="chrome") == 1
        assert value(s, "gridiron_store_seconds_count", op="claim") >= 2
    assert scaling(h0) == {
        "desired_slots": 0, "slot_delta": -1, "queued": 0, "running": 0, "free_slots": 1, "total_slots": 1, "headroom": 0,
    }
