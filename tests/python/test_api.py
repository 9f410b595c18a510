"""The REST API (/api/v1) on a real standalone grid with real Chromium:
browsers made over the API and driven with Selenium and CDP, who sees what,
the queue, RFC 9457 problems on bad input, the OpenAPI document and Swagger
UI, and the `gridiron sessions|queue` CLI.
"""

import json
import os
import subprocess
import time

import pytest
import websocket
from selenium import webdriver

from harness import chrome_caps, in_background, wait_until

# Keys are read through a one-second cache.
KEY_DELAY = 1.3
PROBLEM = "application/problem+json"


def create_key(binary, name, *args, where):
    r = subprocess.run([binary, "keys", "create", name, *args, *where], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def bearer(token):
    return {"Authorization": f"Bearer {token}"} if token else {}


class Api:
    """Calls /api/v1 of `grid` as the key with `token`."""

    def __init__(self, grid, token=None):
        self.grid, self.token = grid, token

    def call(self, method, path, body=None, headers=None, timeout=90):
        hdrs = dict(bearer(self.token), **(headers or {}))
        return self.grid.request(method, "/api/v1" + path, body=body, headers=hdrs, timeout=timeout)

    def get(self, path):
        r = self.call("GET", path)
        assert r.status == 200, r
        return r.json()

    def ids(self, path):
        return [s["id"] for s in self.get(path)["items"]]


def assert_problem(resp, status, kind=None):
    assert resp.status == status, resp
    assert resp.content_type == PROBLEM, resp
    p = resp.json()
    assert p["status"] == status and p["title"] and p["detail"], p
    assert p["type"].startswith("urn:gridiron:problem:"), p
    if kind:
        assert p["type"] == "urn:gridiron:problem:" + kind, p
    return p


def attach(webdriver_url, user, token):
    """A Selenium Remote driver on the existing session at `webdriver_url`."""
    from selenium.webdriver.remote.client_config import ClientConfig

    base, session_id = webdriver_url.rsplit("/session/", 1)
    config = ClientConfig(remote_server_addr=base, username=user, password=token)

    class Attached(webdriver.Remote):
        def start_session(self, capabilities):
            # Attach to the session the API made instead of creating one.
            self.session_id = session_id
            self.caps = {"browserName": "chrome"}

    return Attached(command_executor=base, options=webdriver.ChromeOptions(), client_config=config)


@pytest.fixture
def keyed(make_grid, grid_binary):
    """A standalone grid of 2 slots with keys a, b (users) and root (admin)."""
    g = make_grid(max_sessions=2, queue_timeout=120)
    where = ["--data-dir", g.data_dir]
    tokens = {
        "a": create_key(grid_binary, "a", where=where),
        "b": create_key(grid_binary, "b", where=where),
        "root": create_key(grid_binary, "root", "--role", "admin", where=where),
    }
    time.sleep(KEY_DELAY)
    return g, tokens


def test_a_browser_made_over_the_api_is_driven_by_selenium_and_cdp_and_ends_on_delete(keyed, pages):
    g, t = keyed
    a = Api(g, t["a"])
    r = a.call("POST", "/sessions", {"browser": "chrome", "window": {"width": 900, "height": 700},
                                      "name": "agent", "labels": {"team": "web"}, "idle_timeout": 120})
    assert r.status == 201, r
    made = r.json()
    sid = made["id"]
    assert r.headers["location"] == f"/api/v1/sessions/{sid}"
    assert made["webdriver_url"] == f"{g.url}/session/{sid}"
    assert made["cdp_url"] == f"ws://127.0.0.1:{g.port}/session/{sid}/se/cdp"
    assert made["bidi_url"] == f"ws://127.0.0.1:{g.port}/session/{sid}/se/bidi"
    assert made["live_view_url"] == f"{g.url}/api/v1/sessions/{sid}/live" and made["idle_timeout"] == 120

    driver = attach(made["webdriver_url"], "a", t["a"])
    driver.get(pages.url("/index.html"))
    assert driver.current_url == pages.url("/index.html")
    assert driver.get_window_size()["width"] == 900

    # A CDP client connects, talks and leaves, twice: the session stays.
    for _ in range(2):
        ws = websocket.create_connection(made["cdp_url"] + "?token=" + t["a"], timeout=20)
        ws.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        assert "product" in json.loads(ws.recv())["result"]
        ws.close()
    time.sleep(0.5)
    detail = a.get(f"/sessions/{sid}")
    assert detail["state"] == "running" and detail["node"] == "local" and detail["owner"] == "a"
    assert detail["command_count"] >= 3, detail
    assert detail["labels"] == {"team": "web"} and detail["name"] == "agent"
    assert detail["requested_capabilities"]["alwaysMatch"]["webSocketUrl"] is True
    assert detail["granted_capabilities"]["browserName"] == "chrome"
    assert detail["start_latency_ms"] == detail["started_at"] - detail["created_at"]
    # The timeline is the session's events: started, then sampled activity.
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[0] == "session.started" and set(kinds[1:]) <= {"session.activity"}, kinds
    assert detail["timeline"][0]["fields"]["browser"] == "chrome"
    assert driver.title  # still usable after the CDP clients left

    assert a.call("DELETE", f"/sessions/{sid}").status == 204
    ended = g.wait_ended(sid, reason="deleted_by_api")
    detail = a.get(f"/sessions/{sid}")
    assert detail["state"] == "ended" and detail["end_reason"] == "deleted_by_api", detail
    last = wait_until(lambda: (lambda t: t[-1] if t[-1]["kind"] == "session.ended" else None)(
        a.get(f"/sessions/{sid}")["timeline"]), 10, what="the end in the timeline")
    assert last["fields"]["reason"] == "deleted_by_api", last
    assert ended is not None
    assert_problem(a.call("DELETE", f"/sessions/{sid}"), 409, "conflict")
    with pytest.raises(Exception, match="invalid session id|has ended"):
        driver.title


def test_users_see_only_their_own_and_admins_see_everything(keyed):
    g, t = keyed
    a, b, root, anyone = Api(g, t["a"]), Api(g, t["b"]), Api(g, t["root"]), Api(g)
    r = a.call("POST", "/sessions", {"name": "mine", "labels": {"team": "web"}})
    assert r.status == 201, r
    sid = r.json()["id"]

    assert a.ids("/sessions") == [sid]
    assert b.ids("/sessions") == []
    assert_problem(b.call("GET", f"/sessions/{sid}"), 404, "not-found")
    assert_problem(b.call("DELETE", f"/sessions/{sid}"), 404)
    assert_problem(b.call("GET", "/sessions?owner=a"), 403, "forbidden")
    assert root.ids("/sessions?owner=a") == [sid]
    assert root.ids("/sessions?owner=b") == []
    assert root.ids("/sessions?label=team%3Dweb&state=running&browser=chrome&name=mine") == [sid]
    assert root.ids("/sessions?label=team%3Dapi") == []
    now = int(time.time() * 1000)
    assert root.ids(f"/sessions?created_after={now}") == []
    assert root.ids(f"/sessions?created_before={now}") == [sid]
    unauthorized = assert_problem(anyone.call("GET", "/sessions"), 401, "unauthorized")
    assert "key" in unauthorized["detail"]

    # Nodes and keys are for admins.
    assert_problem(a.call("GET", "/nodes"), 403, "forbidden")
    assert_problem(a.call("GET", "/keys"), 403, "forbidden")
    nodes = root.get("/nodes")["items"]
    assert [n["id"] for n in nodes] == ["local"] and nodes[0]["sessions"] == [sid] and nodes[0]["slots"] == 2
    assert_problem(root.call("POST", "/nodes/local/drain"), 404, "needs-scaled-out-grid")
    assert_problem(root.call("GET", "/pools"), 404, "needs-scaled-out-grid")
    made = root.call("POST", "/keys", {"name": "c", "max_sessions": 2})
    assert made.status == 201, made
    c = made.json()
    assert c["role"] == "user" and len(c["token"]) == 64
    assert "token" not in json.dumps(root.get("/keys"))
    assert_problem(root.call("POST", "/keys", {"name": "c"}), 409, "conflict")
    time.sleep(KEY_DELAY)
    assert Api(g, c["token"]).ids("/sessions") == []
    assert root.call("DELETE", "/keys/c").status == 204
    time.sleep(KEY_DELAY)
    assert_problem(Api(g, c["token"]).call("GET", "/sessions"), 401)

    # Admins may end anyone's session.
    assert root.call("DELETE", f"/sessions/{sid}").status == 204
    g.wait_ended(sid, reason="deleted_by_api")


def test_the_queue_is_listed_and_a_request_cancelled_by_its_owner(make_grid, grid_binary):
    g = make_grid(max_sessions=1, queue_timeout=120)
    where = ["--data-dir", g.data_dir]
    t = {n: create_key(grid_binary, n, *extra, where=where)
         for n, extra in [("a", ()), ("b", ()), ("root", ("--role", "admin"))]}
    time.sleep(KEY_DELAY)
    a, b, root = Api(g, t["a"]), Api(g, t["b"]), Api(g, t["root"])
    held = a.call("POST", "/sessions", {})
    assert held.status == 201, held
    thread, waiting = in_background(lambda: g.request("POST", "/session", body=chrome_caps(), headers=bearer(t["b"]), timeout=120))
    queue = wait_until(lambda: root.get("/queue")["items"], 20, what="a request to wait")
    [entry] = queue
    assert entry["position"] == 1 and entry["owner"] == "b" and entry["browser"] == "chrome", entry
    assert entry["waited_ms"] >= 0
    assert a.get("/queue")["items"] == []
    assert [e["id"] for e in b.get("/queue")["items"]] == [entry["id"]]
    assert_problem(a.call("DELETE", f"/queue/{entry['id']}"), 404)
    assert b.call("DELETE", f"/queue/{entry['id']}").status == 204
    thread.join(30)
    refused = waiting["result"]
    assert refused.status == 500, refused
    assert refused.value["error"] == "session not created" and "cancelled" in refused.value["message"]
    assert root.get("/queue")["items"] == []
    assert a.call("DELETE", f"/sessions/{held.json()['id']}").status == 204


def test_bad_input_gets_a_problem(make_grid):
    g = make_grid(max_sessions=1, max_body_bytes=4096)
    api = Api(g)
    assert_problem(api.call("POST", "/sessions", b"{not json"), 400, "invalid-argument")
    assert_problem(api.call("POST", "/sessions", {"browsr": "chrome"}), 400, "invalid-argument")
    form = api.call("POST", "/sessions", b"browser=chrome", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "must be JSON" in assert_problem(form, 400, "invalid-argument")["detail"]
    assert_problem(api.call("POST", "/sessions", {"browser": "safari"}), 400, "invalid-argument")
    # Nothing that starts or loads code rides in on an API-made browser.
    for smuggled in [{"args": ["--renderer-cmd-prefix=/bin/sh"]}, {"binary": "/bin/sh"},
                     {"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"binary": "/bin/sh"}}}},
                     {"env": {"LD_PRELOAD": "/tmp/x.so"}}]:
        assert_problem(api.call("POST", "/sessions", smuggled), 400, "invalid-argument")
    assert_problem(api.call("POST", "/sessions", {"window": {"width": 0, "height": 5}}), 400)
    assert_problem(api.call("POST", "/sessions", {"name": "x" * 8000}), 413, "payload-too-large")
    assert_problem(api.call("GET", "/sessions/no-such-session"), 404, "not-found")
    assert_problem(api.call("DELETE", "/sessions/no-such-session"), 404, "not-found")
    assert_problem(api.call("DELETE", "/queue/no-such-request"), 404, "not-found")
    for query in ["state=asleep", "label=novalue", "created_after=yesterday", "cursor=%21%21",
                  "limit=0", "limit=501", "colour=red"]:
        assert_problem(api.call("GET", "/sessions?" + query), 400, "invalid-argument")
    assert_problem(api.call("GET", "/queue?limit=x"), 400)
    assert_problem(api.call("GET", "/no/such/route"), 404, "not-found")
    assert_problem(api.call("PATCH", "/sessions"), 405, "method-not-allowed")
    assert g.running()


def test_paging_walks_every_session_once(make_grid):
    g = make_grid(max_sessions=1)
    api = Api(g)
    made = []
    for _ in range(3):
        r = api.call("POST", "/sessions", {})
        assert r.status == 201, r
        made.append(r.json()["id"])
        assert api.call("DELETE", f"/sessions/{made[-1]}").status == 204
    seen, cursor = [], None
    while True:
        page = api.get("/sessions?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert len(page["items"]) <= 2
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


def test_the_openapi_document_and_docs_need_no_key(keyed):
    g, _ = keyed
    doc = g.request("GET", "/api/v1/openapi.json")
    assert doc.status == 200, doc
    spec = doc.json()
    assert spec["openapi"].startswith("3.1")
    for path in ["/api/v1/sessions", "/api/v1/sessions/{id}", "/api/v1/queue", "/api/v1/queue/{id}",
                 "/api/v1/nodes", "/api/v1/nodes/{id}/drain", "/api/v1/pools/{name}", "/api/v1/keys/{name}"]:
        assert path in spec["paths"], path
    assert set(spec["components"]["securitySchemes"]) == {"bearer", "api_key"}
    page = g.request("GET", "/api/docs/")
    assert page.status == 200 and b"swagger" in page.body.lower(), page
    css = g.request("GET", "/api/docs/swagger-ui.css")
    assert css.status == 200 and len(css.body) > 1000, css


def test_the_cli_lists_shows_and_ends_sessions_and_lists_the_queue(keyed, grid_binary):
    g, t = keyed
    sid = Api(g, t["a"]).call("POST", "/sessions", {"name": "from-cli"}).json()["id"]

    def cli(*args, token=t["a"], env_token=False):
        env = dict(os.environ)
        env.pop("GRIDIRON_TOKEN", None)
        argv = [grid_binary, *args, "--url", g.url]
        if env_token:
            env["GRIDIRON_TOKEN"] = token
        elif token:
            argv += ["--token", token]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)

    listed = cli("sessions", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)["items"]] == [sid]
    table = cli("sessions", "list", "--state", "running", env_token=True)
    assert table.returncode == 0 and sid in table.stdout and "from-cli" in table.stdout, table
    assert table.stdout.splitlines()[0].split()[:3] == ["ID", "STATE", "BROWSER"]
    others = cli("sessions", "list", "--json", token=t["b"])
    assert json.loads(others.stdout)["items"] == []
    shown = cli("sessions", "show", sid, "--json")
    assert json.loads(shown.stdout)["name"] == "from-cli"
    assert "timeline:" in cli("sessions", "show", sid).stdout
    queue = cli("queue", "list", "--json", token=t["root"])
    assert json.loads(queue.stdout) == {"items": [], "next_cursor": None}
    refused = cli("sessions", "list", token=None)
    assert refused.returncode != 0 and "401" in refused.stderr, refused
    bad = cli("sessions", "list", "--state", "asleep")
    assert bad.returncode != 0 and "state must be" in bad.stderr
    ended = cli("sessions", "end", sid)
    assert ended.returncode == 0, ended.stderr
    g.wait_ended(sid, reason="deleted_by_api")


def test_any_hub_of_two_serves_the_same_api(make_cluster):
    c = make_cluster()
    node = c.node()
    h1, h2 = c.hub(), c.hub()
    c.capacity(h1, 1)
    t = {}
    for name, role in [("a", "user"), ("b", "user"), ("root", "admin")]:
        r = c.cli("keys", "create", name, "--role", role)
        assert r.returncode == 0, r.stderr
        t[name] = r.stdout.strip()
    time.sleep(KEY_DELAY)
    a1, a2, b2, root2 = Api(h1, t["a"]), Api(h2, t["a"]), Api(h2, t["b"]), Api(h2, t["root"])

    made = a1.call("POST", "/sessions", {"name": "via-hub", "labels": {"team": "web"}})
    assert made.status == 201, made
    sid = made.json()["id"]
    assert made.json()["webdriver_url"] == f"http://127.0.0.1:{h1.port}/session/{sid}"
    # The other hub knows it, and keeps it to its owner.
    assert a2.ids("/sessions?label=team%3Dweb") == [sid]
    assert b2.ids("/sessions") == []
    assert_problem(b2.call("GET", f"/sessions/{sid}"), 404)
    detail = a2.get(f"/sessions/{sid}")
    assert detail["state"] == "running" and detail["owner"] == "a" and detail["node"], detail

    nodes = root2.get("/nodes")["items"]
    assert len(nodes) == 1 and nodes[0]["sessions"] == [sid] and nodes[0]["alive"], nodes
    assert isinstance(nodes[0]["heartbeat_age_ms"], int)
    assert root2.call("POST", "/pools", {"name": "gpu", "max_concurrency": 2}).status == 201
    assert Api(h1, t["root"]).get("/pools/gpu")["max_concurrency"] == 2
    assert root2.call("DELETE", "/pools/gpu").status == 204
    assert_problem(a2.call("GET", "/pools"), 403, "forbidden")

    assert a2.call("DELETE", f"/sessions/{sid}").status == 204
    wait_until(lambda: a1.get(f"/sessions/{sid}")["end_reason"] == "deleted_by_api", 20, what="the session to end")
    assert node.running()
