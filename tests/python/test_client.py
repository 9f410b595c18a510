"""The selenium Python client driving chromium through the grid at `/`."""

import base64
import time

import pytest
from selenium.common.exceptions import NoSuchElementException, NoSuchFrameException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

GRID_OPTIONS = {"max_sessions": 2, "queue_timeout": 60}

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(params=["chrome", "firefox"])
def driver(request, grid, drivers):
    """The classic suite runs on every browser the grid offers."""
    d = grid.remote(browser_name=request.param)
    drivers.append(d)
    return d


def wait_for(driver, predicate, timeout=5):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: predicate(d))


def test_status_describes_the_grid(grid):
    status = grid.status()
    assert status["ready"] is True
    assert isinstance(status["message"], str)
    assert status["maxSessions"] == 2
    assert status["sessions"] == 0
    assert status["queue"] == 0
    nodes = status["nodes"]
    assert isinstance(nodes, list) and nodes, status
    slots = [slot for node in nodes for slot in node["slots"]]
    assert len(slots) == 2, status
    for node in nodes:
        assert node["id"] and node["uri"], node
    for slot in slots:
        assert slot["id"], slot
        assert slot["stereotype"]["browserName"] in ("chrome", "chromium"), slot
        assert slot["session"] is None, slot


def test_status_shows_running_session(grid, driver):
    status = grid.status()
    assert status["sessions"] == 1, status
    busy = [slot["session"] for node in status["nodes"] for slot in node["slots"] if slot["session"]]
    assert len(busy) == 1, status
    assert busy[0]["sessionId"] == driver.session_id


def test_navigation(driver, pages):
    driver.get(pages.url("/index.html"))
    assert driver.title == "Gridiron Index"
    assert driver.current_url == pages.url("/index.html")

    driver.find_element(By.ID, "to-second").click()
    wait_for(driver, lambda d: d.title == "Second Page")
    assert driver.current_url == pages.url("/second.html")

    driver.back()
    wait_for(driver, lambda d: d.title == "Gridiron Index")
    assert driver.current_url == pages.url("/index.html")

    driver.forward()
    wait_for(driver, lambda d: d.title == "Second Page")
    assert driver.current_url == pages.url("/second.html")

    driver.execute_script("window.__marker = 'before refresh';")
    assert driver.execute_script("return window.__marker;") == "before refresh"
    driver.refresh()
    assert driver.title == "Second Page"
    assert driver.execute_script("return window.__marker === undefined;") is True


def test_find_elements_and_click(driver, pages):
    driver.get(pages.url("/index.html"))
    heading = driver.find_element(By.CSS_SELECTOR, "h1#heading")
    assert heading.text == "Welcome to the index"
    assert heading.tag_name == "h1"

    items = driver.find_elements(By.CSS_SELECTOR, "#items li.item")
    assert [i.text for i in items] == ["alpha", "beta", "gamma"]

    beta = driver.find_element(By.XPATH, "//li[text()='beta']")
    assert beta.get_attribute("class") == "item"
    intro = driver.find_element(By.XPATH, "//p[contains(@class, 'intro')]")
    assert "navigation tests" in intro.text

    # Element-scoped lookups.
    ul = driver.find_element(By.ID, "items")
    assert len(ul.find_elements(By.TAG_NAME, "li")) == 3
    assert ul.find_element(By.XPATH, "./li[3]").text == "gamma"

    assert driver.find_elements(By.CSS_SELECTOR, ".does-not-exist") == []
    with pytest.raises(NoSuchElementException):
        driver.find_element(By.CSS_SELECTOR, "#does-not-exist")

    button = driver.find_element(By.ID, "btn")
    assert button.is_displayed() and button.is_enabled()
    button.click()
    assert driver.find_element(By.ID, "out").text == "clicked 1"
    button.click()
    assert driver.find_element(By.ID, "out").text == "clicked 2"


