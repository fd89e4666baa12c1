"""detect_anomaly: the first NaN/Inf stops the run, naming the op and the caller's line."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import backprop
from backprop import AnomalyError
from backprop.autograd import detect_anomaly, is_anomaly_enabled, set_detect_anomaly

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy's 0/0 warnings

THIS_FILE = __file__


def here() -> int:
    """The line number of the caller's next line."""
    return inspect.currentframe().f_back.f_lineno + 1


@pytest.fixture(autouse=True)
def _anomaly_off_after():
    yield
    enabled = is_anomaly_enabled()
    set_detect_anomaly(False)
    assert not enabled, "a test left anomaly detection on"


def t64(data, requires_grad=True):
    return backprop.tensor(data, dtype=backprop.float64, requires_grad=requires_grad)


def test_log_of_zero_in_forward():
    x = t64([0.0, 1.0])
    with detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            line = here()
            x.log()
    msg = str(info.value)
    assert "Log" in msg and "Inf" in msg
    assert f'"{THIS_FILE}", line {line}' in msg, msg
    assert "x.log()" in msg


def test_zero_over_zero_in_forward():
    x = t64([0.0, 1.0])
    with detect_anomaly():
        with pytest.raises(AnomalyError) as info:
            line = here()
            (x * 0.0) / (x * 0.0)
    msg = str(info.value)
    assert "Div" in msg and "NaN" in msg
    assert f"line {line}" in msg and "test_anomaly.py" in msg


def test_forward_check_runs_without_grad_too():
    x = t64([0.0], requires_grad=False)
    with detect_anomaly():
        with pytest.raises(AnomalyError, match="Log"):
            x.log()


def test_inf_only_in_backward_names_the_backward_op():
    x = t64([0.0, 4.0])
    with detect_anomaly():
        line = here()
        y = (x ** 0.5).sum()  # forward is finite: sqrt(0) = 0
        assert np.isfinite(y.item())
        with pytest.raises(AnomalyError) as info:
            y.backward()  # d sqrt(x)/dx = 1 / (2 sqrt(x)) is infinite at 0
    msg = str(info.value)
    assert "PowBackward" in msg and "Inf" in msg
    assert f"line {line}" in msg and "test_anomaly.py" in msg  # where the op was recorded


def test_nan_only_in_backward():
    x = t64([0.0, 4.0])
    with detect_anomaly():
        y = ((x ** 0.5) * 0.0).sum()  # backward: 0 * inf = NaN inside PowBackward
        with pytest.raises(AnomalyError, match="PowBackward0 returned NaN"):
            y.backward()


def test_backward_of_graph_recorded_outside_still_checked():
    x = t64([0.0])
    y = (x ** 0.5).sum()
    with detect_anomaly():
        with pytest.raises(AnomalyError, match="PowBackward"):
            y.backward()


def test_nothing_raised_outside_the_context():
    x = t64([0.0, 1.0])
    assert not is_anomaly_enabled()
    y = x.log()
    assert np.isinf(y.detach().numpy()[0])
    z = (x * 0.0) / (x * 0.0)
    assert np.isnan(z.detach().numpy()[0])
    s = (x ** 0.5).sum()
    s.backward()
    assert np.isinf(x.grad.numpy()[0])


def test_clean_computation_inside_context():
    x = t64([1.0, 2.0])
    with detect_anomaly():
        y = (x.log() * x + x.exp() / x).sum()
        y.backward()
    xv = np.array([1.0, 2.0])
    np.testing.assert_allclose(x.grad.numpy(), np.log(xv) + 1 + np.exp(xv) * (xv - 1) / xv ** 2)


def test_context_restores_state_after_error():
    with pytest.raises(AnomalyError):
        with detect_anomaly():
            assert is_anomaly_enabled()
            t64([0.0]).log()
    assert not is_anomaly_enabled()


def test_decorator_and_global_switch():
    @detect_anomaly()
    def bad():
        assert is_anomaly_enabled()
        return t64([-1.0]).log()

    with pytest.raises(AnomalyError):
        bad()
    assert not is_anomaly_enabled()

    set_detect_anomaly(True)
    try:
        with pytest.raises(AnomalyError):
            t64([0.0]).log()
    finally:
        set_detect_anomaly(False)
    t64([0.0]).log()  # off again


def test_anomaly_error_is_a_runtime_error():
    assert issubclass(AnomalyError, RuntimeError)
    assert issubclass(AnomalyError, backprop.BackpropError)
