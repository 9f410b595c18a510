"""Realtime events with real Chromium: `GET /api/v1/events` (Server-Sent
Events) and `/api/v1/events/ws` see the exact lifecycle of a scripted
scenario, resume after a disconnection without loss or repetition (from any
hub of a scaled-out grid), and show users their own sessions only.
"""

import json

import pytest
import websocket

from harness import EventStream, chrome_caps, event_socket, in_background, socket_events, wait_until
from test_keys import bearer, make_keys

# The lifecycle of requests and sessions, without activity samples.
LIFECYCLE = "type=request.queued,request.cancelled,session.started,session.ended"


def summary(event):
    """(type, session, end reason) of an event from either transport."""
    data = event.get("data", event)
    return (data["type"], data.get("session"), data["fields"].get("reason"))


def run_scenario(grid, stream):
    """Session A; request B queued behind it (one slot); A quits; B starts
    and quits. Returns (A, B) session ids. Reads `stream` to know B waits."""
    a = grid.remote()
    t, box = in_background(lambda: grid.remote())
    queued = wait_until(lambda: [e for e in [stream.next()] if e["event"] == "request.queued"], 60, what="request B queued")
    assert queued, queued
    a_id = a.session_id
    a.quit()
    t.join(90)
    assert "result" in box, box
    b = box["result"]
    b_id = b.session_id
    b.quit()
    return a_id, b_id


def check_sequence(events, expected):
    assert [summary(e) for e in events] == expected, [summary(e) for e in events]
    ids = [e["id"] if "id" in e else e["data"]["id"] for e in events]
    assert len(set(ids)) == len(ids), ids


@pytest.mark.deadline(180)
def test_standalone_feeds_see_the_exact_lifecycle_and_resume_without_loss(make_grid):
    g = make_grid(max_sessions=1, queue_timeout=90)
    sse = EventStream(g.port, LIFECYCLE)
    assert sse.status == 200 and sse.content_type.startswith("text/event-stream")
    ws = event_socket(g.port, LIFECYCLE)
    # The SSE client reads its first events while the scenario runs.
    first = []
    orig_next = sse.next

    def recording_next():
        e = orig_next()
        first.append(e)
        return e

    sse.next = recording_next
    a, b = run_scenario(g, sse)
    sse.next = orig_next
    assert [summary(e) for e in first] == [("session.started", a, None), ("request.queued", None, None)]
    expected = [
        ("session.started", a, None),
        ("request.queued", None, None),
        ("session.ended", a, "quit"),
        ("session.started", b, None),
        ("session.ended", b, "quit"),
    ]
    # Disconnect, and resume after the last event read.
    sse.close()
    resumed = EventStream(g.port, LIFECYCLE, last_event_id=first[-1]["id"])
    rest = resumed.take(3)
    resumed.close()
    check_sequence(first + rest, expected)
    # Each SSE event carries its id and type; the data is the whole event.
    for e in first + rest:
        assert e["data"]["id"] == e["id"] and e["data"]["type"] == e["event"]
        assert isinstance(e["data"]["at"], int)
    assert first[1]["data"]["fields"]["position"] == "1"
    # B's start names the request that waited for it.
    assert rest[1]["data"]["fields"]["request"] == first[1]["data"]["fields"]["request"]
    assert first[0]["data"]["node"] == "local"

    # The WebSocket saw the same events, with the same ids; it resumes too.
    got = socket_events(ws, 2)
    ws.close()
    ws = event_socket(g.port, LIFECYCLE + f"&last_event_id={got[-1]['id']}")
    got += socket_events(ws, 3)
    ws.close()
    check_sequence(got, expected)
    assert [e["id"] for e in got] == [e["id"] for e in first + rest]

    # Events are kept in the grid's store: after a restart, a client resumes
    # from where it was and still gets what happened before.
    g.stop()
    g.start()
    again = EventStream(g.port, LIFECYCLE, last_event_id=first[-1]["id"])
    check_sequence(again.take(3), expected[2:])
    again.close()


