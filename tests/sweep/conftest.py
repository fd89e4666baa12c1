"""A real two-node Ray cluster on 127.0.0.1 for the sweep tests (skipped without Ray).

Both nodes are separate ``ray start`` processes trees, each with one CPU, its own temp
folder and its own ports, dashboard and usage reporting off::

    def test_x(ray_cluster):
        ray_cluster.address            # "127.0.0.1:PORT", for backprop.sweep.run(address=...)
        ray_cluster.alive_nodes()      # node ids alive now (asked of the GCS by a short driver)
        ray_cluster.kill_worker()      # SIGKILL the worker node's raylet

Every process of the cluster is found by its command line, which names the cluster's own
temp folder (a unique folder under /tmp); teardown stops exactly those processes by PID
and asserts none is left.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

START_TIMEOUT_S = 120      # a loaded 2-core machine can take a minute to bring a node up
STOP_TIMEOUT_S = 30

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray >= 2.5x turns token auth on by itself once ~/.ray/auth_token exists (an embedded
    # ray.init() writes one); the test cluster lives on 127.0.0.1 only and uses none.
    "RAY_AUTH_MODE": "disabled",
    # A dead node is noticed within seconds instead of ~30 (the fault tests kill one): a
    # killed node refuses the check at once, so 5 failed checks a second apart suffice.
    # Each check may take 5 s to answer, so a live node stalled by a loaded 2-core CI
    # machine is not declared dead (1 s x 3 could be).
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "5000",
    "RAY_health_check_failure_threshold": "5",
    "RAY_DEDUP_LOGS": "0",
}


def ray_env(**extra) -> dict:
    """This process's environment plus the cluster's settings (for subprocesses)."""
    env = dict(os.environ)
    env.update(RAY_ENV)
    env.update(extra)
    return env


def ray_cli() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


_TAKEN: set = set()


def free_port() -> int:
    """A port free now and not handed out before by this process (the OS may repeat one)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


def free_port_range(n: int = 40) -> tuple:
    """``n`` consecutive ports that are free now (the workers of one node)."""
    import random
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 30000 - n)
        if _TAKEN & set(range(base, base + n)):
            continue
        socks = []
        try:
            for p in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            _TAKEN.update(range(base, base + n))
            return base, base + n - 1
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range for the Ray workers")


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def processes_mentioning(text: str) -> dict:
    """{pid: command line} of the live processes whose command line contains ``text``."""
    found = {}
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        cmd = _cmdline(int(name))
        if text in cmd and _alive(int(name)):
            found[int(name)] = cmd
    return found


def processes_with_env(entry: str) -> dict:
    """{pid: command line} of the live processes started with ``entry`` ("NAME=value") in
    their environment. Ray's agents rename themselves (``ray::DashboardAgent``), so their
    command lines do not name the cluster; the environment they inherit does."""
    found = {}
    me = os.getpid()
    needle = entry.encode() + b"\0"
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read() + b"\0"
        except OSError:
            continue
        if (env.startswith(needle) or b"\0" + needle in env) and _alive(int(name)):
            found[int(name)] = _cmdline(int(name))
    return found


def wait_for(predicate, timeout: float, what: str, interval: float = 0.25):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


_NODES_SCRIPT = r"""
import json, sys, time, ray
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
while True:
    alive = {n["NodeID"]: n["NodeManagerPort"] for n in ray.nodes() if n["Alive"]}
    if (want < 0 or len(alive) == want) or time.monotonic() > deadline:
        break
    time.sleep(0.2)
print("NODES " + json.dumps(alive))
"""

_ACTORS_SCRIPT = r"""
import json, sys, ray
from ray._private import state
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
out = []
for a in state.actors().values():
    out.append({"class": a.get("ActorClassName"), "node": (a.get("Address") or {}).get("NodeID"),
                "state": a.get("State")})
print("ACTORS " + json.dumps(out))
"""


# Set in the environment of the cluster's `ray start` commands only, so every process of the
# cluster (and only those) carries it: how stop() finds them all by PID.
CLUSTER_MARK = "BACKPROP_TEST_RAY_CLUSTER"


