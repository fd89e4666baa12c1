"""nn.utils: gradient clipping by norm and by value, parameters <-> vector, against torch."""
import math
import warnings

import numpy as np
import pytest

import backprop
from backprop.errors import ShapeError
from backprop.nn import utils as U

SHAPES = [(3, 4), (5,), (2, 2, 2), (1,)]


def _pair(torch, grads, dtype=np.float64, with_grad=None):
    """Parameters in both libraries whose .grad holds the given arrays (None: no grad)."""
    ours, ref = [], []
    for i, g in enumerate(grads):
        shape = (3,) if g is None else g.shape
        a = backprop.zeros(*shape, dtype=backprop.float64 if dtype == np.float64 else
                           backprop.float32, requires_grad=True)
        b = torch.zeros(*shape, dtype=getattr(torch, np.dtype(dtype).name), requires_grad=True)
        if g is not None:
            a.grad = backprop.tensor(g.astype(dtype))
            b.grad = torch.tensor(g.astype(dtype))
        ours.append(a)
        ref.append(b)
    return ours, ref


def _grads(rng, scale=1.0):
    return [rng.standard_normal(s) * scale for s in SHAPES]


def _assert_same_grads(ours, ref, rtol=1e-12):
    for a, b in zip(ours, ref):
        if b.grad is None:
            assert a.grad is None
            continue
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=rtol, atol=0)


@pytest.mark.parametrize("max_norm", [0.0, 0.5, 3.0, 1e6])
@pytest.mark.parametrize("norm_type", [2.0, 1, math.inf, 3.0, 0.5, 0, -math.inf, "inf"])
def test_clip_grad_norm_matches_torch(oracle, rng, norm_type, max_norm):
    grads = _grads(rng)
    ours, ref = _pair(oracle, grads)
    total = U.clip_grad_norm_((p for p in ours), max_norm, norm_type=norm_type)
    expected = oracle.nn.utils.clip_grad_norm_((p for p in ref), max_norm, norm_type=norm_type)
    assert isinstance(total, backprop.Tensor) and total.shape == ()
    assert total.dtype == backprop.float64
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    _assert_same_grads(ours, ref)


def test_clip_grad_norm_is_the_norm_of_all_grads_concatenated(rng):
    grads = _grads(rng, scale=3.0)
    ours = [backprop.zeros(*g.shape, dtype=backprop.float64, requires_grad=True) for g in grads]
    for p, g in zip(ours, grads):
        p.grad = backprop.tensor(g)
    flat = np.concatenate([g.ravel() for g in grads])
    total = U.clip_grad_norm_(ours, max_norm=1.0)
    np.testing.assert_allclose(total.item(), np.linalg.norm(flat), rtol=1e-13)
    clipped = np.concatenate([p.grad.numpy().ravel() for p in ours])
    np.testing.assert_allclose(clipped, flat * (1.0 / (np.linalg.norm(flat) + 1e-6)), rtol=1e-13)
    assert np.linalg.norm(clipped) <= 1.0


def test_clip_grad_norm_float32_and_params_without_grad(oracle, rng):
    grads = [rng.standard_normal((4, 3)), None, rng.standard_normal(7)]
    ours, ref = _pair(oracle, grads, dtype=np.float32)
    total = U.clip_grad_norm_(ours, 0.1)
    expected = oracle.nn.utils.clip_grad_norm_(ref, 0.1)
    assert total.dtype == backprop.float32
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    _assert_same_grads(ours, ref, rtol=1e-6)
    assert ours[1].grad is None


def test_clip_grad_norm_modifies_grads_in_place(rng):
    p = backprop.zeros(5, requires_grad=True)
    p.grad = backprop.tensor(rng.standard_normal(5).astype(np.float32) * 10)
    grad, array, version = p.grad, p.grad._data, p.grad._version
    U.clip_grad_norm_(p, 1.0)  # a single tensor is accepted too
    assert p.grad is grad and p.grad._data is array
    assert grad._version != version
    np.testing.assert_allclose(np.linalg.norm(array), 1.0, rtol=1e-5)


