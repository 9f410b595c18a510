"""Webhooks end to end: a real grid POSTs signed events to a receiver running
in this test process, retries it with backoff across a restart of the grid,
disables it after the threshold, and, with two hubs over Redis, delivers each
event once.

Retry timing is made short with `--webhook-retry-base-ms` (the whole schedule
scales with it), so no test waits minutes.
"""

import hashlib
import hmac
import http.server
import json
import os
import tempfile
import threading
import time

import subprocess

import pytest

from harness import chrome_caps, find_standin_binary, standin_driver_dir, wait_until

SECRET = "whsec-test-0123456789abcdef"


def verify(header, body, secret=SECRET, tolerance=300):
    """An independent check of `Gridiron-Signature: t=<unix s>,v1=<hex>`."""
    parts = dict(p.split("=", 1) for p in header.split(","))
    t = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"]), "signature mismatch"
    assert abs(time.time() - t) <= tolerance, "signature too old"


class Receiver:
    """An HTTP receiver in a thread: records every POST; `fail_first` attempts
    of each event id are answered 500, later ones 204 (or always 500). With
    `hold_at`, the answer to that attempt (of any event) waits until
    `resume` is set; `holding` is set meanwhile."""

    def __init__(self, fail_first=0, always_fail=False, hold_at=None):
        self.fail_first = fail_first
        self.always_fail = always_fail
        self.hold_at = hold_at
        self.holding = threading.Event()
        self.resume = threading.Event()
        self.lock = threading.Lock()
        self.attempts = []  # (event id, headers by lower-case name, body, answered status)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                eid = self.headers.get("Gridiron-Event-Id")
                with receiver.lock:
                    seen = sum(1 for a in receiver.attempts if a[0] == eid)
                    fail = receiver.always_fail or seen < receiver.fail_first
                    status = 500 if fail else 204
                    receiver.attempts.append((eid, {k.lower(): v for k, v in self.headers.items()}, body, status))
                if receiver.hold_at == seen + 1 and not receiver.holding.is_set():
                    receiver.holding.set()
                    receiver.resume.wait(60)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of(self, eid):
        with self.lock:
            return [a for a in self.attempts if a[0] == eid]

    def delivered(self):
        """Event id -> how many attempts of it were answered 2xx."""
        with self.lock:
            out = {}
            for eid, _, _, status in self.attempts:
                out.setdefault(eid, 0)
                if status < 300:
                    out[eid] += 1
            return out

    def bodies(self):
        with self.lock:
            return [json.loads(a[2]) for a in self.attempts]


def subscribe(grid, url, events=("*",), secret=SECRET, headers=None):
    body = {"url": url, "events": list(events), "secret": secret}
    resp = grid.request("POST", "/api/v1/webhooks", body=body, headers=headers)
    assert resp.status == 201, resp
    hook = resp.json()
    assert hook["secret"] == secret
    return hook


def session_started_events(receiver, session_id):
    return [
        b for b in receiver.bodies() if b["type"] == "session.started" and b["session"] == session_id
    ]


def test_subscriptions_are_checked_listed_and_never_show_their_secret(make_grid):
    grid = make_grid()
    bad = [
        {"url": "ftp://example.com/", "events": ["*"], "secret": SECRET},
        {"url": "http://example.com/", "events": ["session.begun"], "secret": SECRET},
        {"url": "http://example.com/", "events": ["*"], "secret": "short"},
        {"url": "http://example.com/", "events": [], "secret": SECRET},
    ]
    for body in bad:
        resp = grid.request("POST", "/api/v1/webhooks", body=body)
        assert resp.status == 400, (body, resp)
        assert resp.headers.get("content-type", "").startswith("application/problem+json"), resp
    made = grid.request("POST", "/api/v1/webhooks", body={"url": "http://127.0.0.1:9/h", "events": ["session.*"]})
    assert made.status == 201, made
    hook = made.json()
    # No secret given: the grid makes one and shows it this once.
    assert len(hook["secret"]) >= 32
    listed = grid.request("GET", "/api/v1/webhooks").json()
    assert [h["id"] for h in listed["items"]] == [hook["id"]]
    one = grid.request("GET", f"/api/v1/webhooks/{hook['id']}").json()
    assert "secret" not in one and "secret" not in listed["items"][0]
    assert one["events"] == ["session.*"] and one["disabled"] is None
    assert grid.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries").json() == {"items": [], "next_cursor": None}
    assert grid.request("DELETE", f"/api/v1/webhooks/{hook['id']}").status == 204
    assert grid.request("GET", f"/api/v1/webhooks/{hook['id']}").status == 404
    assert grid.request("DELETE", f"/api/v1/webhooks/{hook['id']}").status == 404


