"""The web dashboard (`/ui/`) in a real browser.

The browser that looks at the dashboard is a session of the grid under test
(Chromium through the grid, as any client's), signed in with an API key; the
sessions it watches are other clients'. Every page is saved as a screenshot,
light and dark, under `$GRIDIRON_TEST_OUTPUT/dashboard` (default
`target/test-output/dashboard`), for people to look at.
"""

import http.client
import os
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, WebDriverException
from selenium.webdriver.common.by import By

from harness import http_request, wait_until
from test_keys import make_keys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUTPUT = os.path.join(os.environ.get("GRIDIRON_TEST_OUTPUT") or os.path.join(REPO, "target", "test-output"), "dashboard")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1366,900"]
# How long a live page may take to show what happened (events are pushed; a
# refresh is a request away).
LIVE = 10.0


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def client(port, name, token, grid_options=None):
    """A selenium client of the grid with key `name`."""
    options = webdriver.ChromeOptions()
    for a in CHROMIUM_ARGS:
        options.add_argument(a)
    if grid_options:
        options.set_capability("gridiron:options", grid_options)
    return webdriver.Remote(f"http://{name}:{token}@127.0.0.1:{port}", options=options)


def sign_in(driver, base, token):
    """Opens the dashboard at `base` (`http://host:port[/prefix]`) and signs in with `token`."""
    driver.get(base + "/ui/")
    wait_until(lambda: "/ui/login" in driver.current_url, LIVE, what="the sign-in page")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form.signin button[type=submit]").click()
    wait_until(lambda: "/ui/login" not in driver.current_url, LIVE, what="signed in")


def mark_page(driver):
    """Marks the loaded document; `unreloaded` says whether it is still the same one."""
    driver.execute_script("window.__gridironMark = 'kept'")


def unreloaded(driver):
    return driver.execute_script("return window.__gridironMark") == "kept"


def text_of(driver, css):
    try:
        return driver.find_element(By.CSS_SELECTOR, css).text
    except (NoSuchElementException, WebDriverException):
        return ""


def present(driver, css):
    return bool(driver.find_elements(By.CSS_SELECTOR, css))


