"""Bad input over raw HTTP gets W3C errors with the right status and code."""

import json
import time

import pytest

from harness import chrome_caps, http_request

GRID_OPTIONS = {"max_sessions": 1, "queue_timeout": 60}


def assert_w3c_error(resp, status, error):
    assert resp.status == status, resp
    assert resp.content_type.split(";")[0].strip() == "application/json", resp
    body = resp.json()
    assert set(body) == {"value"}, body
    value = body["value"]
    assert value["error"] == error, value
    assert isinstance(value["message"], str), value
    assert "stacktrace" in value and isinstance(value["stacktrace"], str), value
    return value


@pytest.mark.parametrize(
    "body",
    [
        b'{"capabilities": ',
        b"not json at all",
        b"",
        b'{"capabilities": {"alwaysMatch": {"browserName": "chrome"}}',
    ],
    ids=["truncated", "garbage", "empty", "unbalanced"],
)
def test_malformed_json_is_invalid_argument(grid, body):
    resp = grid.request("POST", "/session", body=body)
    assert_w3c_error(resp, 400, "invalid argument")


@pytest.mark.parametrize(
    "payload",
    [
        {},
        [],
        "capabilities",
        {"capabilities": 5},
        {"capabilities": "chrome"},
        {"capabilities": []},
        {"capabilities": {"alwaysMatch": 5}},
        {"capabilities": {"firstMatch": {}}},
        {"capabilities": {"firstMatch": [5]}},
        {"capabilities": {"alwaysMatch": {"browserName": 5}}},
    ],
    ids=[
        "empty-object",
        "array",
        "string",
        "caps-number",
        "caps-string",
        "caps-array",
        "alwaysmatch-number",
        "firstmatch-object",
        "firstmatch-entry-number",
        "browsername-number",
    ],
)
def test_bad_capabilities_are_invalid_argument(grid, payload):
    resp = grid.request("POST", "/session", body=json.dumps(payload))
    assert_w3c_error(resp, 400, "invalid argument")
    assert grid.status()["sessions"] == 0


def test_impossible_capabilities_fail_at_once(grid):
    started = time.monotonic()
    resp = grid.request("POST", "/session", body=chrome_caps(browser_name="netscape"), timeout=30)
    elapsed = time.monotonic() - started
    assert_w3c_error(resp, 500, "session not created")
    assert elapsed < 2.0, f"took {elapsed:.2f}s (queue timeout is 60s)"


def test_impossible_capabilities_fail_at_once_while_grid_is_full(grid):
    held = grid.new_session_raw()
    try:
        for caps in (
            chrome_caps(browser_name="netscape"),
            {"capabilities": {"firstMatch": [{"browserName": "netscape"}, {"browserName": "mosaic"}]}},
        ):
            started = time.monotonic()
            resp = grid.request("POST", "/session", body=caps, timeout=30)
            elapsed = time.monotonic() - started
            assert_w3c_error(resp, 500, "session not created")
            assert elapsed < 2.0, f"took {elapsed:.2f}s while the only slot was busy"
        assert grid.status()["queue"] == 0
    finally:
        grid.delete_session_raw(held)


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/session/deadbeef/title"),
        ("POST", "/session/deadbeef/url"),
        ("DELETE", "/session/deadbeef/window"),
        ("GET", "/wd/hub/session/deadbeef/title"),
    ],
)
def test_unknown_session_is_invalid_session_id(grid, method, path):
    body = {"url": "about:blank"} if method == "POST" else None
    resp = grid.request(method, path, body=body)
    assert_w3c_error(resp, 404, "invalid session id")


def test_commands_after_quit_are_invalid_session_id(grid):
    session_id = grid.new_session_raw()
    resp = grid.request("GET", f"/session/{session_id}/title")
    assert resp.status == 200, resp
    # An unknown command on a live session.
    resp = grid.request("GET", f"/session/{session_id}/no-such-command")
    assert_w3c_error(resp, 404, "unknown command")

    resp = grid.delete_session_raw(session_id)
    assert resp.status == 200, resp
    assert resp.value is None

    resp = grid.request("GET", f"/session/{session_id}/title")
    assert_w3c_error(resp, 404, "invalid session id")
    resp = grid.request("POST", f"/session/{session_id}/url", body={"url": "about:blank"})
    assert_w3c_error(resp, 404, "invalid session id")
    # Quitting twice is harmless, as with chromedriver itself (the second quit of a
    # session that ended answers success), but a session never seen is unknown.
    resp = grid.delete_session_raw(session_id)
    assert resp.status == 200, resp
    assert resp.value is None
    resp = grid.delete_session_raw("0123456789abcdef0123456789abcdef")
    assert_w3c_error(resp, 404, "invalid session id")
    grid.wait_ended(session_id, reason="quit")


@pytest.mark.parametrize("path", ["/nope", "/wd/hub/nope", "/nope/deeper/still"])
def test_unknown_route_is_unknown_command(grid, path):
    resp = grid.request("GET", path)
    assert_w3c_error(resp, 404, "unknown command")


@pytest.mark.parametrize(
    "method,path",
    [("PUT", "/session"), ("GET", "/session"), ("DELETE", "/status"), ("PUT", "/wd/hub/session")],
)
def test_wrong_method_is_unknown_method(grid, method, path):
    resp = grid.request(method, path, body=b"{}" if method == "PUT" else None)
    assert_w3c_error(resp, 405, "unknown method")


def test_grid_still_serves_sessions_after_bad_input(grid, pages):
    session_id = grid.new_session_raw()
    try:
        resp = grid.request("POST", f"/session/{session_id}/url", body={"url": pages.url("/index.html")})
        assert resp.status == 200, resp
        resp = grid.request("GET", f"/session/{session_id}/title")
        assert resp.value == "Gridiron Index"
        # Bad arguments to a proxied command come back as W3C errors too.
        resp = grid.request("POST", f"/session/{session_id}/url", body=b"{not json")
        assert 400 <= resp.status < 500, resp
        assert resp.content_type.split(";")[0].strip() == "application/json", resp
        assert resp.value["error"] == "invalid argument", resp
    finally:
        assert grid.delete_session_raw(session_id).status == 200


def test_body_over_limit_is_rejected_and_grid_stays_healthy(make_grid):
    g = make_grid(max_sessions=1, max_body_bytes=1024)
    caps = chrome_caps()
    caps["capabilities"]["alwaysMatch"]["gridiron:options"] = {"name": "x" * 4096}
    body = json.dumps(caps).encode()
    assert len(body) > 4096
    resp = http_request(g.port, "POST", "/session", body=body, timeout=10)
    assert 400 <= resp.status < 500, resp
    value = assert_w3c_error(resp, resp.status, "invalid argument")
    assert value["message"]

    status = g.request("GET", "/status", timeout=5)
    assert status.status == 200, status
    assert status.value["ready"] is True
    assert status.value["sessions"] == 0 and status.value["queue"] == 0
    # A small request is still accepted as far as body handling goes.
    resp = g.request("POST", "/session", body=b"{}")
    assert_w3c_error(resp, 400, "invalid argument")
