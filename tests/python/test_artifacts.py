"""Artifact storage with real Chromium through the real binary: collection,
the API (list, Range, delete), owner rules, hostile names, quota, restarts,
the S3 backend (against a moto server the test starts) and a hub with two nodes.

Until the grid's own producers (video, logs, downloads) write artifacts, the
tests create them the way a producer does: as files in a running session's
outbox (`<data_dir>/sessions/<id>/artifacts/`), which the grid collects into
its storage when the session ends.
"""

import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess

import pytest

from harness import (
    Cluster,
    EventStream,
    Grid,
    artifact_path,
    fetch_artifact,
    free_port,
    list_artifacts,
    wait_until,
)
from test_keys import bearer, make_keys, new_session


# What the grid keeps of every session itself (its driver's log, its
# timeline, its console): these tests look at the files they left, and nothing else.
GRID_KEPT = ("driver.log", "timeline.json", "console.log")


def left_artifacts(*args, **kwargs):
    """`list_artifacts` without what the grid keeps of every session."""
    return [a for a in list_artifacts(*args, **kwargs) if a["name"] not in GRID_KEPT]


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def raw_get(port, path, headers=None):
    """GET with the path sent exactly as given (no client-side normalising)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def session_leaving(grid, drivers, files, outbox_of=None):
    """A Chromium session through `grid` whose outbox holds `files` (name -> bytes); returns (driver, id)."""
    driver = grid.remote()
    drivers.append(driver)
    sid = driver.session_id
    outbox = (outbox_of or grid.outbox)(sid)
    for name, data in files.items():
        write(os.path.join(outbox, name), data)
    return driver, sid


@pytest.mark.deadline(120)
def test_a_sessions_outbox_outlives_it_through_the_api(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1)
    driver, sid = session_leaving(grid, drivers, {})
    driver.get(pages.url("/"))
    video = os.urandom(300_000)
    write(os.path.join(grid.outbox(sid), "video.mp4"), video)
    write(os.path.join(grid.outbox(sid), "downloads", "report.csv"), b"a,b\n1,2\n")
    # While it runs, nothing is collected and the list says so.
    running = grid.request("GET", artifact_path(sid))
    assert running.status == 200, running
    assert running.json() == {"sessionId": sid, "artifacts": [], "complete": False}

    driver.quit()
    listed = left_artifacts(grid.url, sid)
    by_name = {a["name"]: a for a in listed}
    # Besides what the grid itself keeps of every session (its driver's log, its timeline).
    assert sorted(by_name) == ["downloads/report.csv", "video.mp4"]
    assert by_name["video.mp4"]["size"] == len(video)
    assert by_name["video.mp4"]["contentType"] == "video/mp4"
    assert by_name["video.mp4"]["state"] == "ready"
    assert by_name["downloads/report.csv"]["contentType"].startswith("text/csv")
    assert fetch_artifact(grid.url, sid, "video.mp4") == video
    assert fetch_artifact(grid.url, sid, "downloads/report.csv") == b"a,b\n1,2\n"
    # The session's own directory goes (its clean-up follows the collection); its artifacts stay.
    wait_until(lambda: sid not in grid.session_dirs(), 10, what="the session's directory to be removed")
    assert os.path.isfile(os.path.join(grid.data_dir, "artifacts", sid, "video.mp4"))
    # Each stored artifact, and a removal, is an event of the grid's feed (and so of webhooks).
    assert grid.request("DELETE", artifact_path(sid, "downloads/report.csv")).status == 204
    stream = EventStream(grid.port, query="type=artifact.*", last_event_id="0")
    try:
        seen = [(e["event"], e["data"]["session"], e["data"]["fields"]["name"], e["data"]["fields"]["size"]) for e in stream.take(3 + len(GRID_KEPT))]
    finally:
        stream.close()
    seen = [e for e in seen if e[2] not in GRID_KEPT]
    assert sorted(seen[:2]) == [
        ("artifact.ready", sid, "downloads/report.csv", "8"),
        ("artifact.ready", sid, "video.mp4", str(len(video))),
    ]
    assert seen[2] == ("artifact.deleted", sid, "downloads/report.csv", "8")


@pytest.mark.deadline(120)
def test_range_requests_seek_like_a_video_player(make_grid, drivers):
    grid = make_grid(max_sessions=1)
    data = bytes(range(256)) * 4000  # 1024000 bytes
    driver, sid = session_leaving(grid, drivers, {"video.webm": data})
    driver.quit()
    left_artifacts(grid.url, sid)
    path = artifact_path(sid, "video.webm")
    cases = [
        ("bytes=0-99", 0, 99),
        ("bytes=1000000-", 1000000, len(data) - 1),
        ("bytes=-24", len(data) - 24, len(data) - 1),
        ("bytes=500-10000000", 500, len(data) - 1),
    ]
    for header, start, end in cases:
        r = grid.request("GET", path, headers={"Range": header})
        assert r.status == 206, (header, r)
        assert r.body == data[start:end + 1], header
        assert r.headers["content-range"] == f"bytes {start}-{end}/{len(data)}", header
        assert r.headers["content-type"] == "video/webm"
    whole = grid.request("GET", path)
    assert whole.status == 200 and whole.body == data
    assert whole.headers["accept-ranges"] == "bytes"
    for header in ("bytes=1024000-", "bytes=-0"):
        r = grid.request("GET", path, headers={"Range": header})
        assert r.status == 416, (header, r)
        assert r.content_type == "application/problem+json"
        assert r.headers["content-range"] == f"bytes */{len(data)}"
    # Several ranges: served whole (allowed by RFC 9110), never garbled.
    r = grid.request("GET", path, headers={"Range": "bytes=0-1,5-6"})
    assert r.status == 200 and r.body == data


@pytest.mark.deadline(120)
def test_names_that_leave_the_sessions_storage_are_refused(make_grid, drivers):
    grid = make_grid(max_sessions=1)
    driver, sid = session_leaving(grid, drivers, {"ok.txt": b"ok"})
    driver.quit()
    left_artifacts(grid.url, sid)
    # What an attacker would like to read: next to the session's storage, and the store.
    write(os.path.join(grid.data_dir, "artifacts", "secret.txt"), b"TOP-SECRET-CONTENT")
    base = f"/api/v1/sessions/{sid}/artifacts/"
    for name in [
        "..%2Fsecret.txt",
        "%2E%2E%2Fsecret.txt",
        "%2e%2e/secret.txt",
        "../secret.txt",
        "../../gridiron.db",
        "sub/../../secret.txt",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "..%5Csecret.txt",
        "ok.txt%00",
        "./ok.txt",
    ]:
        status, headers, body = raw_get(grid.port, base + name)
        assert status in (400, 404), (name, status, body)
        assert headers["content-type"] == "application/problem+json", (name, body)
        assert b"TOP-SECRET" not in body and b"SQLite" not in body
    for sid_attack in ["..", "..%2F..", "%2E%2E"]:
        status, _, body = raw_get(grid.port, f"/api/v1/sessions/{sid_attack}/artifacts/secret.txt")
        assert status in (400, 404), (sid_attack, status, body)
        assert b"TOP-SECRET" not in body
    assert fetch_artifact(grid.url, sid, "ok.txt") == b"ok"


@pytest.mark.deadline(180)
def test_a_user_key_cannot_reach_another_keys_artifacts(make_grid, grid_binary):
    grid = make_grid(max_sessions=2)
    a, b, root = make_keys(grid_binary, grid, "a", "b").values()
    sid = new_session(grid, a)["sessionId"]
    write(os.path.join(grid.outbox(sid), "mine.txt"), b"mine")
    r = grid.request("DELETE", f"/session/{sid}", headers=bearer(a))
    assert r.status == 200, r
    assert [x["name"] for x in left_artifacts(grid.url, sid, key=a)] == ["mine.txt"]
    path = artifact_path(sid, "mine.txt")
    for method, p in [("GET", artifact_path(sid)), ("GET", path), ("DELETE", path)]:
        r = grid.request(method, p, headers=bearer(b))
        assert r.status == 404, (method, p, r)
        assert r.content_type == "application/problem+json"
        assert b"mine" not in r.body
        anonymous = grid.request(method, p)
        assert anonymous.status == 401, (method, p, anonymous)
    assert fetch_artifact(grid.url, sid, "mine.txt", key=root) == b"mine"
    assert fetch_artifact(grid.url, sid, "mine.txt", key=a) == b"mine"
    # Deleting: the owner may, and it is gone for everyone.
    assert grid.request("DELETE", path, headers=bearer(a)).status == 204
    assert grid.request("GET", path, headers=bearer(root)).status == 404
    assert left_artifacts(grid.url, sid, key=a) == []


@pytest.mark.deadline(240)
def test_the_quota_removes_the_oldest_first_and_never_a_running_sessions(make_grid, drivers):
    grid = make_grid(max_sessions=2, artifacts_max_bytes=250_000)
    first_driver, first = session_leaving(grid, drivers, {"video.mp4": os.urandom(100_000)})
    first_driver.quit()
    assert len(left_artifacts(grid.url, first)) == 1
    second_driver, second = session_leaving(grid, drivers, {"video.mp4": os.urandom(100_000)})
    second_driver.quit()
    assert len(left_artifacts(grid.url, second)) == 1
    # A running session with a large outbox: the quota never reaches into it.
    running_driver, running = session_leaving(grid, drivers, {"video.mp4": os.urandom(120_000)})
    third_driver, third = session_leaving(grid, drivers, {"video.mp4": os.urandom(100_000)})
    third_driver.quit()
    assert len(left_artifacts(grid.url, third)) == 1
    # 300 000 bytes stored > 250 000: the oldest (first) goes, the rest stay.
    wait_until(lambda: left_artifacts(grid.url, first) == [], 10, what="the oldest artifact to be removed")
    assert len(left_artifacts(grid.url, second)) == 1
    assert os.path.getsize(os.path.join(grid.outbox(running), "video.mp4")) == 120_000
    assert not os.path.exists(os.path.join(grid.data_dir, "artifacts", first))
    running_driver.quit()
    # Now 320 000 bytes: the next oldest (second) goes; the one just collected stays.
    wait_until(lambda: left_artifacts(grid.url, second) == [], 10, what="the next oldest artifact to be removed")
    assert [a["size"] for a in left_artifacts(grid.url, running)] == [120_000]
    assert len(left_artifacts(grid.url, third)) == 1
    # Each removal is an event, with why.
    with sqlite3.connect(grid.db_path) as db:
        rows = db.execute("SELECT session, fields FROM events WHERE kind = 'artifact.deleted' ORDER BY id").fetchall()
    assert [(sid, json.loads(f)["reason"], json.loads(f)["name"]) for sid, f in rows
            if json.loads(f)["name"] not in GRID_KEPT] == [
        (first, "quota", "video.mp4"),
        (second, "quota", "video.mp4"),
    ]


@pytest.mark.deadline(240)
def test_the_index_matches_the_disk_after_a_restart(make_grid, drivers):
    grid = make_grid(max_sessions=1)
    driver, sid = session_leaving(grid, drivers, {"keep.txt": b"keep", "drop.txt": b"drop"})
    driver.quit()
    assert sorted(a["name"] for a in left_artifacts(grid.url, sid)) == ["drop.txt", "keep.txt"]
    grid.stop()
    stored = os.path.join(grid.data_dir, "artifacts", sid)
    os.remove(os.path.join(stored, "drop.txt"))
    write(os.path.join(stored, "late", "driver.log"), b"stored before a crash, never indexed")
    grid.start()

    def reconciled():
        names = sorted(a["name"] for a in left_artifacts(grid.url, sid))
        return names if names == ["keep.txt", "late/driver.log"] else None

    wait_until(reconciled, 20, what="the index to match the disk")
    assert fetch_artifact(grid.url, sid, "late/driver.log") == b"stored before a crash, never indexed"
    r = grid.request("GET", artifact_path(sid, "drop.txt"))
    assert r.status == 404 and r.content_type == "application/problem+json"


# ---------------------------------------------------------------------------
# S3 (moto in server mode)
# ---------------------------------------------------------------------------


@pytest.fixture
def moto():
    """A moto S3 server on a free port, with bucket `grid-artifacts`."""
    port = free_port()
    exe = shutil.which("moto_server")
    argv = [exe, "-H", "127.0.0.1", "-p", str(port)] if exe else ["python3", "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        import boto3

        url = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")

        def up():
            try:
                s3.list_buckets()
                return True
            except Exception:
                if proc.poll() is not None:
                    raise AssertionError("moto_server exited")
                return False

        wait_until(up, 30, what="moto_server to answer")
        s3.create_bucket(Bucket="grid-artifacts")
        env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
        yield s3, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.deadline(240)
def test_the_s3_backend_against_a_local_s3_server(drivers, moto, grid_binary):
    s3, env = moto
    grid = Grid(grid_binary, env=env, max_sessions=1, artifacts_url="s3://grid-artifacts/runs/ci")
    try:
        grid.start()
    except AssertionError:
        if "no S3 support" in grid.log_text():
            pytest.fail("the Python suite's binary must be built with --features s3 (scripts/test does)")
        raise
    try:
        video = os.urandom(6 * 1024 * 1024 + 123)  # more than one multipart part
        driver, sid = session_leaving(grid, drivers, {"video.mp4": video, "logs/driver.log": b"driver says hi"})
        driver.quit()
        listed = {a["name"]: a for a in left_artifacts(grid.url, sid)}
        assert sorted(listed) == ["logs/driver.log", "video.mp4"]
        assert listed["video.mp4"]["size"] == len(video)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="grid-artifacts").get("Contents", []))
        keys = [k for k in keys if k.rsplit("/", 1)[-1] not in GRID_KEPT or "/logs/" in k]
        assert keys == [f"runs/ci/{sid}/logs/driver.log", f"runs/ci/{sid}/video.mp4"]
        # Nothing kept locally: the bucket is the storage.
        assert not os.path.exists(os.path.join(grid.data_dir, "artifacts", sid))
        assert fetch_artifact(grid.url, sid, "video.mp4") == video
        part = grid.request("GET", artifact_path(sid, "video.mp4"), headers={"Range": "bytes=5000000-5000099"})
        assert part.status == 206 and part.body == video[5000000:5000100], part
        assert grid.request("DELETE", artifact_path(sid, "logs/driver.log")).status == 204
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="grid-artifacts").get("Contents", [])]
        keys = [k for k in keys if k.rsplit("/", 1)[-1] not in GRID_KEPT]
        assert keys == [f"runs/ci/{sid}/video.mp4"]
        # An object the index does not know (written before a crash) is indexed at the next start.
        s3.put_object(Bucket="grid-artifacts", Key=f"runs/ci/{sid}/late.txt", Body=b"late")
        grid.stop()
        grid.start()
        wait_until(
            lambda: sorted(a["name"] for a in left_artifacts(grid.url, sid)) == ["late.txt", "video.mp4"],
            20,
            what="the index to match the bucket",
        )
        assert fetch_artifact(grid.url, sid, "late.txt") == b"late"
    finally:
        grid.stop()


# ---------------------------------------------------------------------------
# A hub and two nodes
# ---------------------------------------------------------------------------


@pytest.mark.deadline(300)
def test_a_hub_serves_the_artifacts_of_two_nodes_and_reports_a_lost_nodes(grid_binary, drivers):
    c = Cluster(grid_binary, heartbeat_ttl=3)
    try:
        first, second = c.node(), c.node()
        hub = c.hub()
        c.capacity(hub, 2)
        d1 = hub.remote()
        drivers.append(d1)
        d2 = hub.remote()
        drivers.append(d2)
        n1, n2 = c.node_of(d1.session_id), c.node_of(d2.session_id)
        assert {n1.port, n2.port} == {first.port, second.port}
        write(os.path.join(n1.outbox(d1.session_id), "video.mp4"), b"one" * 1000)
        write(os.path.join(n2.outbox(d2.session_id), "video.mp4"), b"two" * 1000)
        d1.quit()
        d2.quit()
        for d, n, data in [(d1, n1, b"one" * 1000), (d2, n2, b"two" * 1000)]:
            listed = left_artifacts(hub.url, d.session_id)
            assert [(a["name"], a["size"], a["state"]) for a in listed] == [("video.mp4", 3000, "ready")]
            assert fetch_artifact(hub.url, d.session_id, "video.mp4") == data
            r = hub.request("GET", artifact_path(d.session_id, "video.mp4"), headers={"Range": "bytes=0-2"})
            assert (r.status, r.body) == (206, data[:3])
            assert os.path.isfile(os.path.join(n.data_dir, "artifacts", d.session_id, "video.mp4"))
        # The second node goes away: its artifacts are lost, never served broken.
        n2.stop()
        lost = wait_until(
            lambda: (lambda l: l if l[0]["state"] == "lost" else None)(left_artifacts(hub.url, d2.session_id)),
            20,
            what="the artifact of the stopped node to be reported lost",
        )
        assert lost[0]["name"] == "video.mp4"
        r = hub.request("GET", artifact_path(d2.session_id, "video.mp4"))
        assert r.status == 410, r
        assert r.content_type == "application/problem+json"
        assert "lost" in r.json()["detail"]
        # The other node's still are served; deleting through the hub reaches its node.
        assert fetch_artifact(hub.url, d1.session_id, "video.mp4") == b"one" * 1000
        assert hub.request("DELETE", artifact_path(d1.session_id, "video.mp4")).status == 204
        assert not os.path.exists(os.path.join(n1.data_dir, "artifacts", d1.session_id, "video.mp4"))
        assert left_artifacts(hub.url, d1.session_id) == []
    finally:
        c.stop()


@pytest.mark.deadline(300)
def test_nodes_store_into_a_shared_bucket_that_hubs_read_after_the_node_is_gone(grid_binary, drivers, moto):
    s3, env = moto
    url = "s3://grid-artifacts/cluster"
    c = Cluster(grid_binary, heartbeat_ttl=3, env=env)
    try:
        node = c.node(artifacts_url=url)
        hub = c.hub(artifacts_url=url)
        c.capacity(hub, 1)
        driver = hub.remote()
        drivers.append(driver)
        sid = driver.session_id
        write(os.path.join(node.outbox(sid), "video.mp4"), b"bucket" * 1000)
        driver.quit()
        listed = left_artifacts(hub.url, sid)
        assert [(a["name"], a["size"], a["state"]) for a in listed] == [("video.mp4", 6000, "ready")]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="grid-artifacts").get("Contents", [])]
        keys = [k for k in keys if k.rsplit("/", 1)[-1] not in GRID_KEPT]
        assert keys == [f"cluster/{sid}/video.mp4"]
        # The node that stored it leaves: the bucket still has it, the hub serves it.
        node.stop()
        wait_until(lambda: not hub.status()["ready"], 20, what="the hub to see the node gone")
        assert [a["state"] for a in left_artifacts(hub.url, sid)] == ["ready"]
        r = hub.request("GET", artifact_path(sid, "video.mp4"), headers={"Range": "bytes=6-11"})
        assert (r.status, r.body) == (206, b"bucket"), r
        assert hub.request("DELETE", artifact_path(sid, "video.mp4")).status == 204
        left = [o["Key"] for o in s3.list_objects_v2(Bucket="grid-artifacts").get("Contents", [])]
        assert [k for k in left if k.rsplit("/", 1)[-1] not in GRID_KEPT] == []
    finally:
        c.stop()


@pytest.mark.deadline(180)
def test_a_killed_grids_sessions_keep_their_artifacts(make_grid, drivers):
    grid = make_grid(max_sessions=1)
    driver, sid = session_leaving(grid, drivers, {"video.mp4": b"recorded before the crash"})
    grid.kill_hard()
    grid.start()
    listed = left_artifacts(grid.url, sid)
    assert [(a["name"], a["state"]) for a in listed] == [("video.mp4", "ready")]
    assert fetch_artifact(grid.url, sid, "video.mp4") == b"recorded before the crash"
    assert sid not in grid.session_dirs()
