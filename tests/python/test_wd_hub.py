"""The same protocol is served under the Selenium Grid style `/wd/hub` prefix."""

from selenium.webdriver.common.by import By

from harness import chrome_caps

GRID_OPTIONS = {"max_sessions": 1, "queue_timeout": 60}


def test_status_under_wd_hub(grid):
    resp = grid.request("GET", "/wd/hub/status")
    assert resp.status == 200, resp
    assert resp.value["ready"] is True


def test_selenium_smoke_through_wd_hub(grid, drivers, pages):
    d = grid.remote(path="/wd/hub")
    drivers.append(d)
    d.get(pages.url("/index.html"))
    assert d.title == "Gridiron Index"
    assert d.current_url == pages.url("/index.html")
    d.find_element(By.ID, "btn").click()
    assert d.find_element(By.XPATH, "//div[@id='out']").text == "clicked 1"
    assert d.execute_script("return arguments[0] * 3;", 14) == 42
    assert d.get_screenshot_as_png().startswith(b"\x89PNG")
    d.add_cookie({"name": "hub", "value": "yes"})
    assert d.get_cookie("hub")["value"] == "yes"
    session_id = d.session_id
    d.quit()
    drivers.remove(d)
    grid.wait_ended(session_id, reason="quit")


def test_raw_protocol_through_wd_hub(grid, pages):
    session_id = grid.new_session_raw(chrome_caps(), prefix="/wd/hub")
    try:
        resp = grid.request("POST", f"/wd/hub/session/{session_id}/url", body={"url": pages.url("/second.html")})
        assert resp.status == 200, resp
        assert resp.value is None
        resp = grid.request("GET", f"/wd/hub/session/{session_id}/title")
        assert resp.status == 200, resp
        assert resp.value == "Second Page"
    finally:
        resp = grid.request("DELETE", f"/wd/hub/session/{session_id}")
    assert resp.status == 200, resp
    resp = grid.request("GET", f"/wd/hub/session/{session_id}/title")
    assert resp.status == 404, resp
    assert resp.value["error"] == "invalid session id"
