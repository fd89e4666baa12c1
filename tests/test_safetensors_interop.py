"""A state_dict moves between PyTorch and backprop as a safetensors file, both ways (issue 12).

Each model below is built by the same code on either library (``lib`` is ``torch`` or
``backprop``). PyTorch saves its state_dict with the ``safetensors`` package, backprop loads it
into its own model, and both give the same outputs; then backprop saves, PyTorch loads.
"""
import numpy as np
import pytest

import backprop

try:
    import safetensors.torch as st
except ImportError:  # pragma: no cover
    st = None


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4))


def cnn(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def conv_autoencoder(lib):
    nn = lib.nn
    return nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.GroupNorm(2, 4), nn.ReLU(),
                         nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1),
                         nn.Sigmoid())


def recurrent(lib):
    nn = lib.nn

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(6, 5, num_layers=2, batch_first=True, bidirectional=True)
            self.gru = nn.GRU(10, 4, batch_first=True)
            self.rnn = nn.RNN(4, 3, batch_first=True, nonlinearity="relu")

        def forward(self, x):
            return self.rnn(self.gru(self.lstm(x)[0])[0])[0]

    return Recurrent()


def attention(lib):
    nn = lib.nn
    layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0,
                                       batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)


INPUTS = {
    mlp: (5, 6), cnn: (3, 2, 8, 8), conv_autoencoder: (3, 2, 8, 8), recurrent: (3, 7, 6),
    attention: (3, 5, 8),
}


def _pair(build, torch):
    torch.manual_seed(0)
    theirs = build(torch).double().eval()
    ours = build(backprop).double().eval()
    return theirs, ours


@pytest.mark.parametrize("build", list(INPUTS), ids=lambda f: f.__name__)
def test_pytorch_state_dict_loads_into_backprop(build, oracle, tmp_path):
    if st is None:
        pytest.skip("the safetensors package is not installed")
    theirs, ours = _pair(build, oracle)
    if any(k.endswith("running_mean") for k in theirs.state_dict()):
        with oracle.no_grad():  # give BatchNorm's buffers values worth checking
            theirs.train()(oracle.randn(*INPUTS[build], dtype=oracle.float64))
            theirs.eval()
    path = tmp_path / "torch.safetensors"
    st.save_file({k: v.contiguous() for k, v in theirs.state_dict().items()}, str(path))

    loaded = backprop.load(str(path))
    assert sorted(loaded) == sorted(theirs.state_dict())
    ours.load_state_dict(loaded)
    x = np.random.default_rng(1).standard_normal(INPUTS[build])
    with oracle.no_grad():
        expected = theirs(oracle.tensor(x)).numpy()
    with backprop.no_grad():
        got = ours(backprop.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("build", list(INPUTS), ids=lambda f: f.__name__)
def test_backprop_state_dict_loads_into_pytorch(build, oracle, tmp_path):
    if st is None:
        pytest.skip("the safetensors package is not installed")
    theirs, ours = _pair(build, oracle)
    path = tmp_path / "backprop.safetensors"
    backprop.save(ours.state_dict(), str(path))
    theirs.load_state_dict(st.load_file(str(path)))
    x = np.random.default_rng(2).standard_normal(INPUTS[build])
    with oracle.no_grad():
        expected = theirs(oracle.tensor(x)).numpy()
    with backprop.no_grad():
        got = ours(backprop.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