def shot(driver, name):
    """Saves the page as `name`.png (light) and `name`-dark.png."""
    os.makedirs(OUTPUT, exist_ok=True)
    driver.save_screenshot(os.path.join(OUTPUT, f"{name}.png"))
    emulate = {"cmd": "Emulation.setEmulatedMedia", "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}}
    driver.execute("executeCdpCommand", emulate)
    try:
        time.sleep(0.2)
        driver.save_screenshot(os.path.join(OUTPUT, f"{name}-dark.png"))
    finally:
        emulate["params"]["features"][0]["value"] = "light"
        driver.execute("executeCdpCommand", emulate)


def cookie_request(port, method, path, token, body=None, headers=None, prefix=""):
    """A request as a signed-in browser sends it (the key in the dashboard's cookie)."""
    hdrs = {"Cookie": f"gridiron_key={token}; gridiron_csrf=c0ffee"}
    hdrs.update(headers or {})
    if body is not None:
        hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        body = urllib.parse.urlencode(body)
    return http_request(port, method, prefix + path, body=body, headers=hdrs)


def session_state(g, token, sid):
    r = g.request("GET", f"/api/v1/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})
    assert r.status == 200, r
    return r.json()["state"]


@pytest.fixture
def keyed(make_grid, grid_binary):
    """A standalone grid with keys: root (admin), alice and bob (users)."""
    g = make_grid(max_sessions=4, queue_timeout=60)
    tokens = make_keys(grid_binary, g, "alice", "bob")
    return g, tokens


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@pytest.mark.deadline(300)
def test_a_session_is_followed_live_ended_from_the_dashboard_and_leaves_its_video_and_logs(keyed, pages, drivers):
    g, tokens = keyed
    viewer = client(g.port, "root", tokens["root"], {"name": "dashboard-viewer"})
    drivers.append(viewer)
    sign_in(viewer, g.url, tokens["root"])
    shot(viewer, "overview-idle")

    # The overview counts a session another client starts, without a reload.
    mark_page(viewer)
    before = text_of(viewer, "#running-count")
    watched = client(g.port, "alice", tokens["alice"], {"name": "dash-watched", "recordVideo": True, "screenResolution": "1024x768"})
    drivers.append(watched)
    sid = watched.session_id
    wait_until(lambda: text_of(viewer, "#running-count") not in ("", before), LIVE, what="the overview to count the new session")
    assert unreloaded(viewer), "the overview reloaded instead of updating in place"
    assert "alice" in text_of(viewer, "#slots") or "local" in text_of(viewer, "#slots"), text_of(viewer, "#slots")
    shot(viewer, "overview-busy")

    # The sessions list shows another new session, without a reload.
    viewer.get(g.url + "/ui/sessions")
    mark_page(viewer)
    assert present(viewer, f'#sessions tr[data-session="{sid}"]')
    second = client(g.port, "bob", tokens["bob"], {"name": "dash-second"})
    drivers.append(second)
    wait_until(lambda: present(viewer, f'#sessions tr[data-session="{second.session_id}"]'), LIVE, what="the new session's row")
    assert unreloaded(viewer), "the sessions list reloaded instead of updating in place"
    shot(viewer, "sessions")

    # The session's page: the live view follows what its browser shows.
    watched.get(pages.url("/devtools.html"))  # logs to the console
    watched.get(pages.url("/colours.html"))  # changes colour every second
    viewer.find_element(By.CSS_SELECTOR, f'#sessions tr[data-session="{sid}"] a').click()
    wait_until(lambda: present(viewer, "img#live-view"), LIVE, what="the live view")
    assert text_of(viewer, "#session-state") == "running"
    assert "dash-watched" in viewer.page_source

    def frame():
        img = viewer.find_element(By.ID, "live-view")
        loaded = viewer.execute_script("return arguments[0].naturalWidth", img)
        return img.screenshot_as_png if loaded else None

    wait_until(lambda: frame() is not None, LIVE, what="a first live frame")
    first = frame()
    wait_until(lambda: frame() != first, LIVE, what="the live view to change")
    shot(viewer, "session-running")

    # Ending it from the page: the client's session is gone.
    viewer.find_element(By.CSS_SELECTOR, "form#end-session button").click()
    viewer.switch_to.alert.accept()
    wait_until(lambda: text_of(viewer, "#session-state") == "ended", LIVE, what="the page to show the session ended")
    with pytest.raises(WebDriverException):
        watched.title
    assert session_state(g, tokens["root"], sid) == "ended"

    # Afterwards: its video plays and seeks, its logs are there and searchable.
    def artifacts_shown():
        viewer.refresh()
        return present(viewer, "video#video") and "console.log" in text_of(viewer, "#downloads")

    wait_until(artifacts_shown, 60, interval=1.0, what="the video and logs on the session page")
    duration = viewer.execute_async_script(
        """
        const [v, done] = arguments;
        const ready = () => v.readyState >= 1 && isFinite(v.duration);
        const seek = () => { v.addEventListener('seeked', () => done(v.duration), {once: true}); v.currentTime = v.duration / 2; };
        if (ready()) seek(); else v.addEventListener('loadedmetadata', seek, {once: true});
        setTimeout(() => done(-1), 15000);
        """,
        viewer.find_element(By.ID, "video"),
    )
    assert duration > 1, f"the video did not load and seek (duration {duration})"
    assert "gridiron-console-marker" in text_of(viewer, "#console-log")
    assert text_of(viewer, "#driver-log").strip(), "the driver log is empty"
    search = viewer.find_element(By.CSS_SELECTOR, "form#log-search input[name=log_q]")
    search.send_keys("gridiron-warning-marker")
    search.submit()
    wait_until(lambda: present(viewer, "#console-log mark"), LIVE, what="the search's marked matches")
    assert "gridiron-console-marker" not in text_of(viewer, "#console-log"), "the search kept lines that do not match"
    shot(viewer, "session-ended")
    second.quit()


@pytest.mark.deadline(180)
def test_a_user_key_reaches_only_its_own_sessions_and_artifacts(keyed, drivers):
    g, tokens = keyed
    theirs = client(g.port, "alice", tokens["alice"], {"name": "alice-private"})
    drivers.append(theirs)
    sid = theirs.session_id
    theirs.quit()
    g.wait_ended(sid, timeout=10)
    wait_until(
        lambda: http_request(g.port, "GET", f"/api/v1/sessions/{sid}/artifacts/driver.log", headers={"Authorization": f"Bearer {tokens['alice']}"}).status == 200,
        30,
        what="alice's driver log",
    )

    bob = client(g.port, "bob", tokens["bob"], {"name": "bob-viewer"})
    drivers.append(bob)
    sign_in(bob, g.url, tokens["bob"])
    bob.get(g.url + "/ui/sessions")
    assert present(bob, f'#sessions tr[data-session="{bob.session_id}"]'), "bob does not see his own session"
    assert not present(bob, f'#sessions tr[data-session="{sid}"]'), "bob sees alice's session in the list"
    assert "alice-private" not in bob.page_source
    bob.get(g.url + f"/ui/sessions/{sid}")
    assert "alice-private" not in bob.page_source and not present(bob, "#session-state")
    shot(bob, "session-not-found")
    # Admin pages are refused with a page that says so.
    bob.get(g.url + "/ui/keys")
    assert "403" in bob.title or "Forbidden" in bob.title, bob.title
    assert not present(bob, "form#create-key")

    # The same, as exact answers to a browser holding bob's cookie.
    for path in (f"/ui/sessions/{sid}", f"/ui/sessions/{sid}/artifacts/driver.log", f"/ui/sessions/{sid}/live"):
        r = cookie_request(g.port, "GET", path, tokens["bob"])
        assert r.status == 404, (path, r.status, r.body[:200])
    mine = cookie_request(g.port, "GET", f"/ui/sessions/{sid}/artifacts/driver.log", tokens["alice"])
    assert mine.status == 200 and mine.body, mine
    # Without a key, nothing but the sign-in page.
    anon = http_request(g.port, "GET", f"/ui/sessions/{sid}")
    assert anon.status in (302, 303, 307) and "/ui/login" in anon.headers["location"], anon
    bad = cookie_request(g.port, "GET", "/ui/sessions", "f" * 64)
    assert bad.status in (302, 303, 307) and "/ui/login" in bad.headers["location"], bad
    bob.quit()


@pytest.mark.deadline(180)
def test_cross_site_form_posts_are_refused(keyed, pages, drivers):
    g, tokens = keyed
    target = client(g.port, "alice", tokens["alice"], {"name": "cross-site-target"})
    drivers.append(target)
    sid = target.session_id

    viewer = client(g.port, "root", tokens["root"], {"name": "dashboard-viewer"})
    drivers.append(viewer)
    sign_in(viewer, g.url, tokens["root"])
    # A page of another site (another origin) posts the end form as soon as it loads.
    for fields in ({}, {"csrf": "guessed"}):
        query = urllib.parse.urlencode({"action": f"{g.url}/ui/sessions/{sid}/end", **fields})
        viewer.get(pages.url(f"/cross-site-form.html?{query}"))
        wait_until(lambda: "Another site" not in viewer.title, LIVE, what="the form to be posted")
        assert viewer.title.startswith("Refused"), viewer.title
        assert session_state(g, tokens["root"], sid) == "running", "a cross-site post ended the session"
        assert "/ui/sessions/" not in viewer.current_url or "ended" not in text_of(viewer, "#session-state")
    shot(viewer, "cross-site-refused")

    # The same posts as exact requests: another origin, no form token, a wrong one.
    path = f"/ui/sessions/{sid}/end"
    evil = cookie_request(g.port, "POST", path, tokens["root"], body={"csrf": "c0ffee"}, headers={"Origin": "http://evil.example"})
    assert evil.status == 403, evil
    missing = cookie_request(g.port, "POST", path, tokens["root"], body={})
    assert missing.status == 403, missing
    wrong = cookie_request(g.port, "POST", path, tokens["root"], body={"csrf": "0ther"})
    assert wrong.status == 403, wrong
    assert session_state(g, tokens["root"], sid) == "running"
    # With the browser's own token, the same post ends it.
    ok = cookie_request(g.port, "POST", path, tokens["root"], body={"csrf": "c0ffee"}, headers={"Origin": g.url})
    assert ok.status in (302, 303), ok
    wait_until(lambda: session_state(g, tokens["root"], sid) == "ended", LIVE, what="the session to end")
    viewer.quit()


class PrefixProxy:
    """A reverse proxy that serves the grid under `/grid` (streaming answers,
    so the event feed and live view pass), as a site's front server would."""

    def __init__(self):
        proxy = self
        self.upstream = None  # the grid's port, set once it runs

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                if not self.path.startswith("/grid/"):
                    self.send_error(404)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
                headers["X-Forwarded-Proto"] = "http"
                conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream, timeout=60)
                conn.request(self.command, self.path[len("/grid"):], body=body, headers=headers)
                resp = conn.getresponse()
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                        self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while chunk := resp.read1(65536):
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    conn.close()
                    self.close_connection = True

            do_GET = do_POST = do_DELETE = _forward

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.deadline(180)
def test_the_dashboard_works_behind_a_proxy_under_a_path_prefix(make_grid, grid_binary, drivers):
    proxy = PrefixProxy()
    proxy_port = proxy.port
    g = make_grid(max_sessions=3, public_url=f"http://127.0.0.1:{proxy_port}/grid")
    proxy.upstream = g.port
    token = make_keys(grid_binary, g)["root"]
    try:
        base = f"http://127.0.0.1:{proxy_port}/grid"
        viewer = client(g.port, "root", token, {"name": "proxied-viewer"})
        drivers.append(viewer)
        sign_in(viewer, base, token)
        assert viewer.current_url.startswith(base + "/ui/"), viewer.current_url
        links = [a.get_attribute("href") for a in viewer.find_elements(By.CSS_SELECTOR, "header a")]
        assert links and all(h.startswith(base + "/ui") for h in links), links
        viewer.get(base + "/ui/sessions")
        mark_page(viewer)
        other = client(g.port, "root", token, {"name": "behind-the-proxy"})
        drivers.append(other)
        wait_until(lambda: present(viewer, f'#sessions tr[data-session="{other.session_id}"]'), LIVE, what="the new session through the proxy")
        assert unreloaded(viewer)
        # A form through the proxy: ending the session.
        viewer.get(base + f"/ui/sessions/{other.session_id}")
        viewer.find_element(By.CSS_SELECTOR, "form#end-session button").click()
        viewer.switch_to.alert.accept()
        wait_until(lambda: text_of(viewer, "#session-state") == "ended", LIVE, what="the session ended through the proxy")
        assert viewer.current_url.startswith(base + "/ui/sessions/"), viewer.current_url
        viewer.quit()
    finally:
        proxy.stop()


@pytest.mark.deadline(240)
def test_every_page_is_saved_for_people_to_look_at(keyed, drivers):
    g, tokens = keyed
    viewer = client(g.port, "root", tokens["root"], {"name": "dashboard-viewer"})
    drivers.append(viewer)
    viewer.get(g.url + "/ui/")
    shot(viewer, "sign-in")
    sign_in(viewer, g.url, tokens["root"])

    # A full grid with a request waiting, to show the queue.
    holders = [client(g.port, "alice", tokens["alice"], {"name": f"holder-{i}", "labels": {"team": "web"}}) for i in range(3)]
    drivers.extend(holders)
    waiting = []
    t = threading.Thread(target=lambda: waiting.append(client(g.port, "bob", tokens["bob"], {"name": "waiting"})), daemon=True)
    t.start()
    viewer.get(g.url + "/ui/queue")
    wait_until(lambda: present(viewer, "#queue tr[data-request]"), LIVE, what="the waiting request on the queue page")
    shot(viewer, "queue")
    viewer.get(g.url + "/ui/")
    wait_until(lambda: text_of(viewer, "#queue-depth").strip().startswith("1"), LIVE, what="the queue depth on the overview")
    shot(viewer, "overview-full")
    viewer.get(g.url + "/ui/nodes")
    assert present(viewer, '#nodes tr[data-node="local"]')
    shot(viewer, "nodes")
    viewer.get(g.url + "/ui/sessions?label=team%3Dweb")
    wait_until(lambda: len(viewer.find_elements(By.CSS_SELECTOR, "#sessions tr[data-session]")) == 3, LIVE, what="the three labelled sessions")
    shot(viewer, "sessions-filtered")
    holders[0].quit()
    t.join(timeout=60)
    assert waiting, "the waiting request never got its session"
    drivers.extend(waiting)

    # Admin: a key created from the page shows its token once.
    viewer.get(g.url + "/ui/keys")
    viewer.find_element(By.CSS_SELECTOR, "details.create summary").click()  # "New key"
    form = viewer.find_element(By.ID, "create-key")
    form.find_element(By.NAME, "name").send_keys("carol")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: present(viewer, "#new-token"), LIVE, what="the new key's token")
    new_token = text_of(viewer, "#new-token").strip()
    assert len(new_token) == 64, new_token
    shot(viewer, "keys-created")
    viewer.get(g.url + "/ui/keys")
    assert new_token not in viewer.page_source, "the token was shown twice"
    assert present(viewer, '#keys tr[data-key="carol"]')
    shot(viewer, "keys")
    viewer.get(g.url + "/ui/webhooks")
    viewer.find_element(By.CSS_SELECTOR, "details.create summary").click()  # "New webhook"
    form = viewer.find_element(By.ID, "create-webhook")
    form.find_element(By.NAME, "url").send_keys("http://127.0.0.1:9/hook")
    form.find_element(By.NAME, "type:session.ended").click()
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: present(viewer, "#webhooks tr[data-webhook]"), LIVE, what="the new webhook")
    shot(viewer, "webhooks")
    viewer.find_element(By.CSS_SELECTOR, "#webhooks tr[data-webhook] a").click()
    wait_until(lambda: present(viewer, "#deliveries"), LIVE, what="the webhook's deliveries")
    shot(viewer, "webhook")
    for d in holders[1:] + waiting:
        d.quit()
    viewer.quit()


