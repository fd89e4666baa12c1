"""Waiting on the lab's cell pools with a bound: a test fails, it never hangs."""
import threading

import pytest

DEADLINE_S = 120.0       # generous: a worker process starts slowly on a loaded machine


def collect(iterable, timeout: float = DEADLINE_S) -> list:
    """Everything ``iterable`` yields (a pool's batch, a stability map), or a test failure
    after ``timeout``."""
    out, failed, done = [], [], threading.Event()

    def run():
        try:
            out.extend(iterable)
        except Exception as e:  # noqa: BLE001 -- raised again in the test's thread
            failed.append(e)
        done.set()

    threading.Thread(target=run, daemon=True).start()
    if not done.wait(timeout):
        pytest.fail(f"the batch did not finish within {timeout} s")
    if failed:
        raise failed[0]
    return out