def create_key(binary, grid, name, *args):
    r = subprocess.run(
        [binary, "keys", "create", name, *args, "--data-dir", grid.data_dir], capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    return {"Authorization": f"Bearer {r.stdout.strip()}"}


@pytest.mark.deadline(180)
def test_a_user_keys_webhook_gets_its_own_sessions_events_only(make_grid, grid_binary):
    grid = make_grid(max_sessions=2)
    alice = create_key(grid_binary, grid, "alice")
    bob = create_key(grid_binary, grid, "bob")
    root = create_key(grid_binary, grid, "root", "--role", "admin")
    time.sleep(1.3)  # keys are read through a one-second cache
    with Receiver() as rx_alice, Receiver() as rx_root:
        mine = subscribe(grid, rx_alice.url, headers=alice)
        theirs = subscribe(grid, rx_root.url, headers=root)
        assert not mine["all_events"] and theirs["all_events"]
        # Each key sees its own subscriptions; another's is unknown to it.
        listed = grid.request("GET", "/api/v1/webhooks", headers=alice).json()["items"]
        assert [h["id"] for h in listed] == [mine["id"]]
        assert grid.request("GET", f"/api/v1/webhooks/{theirs['id']}", headers=alice).status == 404
        assert grid.request("DELETE", f"/api/v1/webhooks/{theirs['id']}", headers=bob).status == 404
        assert grid.request("GET", f"/api/v1/webhooks/{theirs['id']}/deliveries", headers=bob).status == 404
        assert len(grid.request("GET", "/api/v1/webhooks", headers=root).json()["items"]) == 2
        sessions = {}
        for name, key in (("alice", alice), ("bob", bob)):
            resp = grid.request("POST", "/session", body=chrome_caps(), headers=key, timeout=90)
            assert resp.status == 200, resp
            sid = resp.value["sessionId"]
            assert grid.request("DELETE", f"/session/{sid}", headers=key).status == 200
            sessions[name] = sid

        def ended(rx, sid):
            return any(b["type"] == "session.ended" and b["session"] == sid for b in rx.bodies())

        wait_until(lambda: all(ended(rx_root, s) for s in sessions.values()), 30, what="the admin's deliveries")
        wait_until(lambda: ended(rx_alice, sessions["alice"]), 30, what="alice's deliveries")
        time.sleep(1)
        seen = {b["session"] for b in rx_alice.bodies()}
        assert seen == {sessions["alice"]}, rx_alice.bodies()
        assert {b["type"] for b in rx_alice.bodies()} <= {
            "request.queued", "request.cancelled", "session.started", "session.activity", "session.ended"
        }


@pytest.mark.deadline(180)
def test_a_failing_receiver_gets_the_event_on_the_fourth_attempt_across_a_restart(make_grid):
    grid = make_grid(webhook_retry_base_ms=400)
    # The second attempt is held until the grid has stopped: the attempts
    # after it are made by the grid started again.
    with Receiver(fail_first=3, hold_at=2) as rx:
        hook = subscribe(grid, rx.url, events=["session.started"])
        sid = grid.new_session_raw(chrome_caps())
        grid.delete_session_raw(sid)
        assert rx.holding.wait(30), "no second attempt"
        eid = session_started_events(rx, sid)[0]["id"]
        # The grid stops mid-attempt and starts again on the same data.
        code, _ = grid.terminate()
        assert code == 0, grid.log_tail()
        rx.resume.set()
        failed_before = len(rx.of(eid))
        assert failed_before == 2
        grid.start()
        wait_until(lambda: rx.delivered().get(eid) == 1, 60, what="the delivery after the restart")
        attempts = rx.of(eid)
        assert len(attempts) >= 4 and failed_before < len(attempts)
        assert [a[3] for a in attempts[:3]] == [500, 500, 500]
        eid_, headers, body, status = attempts[-1]
        assert status == 204
        verify(headers["gridiron-signature"], body)
        assert headers["gridiron-event-type"] == "session.started"
        assert headers["gridiron-delivery"] == f"{hook['id']}.{eid}"
        assert headers["content-type"] == "application/json"
        event = json.loads(body)
        assert set(event) == {"id", "type", "at", "session", "node", "fields"}
        assert event["id"] == eid and event["session"] == sid
        # Nothing of the grid's besides the signature travels with it.
        assert not any(SECRET in v for v in headers.values())
        # Delivered: never sent again (several retry periods later).
        time.sleep(3)
        assert rx.delivered()[eid] == 1
        assert len(rx.of(eid)) == len(attempts)
        log = grid.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries").json()["items"]
        mine = [e for e in log if e["event_id"] == eid]
        assert mine[0]["result"] == "delivered" and mine[0]["status"] == 204
        assert {e["result"] for e in mine[1:]} == {"retrying"}
        assert all(e["status"] == 500 for e in mine[1:])
        assert [e["attempt"] for e in mine] == sorted((e["attempt"] for e in mine), reverse=True)
        # Counted in /metrics by result (since the restart: one delivered).
        metrics = grid.request("GET", "/metrics").body.decode()
        assert 'gridiron_webhook_deliveries_total{result="delivered"} 1' in metrics, metrics
        # The log pages back with its cursor.
        page = grid.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries?limit=1").json()
        assert len(page["items"]) == 1 and page["next_cursor"]
        rest = grid.request(
            "GET", f"/api/v1/webhooks/{hook['id']}/deliveries?limit=500&cursor={page['next_cursor']}"
        ).json()
        assert page["items"] + rest["items"] == log


@pytest.mark.deadline(120)
def test_a_receiver_that_keeps_failing_is_disabled_and_the_log_says_so(make_grid):
    # Base 5 ms: retries up to 0.6 s apart, a window of 3.6 s.
    grid = make_grid(webhook_retry_base_ms=5, webhook_disable_after=3)
    with Receiver(always_fail=True) as rx:
        hook = subscribe(grid, rx.url, events=["session.*"])
        sid = grid.new_session_raw(chrome_caps())
        grid.delete_session_raw(sid)

        def disabled():
            h = grid.request("GET", f"/api/v1/webhooks/{hook['id']}").json()
            return h if h["disabled"] else None

        h = wait_until(disabled, 60, what="the webhook to be disabled")
        assert "failed delivery attempts in a row" in h["disabled"]
        log = grid.request("GET", f"/api/v1/webhooks/{hook['id']}/deliveries").json()["items"]
        assert log[0]["result"] == "disabled" and log[0]["error"] == h["disabled"]
        assert len([e for e in log if e["status"] == 500]) >= 3
        # Disabled: no more attempts, and new events make none.
        time.sleep(1)
        count = len(rx.attempts)
        sid = grid.new_session_raw(chrome_caps())
        grid.delete_session_raw(sid)
        time.sleep(2)
        assert len(rx.attempts) == count


@pytest.mark.deadline(180)
def test_two_hubs_deliver_each_event_once(make_cluster):
    standin = find_standin_binary()
    if standin is None:
        pytest.fail("the stand-in driver is not built (cargo build -p gridiron-standin-driver)", pytrace=False)
    workdir = tempfile.mkdtemp(prefix="gridiron-webhooks-")
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    env = {"PATH": f"{standin_driver_dir(workdir, standin)}:/usr/bin:/bin", "HOME": home}
    c = make_cluster(env=env)
    c.node(max_sessions=4)
    h1 = c.hub(webhook_retry_base_ms=200)
    h2 = c.hub(webhook_retry_base_ms=200)
    c.capacity(h1, 4)
    with Receiver() as rx:
        subscribe(h1, rx.url, events=["session.started", "session.ended"])
        sessions = []
        for i in range(6):
            hub = (h1, h2)[i % 2]
            sid = hub.new_session_raw(chrome_caps())
            hub.delete_session_raw(sid)
            sessions.append(sid)

        def all_arrived():
            got = {(b["type"], b["session"]) for b in rx.bodies()}
            want = {(t, s) for s in sessions for t in ("session.started", "session.ended")}
            return want <= got

        wait_until(all_arrived, 60, what="every event at the receiver")
        time.sleep(2)
        counts = rx.delivered()
        assert len(counts) == 12 and set(counts.values()) == {1}, counts
        # Hub 1 dies while events keep coming: hub 2 delivers them, and what
        # hub 1 had taken but not finished once its claim or lease runs out.
        more = []

        def churn():
            for _ in range(6):
                sid = h2.new_session_raw(chrome_caps())
                h2.delete_session_raw(sid)
                more.append(sid)

        worker = threading.Thread(target=churn)
        worker.start()
        wait_until(lambda: len(more) >= 2, 30, what="sessions through hub 2")
        h1.kill_hard()
        worker.join(60)
        assert len(more) == 6

        def rest_arrived():
            got = {(b["type"], b["session"]) for b in rx.bodies()}
            return all((t, s) in got for s in more for t in ("session.started", "session.ended"))

        # None is lost (a hub killed mid-attempt may have sent one twice:
        # delivery is at least once).
        wait_until(rest_arrived, 90, what="the events after a hub died")
