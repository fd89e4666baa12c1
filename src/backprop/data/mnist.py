"""MNIST and Fashion-MNIST read from the standard IDX files, with verified downloads.

Files live where torchvision puts them, ``root/MNIST/raw/`` (``root/FashionMNIST/raw/``):
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``
and ``t10k-labels-idx1-ubyte``, each either plain or gzipped (``.gz``, as published).

``download=True`` fetches the missing ``.gz`` files with the standard library's
``urllib``, trying the mirrors of ``MIRRORS[name]`` in order (or those passed as
``mirrors=``). Each file is written to a temporary name in the same folder, checked
against the MD5 in ``CHECKSUMS[name]``, flushed to disk and renamed into place, so an
interrupted or corrupted download never leaves a partial file behind and never
replaces a good one.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request
import zlib

import numpy as np

from backprop.data.dataset import Dataset
from backprop.errors import BackpropError, IndexOutOfRange, ShapeError
from backprop.serialization import atomic_write
from backprop.tensor import _make

__all__ = [
    "CHECKSUMS", "MIRRORS", "DownloadError", "FashionMNIST", "IDXFormatError", "MNIST",
    "download_file", "read_idx", "write_idx",
]

# Mirrors are tried in order; each holds the four published .gz files.
MIRRORS = {
    "MNIST": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "FashionMNIST": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

# MD5 of each published file (the same files torchvision verifies).
CHECKSUMS = {
    "MNIST": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "FashionMNIST": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

_SPLITS = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class IDXFormatError(BackpropError, ValueError):
    """A file that is not a well-formed IDX file (bad magic, unknown type, truncated)."""


class DownloadError(BackpropError, RuntimeError):
    """No mirror gave a file with the right checksum; ``attempts`` lists (url, reason)."""

    def __init__(self, message: str, attempts=()):
        super().__init__(message)
        self.attempts = list(attempts)


# -- IDX files --------------------------------------------------------------------------------
# IDX type codes (the third byte of the magic number); values are stored big-endian.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8"),
}
_IDX_CODES = {d.newbyteorder("="): code for code, d in _IDX_DTYPES.items()}


def _parse_idx(raw: bytes, name: str) -> np.ndarray:
    if len(raw) < 4:
        raise IDXFormatError(f"{name}: not an IDX file: {len(raw)} bytes, shorter than the "
                             f"4-byte magic number")
    if raw[0] != 0 or raw[1] != 0:
        raise IDXFormatError(f"{name}: not an IDX file: the magic number {raw[:4].hex()} "
                             f"does not start with two zero bytes")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise IDXFormatError(f"{name}: unknown IDX data type code 0x{code:02x} (expected one "
                             f"of {', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)})")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXFormatError(f"{name}: truncated IDX header: {ndim} dimensions need "
                             f"{header} bytes, the file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_DTYPES[code]
    count = int(np.prod(shape, dtype=np.int64))
    expected, found = count * dtype.itemsize, len(raw) - header
    if found < expected:
        raise IDXFormatError(f"{name}: truncated IDX file: shape {shape} of {dtype.name} needs "
                             f"{expected} bytes of data, found {found}")
    if found > expected:
        raise IDXFormatError(f"{name}: corrupt IDX file: {found - expected} bytes beyond the "
                             f"{expected} that shape {shape} of {dtype.name} needs")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def read_idx(path) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a NumPy array of its own shape and type.

    Raises ``IDXFormatError`` naming the file when it is corrupt or truncated.

    Example::

        images = read_idx("data/MNIST/raw/t10k-images-idx3-ubyte.gz")   # (10000, 28, 28) uint8
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":  # the gzip magic number
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise IDXFormatError(f"{path}: corrupt or truncated gzip data: {e}") from None
    return _parse_idx(raw, path)


def write_idx(path, array) -> None:
    """Write an array as an IDX file (gzipped when ``path`` ends in ``.gz``), atomically.

    Example::

        write_idx("labels-idx1-ubyte.gz", np.array([3, 1, 4], dtype=np.uint8))
    """
    arr = np.asarray(array)
    code = _IDX_CODES.get(arr.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: IDX files can't hold dtype {arr.dtype} (supported: uint8, "
                        f"int8, int16, int32, float32, float64)")
    if arr.ndim > 255:
        raise ShapeError(f"write_idx: IDX files hold at most 255 dimensions, got {arr.ndim}")
    payload = (bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
               + arr.astype(_IDX_DTYPES[code]).tobytes())
    path = os.fspath(path)
    if path.endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    atomic_write(path, lambda fh: fh.write(payload), "write_idx")


# -- downloads --------------------------------------------------------------------------------
def _md5(path: str) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _ChecksumMismatch(Exception):
    pass


def _fetch(url: str, dest: str, md5: str, timeout: float) -> None:
    """Download ``url`` into place at ``dest``, all-or-nothing, verifying its checksum."""
    def stream(out) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "backprop"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            expected = response.headers.get("Content-Length")
            h, size = hashlib.md5(usedforsecurity=False), 0
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                out.write(chunk)
                size += len(chunk)
        if expected is not None and expected.isdigit() and size != int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - size)
        if h.hexdigest() != md5:
            raise _ChecksumMismatch(f"checksum mismatch: MD5 {h.hexdigest()}, expected {md5}")

    atomic_write(dest, stream, "download")


def _reason(e: BaseException) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"unreachable ({e.reason})"
    if isinstance(e, http.client.IncompleteRead):
        return f"connection closed early ({e.expected} bytes missing)"
    return str(e) or type(e).__name__


def download_file(filename: str, folder, mirrors, md5: str, timeout: float = 30.0) -> str:
    """Download ``filename`` from the first mirror that serves it with MD5 ``md5``.

    The file is written to ``folder/filename`` atomically; a failed or corrupted
    download leaves no partial file and leaves any existing file untouched.

    Args:
        filename: the file's name on the mirrors and on disk.
        folder: where to put it (created if missing).
        mirrors: base URLs (http, https or file), tried in order.
        md5: the expected MD5, in hex.
        timeout: seconds to wait for each mirror to answer.

    Returns:
        The path of the downloaded file.

    Raises:
        DownloadError: every mirror failed; the message lists each URL and why.
    """
    if isinstance(mirrors, str) or not mirrors:
        raise ValueError(f"download_file: mirrors must be a non-empty list of URLs, got "
                         f"{mirrors!r}")
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    dest = os.path.join(folder, filename)
    attempts = []
    for mirror in mirrors:
        url = urllib.parse.urljoin(mirror if mirror.endswith("/") else mirror + "/", filename)
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme not in ("http", "https", "file"):
            attempts.append((url, f"unsupported URL scheme {scheme!r}"))
            continue
        print(f"downloading {url}", file=sys.stderr)
        try:
            _fetch(url, dest, md5, timeout)
            return dest
        except (OSError, http.client.HTTPException, _ChecksumMismatch, ValueError) as e:
            # URLError and timeouts are OSErrors; HTTPException covers broken responses
            attempts.append((url, _reason(e)))
    tried = "\n".join(f"  {url}: {why}" for url, why in attempts)
    raise DownloadError(f"could not download {filename} from any mirror; tried:\n{tried}",
                        attempts)


# -- the datasets -----------------------------------------------------------------------------
def _scale(images: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1]; the same arithmetic for one image or a batch."""
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