def test_typing_and_reading_values(driver, pages):
    driver.get(pages.url("/form.html"))
    name = driver.find_element(By.ID, "name")
    name.send_keys("Ada Lovelace")
    assert name.get_attribute("value") == "Ada Lovelace"
    assert name.get_property("value") == "Ada Lovelace"

    prefilled = driver.find_element(By.ID, "prefilled")
    assert prefilled.get_attribute("value") == "keep me"
    prefilled.clear()
    assert prefilled.get_property("value") == ""
    prefilled.send_keys("replaced")
    assert prefilled.get_property("value") == "replaced"

    bio = driver.find_element(By.ID, "bio")
    bio.send_keys("line one")
    assert bio.get_property("value") == "line one"

    agree = driver.find_element(By.ID, "agree")
    assert not agree.is_selected()
    agree.click()
    assert agree.is_selected()

    Select(driver.find_element(By.ID, "color")).select_by_value("blue")

    driver.find_element(By.ID, "submit").click()
    assert driver.find_element(By.ID, "result").text == "Ada Lovelace|line one|true|blue"


def test_screenshots(driver, pages):
    driver.get(pages.url("/index.html"))
    png = driver.get_screenshot_as_png()
    assert png.startswith(PNG_MAGIC)
    assert len(png) > 1000

    encoded = driver.get_screenshot_as_base64()
    assert base64.b64decode(encoded).startswith(PNG_MAGIC)

    element_png = driver.find_element(By.ID, "heading").screenshot_as_png
    assert element_png.startswith(PNG_MAGIC)


def test_execute_script(driver, pages):
    driver.get(pages.url("/index.html"))
    assert driver.execute_script("return 1 + 2;") == 3
    assert driver.execute_script("return arguments[0] + arguments[1];", "grid", "iron") == "gridiron"
    assert driver.execute_script("return {a: [1, 2], b: null, c: 'x'};") == {"a": [1, 2], "b": None, "c": "x"}
    assert driver.execute_script("return document.title;") == "Gridiron Index"

    # Elements go both ways.
    heading = driver.execute_script("return document.getElementById('heading');")
    assert heading.text == "Welcome to the index"
    assert driver.execute_script("return arguments[0].id;", heading) == "heading"


def test_execute_async_script(driver, pages):
    driver.get(pages.url("/index.html"))
    driver.set_script_timeout(5)
    started = time.monotonic()
    result = driver.execute_async_script(
        "var done = arguments[arguments.length - 1];"
        "var n = arguments[0];"
        "setTimeout(function () { done(n * 2); }, 300);",
        21,
    )
    assert result == 42
    assert time.monotonic() - started >= 0.25


def test_cookies(driver, pages):
    driver.get(pages.url("/cookies.html"))
    # Set by the server through a Set-Cookie header.
    assert driver.get_cookie("server_cookie")["value"] == "from_server"

    driver.add_cookie({"name": "flavour", "value": "oatmeal", "path": "/"})
    assert driver.get_cookie("flavour")["value"] == "oatmeal"
    names = {c["name"] for c in driver.get_cookies()}
    assert {"server_cookie", "flavour"} <= names

    # The browser really sends it.
    driver.get(pages.url("/echo-cookies.html"))
    header = driver.find_element(By.ID, "cookie-header").text
    assert "flavour=oatmeal" in header and "server_cookie=from_server" in header

    driver.delete_cookie("flavour")
    assert driver.get_cookie("flavour") is None
    assert driver.get_cookie("server_cookie") is not None

    driver.delete_all_cookies()
    assert driver.get_cookies() == []


def test_frames(driver, pages):
    driver.get(pages.url("/frames.html"))
    assert driver.find_element(By.ID, "outer-text").text == "outer document"
    with pytest.raises(NoSuchElementException):
        driver.find_element(By.ID, "inner-text")

    # By element.
    driver.switch_to.frame(driver.find_element(By.ID, "inner-frame"))
    assert driver.find_element(By.ID, "inner-text").text == "inside the frame"
    driver.find_element(By.ID, "inner-btn").click()
    assert driver.find_element(By.ID, "inner-text").text == "frame clicked"

    # Nested frame by index, then back up one level.
    driver.switch_to.frame(0)
    assert driver.find_element(By.ID, "nested-text").text == "deepest"
    driver.switch_to.parent_frame()
    assert driver.find_element(By.ID, "inner-text").text == "frame clicked"

    driver.switch_to.default_content()
    assert driver.find_element(By.ID, "outer-text").text == "outer document"

    # By name.
    driver.switch_to.frame("inner")
    assert driver.find_element(By.ID, "inner-text").text == "frame clicked"
    driver.switch_to.default_content()

    with pytest.raises(NoSuchFrameException):
        driver.switch_to.frame("no-such-frame")


