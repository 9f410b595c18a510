"""Idle timeout and maximum session duration, per session and per grid."""

import threading
import time

import pytest
from selenium.common.exceptions import InvalidSessionIdException, WebDriverException

from harness import wait_until

GRID_OPTIONS = {"max_sessions": 2, "queue_timeout": 30}


def poll_until_error(driver, limit, interval=0.5):
    """Issue a command every `interval` s until one fails; return (error, seconds)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        try:
            driver.title
        except WebDriverException as e:
            return e, time.monotonic() - started
        time.sleep(interval)
    return None, time.monotonic() - started


def test_idle_timeout_option_ends_idle_session(grid, drivers, pages):
    d = grid.remote(grid_options={"idleTimeout": 2})
    drivers.append(d)
    sid = d.session_id
    d.get(pages.url("/index.html"))
    time.sleep(4)
    # The grid reaps the idle session by itself, without waiting for a command.
    wait_until(lambda: not grid.session_processes(sid), 2, what=f"idle session {sid} processes to exit")
    assert grid.status()["sessions"] == 0

    with pytest.raises(InvalidSessionIdException):
        d.title
    row = grid.wait_ended(sid, reason="idle_timeout")
    assert row["ended_at"] - row["started_at"] >= 1900, row


def test_activity_keeps_session_alive_past_idle_timeout(grid, drivers, pages):
    d = grid.remote(grid_options={"idleTimeout": 2})
    drivers.append(d)
    sid = d.session_id
    d.get(pages.url("/index.html"))
    for _ in range(5):
        time.sleep(1)
        assert d.title == "Gridiron Index"
    d.quit()
    drivers.remove(d)
    grid.wait_ended(sid, reason="quit")


@pytest.mark.deadline(60)
def test_session_timeout_option_limits_duration(grid, drivers, pages):
    d = grid.remote(grid_options={"sessionTimeout": 3})
    drivers.append(d)
    sid = d.session_id
    d.get(pages.url("/index.html"))
    error, elapsed = poll_until_error(d, limit=10)
    assert error is not None, "session outlived its 3s sessionTimeout by far"
    assert isinstance(error, InvalidSessionIdException), repr(error)
    assert elapsed <= 6, f"ended {elapsed:.1f}s after creation"
    row = grid.wait_ended(sid, reason="max_duration")
    assert row["ended_at"] - row["created_at"] >= 2900, row
    assert row["ended_at"] - row["started_at"] <= 5500, row
    assert row["command_count"] >= 2, row


@pytest.mark.deadline(60)
def test_grid_wide_idle_and_session_timeouts(make_grid, drivers, pages):
    g = make_grid(max_sessions=2, idle_timeout=2, session_timeout=6, queue_timeout=30)

    # A busy session: a command every 0.5s until --session-timeout ends it.
    busy = g.remote()
    drivers.append(busy)
    busy_created = time.monotonic()
    outcome = {}

    def keep_busy():
        outcome["busy"] = poll_until_error(busy, limit=20)

    t = threading.Thread(target=keep_busy, daemon=True)
    t.start()

    # An idle session: nothing after creation, so --idle-timeout ends it.
    idle = g.remote()
    drivers.append(idle)
    g.wait_ended(idle.session_id, reason="idle_timeout", timeout=8)

    t.join(timeout=25)
    assert not t.is_alive()
    error, _ = outcome["busy"]
    lived = time.monotonic() - busy_created
    assert isinstance(error, InvalidSessionIdException), repr(error)
    assert lived <= 10, f"busy session ended after {lived:.1f}s (session timeout 6s)"
    row = g.wait_ended(busy.session_id, reason="max_duration")
    assert row["ended_at"] - row["created_at"] >= 5900, row

    with pytest.raises(InvalidSessionIdException):
        idle.title
