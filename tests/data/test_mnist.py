"""MNIST / Fashion-MNIST: IDX parsing, the dataset, and verified atomic downloads.

Downloads are tested against a loopback HTTP server (127.0.0.1, a free port) that
serves small IDX files written by the tests; nothing else is ever contacted.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import threading
from types import SimpleNamespace

import numpy as np
import pytest

import backprop
from backprop import ShapeError
from backprop.data import (
    DataLoader, DownloadError, FashionMNIST, IDXFormatError, MNIST, download_file, mnist,
    read_idx, write_idx,
)

FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"]


def small_split(seed: int, n: int):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, n, dtype=np.uint8))


TRAIN = small_split(0, 10)
TEST = small_split(1, 6)


def write_split_files(folder, gz=("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
    """The four files in ``folder``, those named in ``gz`` gzipped."""
    os.makedirs(folder, exist_ok=True)
    arrays = dict(zip(FILES, TRAIN + TEST))
    for name, arr in arrays.items():
        write_idx(os.path.join(folder, name + (".gz" if name in gz else "")), arr)


def gz_bytes() -> dict:
    """The published form: each file gzipped, by its .gz name."""
    out = {}
    for name, arr in zip(FILES, TRAIN + TEST):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        out[name + ".gz"] = gzip.compress(header + arr.tobytes(), mtime=0)
    return out


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def leftovers(folder) -> list:
    return [f for f in os.listdir(folder) if f.startswith(".") or f.endswith(".part")]


# -- IDX files --------------------------------------------------------------------------------
def test_read_idx_parses_hand_written_bytes(tmp_path):
    labels = bytes([0, 0, 0x08, 1]) + (3).to_bytes(4, "big") + bytes([7, 0, 9])
    (tmp_path / "labels").write_bytes(labels)
    out = read_idx(tmp_path / "labels")
    assert out.dtype == np.uint8 and out.tolist() == [7, 0, 9]
    values = np.array([[1.5, -2.0]], dtype=">f4")
    floats = bytes([0, 0, 0x0D, 2]) + (1).to_bytes(4, "big") + (2).to_bytes(4, "big")
    (tmp_path / "floats.gz").write_bytes(gzip.compress(floats + values.tobytes()))
    out = read_idx(tmp_path / "floats.gz")
    assert out.dtype == np.float32 and out.tolist() == [[1.5, -2.0]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_write_read_roundtrip(tmp_path, dtype, suffix):
    arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    path = tmp_path / f"a-idx{suffix}"
    write_idx(path, arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, arr)
    back[0, 0, 0] = 1  # a writable array in native byte order
    assert leftovers(tmp_path) == []


def test_standard_magic_numbers(tmp_path):
    write_split_files(tmp_path, gz=())
    assert int.from_bytes((tmp_path / FILES[0]).read_bytes()[:4], "big") == 2051
    assert int.from_bytes((tmp_path / FILES[1]).read_bytes()[:4], "big") == 2049


@pytest.mark.parametrize("raw,message", [
    (b"\x00\x00", "shorter than the 4-byte magic"),
    (b"\x01\x02\x08\x01" + bytes(8), "does not start with two zero bytes"),
    (b"\x00\x00\x07\x01" + bytes(8), "unknown IDX data type code 0x07"),
    (b"\x00\x00\x08\x03" + bytes(6), "truncated IDX header"),
    (b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(3), "needs 5 bytes of data, found 3"),
    (b"\x00\x00\x08\x01" + (2).to_bytes(4, "big") + bytes(3), "1 bytes beyond"),
])
def test_corrupt_idx_files_name_the_file(tmp_path, raw, message):
    path = tmp_path / "broken-idx1-ubyte"
    path.write_bytes(raw)
    with pytest.raises(IDXFormatError, match=message) as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_truncated_gzip_names_the_file(tmp_path):
    data = gz_bytes()[FILES[0] + ".gz"]
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IDXFormatError, match="corrupt or truncated gzip") as info:
        read_idx(path)
    assert "cut.gz" in str(info.value)


def test_write_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="uint16"):
        write_idx(tmp_path / "x", np.zeros(2, np.uint16))


# -- the dataset ------------------------------------------------------------------------------
@pytest.fixture
def root(tmp_path):
    write_split_files(tmp_path / "MNIST" / "raw")
    return tmp_path


def test_mnist_train_and_test_splits(root):
    train, test = MNIST(root), MNIST(root, train=False)
    assert len(train) == 10 and len(test) == 6
    image, label = train[3]
    assert image.shape == (1, 28, 28) and image.dtype == backprop.float32
    np.testing.assert_allclose(image.numpy()[0], TRAIN[0][3] / 255.0, rtol=1e-6)
    assert isinstance(label, int) and label == TRAIN[1][3]
    assert 0.0 <= image.numpy().min() and image.numpy().max() <= 1.0
    assert train.data.dtype == backprop.uint8 and train.data.shape == (10, 28, 28)
    assert train.targets.dtype == backprop.int64 and train.targets.tolist() == TRAIN[1].tolist()
    assert test[-1][1] == TEST[1][-1]
    assert "Split: Test" in repr(test) and train.class_to_idx["3 - three"] == 3


def test_flatten_and_transforms(root):
    flat = MNIST(root, flatten=True)
    assert flat[0][0].shape == (784,)
    ds = MNIST(root, transform=lambda x: x * 2, target_transform=lambda y: y + 100)
    image, label = ds[1]
    np.testing.assert_allclose(image.numpy()[0], 2.0 * TRAIN[0][1] / 255.0, rtol=1e-6)
    assert label == TRAIN[1][1] + 100
    with pytest.raises(TypeError, match="transform must be callable"):
        MNIST(root, transform="normalize")


def test_loader_fast_path_matches_per_sample_path(root):
    ds = MNIST(root)
    fast = list(DataLoader(ds, batch_size=4, shuffle=True, generator=backprop.Generator(0)))
    slow = list(DataLoader(ds, batch_size=4, shuffle=True, generator=backprop.Generator(0),
                           collate_fn=lambda b: backprop.data.default_collate(b)))
    assert len(fast) == len(slow) == 3
    for (xa, ya), (xb, yb) in zip(fast, slow):
        assert xa.shape == xb.shape and xa.dtype == xb.dtype == backprop.float32
        assert ya.dtype == yb.dtype == backprop.int64
        np.testing.assert_array_equal(xa.numpy(), xb.numpy())
        np.testing.assert_array_equal(ya.numpy(), yb.numpy())
    flat = next(iter(DataLoader(MNIST(root, flatten=True), batch_size=5)))[0]
    assert flat.shape == (5, 784)


def test_fashion_mnist_has_its_own_folder_and_classes(root):
    with pytest.raises(FileNotFoundError, match="FashionMNIST"):
        FashionMNIST(root)
    write_split_files(root / "FashionMNIST" / "raw", gz=FILES)
    ds = FashionMNIST(root, train=False)
    assert len(ds) == 6 and ds.classes[9] == "Ankle boot"


def test_missing_files_suggest_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        MNIST(tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_inconsistent_files_are_rejected(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_split_files(raw, gz=())
    write_idx(raw / FILES[1], TRAIN[1][:7])
    with pytest.raises(ShapeError, match="10 images .* but 7 labels"):
        MNIST(tmp_path)
    write_idx(raw / FILES[1], np.full(10, 12, np.uint8))
    with pytest.raises(IDXFormatError, match=r"labels must be in 0..9, found 12..12"):
        MNIST(tmp_path)
    write_idx(raw / FILES[1], np.zeros((10, 2), np.uint8))
    with pytest.raises(IDXFormatError, match=r"shape \(n,\)"):
        MNIST(tmp_path)


# -- downloads from a loopback server ---------------------------------------------------------
@pytest.fixture
def server(monkeypatch):
    """An HTTP server on 127.0.0.1: ``routes`` maps a path to (body, truncate?)."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    routes, log = {}, []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            log.append(self.path)
            if self.path not in routes:
                self.send_error(404)
                return
            body, truncate = routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # a truncated reply promises the whole body, sends half and hangs up
            self.wfile.write(body[: len(body) // 2] if truncate else body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", routes=routes,
                              log=log)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=60)


