"""Cell functions for the CellPool tests: they run in the pool's worker processes, which
import them by name (so they live in a module, not in a test)."""
import os
import time
from pathlib import Path


def square(job, should_stop):
    return job * job


def worker_pid(job, should_stop):
    return os.getpid()


def spin(job, should_stop):
    """Say it started (a file named after the job holding the pid), then run until stopped."""
    folder, name = job
    (Path(folder) / f"{name}.tmp").write_text(str(os.getpid()))
    (Path(folder) / f"{name}.tmp").rename(Path(folder) / name)
    while not should_stop():
        time.sleep(0.01)
    return None


def stubborn(job, should_stop):
    """Say it started, then ignore should_stop for an hour."""
    (Path(job) / "started").write_text(str(os.getpid()))
    time.sleep(3600)


def fail(job, should_stop):
    raise ValueError(f"bad job {job}")