class Cluster:
    """A head node and one worker node, started by ``ray start`` (see the module docstring)."""

    def __init__(self):
        # Short: Ray puts unix sockets under it (a socket path must stay under 108 bytes).
        self.root = tempfile.mkdtemp(prefix="bpray-")
        self.head_tmp = os.path.join(self.root, "h")
        self.worker_tmp = os.path.join(self.root, "w")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{self.client_port}"   # its Ray Client server
        self.worker_node_port = None
        self.log = []

    # -- starting -------------------------------------------------------------------------
    def _node_ports(self) -> list:
        lo, hi = free_port_range()
        node_port = free_port()
        return node_port, ["--node-manager-port", str(node_port),
                           "--object-manager-port", str(free_port()),
                           "--metrics-export-port", str(free_port()),
                           "--dashboard-agent-listen-port", str(free_port()),
                           "--dashboard-agent-grpc-port", str(free_port()),
                           "--runtime-env-agent-port", str(free_port()),
                           "--min-worker-port", str(lo), "--max-worker-port", str(hi)]

    def _ray_start(self, args: list) -> None:
        cmd = [ray_cli(), "start", "--num-cpus", "1", "--object-store-memory", "100000000",
               "--disable-usage-stats", "--log-style", "record", *args]
        proc = subprocess.run(cmd, env=ray_env(**{CLUSTER_MARK: self.root}), capture_output=True,
                              text=True, timeout=START_TIMEOUT_S)
        self.log.append(" ".join(cmd) + "\n" + proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed ({proc.returncode}):\n{proc.stdout}\n"
                               f"{proc.stderr}")

    def start(self) -> None:
        os.makedirs(self.head_tmp)
        os.makedirs(self.worker_tmp)
        _, ports = self._node_ports()
        self._ray_start(["--head", "--node-ip-address", "127.0.0.1", "--port", str(self.port),
                         "--include-dashboard=false", "--temp-dir", self.head_tmp,
                         "--ray-client-server-port", str(self.client_port), *ports])
        self.start_worker()
        nodes = self.alive_nodes(want=2, timeout=START_TIMEOUT_S)
        if len(nodes) != 2:
            raise RuntimeError(f"the cluster has {len(nodes)} alive nodes, expected 2")

    def start_worker(self) -> None:
        self.worker_node_port, ports = self._node_ports()
        self._ray_start(["--address", self.address, "--node-ip-address", "127.0.0.1",
                         "--temp-dir", self.worker_tmp, *ports])

    # -- looking ---------------------------------------------------------------------------
    def _driver(self, script: str, *args, timeout: float = START_TIMEOUT_S + 60) -> str:
        proc = subprocess.run([sys.executable, "-c", script, self.address, *map(str, args)],
                              env=ray_env(), capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"a Ray driver failed:\n{proc.stderr[-3000:]}")
        return proc.stdout

    def alive_nodes(self, want: int = -1, timeout: float = 0) -> dict:
        """{node id: node manager port} of the nodes alive now; with ``want``, waits (up to
        ``timeout``) until that many are."""
        out = self._driver(_NODES_SCRIPT, want, timeout)
        line = [ln for ln in out.splitlines() if ln.startswith("NODES ")][-1]
        return json.loads(line[6:])

    def worker_node_id(self) -> str:
        """Ray's id of the worker node (the one started with its own node manager port)."""
        ids = [i for i, port in self.alive_nodes().items() if port == self.worker_node_port]
        if len(ids) != 1:
            raise RuntimeError("the worker node is not alive")
        return ids[0]

    def actors(self) -> list:
        """Every actor the GCS knows (alive or dead): ``{"class", "node", "state"}``."""
        out = self._driver(_ACTORS_SCRIPT)
        line = [ln for ln in out.splitlines() if ln.startswith("ACTORS ")][-1]
        return json.loads(line[7:])

    def processes(self) -> dict:
        """{pid: command line} of every live process of this cluster: those whose command line
        names its folder, and those that inherited its mark (the agents)."""
        found = processes_mentioning(self.root)
        found.update(processes_with_env(f"{CLUSTER_MARK}={self.root}"))
        return found

    def raylet_pid(self, node_manager_port: int) -> int:
        for pid, cmd in self.processes().items():
            if "raylet" in cmd.split(" ")[0] and f"--node_manager_port={node_manager_port}" in cmd:
                return pid
        raise RuntimeError(f"no raylet with node manager port {node_manager_port}")

    # -- stopping --------------------------------------------------------------------------
    def kill_worker(self) -> int:
        """SIGKILL the worker node's raylet (its workers and agents die with it)."""
        pid = self.raylet_pid(self.worker_node_port)
        os.kill(pid, signal.SIGKILL)
        return pid

    def stop(self) -> None:
        """Stop every process of the cluster by PID: SIGTERM, then SIGKILL what is left."""
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, STOP_TIMEOUT_S)):
            for pid in self.processes():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + grace
            while self.processes() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self.processes():
                return


@pytest.fixture(scope="module")
def ray_cluster():
    """A started two-node cluster for the module; stopped, and checked for leftovers, after."""
    pytest.importorskip("ray")
    cluster = Cluster()
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        if not cluster.processes():
            shutil.rmtree(cluster.root, ignore_errors=True)
        raise
    saved = {k: os.environ.get(k) for k in RAY_ENV}
    os.environ.update(RAY_ENV)     # for drivers started in this process
    try:
        yield cluster
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _shutdown_driver()
        cluster.stop()
        left = cluster.processes()
        assert not left, f"Ray processes left behind: {left}"
        shutil.rmtree(cluster.root, ignore_errors=True)


def _shutdown_driver() -> None:
    """Disconnect this process from Ray if a test left it connected."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_env_vars(monkeypatch):
    """RAY_* settings for a test that starts an embedded Ray in this process."""
    pytest.importorskip("ray")
    for k, v in RAY_ENV.items():
        monkeypatch.setenv(k, v)
    yield
    _shutdown_driver()