@pytest.fixture
def published(monkeypatch):
    """The small test files as if published, their MD5s in the checksum table."""
    files = gz_bytes()
    for name, data in files.items():
        monkeypatch.setitem(mnist.CHECKSUMS["MNIST"], name, md5(data))
        monkeypatch.setitem(mnist.CHECKSUMS["FashionMNIST"], name, md5(data))
    return files


def serve(server, prefix: str, files: dict, truncate: bool = False) -> str:
    for name, data in files.items():
        server.routes[f"/{prefix}/{name}"] = (data, truncate)
    return f"{server.url}/{prefix}/"


def test_download_tries_next_mirror_after_404(tmp_path, server, published):
    good = serve(server, "good", published)
    ds = MNIST(tmp_path, download=True, mirrors=[f"{server.url}/missing/", good], timeout=60)
    assert len(ds) == 10 and ds.targets.tolist() == TRAIN[1].tolist()
    np.testing.assert_allclose(ds[0][0].numpy()[0], TRAIN[0][0] / 255.0, rtol=1e-6)
    raw = tmp_path / "MNIST" / "raw"
    assert sorted(os.listdir(raw)) == sorted(n + ".gz" for n in FILES[:2])
    assert (raw / "train-images-idx3-ubyte.gz").read_bytes() == published[FILES[0] + ".gz"]
    assert server.log[:2] == ["/missing/train-images-idx3-ubyte.gz",
                              "/good/train-images-idx3-ubyte.gz"]
    # the files are now present and valid: building it again downloads nothing
    server.log.clear()
    MNIST(tmp_path, download=True, mirrors=[good], timeout=60)
    assert server.log == []
    test = MNIST(tmp_path, train=False, download=True, mirrors=[good], timeout=60)
    assert len(test) == 6 and server.log == ["/good/t10k-images-idx3-ubyte.gz",
                                             "/good/t10k-labels-idx1-ubyte.gz"]