@pytest.mark.deadline(180)
def test_a_hub_serves_the_dashboard_of_its_nodes_sessions(grid_binary, drivers):
    from harness import Cluster

    c = Cluster(grid_binary, heartbeat_ttl=3)
    try:
        node = c.node()
        hub = c.hub()
        c.capacity(hub, 1)
        d = hub.remote(grid_options={"name": "on-a-node"})
        drivers.append(d)
        sid = d.session_id
        listed = hub.request("GET", "/ui/sessions")
        assert listed.status == 200, listed
        page = listed.body.decode()
        assert f'data-session="{sid}"' in page and "on-a-node" in page
        detail = hub.request("GET", f"/ui/sessions/{sid}").body.decode()
        assert 'id="session-state"' in detail and ">running<" in detail, detail[:2000]
        nodes = hub.request("GET", "/ui/nodes").body.decode()
        assert f'data-node="{node.node_id()}"' in nodes, nodes[:2000]
        d.quit()
        wait_until(
            lambda: hub.request("GET", f"/ui/sessions/{sid}/artifacts/driver.log").status == 200,
            30,
            what="the node's driver log through the hub's dashboard",
        )
        overview = hub.request("GET", "/ui/").body.decode()
        assert 'id="ended-by-reason"' in overview and "quit" in overview, overview[:3000]
        assert node.running()
    finally:
        c.stop()
