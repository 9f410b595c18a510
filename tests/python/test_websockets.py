"""CDP and BiDi through the grid with the Python selenium client, on Chromium and Firefox."""

import time

from selenium import webdriver

from harness import wait_until

GRID_OPTIONS = {"max_sessions": 2, "queue_timeout": 60}


def bidi_console_round_trip(driver, pages):
    """Registers a BiDi console listener, logs from a page, and returns what arrived."""
    seen = []
    driver.script.add_console_message_handler(seen.append)
    driver.get(pages.url("/"))
    driver.execute_script("console.log('through the grid')")
    wait_until(lambda: any(m.text == "through the grid" for m in seen), 10, what="console message over BiDi")
    return seen


def test_chromium_session_advertises_cdp_and_bidi_through_the_grid(grid, drivers):
    options = webdriver.ChromeOptions()
    options.set_capability("webSocketUrl", True)
    d = grid.remote(options=options)
    drivers.append(d)
    caps = d.capabilities
    prefix = f"ws://127.0.0.1:{grid.port}/session/{d.session_id}"
    assert caps["se:cdp"] == prefix + "/se/cdp"
    assert caps["se:cdpVersion"].split(".")[0] == caps["browserVersion"].split(".")[0]
    assert caps["webSocketUrl"] == prefix + "/se/bidi"


def test_execute_cdp_cmd(grid, drivers):
    d = grid.remote(options=webdriver.ChromeOptions())
    drivers.append(d)
    d.get("data:text/html,<title>cdp</title>")
    result = d.execute_cdp_cmd("Runtime.evaluate", {"expression": "6 * 7"})
    assert result["result"]["value"] == 42
    info = d.execute_cdp_cmd("Browser.getVersion", {})
    assert "Chrome" in info["product"] or "Chromium" in info["product"]


def test_bidi_console_listener_on_chromium(grid, drivers, pages):
    options = webdriver.ChromeOptions()
    options.set_capability("webSocketUrl", True)
    d = grid.remote(options=options)
    drivers.append(d)
    seen = bidi_console_round_trip(d, pages)
    assert any(m.text == "through the grid" for m in seen)


def test_bidi_keeps_idle_session_alive_while_open(make_grid, drivers):
    g = make_grid(max_sessions=1, idle_timeout=2)
    options = webdriver.ChromeOptions()
    options.set_capability("webSocketUrl", True)
    d = g.remote(options=options)
    drivers.append(d)
    d.script.add_console_message_handler(lambda m: None)  # opens the BiDi websocket
    time.sleep(3.5)
    # The open websocket counts as activity: the session is still there.
    assert d.title is not None
    assert g.db_row(d.session_id)["state"] == "running"


def test_firefox_bidi_round_trip(grid, drivers, pages):
    options = webdriver.FirefoxOptions()
    options.set_capability("webSocketUrl", True)
    d = grid.remote(options=options)
    drivers.append(d)
    assert d.capabilities["browserName"] == "firefox"
    assert d.capabilities["webSocketUrl"] == f"ws://127.0.0.1:{grid.port}/session/{d.session_id}/se/bidi"
    seen = bidi_console_round_trip(d, pages)
    assert any(m.text == "through the grid" for m in seen)
