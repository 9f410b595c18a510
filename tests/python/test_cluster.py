"""The scaled-out grid: a real redis-server, two hubs, two nodes, real Chromium.

The module's shared grid has two nodes of one slot each (one in pool `web`)
and two hubs; tests that kill or drain processes build their own.
"""

import http.client
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import websocket
from selenium import webdriver

from harness import CLUSTER_SECRET, Cluster, chrome_caps, http_request, hub_signature_headers, request_in_background, wait_until

HEARTBEAT_TTL = 3


@pytest.fixture(scope="module")
def shared(grid_binary):
    c = Cluster(grid_binary, heartbeat_ttl=HEARTBEAT_TTL)
    try:
        created = c.cli("pools", "create", "web", "--browser", "chrome", "--arg=--lang=de", "--label", "team=web", "--max-concurrency", "1")
        assert created.returncode == 0, created.stderr
        c.node(pool="web")
        c.node(label="zone=b")
        c.hub()
        c.hub()
        c.capacity(c.hubs[0], 2)
    except BaseException:
        c.stop()
        raise
    yield c
    c.stop()


@pytest.fixture
def make_cluster(make_cluster):
    """Clusters with this module's heartbeat TTL."""
    return lambda **kwargs: make_cluster(heartbeat_ttl=HEARTBEAT_TTL, **kwargs)


def titled(title):
    return f"data:text/html,<title>{title}</title>"


def cdp_over(hub, session_id):
    """Runtime.evaluate over the session's CDP websocket, through `hub`."""
    ws = websocket.create_connection(f"ws://127.0.0.1:{hub.port}/session/{session_id}/se/cdp", timeout=20)
    try:
        ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == 1:
                return msg["result"]
    finally:
        ws.close()


# --------------------------------------------------------------------------
# Shared grid
# --------------------------------------------------------------------------


def test_sessions_work_through_either_hub(shared, drivers):
    a, b = shared.hubs
    status = b.status()
    assert status["maxSessions"] == 2 and len(status["nodes"]) == 2
    assert {n["availability"] for n in status["nodes"]} == {"UP"}
    d = a.remote()
    drivers.append(d)
    d.get(titled("through-a"))
    sid = d.session_id
    assert d.capabilities["se:cdp"] == f"ws://127.0.0.1:{a.port}/session/{sid}/se/cdp"
    # The same session through the other hub: classic commands and CDP.
    title = b.request("GET", f"/session/{sid}/title")
    assert title.status == 200 and title.value == d.title, title
    nav = b.request("POST", f"/session/{sid}/url", body={"url": titled("through-b")})
    assert nav.status == 200, nav
    assert d.title == "through-b"
    assert "Chrome" in cdp_over(b, sid)["product"] or "Chromium" in cdp_over(b, sid)["product"]
    assert b.status()["sessions"] == 1
    node = shared.node_of(sid)
    d.quit()
    drivers.remove(d)
    shared.redis.wait_ended(sid, "quit")
    assert b.request("DELETE", f"/session/{sid}").status == 200  # already ended: nothing to do
    gone = b.request("GET", f"/session/{sid}/title")
    assert gone.status == 404 and gone.value["error"] == "invalid session id"
    assert "ended (quit)" in gone.value["message"]
    wait_until(lambda: not node.session_processes(sid), 5, what="session processes gone")
    # The store's event stream tells the session's story.
    mine = wait_until(
        lambda: (lambda e: e if any(x["type"] == "session.ended" for x in e) else None)(
            # Its lifecycle; its artifacts have events of their own.
            [e for e in shared.redis.events() if e.get("session") == sid and e["type"] in ("session.started", "session.ended")]
        ),
        5,
        what="events of the session",
    )
    assert [e["type"] for e in mine] == ["session.started", "session.ended"], mine
    assert mine[0]["node"] == node.node_id() and mine[1]["reason"] == "quit"
    queued = [e for e in shared.redis.events() if e["type"] == "request.queued" and e["request"] == mine[0]["request"]]
    assert len(queued) == 1 and queued[0]["hub"], queued
    activity = [e for e in shared.redis.events() if e.get("session") == sid and e["type"] == "session.activity"]
    assert activity and all(int(e["commands"]) >= 1 for e in activity), activity
    assert any(e["type"] == "node.up" and e["node"] == node.node_id() for e in shared.redis.events())


