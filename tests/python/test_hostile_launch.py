"""A hostile client against the launch policy, on a real standalone grid and a
real hub + node cluster (redis-server, Chromium, chromedriver).

Each request would run a program of the client's choosing as the grid's user
(creating a marker file) if it got through. The grid must answer 400
`invalid argument` naming the refused item, the marker must not appear, and no
driver or browser may have been started for it.
"""

import os
import tempfile
import uuid

from harness import http_request, wait_until

PYTHON = "/usr/bin/python3"
CHROMIUM = "/usr/bin/chromium"


def _marker():
    return os.path.join(tempfile.gettempdir(), f"gridiron-hostile-{uuid.uuid4().hex}")


def _vectors(marker):
    """(capabilities, the item the refusal must name) for every WebDriver vector."""
    touch = f"touch {marker}"
    py = f"open({marker!r}, 'w').close()"
    chrome = lambda opts: {"browserName": "chrome", "goog:chromeOptions": opts}  # noqa: E731
    return [
        (chrome({"binary": PYTHON, "args": ["-c", py]}), "goog:chromeOptions.binary"),
        (chrome({"args": [f"--renderer-cmd-prefix={touch}"]}), "--renderer-cmd-prefix"),
        (chrome({"args": [f"--utility-cmd-prefix={touch}"]}), "--utility-cmd-prefix"),
        (chrome({"args": [f"--gpu-launcher={touch}"]}), "--gpu-launcher"),
        (chrome({"args": [f"--browser-subprocess-path={PYTHON}"]}), "--browser-subprocess-path"),
        (chrome({"args": [f"--RENDERER-CMD-PREFIX={touch}"]}), "--renderer-cmd-prefix"),
        (chrome({"args": ["--utility-cmd-prefix", touch]}), "--utility-cmd-prefix"),
        (chrome({"args": [f"  -Gpu-Launcher = {touch}"]}), "--gpu-launcher"),
        (chrome({"args": [f"--lang=de --renderer-cmd-prefix={touch}"]}), "--renderer-cmd-prefix"),
        (chrome({"args": [f"--user-data-dir={os.path.dirname(marker)}"]}), "--user-data-dir"),
        (chrome({"args": ["--remote-debugging-port=9333"]}), "--remote-debugging-port"),
        (chrome({"args": [f"--load-extension={os.path.dirname(marker)}"]}), "--load-extension"),
        (chrome({"debuggerAddress": "127.0.0.1:9222"}), "goog:chromeOptions.debuggerAddress"),
        ({"ms:edgeOptions": {"binary": PYTHON}}, "ms:edgeOptions.binary"),
        (
            {"browserName": "firefox", "moz:firefoxOptions": {"binary": PYTHON, "args": ["-c", py]}},
            "moz:firefoxOptions.binary",
        ),
        (
            {"browserName": "firefox", "moz:firefoxOptions": {"env": {"LD_PRELOAD": marker}}},
            "moz:firefoxOptions.env",
        ),
        (
            {"browserName": "firefox", "moz:firefoxOptions": {"profile": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="}},
            "moz:firefoxOptions.profile",
        ),
        (
            {"browserName": "firefox", "moz:firefoxOptions": {"args": ["-profile", os.path.dirname(marker)]}},
            "--profile",
        ),
    ]


def _processes_mentioning(text):
    """Pids of every process on the host whose command line mentions `text`."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if text.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def _assert_refused(resp, item):
    assert resp.status == 400, resp
    assert resp.content_type.startswith("application/json"), resp
    value = resp.json()["value"]
    assert value["error"] == "invalid argument", value
    assert item in value["message"], f"{item!r} not named in {value['message']!r}"
    assert isinstance(value["stacktrace"], str)


def _new_session(port, caps, headers=None):
    body = {"capabilities": {"alwaysMatch": caps}}
    return http_request(port, "POST", "/session", body=body, headers=headers, timeout=30)


def _cdp(port, query, headers=None):
    """A websocket handshake to `/cdp?query` (refused before any upgrade)."""
    hdrs = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    hdrs.update(headers or {})
    return http_request(port, "GET", f"/cdp?{query}", headers=hdrs, timeout=30)


def _cdp_vectors(marker):
    touch = f"touch%20{marker}"
    return [
        (f"--utility-cmd-prefix={touch}", "--utility-cmd-prefix"),
        (f"--RENDERER-CMD-PREFIX={touch}", "--renderer-cmd-prefix"),
        (f"arg=--gpu-launcher%3D{touch}", "--gpu-launcher"),
        ("--remote-debugging-port=9333", "--remote-debugging-port"),
    ]


def _check_all(port, processes_of, headers=None):
    """Sends every vector; each is refused, and nothing ran or started."""
    marker = _marker()
    before = {p.pid for p in processes_of()}
    for caps, item in _vectors(marker):
        _assert_refused(_new_session(port, caps, headers), item)
    for query, item in _cdp_vectors(marker):
        _assert_refused(_cdp(port, query, headers), item)
    assert not os.path.exists(marker), "a refused request ran a program"
    assert not _processes_mentioning(marker), "a process was started with the hostile arguments"
    started = [p for p in processes_of() if p.pid not in before]
    assert not started, f"processes started for refused requests: {started}"
    assert not [p for p in processes_of() if p.is_chromium()], "a browser was started"


def test_a_standalone_grid_refuses_every_vector(make_grid):
    g = make_grid(max_sessions=1, env={"GRIDIRON_NO_PREWARM": "true"})
    _check_all(g.port, g.client_processes)
    assert g.client_processes() == [], "no driver may run for refused requests"
    assert g.db_rows() == [], "refused requests leave no session record"
    # The grid still serves ordinary clients.
    ok = _new_session(g.port, {"browserName": "chrome", "goog:chromeOptions": {"args": ["--window-size=800,600"]}})
    assert ok.status == 200, ok
    sid = ok.value["sessionId"]
    assert g.delete_session_raw(sid).status == 200


def test_operator_allowances_let_exactly_those_through(make_grid):
    g = make_grid(
        max_sessions=1,
        allow_arg="--renderer-cmd-prefix",
        env={"GRIDIRON_NO_PREWARM": "true", "GRIDIRON_ALLOW_BINARY": CHROMIUM},
    )
    marker = _marker()
    # The allowed binary: the session's browser is the one the client named.
    ok = _new_session(g.port, {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM}})
    assert ok.status == 200, ok
    sid = ok.value["sessionId"]
    wait_until(
        lambda: [p for p in g.session_processes(sid) if p.is_chromium()],
        10,
        what="the allowed browser to run",
    )
    assert g.delete_session_raw(sid).status == 200
    # The allowed switch reaches the browser, value and all.
    prefix = "--renderer-cmd-prefix=/usr/bin/env"
    ok = _new_session(g.port, {"browserName": "chrome", "goog:chromeOptions": {"args": [prefix]}})
    assert ok.status == 200, ok
    sid = ok.value["sessionId"]
    main = g.chromium_main_of(sid, timeout=10)
    assert prefix in main.cmdline, main.cmdline
    assert g.delete_session_raw(sid).status == 200
    # Its neighbours and other binaries stay refused.
    _assert_refused(
        _new_session(g.port, {"goog:chromeOptions": {"args": [f"--utility-cmd-prefix=touch {marker}"]}}),
        "--utility-cmd-prefix",
    )
    _assert_refused(
        _new_session(g.port, {"goog:chromeOptions": {"binary": PYTHON, "args": ["-c", "1"]}}),
        "goog:chromeOptions.binary",
    )
    assert not os.path.exists(marker)


def test_a_cluster_refuses_at_the_hub_and_again_at_the_node(make_cluster):
    c = make_cluster()
    node = c.node(no_prewarm=True)
    hub = c.hub()
    c.capacity(hub, 1)

    def cluster_processes():
        return node.processes() + hub.processes()

    _check_all(hub.port, cluster_processes)
    assert c.redis.queue_len() == 0, "nothing reached the queue"

    # A hub that lets a switch through (or anything else that writes the
    # queue): the node, which allows nothing, refuses it again.
    lax = c.hub(allow_arg="--gpu-launcher")
    marker = _marker()
    resp = _new_session(lax.port, {"goog:chromeOptions": {"args": [f"--gpu-launcher=touch {marker}"]}})
    _assert_refused(resp, "--gpu-launcher")
    assert not os.path.exists(marker)
    assert not [p for p in node.processes() if p.is_chromium()]


def test_pool_arguments_pass_the_same_policy(make_cluster):
    c = make_cluster()
    marker = _marker()
    hostile = f"--arg=--gpu-launcher=touch {marker}"
    refused = c.cli("pools", "create", "web", hostile)
    assert refused.returncode != 0, refused
    assert "--gpu-launcher" in refused.stderr, refused.stderr
    assert "web" not in c.cli("pools", "list").stdout.split()
    # Allowed for the pool by its operator, but not by the hub that applies it.
    saved = c.cli("pools", "create", "web", hostile, "--allow-arg=--gpu-launcher")
    assert saved.returncode == 0, saved.stderr
    node = c.node(pool="web", no_prewarm=True)
    hub = c.hub()
    c.capacity(hub, 1)
    resp = _new_session(hub.port, {"gridiron:options": {"pool": "web"}})
    _assert_refused(resp, "--gpu-launcher")
    assert "pool web" in resp.json()["value"]["message"]
    assert not os.path.exists(marker)
    assert not [p for p in node.processes() if p.is_chromium()]


def test_malformed_and_alternative_shapes_are_refused(make_grid):
    g = make_grid(max_sessions=1, env={"GRIDIRON_NO_PREWARM": "true"})
    for body, item in [
        ({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": "--gpu-launcher=x"}}}}, "args"),
        ({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {"args": [["--gpu-launcher=x"]]}}}}, "args"),
        ({"capabilities": {"firstMatch": [{}, {"goog:chromeOptions": {"binary": PYTHON}}]}}, "binary"),
        ({"desiredCapabilities": {"goog:chromeOptions": {"binary": PYTHON}}}, "binary"),
    ]:
        _assert_refused(http_request(g.port, "POST", "/session", body=body, timeout=30), item)
    assert g.client_processes() == []


def test_firefox_addons_come_with_the_request_not_from_the_host(make_grid):
    """geckodriver's add-on install command takes a path on the grid's host:
    the grid refuses it, while an add-on sent in the request passes through."""
    g = make_grid(max_sessions=1)
    d = g.remote(browser_name="firefox")
    try:
        path = os.path.join(tempfile.gettempdir(), f"gridiron-hostile-{uuid.uuid4().hex}.xpi")
        with open(path, "wb") as f:
            f.write(b"PK\x05\x06" + b"\x00" * 18)
        try:
            resp = http_request(g.port, "POST", f"/session/{d.session_id}/moz/addon/install",
                                body={"path": path, "temporary": True})
        finally:
            os.unlink(path)
        _assert_refused(resp, "path")
        # The add-on itself may come with the request: it reaches geckodriver,
        # which judges it (this one is an empty archive, so it refuses it).
        resp = http_request(g.port, "POST", f"/session/{d.session_id}/moz/addon/install",
                            body={"addon": "UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==", "temporary": True})
        assert b"launch policy" not in resp.body, resp
        assert d.title is not None  # the session is still usable
    finally:
        d.quit()
