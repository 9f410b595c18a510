"""A seeded random fault schedule against the scaled-out grid.

Two hubs, three nodes and a real redis-server, on loopback. The nodes run the
stand-in driver (crates/standin-driver) instead of chromedriver, so sessions
start in milliseconds and no browser runs. Clients loop create -> a few
commands -> quit through both hubs while a schedule drawn from a seed
SIGKILLs and restarts hubs and nodes, restarts Redis empty, and SIGSTOPs a
node until the hubs have declared it lost, then SIGCONTs it.

The seed is printed and can be set with GRIDIRON_CHAOS_SEED. After the faults:
  (a) every client failure overlaps a fault (or the short window after it)
      that touched the hub it used, the node its session ran on, or Redis;
  (b) within RECOVERY_BOUND of the last fault both hubs see every slot free and
      an empty queue (the idle timeout is far longer than that bound, so a
      slot that only comes back by idle timeout fails the test);
  (c) no process is left: no stand-in driver, nothing carrying the run's marker.
"""

import http.client
import os
import random
import signal
import threading
import time

import pytest

from harness import find_standin_binary, http_request, processes_with_env, standin_driver_dir, wait_until

HEARTBEAT_TTL = 2
IDLE_TIMEOUT = 60  # far beyond RECOVERY_BOUND: a slot freed only by idle timeout fails (b)
NODES = 3
SLOTS = 2  # per node
CLIENTS = 4
FAULTS_UNTIL = 36.0  # seconds after the clients start; no fault starts later
SETTLE = 8.0  # clients keep going this long after the last fault
GRACE = 8.0  # a failure this long after a fault ended is still that fault's
RECOVERY_BOUND = 25.0  # capacity back and queue empty this long after the last fault
CREATE_TIMEOUT = 30.0
COMMAND_TIMEOUT = 10.0
QUIT_PATIENCE = 30.0  # how long a client keeps trying to quit a session it holds
MARKER = "GRIDIRON_CHAOS_RUN"

KINDS = ("kill_hub", "kill_node", "restart_redis", "pause_node")


def seed_of_this_run():
    explicit = os.environ.get("GRIDIRON_CHAOS_SEED")
    return int(explicit) if explicit else random.SystemRandom().randrange(1 << 32)


def schedule(rng):
    """(start offset, kind, target index, parameter) of every fault, one at a time.

    The first four are each kind once, in a random order; then kinds are drawn
    at random. `parameter` is how long a killed process stays down, or how long
    a paused node stays stopped after the hubs declared it lost.
    """
    kinds = list(KINDS)
    rng.shuffle(kinds)
    plan = []
    t = rng.uniform(1.0, 3.0)
    while t < FAULTS_UNTIL:
        kind = kinds[len(plan)] if len(plan) < len(kinds) else rng.choice(KINDS)
        target = rng.randrange(2) if kind == "kill_hub" else rng.randrange(NODES)
        if kind == "restart_redis":
            target = None
        plan.append((t, kind, target, rng.uniform(0.0, 2.0)))
        # Expected length of the fault plus a random gap: faults do not overlap
        # (the next one waits for the previous one's end anyway).
        t += {"kill_hub": 1.5, "kill_node": 2.5, "restart_redis": 1.0, "pause_node": HEARTBEAT_TTL + 4}[kind]
        t += rng.uniform(0.5, 4.0)
    return plan


class Fault:
    def __init__(self, kind, target, start):
        self.kind = kind
        self.target = target  # hub or node index; None for Redis
        self.start = start
        self.end = None

    def touches(self, failure):
        if self.kind == "restart_redis":
            return True
        if self.kind == "kill_hub":
            return failure.hub == self.target
        # A node fault: the session's node, or any request not yet bound to a node.
        return failure.node is None or failure.node == self.target

    def explains(self, failure):
        return self.touches(failure) and failure.t0 <= self.end + GRACE and failure.t1 >= self.start

    def __repr__(self):
        return f"<{self.kind} {self.target} {self.start:.1f}s..{self.end:.1f}s>"


class Failure:
    def __init__(self, client, op, hub, sid, node, t0, t1, error):
        self.client, self.op, self.hub, self.sid, self.node = client, op, hub, sid, node
        self.t0, self.t1, self.error = t0, t1, error

    def __repr__(self):
        return (f"<client {self.client} {self.op} via hub {self.hub} session {self.sid} node {self.node} "
                f"{self.t0:.1f}s..{self.t1:.1f}s: {self.error}>")


