"""Artifact storage with real Chromium through the real binary.

Until the grid's own producers (video, logs, downloads) write artifacts, the
tests create them the way a producer does: as files in a running session's
outbox (`<data_dir>/sessions/<id>/artifacts/`), which the grid collects into
its storage when the session ends.
"""

import os

import pytest

from harness import artifact_path, fetch_artifact, list_artifacts


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


@pytest.mark.deadline(120)
def test_a_sessions_outbox_outlives_it_through_the_api(make_grid, drivers, pages):
    grid = make_grid(max_sessions=1)
    driver = grid.remote()
    drivers.append(driver)
    driver.get(pages.url("/"))
    sid = driver.session_id
    video = os.urandom(300_000)
    outbox = grid.outbox(sid)
    write(os.path.join(outbox, "video.mp4"), video)
    write(os.path.join(outbox, "downloads", "report.csv"), b"a,b\n1,2\n")
    # While it runs, nothing is collected and the list says so.
    running = grid.request("GET", artifact_path(sid))
    assert running.status == 200, running
    assert running.json() == {"sessionId": sid, "artifacts": [], "complete": False}

    driver.quit()
    listed = list_artifacts(grid.url, sid)
    by_name = {a["name"]: a for a in listed}
    assert sorted(by_name) == ["downloads/report.csv", "video.mp4"]
    assert by_name["video.mp4"]["size"] == len(video)
    assert by_name["video.mp4"]["contentType"] == "video/mp4"
    assert by_name["video.mp4"]["state"] == "ready"
    assert by_name["downloads/report.csv"]["contentType"].startswith("text/csv")
    assert fetch_artifact(grid.url, sid, "video.mp4") == video
    assert fetch_artifact(grid.url, sid, "downloads/report.csv") == b"a,b\n1,2\n"
    part = grid.request("GET", artifact_path(sid, "video.mp4"), headers={"Range": "bytes=100-199"})
    assert part.status == 206 and part.body == video[100:200], part
    assert part.headers["content-range"] == f"bytes 100-199/{len(video)}"
    # The session's own directory is gone; its artifacts are in storage.
    assert sid not in grid.session_dirs()
    assert os.path.isfile(os.path.join(grid.data_dir, "artifacts", sid, "video.mp4"))
