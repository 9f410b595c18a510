"""gridiron:options handling and the session records in the SQLite store."""

import json
import os
import time

from harness import chrome_caps, wait_until

GRID_OPTIONS = {"max_sessions": 1, "queue_timeout": 30}

GRID_OPTS = {"name": "checkout flow", "labels": {"team": "payments", "build": "1234"}}


def test_gridiron_options_are_stripped_and_recorded(grid, drivers, pages):
    before_ms = int(time.time() * 1000)
    d = grid.remote(grid_options=GRID_OPTS)
    drivers.append(d)
    sid = d.session_id

    assert "gridiron:options" not in d.capabilities, d.capabilities
    assert d.capabilities.get("browserName") in ("chrome", "chromium"), d.capabilities

    row = grid.wait_row(sid, lambda r: r["state"] == "running", what=f"{sid} running in the store")
    grid_options = json.loads(row["grid_options"])
    assert grid_options["name"] == GRID_OPTS["name"], grid_options
    assert grid_options["labels"] == GRID_OPTS["labels"], grid_options

    granted = json.loads(row["granted_caps"])
    assert isinstance(granted, dict), granted
    assert "gridiron:options" not in json.dumps(granted), granted
    requested = json.loads(row["requested_caps"])
    assert isinstance(requested, dict), requested

    assert row["created_at"] >= before_ms - 1000, row
    assert row["started_at"] >= row["created_at"], row
    assert row["ended_at"] is None, row
    assert row["end_reason"] is None, row

    # The session's files live under sessions/<id>/ while it runs.
    assert os.path.isdir(os.path.join(grid.sessions_dir, sid)), grid.session_dirs()

    d.get(pages.url("/index.html"))
    assert d.title == "Gridiron Index"
    d.quit()
    drivers.remove(d)

    row = grid.wait_ended(sid, reason="quit")
    assert row["ended_at"] >= row["started_at"], row
    assert row["ended_at"] <= int(time.time() * 1000) + 1000, row
    assert row["command_count"] >= 2, row
    # The end is recorded before the quit is answered; the files go right after.
    wait_until(
        lambda: not os.path.exists(os.path.join(grid.sessions_dir, sid)),
        timeout=10,
        what=f"session dir of {sid} to be removed",
    )


def test_options_are_not_forwarded_in_raw_session(grid):
    caps = chrome_caps(grid_options={"name": "raw", "labels": {"k": "v"}})
    resp = grid.request("POST", "/session", body=caps, timeout=60)
    assert resp.status == 200, resp
    value = resp.value
    sid = value["sessionId"]
    try:
        assert "gridiron:options" not in value["capabilities"], value
        row = grid.wait_row(sid, what=f"store row for {sid}")
        recorded = json.loads(row["grid_options"])
        assert recorded["name"] == "raw" and recorded["labels"] == {"k": "v"}, row
    finally:
        assert grid.delete_session_raw(sid).status == 200
    grid.wait_ended(sid, reason="quit")


def test_invalid_grid_options_are_rejected(grid):
    for bad in ({"idleTimeout": "soon"}, {"labels": {"k": 5}}, {"name": 7}, "options"):
        caps = chrome_caps(grid_options=bad)
        resp = grid.request("POST", "/session", body=caps, timeout=30)
        assert resp.status in (400, 500), (bad, resp)
        assert resp.value["error"] in ("invalid argument", "session not created"), (bad, resp)
    assert grid.status()["sessions"] == 0