def test_requests_beyond_capacity_queue_and_complete_in_fifo_order(shared):
    a, b = shared.hubs
    blockers = [a.new_session_raw(), b.new_session_raw()]
    results = {}

    def request(i, hub):
        resp = hub.request("POST", "/session", body=chrome_caps(), timeout=90)
        results[i] = resp

    threads = []
    for i in range(3):
        t = threading.Thread(target=request, args=(i, (a, b)[i % 2]), daemon=True)
        t.start()
        threads.append(t)
        wait_until(lambda: shared.redis.queue_len() == i + 1, 10, what=f"request {i} queued")
    assert a.status()["queue"] == 3
    held = list(blockers)
    for i in range(3):
        a.delete_session_raw(held.pop(0))
        wait_until(lambda: i in results, 30, what=f"request {i} to be served")
        assert sorted(results) == list(range(i + 1)), f"served out of order: {sorted(results)}"
        assert results[i].status == 200, results[i]
        held.append(results[i].value["sessionId"])
    for t in threads:
        t.join(5)
    for sid in held:
        assert b.delete_session_raw(sid).status == 200
    assert shared.redis.queue_len() == 0


def test_queue_timeout_and_clients_that_leave(shared):
    a, b = shared.hubs
    impatient = shared.hub(queue_timeout=1.5)
    blockers = [a.new_session_raw(), a.new_session_raw()]
    try:
        started = time.monotonic()
        resp = impatient.request("POST", "/session", body=chrome_caps(), timeout=30)
        assert resp.status == 500 and resp.value["error"] == "session not created", resp
        assert "timed out" in resp.value["message"] and "queue" in resp.value["message"]
        assert 1.4 < time.monotonic() - started < 10
        # A client that gives up leaves the shared queue.
        with pytest.raises(OSError):
            b.request("POST", "/session", body=chrome_caps(), timeout=1.0)
        wait_until(lambda: shared.redis.queue_len() == 0, 10, what="abandoned request removed")
    finally:
        for sid in blockers:
            a.delete_session_raw(sid)
        impatient.stop()
        shared.hubs.remove(impatient)
    # Nothing was started for the requests that left: both slots come back free.
    wait_until(lambda: a.status()["sessions"] == 0, 5, what="no session on any node")
    time.sleep(1.0)
    assert a.status()["sessions"] == 0 and shared.redis.queue_len() == 0


def test_pool_defaults_targets_and_concurrency(shared, drivers):
    a, b = shared.hubs
    web, other = shared.nodes
    listed = shared.cli("pools", "list")
    assert listed.returncode == 0 and "web" in listed.stdout and "--lang=de" in listed.stdout, listed
    d = a.remote(grid_options={"pool": "web", "name": "pooled"})
    drivers.append(d)
    assert shared.node_of(d.session_id) is web
    chromium = web.chromium_main_of(d.session_id)
    assert "--lang=de" in chromium.cmdline, chromium.cmdline
    assert json.loads(shared.redis.session(d.session_id)["grid_options"])["labels"] == {"team": "web"}
    # The pool allows one session at a time, even though the other node is free.
    t, results = request_in_background(a, "POST", "/session", body=chrome_caps(grid_options={"pool": "web"}), timeout=60)
    wait_until(lambda: shared.redis.queue_len() == 1, 10, what="second pool session queued")
    time.sleep(1.0)
    assert not results and b.status()["sessions"] == 1
    d.quit()
    drivers.remove(d)
    t.join(60)
    assert "error" not in results, results
    second = results["resp"]
    assert second.status == 200, second
    sid = second.value["sessionId"]
    assert shared.node_of(sid) is web
    b.delete_session_raw(sid)
    # Node labels target the other node.
    sid = a.new_session_raw(chrome_caps(grid_options={"nodeLabels": {"zone": "b"}}))
    assert shared.node_of(sid) is other
    a.delete_session_raw(sid)
    for caps, needle in [
        (chrome_caps(grid_options={"pool": "nosuch"}), "no pool named nosuch"),
        (chrome_caps(grid_options={"nodeLabels": {"zone": "mars"}}), "no node"),
        (chrome_caps("safari"), "no configured browser matches"),
    ]:
        resp = a.request("POST", "/session", body=caps, timeout=10)
        assert resp.status == 500 and resp.value["error"] == "session not created", resp
        assert needle in resp.value["message"], resp
    made = shared.cli("pools", "create", "tmp", "--max-concurrency", "2")
    assert made.returncode == 0, made.stderr
    assert shared.cli("pools", "delete", "tmp").returncode == 0
    gone = shared.cli("pools", "delete", "tmp")
    assert gone.returncode != 0 and "no pool named tmp" in gone.stderr