@pytest.mark.deadline(240)
def test_two_hubs_serve_one_feed_and_a_client_resumes_on_the_other_hub(make_cluster):
    c = make_cluster()
    c.node(max_sessions=1)
    h0 = c.hub()
    h1 = c.hub()
    c.capacity(h0, 1)
    sse = EventStream(h0.port, LIFECYCLE)
    ws = event_socket(h1.port, LIFECYCLE)
    seen = []
    orig_next = sse.next

    def recording_next():
        e = orig_next()
        seen.append(e)
        return e

    sse.next = recording_next
    a_driver = h0.remote()
    a = a_driver.session_id
    # In a scaled-out grid every request waits in the shared queue first.
    assert [summary(e) for e in sse.take(2)] == [("request.queued", None, None), ("session.started", a, None)]
    t, box = in_background(lambda: h1.remote())
    wait_until(lambda: [e for e in [sse.next()] if e["event"] == "request.queued"], 60, what="request B queued")
    a_driver.quit()
    t.join(120)
    assert "result" in box, box
    b = box["result"].session_id
    box["result"].quit()
    sse.next = orig_next
    sse.close()
    expected = [
        ("request.queued", None, None),
        ("session.started", a, None),
        ("request.queued", None, None),
        ("session.ended", a, "quit"),
        ("session.started", b, None),
        ("session.ended", b, "quit"),
    ]
    assert len(seen) == 3, [summary(e) for e in seen]
    # The rest from the other hub, after the last id the first one gave.
    resumed = EventStream(h1.port, LIFECYCLE, last_event_id=seen[-1]["id"])
    rest = resumed.take(3)
    resumed.close()
    check_sequence(seen + rest, expected)
    assert rest[0]["data"]["node"] == c.nodes[0].node_id()
    # Each start names the request that waited in the shared queue for it.
    assert seen[1]["data"]["fields"]["request"] == seen[0]["data"]["fields"]["request"]
    assert rest[1]["data"]["fields"]["request"] == seen[2]["data"]["fields"]["request"]

    got = socket_events(ws, 4)
    ws.close()
    ws = event_socket(h0.port, LIFECYCLE + f"&last_event_id={got[-1]['id']}")
    got += socket_events(ws, 2)
    ws.close()
    check_sequence(got, expected)
    assert [e["id"] for e in got] == [e["id"] for e in seen + rest]


@pytest.mark.deadline(180)
def test_users_see_their_own_sessions_events_and_admins_see_all(make_grid, grid_binary):
    g = make_grid(max_sessions=2)
    alice, bob, root = make_keys(grid_binary, g, "alice", "bob").values()

    anonymous = EventStream(g.port)
    assert anonymous.status == 401 and anonymous.content_type == "application/problem+json"
    anonymous.close()

    streams = {name: EventStream(g.port, LIFECYCLE, headers=bearer(tok)) for name, tok in [("alice", alice), ("bob", bob), ("root", root)]}
    assert all(s.status == 200 for s in streams.values())
    ids = {}
    for name, tok in [("alice", alice), ("bob", bob)]:
        resp = g.request("POST", "/session", body=chrome_caps(), headers=bearer(tok), timeout=90)
        assert resp.status == 200, resp
        ids[name] = resp.value["sessionId"]
        assert g.request("DELETE", f"/session/{ids[name]}", headers=bearer(tok)).status == 200
    for name in ("alice", "bob"):
        got = streams[name].take(2)
        assert [summary(e) for e in got] == [("session.started", ids[name], None), ("session.ended", ids[name], "quit")]
        assert all(e["data"]["owner"] == name for e in got)
    admin = streams["root"].take(4)
    assert {e["data"]["session"] for e in admin} == set(ids.values())
    # Alice's stream has nothing of Bob's: her next event is her own, later one.
    resp = g.request("POST", "/session", body=chrome_caps(), headers=bearer(alice), timeout=90)
    assert resp.status == 200, resp
    assert summary(streams["alice"].next())[1] == resp.value["sessionId"]
    assert g.request("DELETE", f"/session/{resp.value['sessionId']}", headers=bearer(alice)).status == 200
    for s in streams.values():
        s.close()

    # The WebSocket takes the key as ?token= (browsers cannot set headers on it).
    ws = event_socket(g.port, f"{LIFECYCLE}&last_event_id=0&token={bob}")
    got = socket_events(ws, 2)
    ws.close()
    assert [summary(e) for e in got] == [("session.started", ids["bob"], None), ("session.ended", ids["bob"], "quit")]
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        event_socket(g.port, LIFECYCLE)
    assert refused.value.status_code == 401


def test_bad_filters_and_resume_ids_get_a_problem(grid):
    for query, needle in [("type=session.begun", "unknown event type"), ("last_event_id=yesterday", "not an event id")]:
        s = EventStream(grid.port, query)
        assert s.status == 400, query
        assert s.content_type == "application/problem+json"
        body = json.loads(s.resp.read())
        assert body["status"] == 400 and needle in body["detail"], body
        s.close()
    s = EventStream(grid.port, last_event_id="not-an-id")
    assert s.status == 400
    s.close()
