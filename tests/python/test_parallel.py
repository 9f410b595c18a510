"""More clients than slots: requests queue and all of them complete."""

import threading
import time

import pytest
from selenium.webdriver.common.by import By

GRID_OPTIONS = {"max_sessions": 2, "queue_timeout": 120}
CLIENTS = 5


@pytest.mark.deadline(180)
def test_parallel_sessions_beyond_capacity_all_complete(grid, pages):
    results = [None] * CLIENTS
    barrier = threading.Barrier(CLIENTS)
    stop_watching = threading.Event()
    observed = {"max_running": 0, "max_busy_drivers": 0, "max_queue": 0, "errors": []}

    def client(i):
        driver = None
        try:
            barrier.wait(timeout=10)
            driver = grid.remote(timeout=150)
            sid = driver.session_id
            driver.get(pages.url("/index.html"))
            assert driver.title == "Gridiron Index"
            driver.find_element(By.ID, "btn").click()
            assert driver.find_element(By.ID, "out").text == "clicked 1"
            assert driver.execute_script("return arguments[0] + 1;", i) == i + 1
            driver.quit()
            driver = None
            results[i] = ("ok", sid)
        except BaseException as e:  # reported in the main thread
            results[i] = ("error", repr(e))
        finally:
            if driver is not None:
                try:
                    driver.quit()
                except Exception:
                    pass

    def watch():
        while not stop_watching.is_set():
            try:
                status = grid.status()
                observed["max_running"] = max(observed["max_running"], status["sessions"])
                observed["max_queue"] = max(observed["max_queue"], status["queue"])
            except Exception as e:
                observed["errors"].append(repr(e))
            busy, _ = grid.split_processes()
            owners = {p.session for p in busy if p.is_driver()}
            observed["max_busy_drivers"] = max(observed["max_busy_drivers"], len(owners))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 170
    for t in threads:
        t.join(timeout=max(0.1, deadline - time.monotonic()))
    stop_watching.set()
    watcher.join(timeout=5)

    assert not any(t.is_alive() for t in threads), f"clients still running: {results}"
    failures = [r for r in results if r is None or r[0] != "ok"]
    assert not failures, f"some clients failed: {results}"
    session_ids = [r[1] for r in results]
    assert len(set(session_ids)) == CLIENTS

    assert not observed["errors"], observed["errors"][:3]
    assert observed["max_running"] <= 2, observed
    assert observed["max_busy_drivers"] <= 2, observed

    for sid in session_ids:
        row = grid.wait_ended(sid, reason="quit")
        assert row["command_count"] >= 4, row
    rows = grid.db_rows("state = 'ended' AND end_reason = 'quit'")
    assert len(rows) == CLIENTS, rows

    status = grid.status()
    assert status["sessions"] == 0 and status["queue"] == 0, status
