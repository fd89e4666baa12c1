"""Review of issue 12's engine surface: AccumulateGrad nodes, DeviceError, new_*, out=.

Device errors all come from the one check in backprop.tensor (``_check_device``), so a
layer, ``Module.to``, ``Module.cuda`` and the Trainer say the same thing in the same class.
"""
import gc
import weakref

import numpy as np
import pytest

import backprop
from backprop import errors, nn, optim
from backprop.autograd import function as _function
from backprop.tensor import _make

# -- AccumulateGrad: one node per live leaf, never a stale one, never a leak --------------------


def _acc(leaf):
    (node, _), = (leaf * 2).grad_fn.next_functions[:1]
    return node


def test_accumulate_grad_does_not_keep_its_leaf_alive():
    before = len(_function._accumulators)
    x = backprop.ones(3, requires_grad=True)
    node = _acc(x)
    assert node.variable is x and len(_function._accumulators) == before + 1
    alive = weakref.ref(x)
    del x, node
    gc.collect()
    assert alive() is None  # nothing the registry keeps holds the leaf
    assert len(_function._accumulators) == before


def test_a_new_leaf_at_a_dead_leafs_address_gets_its_own_node():
    # CPython gives a new object the memory of one just freed (``_make`` allocates
    # nothing else first), so the new leaf has the dead one's id: the registry, keyed by
    # id, must still give it a node that holds it, never the dead leaf's.
    data = np.ones(3)
    reused = 0
    for _ in range(5):
        x = _make(data, requires_grad=True)
        old_id = id(x)
        _acc(x).metadata["owner"] = "old"
        del x
        y = _make(data, requires_grad=True)
        node = _acc(y)
        assert node.variable is y and "owner" not in node.metadata
        reused += id(y) == old_id
    if not reused:
        pytest.skip("no address was reused")


def test_accumulate_grad_is_the_same_object_while_held():
    x = backprop.ones(2, requires_grad=True)
    node = _acc(x)
    node.metadata["k"] = 1
    assert _acc(x) is node and _acc(x).metadata == {"k": 1}


# -- DeviceError: one class, in backprop.errors, from one check ---------------------------------


def test_device_error_lives_in_errors_and_is_both_value_and_runtime_error():
    assert backprop.DeviceError is errors.DeviceError
    assert issubclass(errors.DeviceError, ValueError)
    assert issubclass(errors.DeviceError, RuntimeError)
    assert issubclass(errors.DeviceError, errors.BackpropError)


@pytest.mark.parametrize("call, op", [
    (lambda: nn.Linear(2, 2, device="cuda"), "layer parameters"),
    (lambda: nn.Conv2d(1, 1, 3, device="cuda:0"), "layer parameters"),
    (lambda: nn.LayerNorm(4, device="mps"), "layer parameters"),
    (lambda: nn.Linear(2, 2).to("cuda"), "Module.to"),
    (lambda: nn.Linear(2, 2).to(device=backprop.device("cuda", 1)), "Module.to"),
    (lambda: nn.Linear(2, 2).cuda(), "Module.cuda"),
    (lambda: nn.Linear(2, 2).cuda(1), "Module.cuda"),
    (lambda: backprop.zeros(2).cuda(), "cuda"),
], ids=["Linear", "Conv2d", "LayerNorm", "to", "to(device=)", "Module.cuda", "cuda(1)",
        "Tensor.cuda"])
def test_layers_and_module_refuse_other_devices_with_device_error(call, op):
    with pytest.raises(backprop.DeviceError, match=f"^{op}: device .* is not available"):
        call()


def test_cpu_is_accepted_everywhere():
    m = nn.Linear(2, 2, device="cpu")
    assert m.to("cpu") is m and m.to("cpu:0") is m and m.to(device=backprop.device("cpu")) is m
    nn.Linear(2, 2, device=backprop.device("cpu"))


