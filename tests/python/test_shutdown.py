"""SIGTERM ends every session, removes their files and exits 0."""

import os

import pytest

from harness import chrome_caps, request_in_background, wait_until


@pytest.mark.deadline(90)
def test_sigterm_ends_sessions_and_exits_cleanly(make_grid, pages):
    g = make_grid(max_sessions=2, queue_timeout=30)
    first = g.remote()
    second = g.remote()
    ids = [first.session_id, second.session_id]
    for d in (first, second):
        d.get(pages.url("/index.html"))
        assert d.title == "Gridiron Index"
    for sid in ids:
        assert g.session_processes(sid), f"no processes found for session {sid}"
        assert os.path.isdir(os.path.join(g.sessions_dir, sid)), g.session_dirs()
        g.wait_row(sid, lambda r: r["state"] == "running", what=f"{sid} running in the store")

    code, took = g.terminate(timeout=10)
    assert code == 0, f"grid exited with code {code}"
    assert took <= 10

    left = g.wait_no_processes()
    assert not left, f"processes left after shutdown: {left}"
    assert g.session_dirs() == [], f"session dirs left after shutdown: {g.session_dirs()}"

    for sid in ids:
        row = g.db_row(sid)
        assert row is not None, sid
        assert row["state"] == "ended", row
        assert row["end_reason"] == "shutdown", row
        assert row["ended_at"] and row["ended_at"] >= row["started_at"], row


@pytest.mark.deadline(90)
def test_sigterm_with_a_queued_request(make_grid):
    """A client waiting in the queue gets an answer (or the connection closes) and nothing leaks."""
    g = make_grid(max_sessions=1, queue_timeout=60)
    holder = g.remote()
    t, box = request_in_background(g, "POST", "/session", body=chrome_caps(), timeout=30)
    wait_until(lambda: g.status()["queue"] == 1, 5, what="one queued request")
    code, _ = g.terminate(timeout=10)
    assert code == 0
    t.join(timeout=10)
    assert not t.is_alive(), "queued client still waiting after grid exit"
    resp = box.get("resp")
    if resp is not None:
        assert resp.status == 500 and resp.value["error"] == "session not created", resp
    assert not g.wait_no_processes()
    assert g.session_dirs() == []
    row = g.db_row(holder.session_id)
    assert row["state"] == "ended" and row["end_reason"] == "shutdown", row
