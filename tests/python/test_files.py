"""Managed downloads, remote uploads, driver logs and timelines, with real
browsers and Python's selenium client through the real binary.

Selenium 4 clients ask a grid for a session's downloads (`se:downloadsEnabled`,
`GET/POST/DELETE /session/{id}/se/files`) and send local files for file inputs
(`POST /session/{id}/se/file`, `LocalFileDetector`); the grid serves both
itself. Every session keeps its driver's output (`driver.log`) and the grid's
account of its life (`timeline.json`) as artifacts.
"""

import base64
import io
import json
import os
import re
import tempfile
import zipfile

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.file_detector import LocalFileDetector

from harness import fetch_artifact, in_background, list_artifacts, wait_until

DOWNLOAD_NAME = "gridiron-download.txt"
DOWNLOAD_TEXT = b"gridiron download\n"


def downloading_options(browser):
    options = webdriver.FirefoxOptions() if browser == "firefox" else webdriver.ChromeOptions()
    options.enable_downloads = True
    return options


def files_path(sid):
    return f"/session/{sid}/se/files"


def zipped(entries, method=zipfile.ZIP_DEFLATED):
    """A base64 zip of `entries` (name, bytes), as a client would send it."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in entries:
            z.writestr(name, data)
    return base64.b64encode(buf.getvalue()).decode()


def driver_session_id(grid, sid):
    """The driver's own id for grid session `sid`, read from its driver log
    (chromedriver prefixes each command with it). A running session's log
    is written in batches, a few tens of milliseconds behind the driver."""
    log = os.path.join(grid.sessions_dir, sid, "artifacts", "driver.log")
    found = wait_until(lambda: re.search(r"\[([0-9a-f]{32})\] COMMAND", open(log, errors="replace").read()),
                       5, what="a command in the driver log")
    return found.group(1)


def start_download(driver, pages):
    driver.get(pages.url("/downloads.html"))
    driver.find_element(By.ID, "download").click()
    return wait_until(
        lambda: DOWNLOAD_NAME in driver.get_downloadable_files() and driver.get_downloadable_files(),
        20,
        what="the download to be listed",
    )


@pytest.mark.deadline(150)
@pytest.mark.parametrize("browser", ["chrome", "firefox"])
def test_a_download_is_listed_fetched_and_kept_after_quit(make_grid, drivers, pages, browser):
    grid = make_grid(max_sessions=1)
    driver = grid.remote(options=downloading_options(browser))
    drivers.append(driver)
    sid = driver.session_id
    assert driver.capabilities.get("se:downloadsEnabled") is True, driver.capabilities

    assert driver.get_downloadable_files() == []
    assert start_download(driver, pages) == [DOWNLOAD_NAME]
    with tempfile.TemporaryDirectory() as target:
        driver.download_file(DOWNLOAD_NAME, target)
        assert os.listdir(target) == [DOWNLOAD_NAME]
        assert open(os.path.join(target, DOWNLOAD_NAME), "rb").read() == DOWNLOAD_TEXT

    # Deleting empties the list; a second download is kept as an artifact.
    driver.delete_downloadable_files()
    assert driver.get_downloadable_files() == []
    assert start_download(driver, pages) == [DOWNLOAD_NAME]
    # The driver never saw the capability; the grid chose where downloads go.
    log = open(os.path.join(grid.sessions_dir, sid, "artifacts", "driver.log"), errors="replace").read()
    assert "se:downloadsEnabled" not in log
    if browser == "chrome":  # chromedriver logs the capabilities it got
        assert os.path.join(grid.sessions_dir, sid, "artifacts", "downloads") in log
    driver.quit()

    names = {a["name"] for a in list_artifacts(grid.url, sid)}
    assert {f"downloads/{DOWNLOAD_NAME}", "driver.log", "timeline.json"} <= names, names
    assert fetch_artifact(grid.url, sid, f"downloads/{DOWNLOAD_NAME}") == DOWNLOAD_TEXT


@pytest.mark.deadline(120)
@pytest.mark.parametrize("browser", ["chrome", "firefox"])
def test_an_upload_with_the_local_file_detector_reaches_the_page(make_grid, drivers, pages, browser):
    grid = make_grid(max_sessions=1)
    driver = grid.remote(browser_name=browser if browser == "firefox" else None)
    drivers.append(driver)
    driver.file_detector = LocalFileDetector()
    driver.get(pages.url("/upload.html"))
    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, "hello upload.txt")
        with open(local, "w") as f:
            f.write("uploaded through the grid\n")
        driver.find_element(By.ID, "file").send_keys(local)
    content = wait_until(lambda: driver.find_element(By.ID, "content").text, 10, what="the page to read the file")
    assert content == "hello upload.txt:uploaded through the grid"


@pytest.mark.deadline(120)
def test_hostile_names_and_archives_are_refused(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1, max_body_bytes=100_000)
    driver = grid.remote(options=downloading_options("chrome"))
    drivers.append(driver)
    sid = driver.session_id
    downloads = os.path.join(grid.sessions_dir, sid, "artifacts", "downloads")
    secret = os.path.join(grid.data_dir, "secret.txt")
    with open(secret, "w") as f:
        f.write("the grid's own file")
    os.symlink(secret, os.path.join(downloads, "link.txt"))
    os.symlink(grid.data_dir, os.path.join(downloads, "dir-link"))
    with open(os.path.join(downloads, "half.pdf.crdownload"), "w") as f:
        f.write("still being written")

    # Links and files being written are neither listed nor served.
    assert driver.get_downloadable_files() == []
    for name in ["link.txt", "dir-link", "half.pdf.crdownload", "../secret.txt", "../../secret.txt",
                 "/etc/passwd", "..", ".", "", "a/../../b", "..\\secret.txt"]:
        r = grid.request("POST", files_path(sid), {"name": name})
        assert r.status in (400, 404) and r.json()["value"]["error"] == "invalid argument", (name, r)
        assert "the grid's own file" not in r.body.decode(errors="replace")
    r = grid.request("POST", files_path(sid), {"nome": "x"})
    assert r.status == 400 and r.json()["value"]["error"] == "invalid argument", r
    # Deleting removes the links, not what they point at.
    driver.delete_downloadable_files()
    assert os.listdir(downloads) == []
    assert open(secret).read() == "the grid's own file"

    upload = f"/session/{sid}/se/file"
    hostile = {
        "zip-slip": zipped([("../../../../tmp/gridiron-zip-slip.txt", b"x")]),
        "absolute name": zipped([("/tmp/gridiron-absolute.txt", b"x")]),
        "a directory in the name": zipped([("sub/x.txt", b"x")]),
        "several entries": zipped([("a.txt", b"a"), ("b.txt", b"b")]),
        "no entry": zipped([]),
        # 10 MB of zeros deflate to about 10 kB: over the 100 kB limit once unpacked.
        "zip bomb": zipped([("zeros.bin", b"\0" * 10_000_000)]),
        "not a zip": base64.b64encode(b"plain text").decode(),
        "not base64": "!!! not base64 !!!",
    }
    for what, file in hostile.items():
        r = grid.request("POST", upload, {"file": file})
        assert r.status == 400 and r.json()["value"]["error"] == "invalid argument", (what, r)
    assert not os.path.exists("/tmp/gridiron-zip-slip.txt") and not os.path.exists("/tmp/gridiron-absolute.txt")
    r = grid.request("POST", upload, {"file": zipped([("big.bin", os.urandom(200_000))], zipfile.ZIP_STORED)})
    assert r.status == 400 and "--max-body-bytes" in r.json()["value"]["message"], r
    # What is left is a well-formed upload, which works.
    r = grid.request("POST", upload, {"file": zipped([("ok.txt", b"fine")])})
    assert r.status == 200, r
    path = r.json()["value"]
    assert path.startswith(os.path.join(grid.sessions_dir, sid, "uploads") + "/") and path.endswith("/ok.txt")
    assert open(path, "rb").read() == b"fine"


@pytest.mark.deadline(120)
def test_without_downloads_enabled_the_files_routes_say_so(make_grid, drivers):
    grid = make_grid(max_sessions=1)
    driver = grid.remote()
    drivers.append(driver)
    sid = driver.session_id
    assert "se:downloadsEnabled" not in driver.capabilities
    for method, body in (("GET", None), ("POST", {"name": "x.txt"}), ("DELETE", None)):
        r = grid.request(method, files_path(sid), body)
        assert r.status == 400, (method, r)
        value = r.json()["value"]
        assert value["error"] == "invalid argument"
        assert "se:downloadsEnabled" in value["message"] and sid in value["message"], value
    with pytest.raises(WebDriverException, match="enable downloads"):
        driver.get_downloadable_files()


@pytest.mark.deadline(120)
def test_errors_name_the_grids_session_id_never_the_drivers(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1)
    driver = grid.remote()
    drivers.append(driver)
    sid = driver.session_id
    driver.get(pages.url("/index.html"))
    theirs = driver_session_id(grid, sid)
    assert theirs != sid
    answers = [
        grid.request("POST", f"/session/{sid}/no/such/command", {}),
        grid.request("GET", f"/session/{sid}/element/not-an-element/text"),
        grid.request("POST", f"/session/{sid}/url", {"url": 42}),
        grid.request("POST", f"/wd/hub/session/{sid}/se/unknown", {}),
    ]
    for r in answers:
        assert r.status >= 400, r
        text = r.body.decode(errors="replace")
        assert theirs not in text, r
        assert "value" in r.json() and r.json()["value"]["error"], r
    # The unknown command names the session as the client knows it.
    assert answers[0].json()["value"]["error"] == "unknown command"
    assert sid in answers[0].json()["value"]["message"], answers[0]
    # A successful answer still streams through.
    assert driver.title == "Gridiron Index"


@pytest.mark.deadline(120)
def test_driver_log_and_timeline_are_kept(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1)
    driver = grid.remote()
    drivers.append(driver)
    sid = driver.session_id
    driver.get(pages.url("/index.html"))
    assert driver.title == "Gridiron Index"
    driver.quit()

    names = {a["name"] for a in list_artifacts(grid.url, sid)}
    assert {"driver.log", "timeline.json"} <= names, names
    log = fetch_artifact(grid.url, sid, "driver.log").decode(errors="replace")
    assert "Starting ChromeDriver" in log and "COMMAND Navigate" in log, log[:2000]
    timeline = json.loads(fetch_artifact(grid.url, sid, "timeline.json"))
    assert timeline["sessionId"] == sid
    assert timeline["commands"] >= 3, timeline  # get, title, quit
    steps = [s["step"] for s in timeline["steps"]]
    for expected in ["requested", "slot_granted", "started", "ending", "processes_killed", "end_recorded"]:
        assert expected in steps, steps
    assert steps.index("requested") < steps.index("slot_granted") < steps.index("started") < steps.index("ending")
    ending = next(s for s in timeline["steps"] if s["step"] == "ending")
    assert ending["detail"] == {"reason": "quit"}
    times = [s["at"] for s in timeline["steps"]]
    assert times == sorted(times) and times[0] > 1_600_000_000_000, times
    assert all(s["elapsedMs"] == s["at"] - times[0] for s in timeline["steps"])


@pytest.mark.deadline(120)
def test_firefox_keeps_its_driver_log(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1)
    driver = grid.remote(browser_name="firefox")
    drivers.append(driver)
    sid = driver.session_id
    driver.get(pages.url("/index.html"))
    driver.quit()
    log = fetch_artifact(grid.url, sid, "driver.log").decode(errors="replace")
    assert "geckodriver" in log and "Listening on" in log, log[:2000]
    timeline = json.loads(fetch_artifact(grid.url, sid, "timeline.json"))
    assert [s["step"] for s in timeline["steps"]][-1] == "timeline_written"


@pytest.mark.deadline(180)
def test_downloads_uploads_and_errors_work_through_a_hub(make_cluster, drivers, pages):
    c = make_cluster()
    node = c.node()
    hub = c.hub()
    c.capacity(hub, 1)
    driver = hub.remote(options=downloading_options("chrome"))
    drivers.append(driver)
    sid = driver.session_id
    assert driver.capabilities.get("se:downloadsEnabled") is True
    assert start_download(driver, pages) == [DOWNLOAD_NAME]
    with tempfile.TemporaryDirectory() as target:
        driver.download_file(DOWNLOAD_NAME, target)
        assert open(os.path.join(target, DOWNLOAD_NAME), "rb").read() == DOWNLOAD_TEXT

    driver.file_detector = LocalFileDetector()
    driver.get(pages.url("/upload.html"))
    with tempfile.TemporaryDirectory() as d:
        local = os.path.join(d, "via-hub.txt")
        with open(local, "w") as f:
            f.write("through the hub")
        driver.find_element(By.ID, "file").send_keys(local)
    content = wait_until(lambda: driver.find_element(By.ID, "content").text, 10, what="the page to read the file")
    assert content == "via-hub.txt:through the hub"

    theirs = driver_session_id(node, sid)
    r = hub.request("POST", f"/session/{sid}/no/such/command", {})
    assert r.status == 404 and r.json()["value"]["error"] == "unknown command", r
    assert theirs not in r.body.decode(errors="replace") and sid in r.json()["value"]["message"], r


@pytest.mark.deadline(150)
def test_a_warm_browser_never_serves_a_request_for_downloads(make_grid, drivers, pages):
    grid = make_grid(max_sessions=2, warm="chrome=1")
    wait_until(lambda: grid.status()["warmSessions"] >= 1, 60, what="a warm session")
    driver = grid.remote(options=downloading_options("chrome"))
    drivers.append(driver)
    sid = driver.session_id
    started = wait_until(
        lambda: [e for e in grid.request("GET", f"/api/v1/sessions/{sid}").json()["timeline"]
                 if e["kind"] == "session.started"],
        5,
        what="the session.started event",
    )
    assert started[0]["fields"].get("warm") != "true", "started without a download directory"
    assert start_download(driver, pages) == [DOWNLOAD_NAME]
    # The warm one still waits for a request of the default capabilities.
    assert grid.status()["warmSessions"] >= 1


@pytest.mark.deadline(150)
def test_a_queued_sessions_timeline_shows_its_wait(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1)
    first = grid.remote()
    drivers.append(first)
    thread, box = in_background(lambda: grid.remote())
    wait_until(lambda: grid.status()["queue"] == 1, 20, what="the second request to queue")
    first.quit()
    thread.join(60)
    assert "result" in box, box
    second = box["result"]
    drivers.append(second)
    sid = second.session_id
    second.quit()
    steps = json.loads(fetch_artifact(grid.url, sid, "timeline.json"))["steps"]
    names = [s["step"] for s in steps]
    assert names.index("requested") < names.index("queued") < names.index("slot_granted"), names
    queued = steps[names.index("queued")]
    assert queued["detail"]["position"] >= 1, queued