def test_layers_follow_the_default_device_as_creation_functions_do():
    backprop.set_default_device("cuda")
    try:
        with pytest.raises(backprop.DeviceError, match="layer parameters"):
            nn.Linear(2, 2)
    finally:
        backprop.set_default_device(None)
    assert nn.Linear(2, 2).weight.shape == (2, 2)


def test_an_int_device_is_an_accelerator_index_and_refused():
    # PyTorch reads x.to(0) / module.to(0) as "accelerator 0"; not as a dtype
    with pytest.raises(backprop.DeviceError, match="^to: .*accelerator"):
        backprop.zeros(2).to(0)
    with pytest.raises(backprop.DeviceError, match="^Module.to: .*accelerator"):
        nn.Linear(2, 2).to(0)


def test_to_checks_the_memory_format(oracle):
    x = backprop.zeros(1, 2, 3, 4)
    assert x.to(memory_format=backprop.channels_last).shape == (1, 2, 3, 4)
    with pytest.raises(backprop.ShapeError, match="rank 4"):
        backprop.zeros(2).to(memory_format=backprop.channels_last)
    with pytest.raises(RuntimeError, match="rank 4"):  # what PyTorch says
        oracle.zeros(2).to(memory_format=oracle.channels_last)


def test_cuda_of_a_cpu_device_or_a_bad_index_is_refused():
    with pytest.raises(backprop.DeviceError, match="^cuda: invalid device 'cpu'"):
        backprop.zeros(2).cuda("cpu")
    with pytest.raises(backprop.DeviceError, match="^Module.cuda: .*non-negative"):
        nn.Linear(2, 2).cuda(-1)


def test_trainer_refuses_other_devices_with_device_error():
    from backprop.train import Trainer

    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(backprop.DeviceError, match="^Trainer: device 'cuda:0' is not available"):
        Trainer(model, nn.MSELoss(), opt, device="cuda:0")
    Trainer(model, nn.MSELoss(), opt, device=backprop.device("cpu"))  # accepted


# -- Tensor.new_*: PyTorch's keywords ---------------------------------------------------------

NEW_CALLS = {
    "new_zeros(2, 3)": lambda x, L: x.new_zeros(2, 3),
    "new_zeros((2,))": lambda x, L: x.new_zeros((2,)),
    "new_ones dtype": lambda x, L: x.new_ones(2, dtype=L.float64),
    "new_ones requires_grad": lambda x, L: x.new_ones(2, dtype=L.float32, requires_grad=True),
    "new_empty keywords": lambda x, L: x.new_empty((2, 1), device="cpu", layout=L.strided,
                                                   pin_memory=False).zero_(),
    "new_full": lambda x, L: x.new_full((2,), 1.5),
    "new_full dtype": lambda x, L: x.new_full((2,), 1.5, dtype=L.float32, device="cpu"),
    "new_full tensor fill": lambda x, L: x.new_full((2,), L.tensor(3.5)),
    "new_tensor": lambda x, L: x.new_tensor([1.5, 2.5]),
    "new_tensor keywords": lambda x, L: x.new_tensor([1.5], dtype=L.float64, device="cpu",
                                                     requires_grad=True),
}


@pytest.mark.parametrize("name", list(NEW_CALLS))
@pytest.mark.parametrize("dtype", ["int64", "float64"])
def test_new_methods_match_pytorch(oracle, name, dtype):
    call = NEW_CALLS[name]
    ours = call(backprop.zeros(2, dtype=getattr(backprop, dtype)), backprop)
    theirs = call(oracle.zeros(2, dtype=getattr(oracle, dtype)), oracle)
    assert str(ours.dtype).split(".")[1] == str(theirs.dtype).split(".")[1]
    assert ours.requires_grad == theirs.requires_grad
    np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())


@pytest.mark.parametrize("method", ["new_zeros", "new_ones", "new_empty"])
def test_new_methods_refuse_devices_and_pinned_memory(method):
    x = backprop.zeros(2)
    with pytest.raises(backprop.DeviceError, match=f"^{method}: device 'cuda'"):
        getattr(x, method)(2, device="cuda")
    with pytest.raises(backprop.DeviceError, match="pin_memory"):
        getattr(x, method)(2, pin_memory=True)
    with pytest.raises(backprop.DTypeError, match="layout"):
        getattr(x, method)(2, layout="sparse_coo")