def test_bad_requests_get_w3c_errors_from_hubs(shared):
    a, _ = shared.hubs
    cases = [
        ("POST", "/session", "{not json", 400, "invalid argument"),
        ("POST", "/session", {"capabilities": []}, 400, "invalid argument"),
        ("GET", "/session/nosuch/title", None, 404, "invalid session id"),
        ("DELETE", "/session/nosuch", None, 404, "invalid session id"),
        ("GET", "/nowhere", None, 404, "unknown command"),
        ("PUT", "/session", None, 405, "unknown method"),
    ]
    for method, path, body, status, error in cases:
        resp = a.request(method, path, body=body, timeout=10)
        assert resp.status == status and resp.value["error"] == error, (method, path, resp)
    big = a.request("POST", "/session", body=b"{}", headers={"Content-Length": str(1 << 40)}, timeout=10)
    assert big.status == 400 and "larger than" in big.value["message"], big


def test_nodes_refuse_callers_without_the_cluster_secret(shared):
    node = shared.nodes[0]
    # The secret itself (the old bearer header) opens nothing: requests must be signed with it.
    for headers in ({}, {"x-gridiron-cluster-secret": "wrong"}, {"x-gridiron-cluster-secret": CLUSTER_SECRET}):
        resp = http_request(node.port, "GET", "/status", headers=headers)
        assert resp.status == 401 and resp.value["error"] == "unknown error", resp
        resp = http_request(node.port, "POST", "/session", body=chrome_caps(), headers=headers)
        assert resp.status == 401, resp
    assert node.request("GET", "/status").status == 200
    direct = node.request("POST", "/session", body=chrome_caps())
    assert direct.status == 404 and "through a hub" in direct.value["message"], direct
    listed = shared.cli("nodes", "list")
    assert listed.returncode == 0 and node.node_id() in listed.stdout and " up " in listed.stdout, listed


def test_a_signed_request_replayed_to_a_node_is_refused(shared):
    node = shared.nodes[0]
    signed = hub_signature_headers("GET", "/status")
    first = http_request(node.port, "GET", "/status", headers=signed)
    assert first.status == 200, first
    again = http_request(node.port, "GET", "/status", headers=signed)
    assert again.status == 401 and again.value["error"] == "unknown error", again
    assert "already received" in again.value["message"], again
    # Signed for another path, or with another secret, or too old: refused too.
    moved = http_request(node.port, "GET", "/status?x=1", headers=hub_signature_headers("GET", "/status"))
    assert moved.status == 401 and "does not match" in moved.value["message"], moved
    forged = http_request(node.port, "GET", "/status", headers=hub_signature_headers("GET", "/status", secret="not-the-secret"))
    assert forged.status == 401, forged
    stale = hub_signature_headers("GET", "/status", timestamp_ms=int(time.time() * 1000) - 120_000)
    old = http_request(node.port, "GET", "/status", headers=stale)
    assert old.status == 401 and "clock" in old.value["message"], old
    for resp in (again, moved, forged, old):
        assert CLUSTER_SECRET not in resp.body.decode(errors="replace"), resp