def test_clip_grad_norm_no_clipping_leaves_grads_untouched(rng):
    p = backprop.zeros(4, dtype=backprop.float64, requires_grad=True)
    g = rng.standard_normal(4)
    p.grad = backprop.tensor(g.copy())
    total = U.clip_grad_norm_([p], max_norm=100.0)
    np.testing.assert_allclose(total.item(), np.linalg.norm(g), rtol=1e-14)
    np.testing.assert_array_equal(p.grad.numpy(), g)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0])
def test_clip_grad_norm_non_finite(oracle, rng, bad, norm_type):
    grads = _grads(rng)
    grads[1][2] = bad
    ours, ref = _pair(oracle, grads)
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: The total norm of order .* is "
                                           r"non-finite \((inf|nan)\)"):
        U.clip_grad_norm_(ours, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    for p, g in zip(ours, grads):  # nothing was changed
        np.testing.assert_array_equal(p.grad.numpy(), g)
    with pytest.raises(RuntimeError):
        oracle.nn.utils.clip_grad_norm_(ref, 1.0, norm_type=norm_type, error_if_nonfinite=True)
    # without the error both scale by the non-finite norm: zeros (inf) or NaN (nan), as torch
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        total = U.clip_grad_norm_(ours, 1.0, norm_type=norm_type)
    expected = oracle.nn.utils.clip_grad_norm_(ref, 1.0, norm_type=norm_type)
    np.testing.assert_equal(total.item(), expected.item())
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_clip_grad_norm_edge_cases():
    p = backprop.zeros(3, requires_grad=True)
    total = U.clip_grad_norm_([p], 1.0)  # no gradients at all
    assert total.item() == 0.0 and total.dtype == backprop.float32
    with pytest.warns(UserWarning, match="`parameters` is an empty generator"):
        U.clip_grad_norm_((q for q in []), 1.0)
    with pytest.raises(ValueError, match="clip_grad_norm_: max_norm must be a non-negative "
                                         "number, got -1.0"):
        U.clip_grad_norm_([p], -1.0)
    with pytest.raises(ValueError, match="clip_grad_norm_: norm_type must be a number"):
        U.clip_grad_norm_([p], 1.0, norm_type="fro")
    with pytest.raises(TypeError, match="clip_grad_norm_: expected an iterable of Tensors, "
                                        "found a ndarray"):
        U.clip_grad_norm_([np.zeros(3)], 1.0)
    with pytest.raises(TypeError, match="expected a Tensor or an iterable of Tensors, got float"):
        U.clip_grad_norm_(1.5, 1.0)


def test_clip_grad_norm_on_a_model(oracle, rng):
    from backprop import nn

    model = nn.Linear(4, 3).double()
    x = backprop.tensor(rng.standard_normal((8, 4)) * 10)
    (model(x) ** 2).sum().backward()
    ref = oracle.nn.Linear(4, 3).double()
    ref.load_state_dict({k: oracle.tensor(v.numpy()) for k, v in model.state_dict().items()})
    (ref(oracle.tensor(x.numpy())) ** 2).sum().backward()
    total = U.clip_grad_norm_(model.parameters(), 2.0)
    expected = oracle.nn.utils.clip_grad_norm_(ref.parameters(), 2.0)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for (name, a), b in zip(model.named_parameters(), ref.parameters()):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12, err_msg=name)


def test_get_total_norm_and_clip_grads_with_norm(oracle, rng):
    grads = _grads(rng)
    ours, ref = _pair(oracle, grads)
    total = U.get_total_norm([p.grad for p in ours], norm_type=3.0)
    expected = oracle.nn.utils.get_total_norm([p.grad for p in ref], norm_type=3.0)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    U.clip_grads_with_norm_(ours, 0.5, total)
    oracle.nn.utils.clip_grads_with_norm_(ref, 0.5, expected)
    _assert_same_grads(ours, ref)


