"""API keys with real Chromium: authentication, ownership, quotas, rates.

Keys are made with the `gridiron keys` CLI against the grid's own store
(`--data-dir` for a standalone grid, `--store` for hubs and nodes) while the
grid runs; a running grid sees them within a second.
"""

import base64
import subprocess
import time

import pytest
import websocket
from selenium import webdriver

from harness import Cluster, chrome_caps, in_background, wait_until

# Keys are read through a one-second cache.
KEY_DELAY = 1.3


def create_key(binary, name, *args, where):
    """`gridiron keys create NAME ARGS WHERE`; returns the printed token."""
    r = subprocess.run([binary, "keys", "create", name, *args, *where], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) == 64 and token not in r.stderr, (r.stdout, r.stderr)
    return token


def make_keys(binary, grid, *users, admin="root"):
    """User keys `users` and the admin key `admin` on standalone grid `grid`,
    in use once this returns; their tokens by name."""
    where = ["--data-dir", grid.data_dir]
    tokens = {name: create_key(binary, name, where=where) for name in users}
    tokens[admin] = create_key(binary, admin, "--role", "admin", where=where)
    time.sleep(KEY_DELAY)
    return tokens


def keys_cli(binary, *args, where):
    return subprocess.run([binary, "keys", *args, *where], capture_output=True, text=True, timeout=30)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def basic(name, token):
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{token}".encode()).decode()}


def new_session(grid, token, timeout=90):
    resp = grid.request("POST", "/session", body=chrome_caps(), headers=bearer(token), timeout=timeout)
    assert resp.status == 200, resp
    return resp.value


@pytest.fixture
def keyed(make_grid, grid_binary):
    """A standalone grid of 3 slots with keys: a (user, 1 session at a time), b (user), root (admin)."""
    g = make_grid(max_sessions=3, queue_timeout=120)
    where = ["--data-dir", g.data_dir]
    tokens = {
        "a": create_key(grid_binary, "a", "--max-sessions", "1", where=where),
        "b": create_key(grid_binary, "b", where=where),
        "root": create_key(grid_binary, "root", "--role", "admin", where=where),
    }
    time.sleep(KEY_DELAY)
    return g, tokens


def test_unauthenticated_requests_get_401_with_a_challenge(keyed):
    g, _ = keyed
    for method, path, body in [("POST", "/session", chrome_caps()), ("GET", "/session/x/title", None), ("GET", "/json/list", None)]:
        resp = g.request(method, path, body=body)
        assert resp.status == 401, resp
        assert resp.headers["www-authenticate"] == 'Basic realm="gridiron", Bearer'
        err = resp.value
        assert err["error"] == "unknown error" and "key" in err["message"] and "stacktrace" in err
    bad = g.request("GET", "/session/x/title", headers=bearer("0" * 64))
    assert bad.status == 401, bad
    # Readiness probes need no key.
    status = g.request("GET", "/status")
    assert status.status == 200 and status.value["ready"] is True


def test_selenium_with_name_and_token_in_the_url(keyed):
    g, tokens = keyed
    driver = webdriver.Remote(f"http://a:{tokens['a']}@127.0.0.1:{g.port}", options=webdriver.ChromeOptions())
    try:
        driver.get("data:text/html,<title>keyed</title>")
        assert driver.title == "keyed"
    finally:
        driver.quit()


def test_a_user_key_cannot_see_drive_end_or_tunnel_into_another_keys_session(keyed):
    g, t = keyed
    value = new_session(g, t["a"])
    sid, caps = value["sessionId"], value["capabilities"]
    cdp_url = caps["se:cdp"]
    try:
        # Listing: /status shows a's session to a and admins only; /json/list shows none.
        def ids_in_status(token):
            return str(g.request("GET", "/status", headers=bearer(token)).json())

        assert sid in ids_in_status(t["a"]) and sid in ids_in_status(t["root"])
        assert sid not in ids_in_status(t["b"])
        assert sid not in str(g.request("GET", "/status").json())
        listed = g.request("GET", "/json/list", headers=bearer(t["b"]))
        assert listed.status == 200 and sid not in str(listed.json())
        # Driving and ending: b is told the session does not exist.
        for method, path in [("GET", f"/session/{sid}/title"), ("POST", f"/session/{sid}/url"), ("DELETE", f"/session/{sid}")]:
            body = {"url": "about:blank"} if method == "POST" else None
            resp = g.request(method, path, body=body, headers=bearer(t["b"]))
            assert resp.status == 404 and resp.value["error"] == "invalid session id", resp
        assert g.request("GET", f"/session/{sid}/title", headers=bearer(t["a"])).status == 200
        # The CDP tunnel: refused to b (handshake fails), open to a with ?token=.
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"{cdp_url}?token={t['b']}", timeout=10)
        assert refused.value.status_code == 404
        with pytest.raises(websocket.WebSocketBadStatusException) as anonymous:
            websocket.create_connection(cdp_url, timeout=10)
        assert anonymous.value.status_code == 401
        ws = websocket.create_connection(f"{cdp_url}?token={t['a']}", timeout=10)
        try:
            ws.send('{"id":1,"method":"Browser.getVersion"}')
            assert '"id":1' in ws.recv()
        finally:
            ws.close()
        # An admin may drive and end it.
        assert g.request("GET", f"/session/{sid}/title", headers=bearer(t["root"])).status == 200
        assert g.request("DELETE", f"/session/{sid}", headers=bearer(t["root"])).status == 200
    finally:
        g.request("DELETE", f"/session/{sid}", headers=bearer(t["root"]))


