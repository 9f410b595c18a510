"""The new-session queue: timeout, size limit, and clients that go away."""

import json
import re
import socket
import time

import pytest

from harness import chrome_caps, request_in_background, wait_until


def assert_session_not_created(resp):
    assert resp.status == 500, resp
    assert resp.content_type.split(";")[0].strip() == "application/json", resp
    value = resp.value
    assert value["error"] == "session not created", value
    assert "stacktrace" in value, value
    return value["message"]


def post_session_in_thread(grid, timeout=60):
    return request_in_background(grid, "POST", "/session", body=chrome_caps(), timeout=timeout)


def test_queue_timeout(make_grid, drivers):
    g = make_grid(max_sessions=1, queue_timeout=2)
    holder = g.remote()
    drivers.append(holder)

    started = time.monotonic()
    resp = g.request("POST", "/session", body=chrome_caps(), timeout=20)
    elapsed = time.monotonic() - started
    message = assert_session_not_created(resp)
    assert re.search(r"queue|time", message, re.I), message
    assert 1.5 <= elapsed <= 6, f"queued request failed after {elapsed:.2f}s (queue timeout 2s)"

    status = g.status()
    assert status["queue"] == 0 and status["sessions"] == 1, status

    # The running session is unaffected.
    assert isinstance(holder.title, str)
    sid = holder.session_id
    holder.quit()
    drivers.remove(holder)
    g.wait_ended(sid, reason="quit")

    # The request that timed out is on record.
    rows = g.wait_row_matching("end_reason = 'queue_timeout'")
    assert len(rows) == 1 and rows[0]["state"] == "ended", rows


def test_queue_full_is_refused_at_once(make_grid, drivers):
    g = make_grid(max_sessions=1, max_queue=1, queue_timeout=30)
    holder = g.remote()
    drivers.append(holder)

    waiting, box = post_session_in_thread(g)
    wait_until(lambda: g.status()["queue"] == 1, 5, what="one request in the queue")

    started = time.monotonic()
    resp = g.request("POST", "/session", body=chrome_caps(), timeout=20)
    elapsed = time.monotonic() - started
    message = assert_session_not_created(resp)
    assert re.search(r"queue", message, re.I) and re.search(r"full", message, re.I), message
    assert elapsed < 1.0, f"refusal took {elapsed:.2f}s"
    assert g.status()["queue"] == 1

    # Freeing the slot lets the waiting request through.
    holder.quit()
    drivers.remove(holder)
    waiting.join(timeout=30)
    assert not waiting.is_alive(), "queued request never completed"
    assert "error" not in box, box
    resp = box["resp"]
    assert resp.status == 200, resp
    sid = resp.value["sessionId"]
    assert g.delete_session_raw(sid).status == 200
    g.wait_ended(sid, reason="quit")


@pytest.mark.deadline(60)
def test_disconnected_client_does_not_get_an_orphan_session(make_grid, drivers):
    g = make_grid(max_sessions=1, max_queue=1, queue_timeout=30)
    holder = g.remote()
    drivers.append(holder)

    body = json.dumps(chrome_caps()).encode()
    request = (
        b"POST /session HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{g.port}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    sock = socket.create_connection(("127.0.0.1", g.port), timeout=5)
    try:
        sock.sendall(request)
        time.sleep(0.5)
        wait_until(lambda: g.status()["queue"] == 1, 5, what="the raw request to be queued")
    finally:
        sock.close()

    holder_id = holder.session_id
    holder.quit()
    drivers.remove(holder)
    g.wait_ended(holder_id, reason="quit")

    def idle():
        s = g.status()
        return s["sessions"] == 0 and s["queue"] == 0

    wait_until(idle, 5, what="grid to have no sessions and an empty queue")
    # The holder's processes go right after its end is recorded (the sweep
    # of its crash handler, which leaves the process group, follows the answer).
    wait_until(lambda: not g.busy_processes(), 10, what="the holder's processes to be gone")
    # ... and it stays that way: nothing is started for the gone client.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        s = g.status()
        assert s["sessions"] == 0 and s["queue"] == 0, s
        running = g.busy_processes()
        assert not running, f"session processes running for nobody: {running}"
        time.sleep(0.2)

    rows = g.db_rows()
    assert all(r["state"] == "ended" for r in rows), rows
    others = [r for r in rows if r["id"] != holder_id]
    assert all(r["end_reason"] == "client_gone" for r in others), others