# -- clip_grad_value_ ----------------------------------------------------------------------------

@pytest.mark.parametrize("clip_value", [0.0, 0.3, 1.0, 10.0])
def test_clip_grad_value_matches_torch(oracle, rng, clip_value):
    grads = _grads(rng)
    grads[0][0, 0] = np.nan
    grads.append(None)
    ours, ref = _pair(oracle, grads)
    assert U.clip_grad_value_(iter(ours), clip_value) is None
    oracle.nn.utils.clip_grad_value_(iter(ref), clip_value)
    for a, b in zip(ours, ref):
        if b.grad is None:
            assert a.grad is None
        else:
            np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_clip_grad_value_in_place_and_errors():
    p = backprop.zeros(3, requires_grad=True)
    p.grad = backprop.tensor([-5.0, 0.5, 2.0])
    array, version = p.grad._data, p.grad._version
    U.clip_grad_value_(p, 1.0)
    assert p.grad._data is array and p.grad._version != version
    np.testing.assert_array_equal(array, [-1.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="clip_grad_value_: clip_value must be a non-negative "
                                         "number, got -1"):
        U.clip_grad_value_(p, -1)


def test_clipping_a_read_only_grad_replaces_its_array():
    p = backprop.zeros(2, 3, requires_grad=True)
    p.grad = backprop.ones(3).expand(2, 3)  # a broadcast view that cannot be written
    U.clip_grad_value_(p, 0.5)
    np.testing.assert_array_equal(p.grad.numpy(), np.full((2, 3), 0.5))
    p.grad = backprop.full((3,), 4.0).expand(2, 3)
    U.clip_grad_norm_(p, 1.0)
    np.testing.assert_allclose(np.linalg.norm(p.grad.numpy()), 1.0, rtol=1e-5)


# -- parameters_to_vector / vector_to_parameters ---------------------------------------------------

def test_parameters_to_vector_matches_torch_and_round_trips(oracle, rng):
    arrays = [rng.standard_normal(s) for s in SHAPES]
    ours = [backprop.tensor(a, requires_grad=True) for a in arrays]
    ref = [oracle.tensor(a, requires_grad=True) for a in arrays]
    vec = U.parameters_to_vector(iter(ours))
    expected = oracle.nn.utils.parameters_to_vector(iter(ref))
    np.testing.assert_array_equal(vec.detach().numpy(), expected.detach().numpy())
    # it is part of the graph, as torch's
    weights = rng.standard_normal(vec.shape[0])
    (vec * backprop.tensor(weights)).sum().backward()
    (expected * oracle.tensor(weights)).sum().backward()
    for a, b in zip(ours, ref):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())
    # and back: vector_to_parameters writes consecutive slices into the parameters
    new = rng.standard_normal(vec.shape[0])
    U.vector_to_parameters(backprop.tensor(new), ours)
    np.testing.assert_array_equal(U.parameters_to_vector(ours).detach().numpy(), new)
    assert ours[0].shape == SHAPES[0]


def test_vector_to_parameters_casts_and_checks():
    from backprop import nn

    layer = nn.Linear(3, 2)
    version = layer.weight._version
    U.vector_to_parameters(backprop.arange(8, dtype=backprop.float64), layer.parameters())
    assert layer.weight.dtype == backprop.float32
    np.testing.assert_array_equal(layer.weight.detach().numpy(), [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(layer.bias.detach().numpy(), [6, 7])
    assert layer.weight._version != version
    with pytest.raises(ShapeError, match=r"vector_to_parameters: expected a 1-D vector of 8 "
                                         r"elements \(the parameters' total\), got shape \(9,\)"):
        U.vector_to_parameters(backprop.zeros(9), layer.parameters())
    with pytest.raises(TypeError, match="vector_to_parameters: expected a Tensor, but got list"):
        U.vector_to_parameters([0.0] * 8, layer.parameters())
    with pytest.raises(ValueError, match="parameters_to_vector: got no parameters"):
        U.parameters_to_vector([])