def test_new_methods_follow_the_tensor_not_the_default_device():
    x = backprop.zeros(2)
    backprop.set_default_device("cuda")
    try:
        assert x.new_zeros(2).shape == (2,) and x.new_tensor([1.0]).shape == (1,)
    finally:
        backprop.set_default_device(None)


def test_new_full_wants_a_tuple_size():
    with pytest.raises(TypeError, match="new_full"):
        backprop.zeros(2).new_full(3, 1.0)


# -- creation functions take pin_memory wherever PyTorch does -------------------------------------

PIN = {
    "zeros": lambda **k: backprop.zeros(2, **k), "ones": lambda **k: backprop.ones(2, **k),
    "full": lambda **k: backprop.full((2,), 1.0, **k),
    "zeros_like": lambda **k: backprop.zeros_like(backprop.ones(2), **k),
    "ones_like": lambda **k: backprop.ones_like(backprop.ones(2), **k),
    "empty_like": lambda **k: backprop.empty_like(backprop.ones(2), **k),
    "full_like": lambda **k: backprop.full_like(backprop.ones(2), 3.0, **k),
    "rand_like": lambda **k: backprop.rand_like(backprop.ones(2), **k),
    "randn_like": lambda **k: backprop.randn_like(backprop.ones(2), **k),
    "randint_like": lambda **k: backprop.randint_like(backprop.ones(2), 3, **k),
    "arange": lambda **k: backprop.arange(3, **k),
    "linspace": lambda **k: backprop.linspace(0, 1, 3, **k),
    "logspace": lambda **k: backprop.logspace(0, 1, 3, **k),
    "eye": lambda **k: backprop.eye(2, **k),
    "randint": lambda **k: backprop.randint(3, (2,), **k),
}


@pytest.mark.parametrize("name", list(PIN))
def test_creation_functions_take_pin_memory(name):
    assert PIN[name](pin_memory=False).numel() > 0
    with pytest.raises(backprop.DeviceError, match=f"^{name}: pin_memory=True"):
        PIN[name](pin_memory=True)


# -- out=: the wrapper passes every argument through ---------------------------------------------


def test_out_wrapper_passes_keywords_and_positionals_through():
    a, b = backprop.tensor([1.0, 2.0]), backprop.tensor([3.0, 4.0])
    assert backprop.add(a, b).tolist() == [4.0, 6.0]
    assert backprop.add(a, b, alpha=2).tolist() == [7.0, 10.0]
    assert backprop.add(a, b, out=None).tolist() == [4.0, 6.0]
    c = backprop.empty(2)
    assert backprop.add(a, b, alpha=2, out=c) is c and c.tolist() == [7.0, 10.0]
    m = backprop.tensor([[1.0, 2.0], [3.0, 4.0]])
    s = backprop.empty(2)
    assert backprop.sum(m, 0, out=s) is s and s.tolist() == [4.0, 6.0]
    assert backprop.sum(m, dim=1, keepdim=True).shape == (2, 1)
    assert backprop.ops.cat([a, b]).tolist() == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(TypeError):
        backprop.add(a, b, bogus=1)


# -- a module's full backward hook shows as PyTorch's node ------------------------------------


@pytest.mark.parametrize("n_inputs", [1, 2])
def test_backward_hook_node_has_pytorchs_name(oracle, n_inputs):
    names = []
    for lib in (backprop, oracle):
        class Add(lib.nn.Module):
            def forward(self, *xs):
                return sum(xs[1:], xs[0] * 1.0)

        m = Add()
        m.register_full_backward_hook(lambda *a: None)
        xs = [lib.ones(2, requires_grad=True) for _ in range(n_inputs)]
        out = m(*xs)
        names.append((out.grad_fn.name(), out.grad_fn.next_functions[0][0].name()))
    assert names[0] == names[1]
