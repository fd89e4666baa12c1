"""The lab's latency: from a ``set lr`` message to the first frame trained with the new value.

    python benchmarks/lab_latency.py          # [--repeats 30] [--port 8765] [--speed 100]
                                              # [--quick] [--threads N] [--json PATH]

Starts ``backprop lab --no-browser`` as a separate process (as a user would), connects a
WebSocket client the way the page does (an ``Origin`` of the server itself), sends
``hello`` with the default settings (the spiral, hidden layers 8-8, batch 16, Adam) and
``play``, then repeatedly:

1. waits a random 0-150 ms, so the message lands anywhere between two frames (a person
   drags a slider at any moment, not just after a frame);
2. sends ``{"type": "set", "values": {"lr": X}}`` (alternating 0.01 and 0.03) and starts
   a clock;
3. stops the clock at the first ``state`` frame whose ``settings.lr`` is X and whose
   ``step`` is past ``settings_step``: trained for at least one step with the new value.

Prints the median (the target: under 100 ms), the 90th percentile and the worst case.
Frames are capped at 10 a second, so about half a frame interval (~50 ms) of the latency
is waiting for the next frame slot; the rest is the message, one step and the snapshot.
Needs the ``lab`` extra and the ``websockets`` client (installed with uvicorn[standard]).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

from _timing import add_json_option, run_info, set_threads, write_json


def _parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=None,
                   help="lr changes timed (default 30; 10 with --quick)")
    p.add_argument("--quick", action="store_true", help="fewer lr changes (a smoke test)")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS threads of the lab's server (default: the machine's default)")
    p.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    p.add_argument("--speed", type=int, default=100,
                   help="training steps per second while playing (default 100, the lab's)")
    add_json_option(p)
    args = p.parse_args()
    if args.repeats is None:
        args.repeats = 10 if args.quick else 30
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"the lab exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the lab did not answer at {url} within {timeout:.0f} s")


async def _measure(port: int, repeats: int, speed: int) -> list:
    import websockets

    origin = f"http://127.0.0.1:{port}"
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", origin=origin,
                                  max_size=8 * 1024 * 1024) as ws:
        await ws.send(json.dumps({"type": "hello", "settings": {"speed": speed}}))
        await ws.send(json.dumps({"type": "play"}))
        frames = []

        async def next_state():
            while True:
                message = json.loads(await ws.recv())
                if message["type"] == "state":
                    frames.append(time.perf_counter())
                    return message
                if message["type"] == "error":
                    raise SystemExit(f"the lab answered with an error: {message['message']}")

        frame = await next_state()
        while frame["step"] < 20:                 # let training get going
            frame = await next_state()
        latencies = []
        rng = random.Random(0)
        for i in range(repeats):
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            target = 0.01 if i % 2 == 0 else 0.03
            await ws.send(json.dumps({"type": "set", "values": {"lr": target}}))
            start = time.perf_counter()
            while True:
                frame = await asyncio.wait_for(next_state(), timeout=10)
                if frame["settings"]["lr"] == target and frame["step"] > frame["settings_step"]:
                    latencies.append(time.perf_counter() - start)
                    break
        await ws.send(json.dumps({"type": "pause"}))
    span = frames[-1] - frames[0]
    fps = (len(frames) - 1) / span if span > 0 else float("nan")
    return latencies, fps


def main() -> int:
    args = _parse()
    port = args.port or _free_port()
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.path.join(here, "..", "src")
    if args.threads is not None:
        set_threads(args.threads)  # this process's environment, which the server inherits
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "backprop.cli", "lab", "--no-browser",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_until_up(f"http://127.0.0.1:{port}/api/limits", proc)
        latencies, fps = asyncio.run(_measure(port, args.repeats, args.speed))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    ms = sorted(1000 * t for t in latencies)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    median = statistics.median(ms)
    print(f"lab latency, set lr -> first frame trained with it ({len(ms)} changes, default "
          f"network 2-8-8-3, speed {args.speed} steps/s, frames {fps:.1f}/s):")
    print(f"  median {median:.1f} ms   p90 {p90:.1f} ms   min {ms[0]:.1f} ms   "
          f"max {ms[-1]:.1f} ms   target < 100 ms: {'met' if median < 100 else 'MISSED'}")
    if args.json:
        sys.path.insert(0, src)  # backprop's version and engine, as the server imports them
        info = run_info(args.threads, torch=None)
        info["versions"].pop("torch")  # the lab does not use PyTorch
        write_json(args.json, {
            "benchmark": "lab_latency.py", **info, "quick": args.quick,
            "repeats": args.repeats, "speed": args.speed, "frames_per_s": fps,
            "latency_ms": {"median": median, "p90": p90, "min": ms[0], "max": ms[-1]}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