class MNIST(Dataset):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images of 28x28.

    Sample ``i`` is ``(image, label)``: a float32 tensor in [0, 1] of shape (1, 28, 28)
    (or (784,) with ``flatten=True``) and a Python int (collated into int64 batches),
    after ``transform`` and ``target_transform``. The whole split is parsed into one
    array when the dataset is built; ``data`` (uint8, (n, 28, 28)) and ``targets``
    (int64) hold it, as in torchvision.

    Args:
        root: the folder holding ``MNIST/raw/`` (see the module docstring).
        train: the training split (else the test split).
        transform: applied to each image tensor.
        target_transform: applied to each label.
        download: fetch missing files from the mirrors (verified by checksum).
        flatten: images as 784 features instead of (1, 28, 28).
        mirrors: base URLs to try instead of ``MIRRORS[name]``.
        timeout: seconds to wait for a mirror.

    Example::

        train = MNIST("data", train=True, download=True)
        loader = DataLoader(train, batch_size=128, shuffle=True)
    """

    name = "MNIST"
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five",
               "6 - six", "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root, train: bool = True, transform=None, target_transform=None,
                 download: bool = False, *, flatten: bool = False, mirrors=None,
                 timeout: float = 30.0):
        if transform is not None and not callable(transform):
            raise TypeError(f"{self.name}: transform must be callable, got "
                            f"{type(transform).__name__}")
        if target_transform is not None and not callable(target_transform):
            raise TypeError(f"{self.name}: target_transform must be callable, got "
                            f"{type(target_transform).__name__}")
        self.root = os.path.expanduser(os.fspath(root))
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        self.flatten = bool(flatten)
        image_file, label_file = _SPLITS[self.train]
        image_path = self._locate(image_file, download, mirrors, timeout)
        label_path = self._locate(label_file, download, mirrors, timeout)
        images, labels = read_idx(image_path), read_idx(label_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXFormatError(f"{image_path}: expected uint8 images of shape (n, rows, "
                                 f"cols), got {images.dtype} of shape {images.shape}")
        if labels.ndim != 1:
            raise IDXFormatError(f"{label_path}: expected labels of shape (n,), got shape "
                                 f"{labels.shape}")
        if len(images) != len(labels):
            raise ShapeError(f"{self.name}: {len(images)} images in {image_path} but "
                             f"{len(labels)} labels in {label_path}")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise IDXFormatError(f"{label_path}: labels must be in 0..{len(self.classes) - 1}, "
                                 f"found {int(labels.min())}..{int(labels.max())}")
        self._images = images
        self._labels = labels.astype(np.int64)
        self._sample_shape = (-1,) if self.flatten else (1,) + images.shape[1:]
        self.data = _make(images)
        self.targets = _make(self._labels)

    @property
    def raw_folder(self) -> str:
        return os.path.join(self.root, self.name, "raw")

    @property
    def class_to_idx(self) -> dict:
        return {c: i for i, c in enumerate(self.classes)}

    def _locate(self, base: str, download: bool, mirrors, timeout: float) -> str:
        """The path of file ``base`` (plain or .gz), downloading it when asked."""
        plain = os.path.join(self.raw_folder, base)
        gz = plain + ".gz"
        if download:
            if os.path.exists(plain) and not os.path.exists(gz):
                return plain  # already downloaded and unpacked by hand (or by torchvision)
            table = CHECKSUMS[self.name]
            md5 = table.get(base + ".gz")
            if md5 is None:
                raise ValueError(f"{self.name}: no checksum for {base}.gz in "
                                 f"CHECKSUMS[{self.name!r}]; can't verify a download")
            if os.path.exists(gz) and _md5(gz) == md5:
                return gz
            chosen = MIRRORS[self.name] if mirrors is None else list(mirrors)
            return download_file(base + ".gz", self.raw_folder, chosen, md5, timeout)
        for path in (plain, gz):
            if os.path.exists(path):
                return path
        raise FileNotFoundError(f"{self.name}: {base} (or {base}.gz) not found in "
                                f"{self.raw_folder}; pass download=True to download it")

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index):
        n = len(self._labels)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"{self.name}: index must be an int, got {type(index).__name__}")
        if not -n <= index < n:
            raise IndexOutOfRange(f"{self.name}: index {index} is out of range for "
                                  f"{n} images")
        image = _make(_scale(self._images[index]).reshape(self._sample_shape))
        target = int(self._labels[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return image, target

    def _batch_fetcher(self):
        """Whole batches by one indexing, when no per-sample transform has to run."""
        if self.transform is not None or self.target_transform is not None:
            return None
        images, labels = self._images, self._labels
        shape = (-1,) + ((images[0].size,) if self.flatten else (1,) + images.shape[1:])

        def fetch(indices: np.ndarray) -> list:
            return [_make(_scale(images[indices]).reshape(shape)), _make(labels[indices])]
        return fetch

    def __repr__(self) -> str:
        return (f"Dataset {self.name}\n    Number of datapoints: {len(self)}\n"
                f"    Root location: {self.root}\n    Split: {'Train' if self.train else 'Test'}")


class FashionMNIST(MNIST):
    """Fashion-MNIST: Zalando's 28x28 clothing images, a drop-in replacement for MNIST.

    Same arguments and layout as :class:`MNIST`, under ``root/FashionMNIST/raw/``.

    Example::

        test = FashionMNIST("data", train=False, download=True)
    """

    name = "FashionMNIST"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