@pytest.mark.deadline(150)
def test_no_secret_in_logs_status_or_errors(make_cluster):
    password = "redis-pass-Zq81xT"
    c = make_cluster(redis_password=password, env={"GRIDIRON_LOG": "debug"})
    node = c.node()
    hub = c.hub()
    c.capacity(hub, 1)
    sid = hub.new_session_raw(chrome_caps())
    bodies = [
        hub.request("GET", f"/session/{sid}/title").body,
        hub.request("GET", "/status").body,
        hub.request("GET", "/session/nope/title").body,
        hub.request("POST", "/session", body=b"{").body,
        http_request(node.port, "GET", "/status").body,
        http_request(node.port, "GET", "/status", headers={"x-gridiron-cluster-secret": CLUSTER_SECRET}).body,
        node.request("GET", "/status").body,
    ]
    assert hub.delete_session_raw(sid).status == 200
    # A store that refuses the password: the error names the store, not the password.
    wrong = c.redis.url.replace(password, "wrong-pass-Kd72")
    out = subprocess.run([c.binary, "nodes", "list", "--store", wrong], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "wrong-pass-Kd72" not in out.stderr + out.stdout and "***" in out.stderr, out
    c.stop()
    # What the processes wrote, without the command lines the harness logged for itself.
    logs = [
        "\n".join(line for line in m.log_text(limit=10**9).splitlines() if not line.startswith("$ "))
        for m in (hub, node)
    ]
    assert "DEBUG" in logs[0] and "DEBUG" in logs[1], "debug logging was on"
    assert "redis://:***@127.0.0.1" in logs[0], "the store URL is logged, without its password"
    for text in logs + [b.decode(errors="replace") for b in bodies]:
        assert password not in text
        assert CLUSTER_SECRET not in text


def private_ca(directory):
    """A CA and a certificate for 127.0.0.1 it signed (openssl CLI): paths of the CA, cert and key."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=gridiron test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("req", *ec, "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=127.0.0.1")
    with open(os.path.join(directory, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "node.pem", "-days", "2", "-extfile", "ext")
    return [os.path.join(directory, f) for f in ("ca.pem", "node.pem", "node.key")]


@pytest.mark.deadline(150)
def test_a_hub_runs_commands_and_websockets_on_an_https_node(make_cluster, tmp_path):
    ca, cert, key = private_ca(str(tmp_path))
    c = make_cluster()
    node = c.node(tls_cert=cert, tls_key=key)
    hub = c.hub(node_ca_file=ca)
    c.capacity(hub, 1)
    assert node.node_id() and "https://127.0.0.1" in c.cli("nodes", "list").stdout
    sid = hub.new_session_raw(chrome_caps())
    resp = hub.request("POST", f"/session/{sid}/url", body={"url": titled("over-tls")})
    assert resp.status == 200, resp
    assert hub.request("GET", f"/session/{sid}/title").value == "over-tls"
    assert "Chrome" in cdp_over(hub, sid)["product"]
    # The node speaks only TLS: plain HTTP to it gets no answer a client could use.
    with pytest.raises((OSError, http.client.HTTPException)):
        http_request(node.port, "GET", "/status", timeout=5)
    # A hub that does not trust the node's CA cannot reach it, and says so.
    stranger = c.hub()
    refused = stranger.request("GET", f"/session/{sid}/title")
    assert refused.status == 500 and "did not answer" in refused.value["message"], refused
    assert hub.delete_session_raw(sid).status == 200


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------


@pytest.mark.deadline(150)
def test_killed_node_loses_its_sessions_and_its_slots_come_back(make_cluster):
    c = make_cluster()
    c.node()
    c.node()
    hub = c.hub()
    c.capacity(hub, 2)
    s1, s2 = hub.new_session_raw(), hub.new_session_raw()
    victim, survivor = c.node_of(s1), c.node_of(s2)
    assert victim is not survivor
    assert victim.browsers()
    victim.kill_hard()
    killed_at = time.monotonic()
    # Until the heartbeat expires the node is merely unreachable; then lost.
    rec = c.redis.wait_ended(s1, "node_lost", timeout=HEARTBEAT_TTL + 5)
    assert time.monotonic() - killed_at < HEARTBEAT_TTL + 5, rec
    resp = hub.request("GET", f"/session/{s1}/title", timeout=10)
    assert resp.status == 404 and resp.value["error"] == "invalid session id", resp
    assert "node_lost" in resp.value["message"]
    # No browser of the dead node is left: each died with its driver.
    wait_until(lambda: not victim.processes(), 10, what="processes of the killed node gone")
    # The other session is untouched.
    nav = hub.request("POST", f"/session/{s2}/url", body={"url": titled("alive")})
    assert nav.status == 200, nav
    assert hub.request("GET", f"/session/{s2}/title").value == "alive"
    status = wait_until(lambda: (lambda s: s if len(s["nodes"]) == 1 else None)(hub.status()), 10, what="lost node unlisted")
    assert status["maxSessions"] == 1
    hub.delete_session_raw(s2)
    # The reclaimed capacity serves new sessions.
    s3 = hub.new_session_raw()
    assert c.node_of(s3) is survivor
    hub.delete_session_raw(s3)


def test_killed_hub_leaves_sessions_working_through_the_other(make_cluster):
    c = make_cluster()
    c.node()
    first, second = c.hub(), c.hub()
    c.capacity(first, 1)
    sid = first.new_session_raw()
    first.kill_hard()
    nav = second.request("POST", f"/session/{sid}/url", body={"url": titled("after-hub-died")})
    assert nav.status == 200, nav
    assert second.request("GET", f"/session/{sid}/title").value == "after-hub-died"
    assert second.delete_session_raw(sid).status == 200
    again = second.new_session_raw()
    assert second.delete_session_raw(again).status == 200


@pytest.mark.deadline(150)
def test_redis_restart_under_load_recovers_without_help(make_cluster):
    c = make_cluster()
    c.node()
    c.node()
    a, b = c.hub(), c.hub()
    c.capacity(a, 2)
    running = [a.new_session_raw(), b.new_session_raw()]
    t, waiting = request_in_background(a, "POST", "/session", body=chrome_caps(), timeout=90)
    wait_until(lambda: c.redis.queue_len() == 1, 10, what="request queued")
    # Everything Redis held is gone: queue, routes, nodes, records.
    c.redis.restart()
    # Nodes re-register and re-announce their sessions; hubs re-queue what they wait for.
    c.capacity(a, 2, timeout=15)
    for sid in running:
        for hub in (a, b):
            resp = wait_until(lambda: (lambda r: r if r.status == 200 else None)(hub.request("GET", f"/session/{sid}/title")), 15, what=f"{sid} routed after the restart")
            assert resp.status == 200
        assert c.redis.session(sid).get("state") == "running"
    a.delete_session_raw(running[0])
    t.join(60)
    assert "error" not in waiting, waiting
    resp = waiting["resp"]
    assert resp.status == 200, resp
    for sid in (running[1], resp.value["sessionId"]):
        assert b.delete_session_raw(sid).status == 200
        c.redis.wait_ended(sid, "quit")


@pytest.mark.deadline(150)
def test_drain_finishes_running_sessions_and_takes_no_new_ones(make_cluster):
    c = make_cluster()
    draining = c.node(max_sessions=2)
    hub = c.hub()
    c.capacity(hub, 2)
    sid = hub.new_session_raw()
    drained = c.cli("nodes", "drain", draining.node_id())
    assert drained.returncode == 0, drained.stderr
    wait_until(lambda: hub.status()["nodes"][0]["availability"] == "DRAINING", 10, what="node draining")
    # No node takes new sessions now, although the draining one has a free slot.
    refused = hub.request("POST", "/session", body=chrome_caps(), timeout=10)
    assert refused.status == 500 and refused.value["error"] == "session not created", refused
    other = c.node(max_sessions=1)
    served = hub.new_session_raw()
    assert c.node_of(served) is other
    # The running session keeps working until its client is done.
    nav = hub.request("POST", f"/session/{sid}/url", body={"url": titled("draining")})
    assert nav.status == 200, nav
    assert draining.running()
    assert hub.delete_session_raw(sid).status == 200
    assert draining.proc.wait(timeout=20) == 0
    draining.stopped = True
    assert not draining.processes()
    # SIGTERM drains too: the running session finishes, then the node leaves.
    other.signal(signal.SIGTERM)
    wait_until(lambda: any(n["availability"] == "DRAINING" for n in hub.status()["nodes"]), 10, what="SIGTERM drain")
    time.sleep(0.5)
    assert other.running()
    assert hub.request("GET", f"/session/{served}/title").status == 200
    assert hub.delete_session_raw(served).status == 200
    assert other.proc.wait(timeout=20) == 0
    other.stopped = True
    wait_until(lambda: hub.status()["nodes"] == [], 10, what="drained nodes unlisted")


def test_cdp_clients_get_a_browser_through_a_hub(shared):
    a, _ = shared.hubs
    version = a.request("GET", "/json/version").json()
    assert version["webSocketDebuggerUrl"] == f"ws://127.0.0.1:{a.port}/cdp"
    ws = websocket.create_connection(f"ws://127.0.0.1:{a.port}/cdp?--window-size=800,600&name=cdp-client", timeout=30)
    try:
        ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        reply = wait_until(lambda: (lambda m: m if m.get("id") == 1 else None)(json.loads(ws.recv())), 20, what="CDP reply")
        assert "Chrome" in reply["result"]["product"] or "Chromium" in reply["result"]["product"]
        assert a.status()["sessions"] == 1
        busy = [n for n in shared.nodes if n.browsers()]
        assert len(busy) == 1
        assert any("--window-size=800,600" in p.cmd_text for p in busy[0].browsers())
    finally:
        ws.close()
    # The browser ends with its client's connection.
    wait_until(lambda: not busy[0].browsers(), 10, what="CDP browser gone after disconnect")
    wait_until(lambda: a.status()["sessions"] == 0, 5, what="slot back")
    refused = http_request(a.port, "GET", "/cdp?browser=firefox", headers={"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert refused.status == 500 and refused.value["error"] == "session not created", refused


def test_bidi_through_a_hub(shared, drivers, pages):
    a, _ = shared.hubs
    options = webdriver.ChromeOptions()
    options.set_capability("webSocketUrl", True)
    d = a.remote(options=options)
    drivers.append(d)
    assert d.capabilities["webSocketUrl"] == f"ws://127.0.0.1:{a.port}/session/{d.session_id}/se/bidi"
    seen = []
    d.script.add_console_message_handler(seen.append)
    d.get(pages.url("/"))
    d.execute_script("console.log('through a hub')")
    wait_until(lambda: any(m.text == "through a hub" for m in seen), 10, what="console message over BiDi through the hub")


@pytest.mark.deadline(60)
def test_a_session_without_a_node_is_ended(shared):
    """A record left running by a node that died before routing it is closed by the collector."""
    r = shared.redis
    long_ago = int(time.time() * 1000) - 3_600_000
    r.command("HSET", "gridiron:session:ghost", "id", "ghost", "state", "running", "browser", "chrome", "created_at", long_ago, "command_count", 7)
    r.command("SADD", "gridiron:unfinished", "ghost")
    rec = r.wait_ended("ghost", "node_lost", timeout=20)
    assert rec["command_count"] == "7"
    resp = shared.hubs[0].request("GET", "/session/ghost/url")
    assert resp.status == 404 and "node_lost" in resp.value["message"], resp


@pytest.mark.deadline(120)
def test_a_store_that_stalls_longer_than_the_ttl_loses_no_session(make_cluster):
    """Redis paused past every heartbeat's TTL, then resumed with its data: nobody is declared lost."""
    c = make_cluster()
    c.node()
    hub = c.hub()
    c.capacity(hub, 1)
    sid = hub.new_session_raw()
    os.kill(c.redis.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(HEARTBEAT_TTL + 2)
    finally:
        os.kill(c.redis.proc.pid, signal.SIGCONT)
    time.sleep(HEARTBEAT_TTL + 3)
    assert c.redis.session(sid).get("state") == "running", c.redis.session(sid)
    nav = hub.request("POST", f"/session/{sid}/url", body={"url": titled("still-here")})
    assert nav.status == 200, nav
    assert hub.request("GET", f"/session/{sid}/title").value == "still-here"
    assert hub.delete_session_raw(sid).status == 200
    c.redis.wait_ended(sid, "quit")


@pytest.mark.deadline(120)
def test_a_node_that_comes_back_does_not_resurrect_its_sessions(make_cluster):
    c = make_cluster()
    node = c.node()
    hub = c.hub()
    c.capacity(hub, 1)
    sid = hub.new_session_raw()
    assert node.browsers()
    os.kill(node.proc.pid, signal.SIGSTOP)
    try:
        c.redis.wait_ended(sid, "node_lost", timeout=HEARTBEAT_TTL + 8)
    finally:
        os.kill(node.proc.pid, signal.SIGCONT)
    # Back again: it ends what it ran (already recorded as lost) and rejoins empty.
    wait_until(lambda: not node.browsers(), 15, what="the stale session's browser ended by the node")
    c.capacity(hub, 1)
    resp = hub.request("GET", f"/session/{sid}/title")
    assert resp.status == 404 and "node_lost" in resp.value["message"], resp
    assert c.redis.session(sid)["end_reason"] == "node_lost"
    again = hub.new_session_raw()
    assert hub.delete_session_raw(again).status == 200


def test_a_silent_cdp_client_through_a_hub_idles_out(shared):
    a, _ = shared.hubs
    ws = websocket.create_connection(f"ws://127.0.0.1:{a.port}/cdp?idleTimeout=1.5", timeout=30)
    try:
        ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        wait_until(lambda: (lambda m: m if m.get("id") == 1 else None)(json.loads(ws.recv())), 20, what="CDP reply")
        busy = [n for n in shared.nodes if n.browsers()]
        assert len(busy) == 1
        # No traffic for longer than the idle timeout: the session ends although connected.
        wait_until(lambda: not busy[0].browsers(), 15, what="idle CDP session ended")
        wait_until(lambda: a.status()["sessions"] == 0, 5, what="slot back")
    finally:
        ws.close()