def test_a_capped_keys_requests_wait_while_another_key_is_served(keyed):
    g, t = keyed
    first = new_session(g, t["a"])["sessionId"]
    queued = [in_background(lambda: new_session(g, t["a"], timeout=120)["sessionId"]) for _ in range(3)]
    wait_until(lambda: g.request("GET", "/status", headers=bearer(t["root"])).value["queue"] == 3, 10, what="a's 3 requests to queue")
    started = time.monotonic()
    other = new_session(g, t["b"])["sessionId"]
    b_wait = time.monotonic() - started
    print(f"\nkey b's new session took {b_wait:.2f}s while key a had 3 requests queued")
    assert b_wait < 15
    assert all(th.is_alive() for th, _ in queued), "a's requests still wait: a runs its one session"
    g.request("DELETE", f"/session/{other}", headers=bearer(t["b"]))
    # Each end of a's session lets the next one of a's start.
    current = first
    for _ in queued:
        assert g.request("DELETE", f"/session/{current}", headers=bearer(t["a"])).status == 200
        done = wait_until(lambda: [b for th, b in queued if not th.is_alive() and "seen" not in b], 60, what="a's next request")
        box = done[0]
        box["seen"] = True
        assert "result" in box, box
        current = box["result"]
    assert g.request("DELETE", f"/session/{current}", headers=bearer(t["a"])).status == 200


def test_a_key_over_its_rate_gets_429_with_retry_after(make_grid, grid_binary):
    g = make_grid(max_sessions=1)
    token = create_key(grid_binary, "slow", "--rate", "2", where=["--data-dir", g.data_dir])
    time.sleep(KEY_DELAY)
    statuses = [g.request("GET", "/session/x/title", headers=bearer(token)).status for _ in range(3)]
    assert statuses == [404, 404, 429], statuses
    resp = g.request("GET", "/session/x/title", headers=bearer(token))
    assert resp.status == 429 and resp.headers["retry-after"] == "1", resp
    assert resp.value["error"] == "unknown error" and "rate limit" in resp.value["message"]
    time.sleep(1.1)
    assert g.request("GET", "/session/x/title", headers=bearer(token)).status == 404


def test_keys_made_and_revoked_by_the_cli_take_effect_on_a_running_grid(make_grid, grid_binary):
    g = make_grid(max_sessions=1)
    where = ["--data-dir", g.data_dir]
    assert g.request("GET", "/session/x/title").status == 404, "open while no key exists"
    token = create_key(grid_binary, "late", where=where)
    wait_until(lambda: g.request("GET", "/session/x/title").status == 401, 5, what="the new key to be required")
    assert g.request("GET", "/session/x/title", headers=basic("late", token)).status == 404
    listed = keys_cli(grid_binary, "list", where=where)
    assert listed.returncode == 0 and "late" in listed.stdout and token not in listed.stdout
    # Keep one key so the grid stays closed, then revoke the other.
    other = create_key(grid_binary, "other", where=where)
    assert keys_cli(grid_binary, "revoke", "late", where=where).returncode == 0
    wait_until(lambda: g.request("GET", "/session/x/title", headers=bearer(token)).status == 401, 5, what="the revoked key to be refused")
    assert g.request("GET", "/session/x/title", headers=bearer(other)).status == 404
    assert keys_cli(grid_binary, "revoke", "late", where=where).returncode != 0


def test_keys_through_a_hub_and_node(grid_binary):
    c = Cluster(grid_binary, heartbeat_ttl=3)
    try:
        c.node()
        hub = c.hub()
        c.capacity(hub, 1)
        tokens = {}
        for name, role in [("a", "user"), ("b", "user"), ("root", "admin")]:
            r = c.cli("keys", "create", name, "--role", role)
            assert r.returncode == 0, r.stderr
            tokens[name] = r.stdout.strip()
        time.sleep(KEY_DELAY)
        refused = hub.request("POST", "/session", body=chrome_caps())
        assert refused.status == 401 and "www-authenticate" in refused.headers, refused
        driver = webdriver.Remote(f"http://a:{tokens['a']}@127.0.0.1:{hub.port}", options=webdriver.ChromeOptions())
        try:
            sid = driver.session_id
            driver.get("data:text/html,<title>hub</title>")
            assert driver.title == "hub"
            by_b = hub.request("GET", f"/session/{sid}/title", headers=bearer(tokens["b"]))
            assert by_b.status == 404 and by_b.value["error"] == "invalid session id", by_b
            assert hub.request("DELETE", f"/session/{sid}", headers=bearer(tokens["b"])).status == 404
            assert hub.request("GET", f"/session/{sid}/title", headers=bearer(tokens["root"])).status == 200
            assert hub.request("DELETE", f"/session/{sid}", headers=bearer(tokens["root"])).status == 200
        finally:
            try:
                driver.quit()
            except Exception:
                pass
    finally:
        c.stop()
