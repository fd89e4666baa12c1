"""backprop._allocator.keep_freed_memory: set on glibc, left alone where the user tuned malloc.

Each check runs in a fresh interpreter, so the test process's own allocator is untouched.
"""
import os
import subprocess
import sys

import pytest

CALL = "from backprop._allocator import keep_freed_memory; print(keep_freed_memory())"
FAULTS = """
import resource, numpy as np
from backprop._allocator import keep_freed_memory
if {tune}:
    assert keep_freed_memory()
def step():  # a training step's pattern: a few large arrays made, used, freed
    a, b, c = (np.ones(n << 20, np.float32) for n in (3, 2, 1))  # 12, 8 and 4 MiB
    del b
    d = np.ones(4 << 20, np.float32)
    return a.sum() + c.sum() + d.sum()
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _run(code, **env):
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _glibc() -> bool:
    return sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION") is not None \
        and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_sets_the_thresholds_on_glibc():
    assert _run(CALL) == "True"


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_repeated_steps_stop_faulting_in_fresh_pages():
    # (importing backprop._allocator imports backprop, which sets them unless told not to)
    untuned = int(_run(FAULTS.format(tune=False), BACKPROP_KEEP_FREED_MEMORY="0"))
    tuned = int(_run(FAULTS.format(tune=True), BACKPROP_KEEP_FREED_MEMORY="0"))
    assert tuned < 100 <= untuned


@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "100000"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=100000"}])
def test_the_users_own_malloc_settings_win(env):
    assert _run(CALL, **env) == "False"


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_import_backprop_keeps_freed_memory_unless_disabled():
    imported = FAULTS.replace("from backprop._allocator import keep_freed_memory",
                              "import backprop").replace("assert keep_freed_memory()", "pass")
    assert int(_run(imported.format(tune=False))) < 100
    assert int(_run(imported.format(tune=False), BACKPROP_KEEP_FREED_MEMORY="0")) >= 100
