"""Killing a session's chromedriver or chromium ends that session cleanly."""

import contextlib
import os
import signal
import time

import pytest
from selenium.common.exceptions import InvalidSessionIdException, WebDriverException

from harness import wait_until

GRID_OPTIONS = {"max_sessions": 1, "queue_timeout": 20}


def chromedriver_victim(grid, session_id):
    return grid.chromedriver_of(session_id)


def chromium_victim(grid, session_id):
    return grid.chromium_main_of(session_id)


def start_session(grid, drivers, pages):
    d = grid.remote(timeout=20)
    drivers.append(d)
    d.get(pages.url("/index.html"))
    assert d.title == "Gridiron Index"
    return d


def assert_slot_reusable(grid, drivers, pages):
    """A --max-sessions 1 grid accepts a new session right away."""
    started = time.monotonic()
    d = grid.remote(timeout=20)
    elapsed = time.monotonic() - started
    drivers.append(d)
    assert elapsed < 10, f"new session took {elapsed:.1f}s: slot was not released promptly"
    d.get(pages.url("/second.html"))
    assert d.title == "Second Page"
    sid = d.session_id
    d.quit()
    drivers.remove(d)
    grid.wait_ended(sid, reason="quit")


@pytest.mark.parametrize("find_victim", [chromedriver_victim, chromium_victim], ids=["chromedriver", "chromium"])
def test_killed_process_ends_session(grid, drivers, pages, find_victim):
    d = start_session(grid, drivers, pages)
    sid = d.session_id
    victim = find_victim(grid, sid)

    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    error = None
    try:
        d.title
    except WebDriverException as e:
        error = e
    elapsed = time.monotonic() - killed_at
    assert error is not None, f"command after killing {victim} succeeded"
    assert elapsed < 2.0, f"command took {elapsed:.2f}s to fail after the kill ({error!r})"
    assert isinstance(error, InvalidSessionIdException), f"expected InvalidSessionIdException, got {error!r}"

    # Still invalid afterwards.
    with pytest.raises(InvalidSessionIdException):
        d.current_url

    grid.wait_ended(sid, reason="driver_crashed")
    wait_until(lambda: not grid.session_processes(sid), 5, what=f"processes of crashed session {sid} to exit")
    wait_until(lambda: grid.status()["sessions"] == 0, 5, what="status to show 0 sessions")
    with contextlib.suppress(WebDriverException):
        d.quit()
    drivers.remove(d)

    assert_slot_reusable(grid, drivers, pages)


def test_chromedriver_crash_is_noticed_without_a_command(grid, drivers, pages):
    d = start_session(grid, drivers, pages)
    sid = d.session_id
    victim = grid.chromedriver_of(sid)
    os.kill(victim.pid, signal.SIGKILL)

    # Nobody talks to the session: the grid must notice on its own.
    grid.wait_ended(sid, reason="driver_crashed", timeout=5)
    wait_until(lambda: not grid.session_processes(sid), 5, what=f"processes of crashed session {sid} to exit")
    wait_until(lambda: grid.status()["sessions"] == 0, 5, what="status to show 0 sessions")

    with pytest.raises(InvalidSessionIdException):
        d.title
    with contextlib.suppress(WebDriverException):
        d.quit()
    drivers.remove(d)

    assert_slot_reusable(grid, drivers, pages)


def test_closing_the_last_window_then_quitting_is_a_clean_quit(grid, drivers, pages):
    d = grid.remote()
    drivers.append(d)
    d.get(pages.url("/"))
    sid = d.session_id
    d.close()  # the last window: the driver closes the browser
    d.quit()  # must not raise
    row = grid.wait_ended(sid)
    assert row["end_reason"] == "quit", row