class Run:
    """The clients' shared record: failures, completed iterations, and the clock."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.epoch = time.monotonic()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.failures = []
        self.completed = []  # (client, start, end) of every full create..quit iteration
        self.gone = {}  # session id -> (time, body) of the 404 that ended a client's quit

    def now(self):
        return time.monotonic() - self.epoch

    def node_index(self, sid):
        """Which node runs `sid` (it holds the session's directory); None when none does."""
        for i, n in enumerate(self.cluster.nodes):
            if os.path.isdir(os.path.join(n.sessions_dir, sid)):
                return i
        return None

    def call(self, client, op, hub, sid, node, method, path, body=None, timeout=COMMAND_TIMEOUT, ok=(200,)):
        """One request; a failure is recorded (with its interval) and returned as None."""
        port = self.cluster.hubs[hub].port
        t0 = self.now()
        try:
            resp = http_request(port, method, path, body=body, timeout=timeout)
            if resp.status in ok:
                return resp
            error = f"HTTP {resp.status} {resp.body[:200]!r}"
        except (OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        self.record(Failure(client, op, hub, sid, node, t0, self.now(), error))
        return None

    def record(self, failure):
        with self.lock:
            self.failures.append(failure)

    def client(self, c, seed):
        rng = random.Random(seed * 1000 + c)
        while not self.stop.is_set():
            start = self.now()
            hub = rng.randrange(2)
            caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome"}, "firstMatch": [{}]}}
            resp = self.call(c, "create", hub, None, None, "POST", "/session", caps, timeout=CREATE_TIMEOUT)
            if resp is None:
                self.stop.wait(0.2)  # a failed create is recorded; do not spin against a dead hub
                continue
            sid = resp.value["sessionId"]
            node = self.node_index(sid)
            done = True
            for k in range(rng.randint(1, 4)):
                via = rng.randrange(2)
                if k % 2 == 0:
                    r = self.call(c, "navigate", via, sid, node, "POST", f"/session/{sid}/url", {"url": f"about:blank#{k}"})
                else:
                    r = self.call(c, "title", via, sid, node, "GET", f"/session/{sid}/title")
                if r is None:
                    done = False
                    break
            # Quit like a client's `finally: driver.quit()`: through either hub until the
            # grid says the session is gone: 200, or 404 after an earlier failure of this
            # session (a fault ended it); a 404 out of the blue is a failure of its own.
            deadline = time.monotonic() + QUIT_PATIENCE
            while True:
                via = rng.randrange(2)
                t0 = self.now()
                r = self.call(c, "quit", via, sid, node, "DELETE", f"/session/{sid}", ok=(200, 404))
                if r is not None:
                    if r.status == 404:
                        with self.lock:
                            self.gone[sid] = (self.now(), r.body[:300])
                    if r.status == 404 and done:
                        self.record(Failure(c, "quit", via, sid, node, t0, self.now(), f"already ended: {r.body[:200]!r}"))
                    done = done and r.status == 200
                    break
                done = False
                if time.monotonic() > deadline:
                    self.record(Failure(c, "quit-gave-up", via, sid, node, start, self.now(), "session never quit"))
                    break
                time.sleep(0.2)  # between attempts to reach a hub that is down
            if done:
                with self.lock:
                    self.completed.append((c, start, self.now()))


def hub_view(hub):
    s = hub.status()
    up = [n for n in s["nodes"] if n["availability"] == "UP"]
    return {"maxSessions": s["maxSessions"], "freeSlots": s["freeSlots"], "queue": s["queue"], "up": len(up)}


def leftovers(cluster, marker_entry):
    """Processes of the run that are not the cluster's own hubs, nodes and Redis."""
    running = [g for g in cluster.hubs + cluster.nodes if g.running()]
    own = {g.proc.pid for g in running} | {cluster.redis.proc.pid}
    # A running node's watchdog (`gridiron watchdog DATA_DIR`) is part of the node.
    own |= {p.pid for p in processes_with_env(marker_entry)
            if "watchdog" in p.cmd_text and any(g.data_dir in p.cmd_text for g in running)}
    found = {p.pid: p for p in processes_with_env(marker_entry) if p.pid not in own}
    for n in cluster.nodes:
        found.update({p.pid: p for p in n.processes() if p.pid not in own})
    return sorted(found.values(), key=lambda p: p.pid)


@pytest.mark.deadline(150)
def test_random_faults_leave_no_failure_unexplained_and_no_slot_or_process_behind(make_cluster, tmp_path):
    standin = find_standin_binary()
    if standin is None:
        pytest.fail("gridiron-standin-driver not found: build it (cargo build -p gridiron-standin-driver) "
                    "or set GRIDIRON_STANDIN_BIN", pytrace=False)
    seed = seed_of_this_run()
    print(f"chaos seed {seed} (rerun with GRIDIRON_CHAOS_SEED={seed})")
    plan = schedule(random.Random(seed))
    print("fault plan: " + ", ".join(f"{t:.1f}s {k} {x}" for t, k, x, _ in plan))

    workdir = str(tmp_path)
    home = os.path.join(workdir, "home")
    os.makedirs(home)
    marker = f"{MARKER}={workdir}"
    # Only the stand-in is found: its directory comes first on PATH, and with HOME
    # elsewhere no per-user driver (e.g. ~/.cargo/bin/geckodriver) is found.
    env = {"PATH": f"{standin_driver_dir(workdir, standin)}:/usr/bin:/bin", "HOME": home, MARKER: workdir}
    c = make_cluster(heartbeat_ttl=HEARTBEAT_TTL, env=env)
    for _ in range(NODES):
        c.node(max_sessions=SLOTS, idle_timeout=IDLE_TIMEOUT, no_prewarm=True)
    for _ in range(2):
        c.hub(queue_timeout=20)
    for h in c.hubs:
        status = c.capacity(h, NODES * SLOTS)
    offered = {(s["browserName"], s["browserVersion"]) for n in status["nodes"] for s in n["stereotypes"]}
    assert offered == {("chrome", "999.0.0.0")}, f"nodes offer {offered}, not only the stand-in driver"

    run = Run(c)
    context = f"seed {seed}"
    clients = [threading.Thread(target=run.client, args=(i, seed), daemon=True) for i in range(CLIENTS)]
    for t in clients:
        t.start()
    faults = []
    try:
        for offset, kind, target, extra in plan:
            delay = offset - run.now()
            if delay > 0:
                time.sleep(delay)  # the schedule itself, not a wait for a condition
            fault = Fault(kind, target, run.now())
            faults.append(fault)
            if kind == "kill_hub":
                hub = c.hubs[target]
                hub.kill_hard()
                time.sleep(extra)
                hub.start()
            elif kind == "kill_node":
                node = c.nodes[target]
                node.kill_hard()
                time.sleep(extra)
                node.start()
            elif kind == "restart_redis":
                c.redis.restart()
            else:
                node = c.nodes[target]
                os.kill(node.proc.pid, signal.SIGSTOP)
                try:
                    wait_until(
                        lambda: all(not any(n["uri"] == node.url and n["availability"] == "UP" for n in h.status()["nodes"]) for h in c.hubs),
                        HEARTBEAT_TTL + 8,
                        what=f"hubs to declare paused node {target} lost ({context})",
                    )
                    time.sleep(extra)
                finally:
                    os.kill(node.proc.pid, signal.SIGCONT)
            fault.end = run.now()
        last_fault = run.now()
        time.sleep(SETTLE)  # clients work on after the faults; what they do is checked below
    finally:
        run.stop.set()
        for t in clients:
            t.join(CREATE_TIMEOUT + QUIT_PATIENCE + 5)
    assert not any(t.is_alive() for t in clients), f"clients still running ({context})"
    fault_log = "\n  ".join(map(repr, faults))
    print(f"faults:\n  {fault_log}")
    print(f"{len(run.completed)} iterations completed, {len(run.failures)} failed requests")

    # (a) Every failure is explained by a fault.
    unexplained = [f for f in run.failures if not any(x.explains(f) for x in faults)]
    assert not unexplained, (
        f"{len(unexplained)} client failures not explained by a fault ({context}):\n  "
        + "\n  ".join(map(repr, unexplained[:20])) + f"\nfaults:\n  {fault_log}"
    )
    # The grid served clients throughout, and every client after the last fault's window.
    assert len(run.completed) >= 20, f"only {len(run.completed)} iterations completed ({context})"
    late = {client for client, start, _ in run.completed if start > last_fault + GRACE / 2}
    assert late == set(range(CLIENTS)), f"clients without a clean iteration after the faults: {set(range(CLIENTS)) - late} ({context})"

    # (b) All capacity back and no request waiting, within the bound.
    want = {"maxSessions": NODES * SLOTS, "freeSlots": NODES * SLOTS, "queue": 0, "up": NODES}
    bound = max(1.0, last_fault + RECOVERY_BOUND - run.now())
    views = {}

    def recovered():
        views.update({i: hub_view(h) for i, h in enumerate(c.hubs)})
        return all(v == want for v in views.values()) and c.redis.queue_len() == 0

    try:
        wait_until(recovered, bound, what="every slot free and the queue empty on both hubs")
    except AssertionError as e:
        busy = {i: [(p.pid, p.session) for p in n.processes()] for i, n in enumerate(c.nodes)}
        seen = [
            f"{sid} on node {i}: failures {[f for f in run.failures if f.sid == sid]}, quit answered 404 {run.gone.get(sid)}"
            for i, procs in busy.items()
            for _, sid in procs
        ]
        raise AssertionError(
            f"{e} ({context}); hubs see {views}, want {want}; session processes by node: {busy}\n"
            + "what clients saw of them:\n  " + "\n  ".join(seen) + f"\nfaults:\n  {fault_log}"
        ) from None

    # (c) No process left behind: with no session running, nothing but the cluster itself.
    try:
        wait_until(lambda: not leftovers(c, marker), 5, what="no stand-in driver or other stray process")
    except AssertionError:
        raise AssertionError(f"processes left behind ({context}): {leftovers(c, marker)}") from None
    c.stop()
    assert not processes_with_env(marker), f"processes of the run alive after the cluster stopped ({context})"