def test_alerts(driver, pages):
    driver.get(pages.url("/alerts.html"))

    driver.find_element(By.ID, "alert").click()
    alert = WebDriverWait(driver, 5).until(EC.alert_is_present())
    assert alert.text == "Hello from alert"
    alert.accept()
    assert driver.find_element(By.ID, "alert-result").text == "alert closed"

    driver.find_element(By.ID, "confirm").click()
    confirm = WebDriverWait(driver, 5).until(EC.alert_is_present())
    assert confirm.text == "Are you sure?"
    confirm.dismiss()
    assert driver.find_element(By.ID, "confirm-result").text == "false"

    driver.find_element(By.ID, "confirm").click()
    WebDriverWait(driver, 5).until(EC.alert_is_present()).accept()
    assert driver.find_element(By.ID, "confirm-result").text == "true"

    driver.find_element(By.ID, "prompt").click()
    prompt = WebDriverWait(driver, 5).until(EC.alert_is_present())
    assert prompt.text == "Your name?"
    prompt.send_keys("Grace")
    prompt.accept()
    assert driver.find_element(By.ID, "prompt-result").text == "Grace"

    driver.find_element(By.ID, "prompt").click()
    WebDriverWait(driver, 5).until(EC.alert_is_present()).dismiss()
    assert driver.find_element(By.ID, "prompt-result").text == "null"


def test_windows_and_tabs(driver, pages):
    driver.get(pages.url("/windows.html"))
    original = driver.current_window_handle
    assert driver.window_handles == [original]

    driver.switch_to.new_window("tab")
    tab = driver.current_window_handle
    assert tab != original
    driver.get(pages.url("/second.html"))
    assert driver.title == "Second Page"

    driver.switch_to.new_window("window")
    window = driver.current_window_handle
    driver.get(pages.url("/form.html"))
    assert driver.title == "Form Page"
    assert set(driver.window_handles) == {original, tab, window}

    driver.switch_to.window(original)
    assert driver.title == "Windows Page"

    # A link with target=_blank opens one more window.
    driver.find_element(By.ID, "open-blank").click()
    wait_for(driver, lambda d: len(d.window_handles) == 4)
    opened = (set(driver.window_handles) - {original, tab, window}).pop()
    driver.switch_to.window(opened)
    wait_for(driver, lambda d: d.title == "Second Page")

    driver.close()
    driver.switch_to.window(tab)
    driver.close()
    driver.switch_to.window(window)
    assert driver.title == "Form Page"
    driver.close()
    assert driver.window_handles == [original]
    driver.switch_to.window(original)
    assert driver.title == "Windows Page"


def test_window_size(driver, pages):
    driver.get(pages.url("/index.html"))
    driver.set_window_size(900, 700)
    size = driver.get_window_size()
    assert (size["width"], size["height"]) == (900, 700)
    driver.set_window_size(640, 480)
    assert driver.get_window_size() == {"width": 640, "height": 480}
    rect = driver.get_window_rect()
    assert rect["width"] == 640 and rect["height"] == 480
    assert driver.execute_script("return window.outerWidth;") == 640


def test_browser_name_chromium_is_accepted(grid, drivers, pages):
    d = grid.remote(browser_name="chromium")
    drivers.append(d)
    d.get(pages.url("/second.html"))
    assert d.title == "Second Page"


def test_sessions_do_not_share_cookies(grid, drivers, pages):
    a = grid.remote()
    drivers.append(a)
    b = grid.remote()
    drivers.append(b)
    assert a.session_id != b.session_id

    a.get(pages.url("/cookies.html"))
    a.add_cookie({"name": "only_a", "value": "1", "path": "/"})
    assert {c["name"] for c in a.get_cookies()} == {"server_cookie", "only_a"}

    b.get(pages.url("/echo-cookies.html"))
    assert b.get_cookies() == []
    assert b.find_element(By.ID, "cookie-header").text == ""

    b.add_cookie({"name": "only_b", "value": "2", "path": "/"})
    a.refresh()
    assert a.get_cookie("only_b") is None
    a.get(pages.url("/echo-cookies.html"))
    header_a = a.find_element(By.ID, "cookie-header").text
    assert "only_a=1" in header_a and "only_b" not in header_a

    b.refresh()
    header_b = b.find_element(By.ID, "cookie-header").text
    assert header_b == "only_b=2"