def test_module_level_mirror_list_is_used(tmp_path, server, published, monkeypatch):
    monkeypatch.setitem(mnist.MIRRORS, "FashionMNIST", [serve(server, "fashion", published)])
    ds = FashionMNIST(tmp_path, download=True, timeout=60)
    assert len(ds) == 10 and (tmp_path / "FashionMNIST" / "raw").is_dir()
    assert all(p.startswith("/fashion/") for p in server.log)


def test_checksum_mismatch_is_rejected_without_leftovers(tmp_path, server, published):
    tampered = {name: data[:-1] + bytes([data[-1] ^ 1]) for name, data in published.items()}
    bad = serve(server, "tampered", tampered)
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        MNIST(tmp_path, download=True, mirrors=[bad], timeout=60)
    assert f"{bad}train-images-idx3-ubyte.gz" in str(info.value)
    assert info.value.attempts[0][0] == f"{bad}train-images-idx3-ubyte.gz"
    raw = tmp_path / "MNIST" / "raw"
    assert os.listdir(raw) == []  # no partial file, no temporary file
    # a tampered mirror first and a good one second: the good copy is kept
    good = serve(server, "good", published)
    assert len(MNIST(tmp_path, download=True, mirrors=[bad, good], timeout=60)) == 10
    assert leftovers(raw) == []


def test_failure_mid_download_keeps_previous_file(tmp_path, server, published):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    stale = raw / "train-images-idx3-ubyte.gz"
    stale.write_bytes(b"an older, invalid copy")  # wrong checksum: a download is attempted
    cut = serve(server, "cut", published, truncate=True)
    with pytest.raises(DownloadError, match="connection closed early"):
        MNIST(tmp_path, download=True, mirrors=[cut], timeout=60)
    assert stale.read_bytes() == b"an older, invalid copy"
    assert leftovers(raw) == []


def test_failure_while_writing_keeps_previous_file(tmp_path, server, published, monkeypatch):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    target = raw / "train-labels-idx1-ubyte.gz"
    target.write_bytes(b"previous")

    def disk_full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(mnist.os, "fsync", disk_full)
    good = serve(server, "good", published)
    with pytest.raises(DownloadError, match="No space left on device"):
        download_file("train-labels-idx1-ubyte.gz", raw, [good],
                      md5(published["train-labels-idx1-ubyte.gz"]), timeout=60)
    assert target.read_bytes() == b"previous"
    assert leftovers(raw) == []


def test_all_mirrors_failing_lists_what_was_tried(tmp_path, server, published):
    with socket.socket() as s:  # a port on which nothing listens
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    mirrors = [f"{server.url}/nothing", f"http://127.0.0.1:{closed_port}/",
               "ftp://127.0.0.1/mnist/"]
    with pytest.raises(DownloadError) as info:
        MNIST(tmp_path, download=True, mirrors=mirrors, timeout=60)
    message = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz from any mirror" in message
    assert f"{server.url}/nothing/train-images-idx3-ubyte.gz: HTTP 404" in message
    assert f"http://127.0.0.1:{closed_port}/train-images-idx3-ubyte.gz: unreachable" in message
    assert "unsupported URL scheme 'ftp'" in message
    assert len(info.value.attempts) == 3
    assert leftovers(tmp_path / "MNIST" / "raw") == []


def test_unpacked_files_need_no_download(tmp_path, server, published):
    write_split_files(tmp_path / "MNIST" / "raw", gz=())
    ds = MNIST(tmp_path, download=True, mirrors=[f"{server.url}/none/"], timeout=60)
    assert len(ds) == 10 and server.log == []


def test_download_argument_checks(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="mirrors must be a non-empty list"):
        download_file("x.gz", tmp_path, "http://127.0.0.1/", "0" * 32)
    monkeypatch.delitem(mnist.CHECKSUMS["MNIST"], "train-images-idx3-ubyte.gz")
    with pytest.raises(ValueError, match="no checksum for train-images-idx3-ubyte.gz"):
        MNIST(tmp_path, download=True, mirrors=["http://127.0.0.1:9/"])


def test_real_tables_are_complete():
    for name in ("MNIST", "FashionMNIST"):
        assert set(mnist.CHECKSUMS[name]) == {f + ".gz" for f in FILES}
        assert all(len(h) == 32 and int(h, 16) >= 0 for h in mnist.CHECKSUMS[name].values())
        assert mnist.MIRRORS[name] and all(m.startswith("http") for m in mnist.MIRRORS[name])
