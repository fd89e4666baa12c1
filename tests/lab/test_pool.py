"""The stability maps' worker pool: capped, cancellable, and it cleans up after itself."""
import multiprocessing
import threading
import time

import pytest

from backprop.lab.pool import CellError, CellPool, default_workers
from tests.lab import cells
from tests.lab.bounded import DEADLINE_S, collect



def wait_for(predicate, what: str, timeout: float = DEADLINE_S):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.02)


def cell_processes() -> list:
    return [p for p in multiprocessing.active_children() if p.name == "backprop-lab-cell"]


@pytest.fixture
def pool():
    pools = []

    def make(*args, **kwargs):
        pools.append(CellPool(*args, **kwargs))
        return pools[-1]

    yield make
    for p in pools:
        p.close()
    assert cell_processes() == []           # close() leaves no process behind


def test_results_come_back_on_at_most_max_workers_processes(pool):
    p = pool(2)
    assert sorted(collect(p.submit(cells.square, range(10)))) == [i * i for i in range(10)]
    pids = set(collect(p.submit(cells.worker_pid, range(12))))
    assert 1 <= len(pids) <= 2
    assert p.worker_count() <= 2 and len(cell_processes()) <= 2


def test_cancel_stops_the_running_cells(pool, tmp_path):
    p = pool(2, stop_grace_s=DEADLINE_S)     # so long that only the cells' own stop counts
    batch = p.submit(cells.spin, [(str(tmp_path), f"cell{i}") for i in range(6)])
    wait_for(lambda: len(list(tmp_path.glob("cell?"))) == 2, "two cells starting")
    spinning = {int(f.read_text()) for f in tmp_path.glob("cell?")}
    batch.cancel()
    # the workers are free again (the 4 cells never started are dropped), and they are the
    # same processes: the running cells stopped, nothing was killed
    assert set(collect(p.submit(cells.worker_pid, range(4)))) <= spinning
    assert len(list(tmp_path.glob("cell?"))) == 2


def test_a_cancel_event_stops_the_batch(pool, tmp_path):
    p = pool(1, stop_grace_s=DEADLINE_S)
    cancel = threading.Event()
    batch = p.submit(cells.spin, [(str(tmp_path), "a"), (str(tmp_path), "b")], cancel=cancel)
    results = []
    reader = threading.Thread(target=lambda: results.extend(batch), daemon=True)
    reader.start()
    wait_for(lambda: (tmp_path / "a").exists(), "the first cell starting")
    cancel.set()
    reader.join(DEADLINE_S)
    assert not reader.is_alive() and results == []
    assert collect(p.submit(cells.square, [3])) == [9]
    assert not (tmp_path / "b").exists()


def test_a_cell_that_ignores_the_stop_is_killed_and_replaced(pool, tmp_path):
    p = pool(1, stop_grace_s=0.5)
    batch = p.submit(cells.stubborn, [str(tmp_path)])
    wait_for(lambda: (tmp_path / "started").exists(), "the cell starting")
    stuck = int((tmp_path / "started").read_text())
    batch.cancel()
    fresh = collect(p.submit(cells.worker_pid, [0]))
    assert fresh and fresh[0] != stuck
    assert len(cell_processes()) == 1


def test_a_failing_cell_raises_cell_error_and_the_pool_goes_on(pool):
    p = pool(1)
    with pytest.raises(CellError, match="ValueError: bad job 7"):
        collect(p.submit(cells.fail, [7]))
    assert collect(p.submit(cells.square, [4])) == [16]


def test_idle_workers_exit(pool):
    p = pool(2, idle_exit_s=0.2)
    assert sorted(collect(p.submit(cells.square, [1, 2]))) == [1, 4]
    wait_for(lambda: p.worker_count() == 0 and cell_processes() == [], "the idle workers exiting")
    assert collect(p.submit(cells.square, [5])) == [25]        # and new ones start on demand


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="max_workers must be a positive int, got 0"):
        CellPool(0)
    assert 1 <= default_workers() <= 4
