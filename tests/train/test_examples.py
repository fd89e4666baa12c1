"""The examples reach the accuracies asked for: spiral >= 98% (train), digits >= 95% (test)."""
import contextlib
import importlib.util
import pathlib

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """Small matrices train fastest on one BLAS thread, above all on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits  # comes with scikit-learn
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1, user_api="blas")
    with limits:
        yield


def _load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spiral_example_reaches_98_percent(capsys):
    accuracy = _load("spiral").main()
    assert accuracy >= 0.98
    assert f"training accuracy: {accuracy:.1%}" in capsys.readouterr().out


def test_digits_example_reaches_95_percent(capsys):
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn")
    accuracy = _load("digits").main()
    assert accuracy >= 0.95
    assert f"test accuracy: {accuracy:.1%}" in capsys.readouterr().out
