"""Saving and loading tensors, state dicts and training checkpoints, safely.

Every file is a standard `safetensors <https://github.com/huggingface/safetensors>`_
file, written by this module itself (no dependency)::

    8 bytes        little-endian unsigned length N of the header
    N bytes        JSON header: {"__metadata__": {str: str},
                                 name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}, ...}
                   padded with spaces so the tensor bytes start 8-byte aligned
    the rest       the raw little-endian bytes of every tensor, back to back

:func:`save_file` / :func:`load_file` read and write flat ``{name: tensor}`` dicts,
exactly as the ``safetensors`` package does, so either side can read the other's
files. :func:`save` / :func:`load` (``backprop.save`` / ``backprop.load``) store any
nesting of dicts, lists, tuples, tensors, NumPy arrays and Python scalars, e.g. a
model's ``state_dict()``, an optimizer's ``state_dict()`` (integer keys), or a
whole training checkpoint. Tensors go into the safetensors body, named after where
they sit (``"model.0.weight"``, ``"optimizer.state.0.exp_avg"``); the structure
around them goes into the metadata entry ``"backprop.structure"`` as JSON that
records what plain JSON would lose: integer and tuple keys, tuples, OrderedDicts,
NaN and infinite floats, NumPy scalars, ``requires_grad``, and which objects were
the same tensor.

The structure is JSON in which ``null``, ``true``/``false``, strings, integers (any
size), finite floats and arrays (Python lists) stand for themselves, and every JSON
object is a node tagged by its ``"@"`` entry:

- ``{"@": "dict", "items": [[key, value], ...], "ordered": true}`` (``ordered`` only for
  an ``OrderedDict``; keys are nodes too: str, int, float, bool, null or tuple);
- ``{"@": "tuple", "items": [...]}``;
- ``{"@": "tensor", "name": "model.0.weight", "requires_grad": true}`` and
  ``{"@": "ndarray", "name": ...}``: the safetensors entry of that name;
- ``{"@": "float", "value": "nan" | "inf" | "-inf"}``;
- ``{"@": "numpy_scalar", "dtype": "float32", "value": 0.5}``;
- ``{"@": "dtype", "name": "float64"}`` (a backprop dtype).

The metadata entry ``"backprop.version"`` (now ``"1"``) versions this schema.

Integrity: :func:`save` also stores ``"backprop.sha256"``, a JSON object mapping each
tensor's name to the SHA-256 of its bytes in the file, and every reader here checks a
tensor against it when it reads the tensor's bytes, so a bit flip on disk or in
transfer raises a :class:`SerializationError` naming the file and the tensor instead
of loading wrong numbers. Files without the entry (those of other safetensors tools,
and of :func:`save_file`, which writes exactly what the ``safetensors`` package
would) load unchecked.

Safety: loading reads JSON and raw bytes only. Nothing is unpickled, imported or
evaluated, so a file from an untrusted source can at worst fail to load, with a
:class:`SerializationError` that names the file and the problem.

Atomicity: a path is written to a temporary file in the same folder, flushed and
fsynced, then renamed over the target, so a crash mid-write leaves the previous
file at that path as it was. The temporary file's name carries the writer's process
id and host, so that a later write of the same path can remove the temporaries of
writers that were killed mid-write (and only those).

Example::

    import backprop
    backprop.save({"w": backprop.ones(2, 3), "step": 7}, "ckpt.safetensors")
    backprop.load("ckpt.safetensors")     # {'w': tensor([[1., 1., 1.], ...]), 'step': 7}
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import secrets
import socket
import struct
import time

import numpy as np

from backprop import dtypes as _dt
from backprop.errors import BackpropError
from backprop.tensor import Tensor, _make

__all__ = ["SerializationError", "TensorInfo", "inspect", "load", "load_file", "save", "save_file"]


class SerializationError(BackpropError, ValueError):
    """A file that is not a valid safetensors/backprop file, or an object :func:`save` can't store.

    The message names the file (or the place in the object) and the problem.
    """


# safetensors dtype codes <-> NumPy dtypes (always little-endian in the file).
_CODE_TO_NP: dict[str, np.dtype] = {
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"), "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
_NP_TO_CODE = {(d.kind, d.itemsize): code for code, d in _CODE_TO_NP.items()}
# Codes of the safetensors spec that backprop has no dtype for: named in the error.
_OTHER_CODES = {"BF16", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3", "F6_E3M2",
                "U16", "U32", "U64", "C64"}

_HEADER_LIMIT = 100_000_000  # the safetensors package refuses larger headers; so do we
_STRUCTURE_KEY = "backprop.structure"
_VERSION_KEY = "backprop.version"
_CHECKSUM_KEY = "backprop.sha256"   # JSON {tensor name: SHA-256 hex digest of its bytes}
_OWN_KEYS = (_STRUCTURE_KEY, _CHECKSUM_KEY)  # backprop's bookkeeping, not shown by inspect()
_FORMAT_VERSION = "1"
_TAG = "@"  # every JSON object in the structure is a tagged node: {"@": kind, ...}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """What :func:`inspect` reports about one stored tensor, without reading its bytes.

    ``dtype`` is the backprop dtype name (``"float32"``), ``kind`` is ``"tensor"`` or
    ``"ndarray"`` (what :func:`load` gives back), ``offset`` is where its bytes start
    in the file.
    """

    name: str
    dtype: str
    shape: tuple
    nbytes: int
    offset: int
    kind: str = "tensor"
    requires_grad: bool = False

    def __repr__(self) -> str:
        dims = ", ".join(str(s) for s in self.shape)
        return f"TensorInfo({self.name!r}, {self.dtype}[{dims}])"


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------
def save(obj, f) -> None:
    """Save a tensor, array or nested structure of them to ``f`` (a path or binary file).

    Args:
        obj: a ``Tensor``, a NumPy array, or any nesting of ``dict`` / ``OrderedDict``
            (keys: str, int, float, bool, None or tuples of them), ``list``, ``tuple``,
            tensors, arrays, NumPy scalars, backprop dtypes and Python ``int``, ``float``,
            ``bool``, ``None``, ``str``. For example a ``state_dict()``, an optimizer's
            ``state_dict()`` or ``{"model": ..., "optimizer": ..., "epoch": 3,
            "rng": backprop.get_rng_state()}``.
        f: a path (``str`` / ``os.PathLike``), written atomically, or a writable binary
            file object, written in place from its current position.

    Tensors are stored by value (not their ``grad`` or graph), with ``requires_grad``;
    a tensor that appears twice is stored once and loads as one object twice. Dict
    subclasses other than ``OrderedDict`` are stored as ``dict``, named tuples as ``tuple``.

    Example::

        backprop.save(model.state_dict(), "model.safetensors")
    """
    encoder = _Encoder()
    structure = encoder.encode(obj)
    try:
        structure_json = json.dumps(structure, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise SerializationError("save: the object is nested too deeply to store") from None
    except ValueError as e:  # e.g. an int with more digits than Python will print
        raise SerializationError(f"save: can't write the object's structure as JSON: {e}") from None
    metadata = {_VERSION_KEY: _FORMAT_VERSION, _STRUCTURE_KEY: structure_json,
                _CHECKSUM_KEY: json.dumps({name: _sha256(arr) for name, arr
                                           in encoder.tensors.items()}, separators=(",", ":"))}
    _write(f, encoder.tensors, metadata, "save")


def load(f, map_location=None, pickle_module=None, *, weights_only=None, mmap=None):
    """Load what :func:`save` wrote; tensors come back as CPU ``Tensor`` s.

    Args:
        f: a path or a readable binary file object.
        map_location: accepted for PyTorch compatibility. backprop runs on the CPU, so
            ``None``, ``"cpu"``, a device whose ``str`` is ``"cpu"``, a dict mapping
            locations to ``"cpu"`` and callables (``lambda storage, loc: storage``) all
            mean "load on the CPU"; any other device raises ``ValueError``.
        pickle_module: must be None: backprop never unpickles.
        weights_only: accepted for PyTorch compatibility. Loading never unpickles or runs
            anything, so it is always as safe as ``torch.load(weights_only=True)``;
            ``weights_only=False`` does not turn unpickling on (a pickle is still refused).
        mmap: accepted for PyTorch compatibility and ignored.

    Returns the saved object with the same container types, key types and scalar
    types. Tensors come back as ``Tensor`` (with their ``requires_grad``; an
    ``nn.Parameter`` comes back as a plain tensor requiring grad), NumPy arrays as NumPy
    arrays, each with its dtype, shape and values bit for bit. A plain safetensors file
    written by another program loads as a flat ``{name: Tensor}`` dict.

    Raises:
        SerializationError: ``f`` is not a valid file (the message names it and says
            why), including PyTorch ``.pt`` pickles, which are refused unopened, and a
            tensor whose bytes do not match the checksum :func:`save` stored.

    Example::

        model.load_state_dict(backprop.load("model.safetensors"))
    """
    del mmap  # always read into memory
    if pickle_module is not None:
        raise SerializationError("load: pickle_module is not supported: backprop.load never "
                                 "unpickles, because unpickling can run arbitrary code")
    _check_map_location(map_location)
    try:
        return _load(f)
    except SerializationError as e:
        if weights_only is False and "pickle" in str(e):
            raise SerializationError(f"{e}. (weights_only=False does not change this: "
                                     f"backprop.load never unpickles.)") from None
        raise


def _load(f):
    """The work of ``load`` once its arguments are checked."""
    with _Source(f, "load") as src:
        header = _read_header(src)
        structure = _parse_structure(src, header)
        if structure is None:
            return {name: _make(_read_array(src, info, header.checksums.get(name)))
                    for name, info in header.tensors.items()}
        return _Decoder(src, header, _LoadedTensors(src, header)).decode(structure)


def save_file(tensors: dict, path, metadata: dict | None = None) -> None:
    """Save a flat ``{name: tensor}`` dict as a safetensors file (``safetensors``' own name).

    Args:
        tensors: ``str`` names to ``Tensor`` s or NumPy arrays.
        path: a path (written atomically) or a writable binary file object.
        metadata: optional ``str`` -> ``str`` entries for the header's ``__metadata__``.

    The file holds no checksum (``safetensors`` writes none, and this writes what it
    would); :func:`save` stores one.

    Example::

        save_file({"weight": backprop.ones(2, 2)}, "w.safetensors", metadata={"format": "pt"})
    """
    if not isinstance(tensors, dict):
        raise TypeError(f"save_file: tensors must be a dict of name -> Tensor, "
                        f"got {type(tensors).__name__}")
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError(f"save_file: metadata must be a dict of str -> str, got {metadata!r:.200}")
    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"save_file: tensor names must be str, got {name!r} "
                            f"({type(name).__name__})")
        if name == "__metadata__":
            raise SerializationError("save_file: '__metadata__' is reserved by the safetensors "
                                     "format and can't name a tensor")
        if isinstance(value, Tensor):
            arrays[name] = _file_array(value._data, repr(name), "save_file")
        elif isinstance(value, np.ndarray):
            arrays[name] = _file_array(value, repr(name), "save_file")
        else:
            raise TypeError(f"save_file: {name!r} must be a Tensor or a NumPy array, "
                            f"got {type(value).__name__}")
    _write(path, arrays, metadata, "save_file")


def load_file(path) -> dict:
    """Load every tensor of a safetensors file as a flat ``{name: Tensor}`` dict, in header order.

    Works on any safetensors file with backprop's dtypes, including those written by
    :func:`save` (the structure is then ignored: use :func:`load` for it).

    Example::

        weights = load_file("w.safetensors")    # {'weight': tensor([[1., 1.], [1., 1.]])}
    """
    with _Source(path, "load_file") as src:
        header = _read_header(src)
        return {name: _make(_read_array(src, info, header.checksums.get(name)))
                for name, info in header.tensors.items()}


def inspect(path) -> dict:
    """Describe a safetensors file from its header alone, without reading tensor bytes.

    Returns a dict with

    - ``"tensors"``: ``{name: TensorInfo}`` (dtype, shape, nbytes, offset) in header order;
    - ``"metadata"``: the header's ``__metadata__`` entries, less backprop's structure and
      checksum entries;
    - ``"structure"``: for a file written by :func:`save`, the saved object rebuilt with a
      :class:`TensorInfo` in place of each tensor or array (so ``["epoch"]`` reads the
      epoch of a checkpoint); ``None`` for a plain safetensors file;
    - ``"header_bytes"`` and ``"file_bytes"``: the sizes.

    Example::

        info = inspect("ckpt.safetensors")
        info["structure"]["epoch"], info["tensors"]["model.0.weight"].shape
    """
    with _Source(path, "inspect") as src:
        header = _read_header(src)
        structure = _parse_structure(src, header)
        rebuilt = None
        if structure is not None:
            rebuilt = _Decoder(src, header, _Placeholders(header)).decode(structure)
        metadata = {k: v for k, v in header.metadata.items() if k not in _OWN_KEYS}
        return {"tensors": dict(header.tensors), "metadata": metadata, "structure": rebuilt,
                "header_bytes": header.header_bytes, "file_bytes": header.file_bytes}


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _file_array(arr: np.ndarray, where: str, fn: str = "save") -> np.ndarray:
    """``arr`` as a C-contiguous little-endian array of a dtype the format has."""
    code = _NP_TO_CODE.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None or arr.dtype.kind not in "biuf":
        raise SerializationError(
            f"{fn}: {where} has dtype {arr.dtype}, which backprop can't store; supported: "
            f"{', '.join(sorted(_dt._BY_NAME))}")
    target = _CODE_TO_NP[code]
    if arr.dtype != target or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=target)  # copies only transposed/big-endian input
    return arr


def _write(f, arrays: dict, metadata: dict, fn: str) -> None:
    """Write ``arrays`` (name -> contiguous LE array) and ``metadata`` as a safetensors file."""
    header, order = _build_header(arrays, metadata, fn)
    if isinstance(f, (str, bytes, os.PathLike)):
        _atomic_write(os.fsdecode(f), header, order, fn)
    elif hasattr(f, "write"):
        _write_body(f, header, order)
        if hasattr(f, "flush"):
            f.flush()
    else:
        raise TypeError(f"{fn}: f must be a path or a writable binary file object, "
                        f"got {type(f).__name__}")


def _build_header(arrays: dict, metadata: dict, fn: str):
    """The padded header bytes and the arrays in body order."""
    # Store the widest dtypes first so every tensor starts at a multiple of its item
    # size (the header is padded to 8 bytes), as the safetensors package does:
    # memory-mapping readers then get aligned data. The header keeps the given order.
    order = sorted(arrays.items(), key=lambda item: -item[1].dtype.itemsize)
    entries = {}
    offset = 0
    for name, arr in order:
        entries[name] = {"dtype": _NP_TO_CODE[(arr.dtype.kind, arr.dtype.itemsize)],
                         "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    header = {"__metadata__": metadata} if metadata else {}
    for name in arrays:
        header[name] = entries[name]
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 8)
    if len(text) > _HEADER_LIMIT:
        raise SerializationError(
            f"{fn}: the header would be {len(text):,} bytes, over the safetensors limit of "
            f"{_HEADER_LIMIT:,}; store long lists of numbers as NumPy arrays or tensors")
    return struct.pack("<Q", len(text)) + text, [arr for _, arr in order]


def _sha256(arr: np.ndarray) -> str:
    """The SHA-256 hex digest of an array's bytes as they are stored in the file."""
    return hashlib.sha256(arr.reshape(-1).view(np.uint8).data).hexdigest()


def _write_body(fh, header: bytes, arrays: list) -> None:
    fh.write(header)
    for arr in arrays:
        if arr.nbytes:
            # A byte view of the array: written without a tobytes() copy.
            fh.write(arr.reshape(-1).view(np.uint8).data)


def _atomic_write(path: str, header: bytes, arrays: list, fn: str) -> None:
    """Write the safetensors header and body to ``path`` all-or-nothing."""
    atomic_write(path, lambda fh: _write_body(fh, header, arrays), fn)


def atomic_write(path, write, fn: str = "write") -> None:
    """Write a file all-or-nothing: a crash or an error leaves the previous file intact.

    ``write(fh)`` fills a new temporary file beside ``path`` (opened for binary
    writing); the file is flushed and fsynced, renamed over ``path``, and the rename
    made durable. If ``write`` raises (a failed download, a checksum that does not
    match, Ctrl-C), the temporary file is removed and ``path`` is untouched.

    A process killed mid-write (SIGKILL, power loss) cannot remove its temporary file.
    The name of the file says which process on which host wrote it
    (``.NAME.PID-HOST.RANDOM.tmp``), so the next write of ``path`` removes those whose
    writer is no longer running: never the file of a write still in progress, here or
    in another live process.

    Example::

        atomic_write("out.bin", lambda fh: fh.write(b"payload"))
    """
    path = os.fsdecode(path)  # (a bytes path too)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{fn}: can't write {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{fn}: can't write {path!r}: it is a folder")
    base = os.path.basename(path)
    _remove_stale_temporaries(folder, base)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{base}.{os.getpid()}-{_host_tag()}."
                                   f"{secrets.token_hex(6)}.tmp")
        try:
            # 0o666 lets the process umask decide the final permissions, as open() would.
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:  # pragma: no cover (a 48-bit random name collided)
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # including KeyboardInterrupt: never leave the temp file behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_folder(folder)


def atomic_write_text(path, text: str, fn: str = "write") -> None:
    """Write ``text`` as UTF-8 to ``path`` all-or-nothing: :func:`atomic_write` for text.

    Example::

        atomic_write_text("config.json", json.dumps({"lr": 0.1}) + "\n")
    """
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data), fn)


# -- NaN and infinities in JSON ---------------------------------------------------------------
# JSON has no NaN or infinity. backprop writes them one of two ways, one per kind of file:
#
# - "string", the files backprop writes and reads back (metrics.jsonl, history.json,
#   diagnostics.jsonl, a checkpoint's history columns, the doctor's report): the strings
#   "nan", "inf", "-inf", read back as floats by json_restore_nonfinite(). A NaN loss is the
#   very thing a reader looks for, so it must stay a NaN (null would read as "missing"),
#   and the runs already on disk use these strings.
# - "null", the lab's messages to the browser (a page draws null as a gap and does no
#   arithmetic on a string) and a sweep's sweep.json / sweep.jsonl (written so since the
#   first sweep: a diverged trial's loss is null there, its "diverged" field says why, and
#   the sweeps on disk must still load).
# save()'s own structure tags a non-finite float as {"@": "float", "value": "nan"}, with
# the same words.
NONFINITE_WORDS = ("nan", "inf", "-inf")


def nonfinite_word(x: float) -> str:
    """``"nan"``, ``"inf"`` or ``"-inf"`` for a non-finite float ``x``."""
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def json_safe(value, nonfinite: str = "string"):
    """``value`` with every non-finite float, at any depth, made strict JSON.

    Dicts (their keys made strings), lists and tuples (made lists) are walked; NumPy
    scalars become Python numbers. ``nonfinite`` is ``"string"`` (``"nan"``, ``"inf"``,
    ``"-inf"``) or ``"null"`` (None): see the note above on which file uses which.

    Example::

        json_safe({"loss": float("nan"), "acc": [0.5, float("inf")]})
        # {'loss': 'nan', 'acc': [0.5, 'inf']}
    """
    if nonfinite not in ("string", "null"):
        raise ValueError(f"json_safe: nonfinite must be 'string' or 'null', got {nonfinite!r}")
    return _json_safe(value, nonfinite == "null")


def _json_safe(value, null: bool):
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return None if null else nonfinite_word(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v, null) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, null) for v in value]
    if isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0):
        return _json_safe(value.item(), null)
    return value


def json_dumps(value, nonfinite: str = "string", **kwargs) -> str:
    """``json.dumps(json_safe(value, nonfinite), allow_nan=False, **kwargs)``, without the
    walk over ``value`` when every float in it is finite (the common case).

    Example::

        json_dumps({"loss": float("inf")})   # '{"loss": "inf"}'
    """
    try:
        return json.dumps(value, allow_nan=False, **kwargs)
    except (ValueError, TypeError):  # a NaN/Inf, or a NumPy scalar: make it plain
        return json.dumps(json_safe(value, nonfinite), allow_nan=False, **kwargs)


def json_restore_nonfinite(value):
    """Undo ``json_safe``'s ``"string"`` form for one value: ``"nan"``, ``"inf"`` and
    ``"-inf"`` become floats; anything else is returned as it is."""
    if isinstance(value, str) and value in NONFINITE_WORDS:
        return float(value)
    return value


# Temporaries of backprop versions that did not name the writer: removed once this old,
# when no write can plausibly still be filling them.
_UNNAMED_TEMP_AGE = 24 * 3600.0


def _host_tag() -> str:
    """8 hex digits naming this host, so that a shared folder (NFS) tells writers apart."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host; True whenever that can't be known."""
    if pid < 1 or os.name != "posix":
        return True  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by another user
        return True
    return True


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Remove temporaries of ``base`` left by writers that died mid-write.

    Only files named as :func:`atomic_write` names them are considered, and of those
    only the ones whose writer, on this host, is not running; the temporaries of this
    process (another thread may be writing) and of other hosts are left alone. Unnamed
    ones from older versions go once a day old. Errors are ignored: this is tidying.
    """
    named = re.compile(rf"\.{re.escape(base)}\.(\d{{1,10}})-([0-9a-f]{{8}})\.[0-9a-f]{{12}}\.tmp")
    unnamed = re.compile(rf"\.{re.escape(base)}\.[0-9a-f]{{12}}\.tmp")
    prefix, me, host = f".{base}.", os.getpid(), _host_tag()
    try:
        with os.scandir(folder) as entries:
            candidates = [e for e in entries if e.name.startswith(prefix)
                          and e.name.endswith(".tmp")]
        for entry in candidates:
            match = named.fullmatch(entry.name)
            if match is not None:
                pid = int(match.group(1))
                stale = match.group(2) == host and pid != me and not _pid_alive(pid)
            else:
                stale = unnamed.fullmatch(entry.name) is not None and \
                    time.time() - entry.stat(follow_symlinks=False).st_mtime > _UNNAMED_TEMP_AGE
            if stale and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:  # another writer removed it first
                    pass
    except OSError:
        pass


def _fsync_folder(folder: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders can't be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class _Encoder:
    """Turns an object into a JSON-able structure, collecting its tensors by name."""

    def __init__(self):
        self.tensors = {}          # name -> contiguous little-endian array, in visit order
        self._names = {}           # id(tensor or array) -> its name, for shared objects
        self._keep = []            # keeps ids unique while encoding
        self._active = set()       # ids of the containers on the current path: cycles

    def encode(self, obj):
        try:
            return self._node(obj, ())
        except RecursionError:
            raise SerializationError("save: the object is nested too deeply to store") from None

    def _node(self, obj, path):
        if obj is None:
            return None
        if isinstance(obj, Tensor):
            return self._array_node("tensor", obj, obj._data, path,
                                    {"requires_grad": True} if obj._requires_grad else {})
        if isinstance(obj, np.ndarray):
            return self._array_node("ndarray", obj, obj, path, {})
        if isinstance(obj, np.generic):  # before float: np.float64 subclasses float
            return self._numpy_scalar(obj, path)
        if isinstance(obj, (bool, int, str)):
            return _plain(obj)
        if isinstance(obj, float):
            return _float_node(float(obj))
        if isinstance(obj, _dt.dtype):
            return {_TAG: "dtype", "name": obj.name}
        if isinstance(obj, (dict, list, tuple)):
            if id(obj) in self._active:
                raise SerializationError(f"save: {_where(path)} contains itself (a reference "
                                         f"cycle), which can't be stored")
            self._active.add(id(obj))
            try:
                return self._container(obj, path)
            finally:
                self._active.discard(id(obj))
        kind = f"{type(obj).__module__}.{type(obj).__qualname__}"
        if callable(getattr(obj, "state_dict", None)) and hasattr(obj, "load_state_dict"):
            # A whole model or optimizer: PyTorch pickles it, which backprop never does
            # (loading a pickle can run any code). Its state_dict is what to store.
            name = ("optimizer" if hasattr(obj, "param_groups") else
                    "model" if hasattr(obj, "parameters") else "obj")
            raise SerializationError(
                f"save: can't store {_where(path)} of type {kind} as a whole object: backprop "
                f"stores tensors and plain data, never pickled objects (loading a pickle can "
                f"run any code). Save its state instead: backprop.save({name}.state_dict(), "
                f"path); to restore, build the {name} again and call "
                f"{name}.load_state_dict(backprop.load(path))")
        raise SerializationError(
            f"save: can't store {_where(path)} of type {kind}; backprop saves tensors, NumPy "
            f"arrays and scalars, dtypes, int, float, bool, None, str, and dicts, lists and "
            f"tuples of them")

    def _container(self, obj, path):
        if isinstance(obj, dict):
            items = []
            for key, value in obj.items():
                items.append([self._key(key, path), self._node(value, path + (key,))])
            node = {_TAG: "dict", "items": items}
            if type(obj) is collections.OrderedDict:
                node["ordered"] = True
            return node
        children = [self._node(value, path + (i,)) for i, value in enumerate(obj)]
        if isinstance(obj, tuple):
            return {_TAG: "tuple", "items": children}
        return children

    def _key(self, key, path):
        if key is None:
            return None
        if isinstance(key, np.generic):
            pass  # refused below: keep keys plain Python values
        elif isinstance(key, (bool, int, str)):
            return _plain(key)
        elif isinstance(key, float):
            return _float_node(float(key))
        elif type(key) is tuple:
            return {_TAG: "tuple", "items": [self._key(k, path) for k in key]}
        raise SerializationError(
            f"save: {_where(path)} has a key {key!r} of type {type(key).__name__}; dict keys "
            f"must be str, int, float, bool, None or tuples of them")

    def _array_node(self, kind, obj, arr, path, extra):
        name = self._names.get(id(obj))
        if name is None:
            name = self._new_name(path)
            self.tensors[name] = _file_array(arr, _where(path))
            self._names[id(obj)] = name
            self._keep.append(obj)
        return {_TAG: kind, "name": name, **extra}

    def _new_name(self, path) -> str:
        """A readable unique name from the path: ``("model", "0.weight")`` -> ``"model.0.weight"``."""
        name = ".".join(str(p) for p in path) or "tensor"
        if name == "__metadata__":
            name = "__metadata__.tensor"
        unique, n = name, 1
        while unique in self.tensors:
            n += 1
            unique = f"{name}#{n}"
        return unique

    def _numpy_scalar(self, obj, path):
        code = _NP_TO_CODE.get((obj.dtype.kind, obj.dtype.itemsize))
        if code is None or obj.dtype.kind not in "biuf":
            raise SerializationError(f"save: {_where(path)} is a NumPy {obj.dtype} scalar, which "
                                     f"backprop can't store")
        # The value as a Python number is exact for every supported dtype.
        value = obj.item()
        return {_TAG: "numpy_scalar", "dtype": _code_name(code),
                "value": _float_node(value) if isinstance(value, float) else value}


def _code_name(code: str) -> str:
    """The backprop dtype name of a safetensors dtype code: ``"F32"`` -> ``"float32"``."""
    return _dt.from_numpy_dtype(_CODE_TO_NP[code].newbyteorder("=")).name


def _plain(obj):
    """A str/bool/int subclass instance (an enum, say) as its plain Python value."""
    for base in (bool, int, str):
        if isinstance(obj, base):
            return base(obj)
    return obj  # pragma: no cover


def _float_node(x: float):
    """Finite floats are JSON numbers (repr round-trips exactly); others are tagged."""
    if math.isfinite(x):
        return x
    return {_TAG: "float", "value": nonfinite_word(x)}


def _where(path) -> str:
    """``obj['model']['0.weight']`` for error messages."""
    return "obj" + "".join(f"[{p!r}]" for p in path)


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------
class _Source:
    """An open input with a size, a name for messages and ``fail()``.

    A path is opened unbuffered and read with ``readinto`` straight into each new
    array; a file object is read whole into memory first (from its current position).
    """

    def __init__(self, f, fn: str):
        self.fn = fn
        self._owned: io.FileIO | None = None
        self.fh: io.FileIO | io.BytesIO
        if isinstance(f, (str, bytes, os.PathLike)):
            self.name = os.fsdecode(os.fspath(f))
            self._owned = open(f, "rb", buffering=0)  # FileNotFoundError etc. as usual
            self.fh = self._owned
            self.size = os.fstat(self.fh.fileno()).st_size
        elif hasattr(f, "read"):
            self.name = str(getattr(f, "name", "<file object>"))
            if isinstance(f, io.TextIOBase):
                raise TypeError(f"{fn}: the file {self.name!r} must be opened in binary mode "
                                f"('rb'), not text mode")
            data = f.read()
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise TypeError(f"{fn}: the file object must be opened in binary mode "
                                f"(read() returned {type(data).__name__})")
            self.fh = io.BytesIO(data)
            self.size = len(data)
        else:
            raise TypeError(f"{fn}: f must be a path or a readable binary file object, "
                            f"got {type(f).__name__}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._owned is not None:
            self._owned.close()

    def fail(self, problem: str):
        raise SerializationError(f"{self.fn}: {self.name!r}: {problem}")

    def read_exact(self, offset: int, n: int) -> bytes:
        self.fh.seek(offset)
        data = self.fh.read(n) if n else b""
        if len(data) != n:
            self.fail(f"file ended after {len(data)} of {n} bytes at offset {offset} "
                      f"(truncated or changed while reading?)")
        return data

    def read_into(self, offset: int, out: memoryview) -> None:
        self.fh.seek(offset)
        filled = 0
        while filled < len(out):
            got = self.fh.readinto(out[filled:])
            if not got:
                self.fail(f"file ended after {offset + filled} bytes while reading a tensor "
                          f"(truncated or changed while reading?)")
            filled += got


@dataclasses.dataclass
class _Header:
    tensors: dict          # name -> TensorInfo (offsets absolute in the file)
    metadata: dict
    header_bytes: int
    file_bytes: int
    checksums: dict        # name -> SHA-256 hex digest save() stored ({} for other files)


def _read_header(src: _Source) -> _Header:
    """Read and check the header: the format, every entry, and that the body is exactly covered."""
    if src.size < 8:
        _refuse_other_formats(src, src.read_exact(0, src.size))
        src.fail(f"file is {src.size} bytes, too short for a safetensors file "
                 f"(at least 8 bytes of header length)")
    first = src.read_exact(0, 8)
    (n,) = struct.unpack("<Q", first)
    if n > src.size - 8:
        # Only now: a valid header length can start with the same bytes as a pickle.
        _refuse_other_formats(src, first)
        src.fail(f"header length {n} goes beyond the end of the file ({src.size} bytes); "
                 f"not a safetensors file, or truncated")
    if n > _HEADER_LIMIT:
        src.fail(f"header length {n} is over the limit of {_HEADER_LIMIT} bytes")
    if n < 2:
        src.fail(f"header length {n} is too small for a JSON header")
    raw = src.read_exact(8, n)
    header = _parse_json(src, raw, "header")
    if not isinstance(header, dict):
        src.fail(f"header is JSON {type(header).__name__}, not an object of tensor entries")

    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        src.fail("header '__metadata__' must map strings to strings")

    body_start = 8 + n
    body_size = src.size - body_start
    tensors = {}
    for name, entry in header.items():
        begin, end, code, shape = _check_entry(src, name, entry)
        np_dtype = _CODE_TO_NP[code]
        nbytes = math.prod(shape) * np_dtype.itemsize
        if end - begin != nbytes:
            src.fail(f"tensor {name!r}: shape {shape} of {code} needs {nbytes} bytes but "
                     f"data_offsets [{begin}, {end}] hold {end - begin}")
        if end > body_size:
            src.fail(f"tensor {name!r}: data_offsets [{begin}, {end}] go beyond the "
                     f"{body_size} bytes of tensor data (truncated file?)")
        tensors[name] = TensorInfo(name, _code_name(code), tuple(shape), nbytes, body_start + begin)
    # The spec asks for the tensors to cover the body exactly: no gaps, no overlaps.
    covered = 0
    for info in sorted(tensors.values(), key=lambda t: (t.offset, t.nbytes)):
        begin = info.offset - body_start
        if begin != covered:
            problem = "overlaps the previous tensor" if begin < covered else "leaves a gap before it"
            src.fail(f"tensor {info.name!r}: data_offsets start at {begin}, which {problem} "
                     f"(expected {covered})")
        covered += info.nbytes
    if covered != body_size:
        src.fail(f"tensors hold {covered} bytes of data but the file has {body_size} after "
                 f"the header (trailing bytes or a changed file)")
    return _Header(tensors, metadata, n, src.size, _parse_checksums(src, metadata, tensors))


def _parse_checksums(src: _Source, metadata: dict, tensors: dict) -> dict:
    """The ``backprop.sha256`` entry: a digest for every tensor, or {} without the entry."""
    text = metadata.get(_CHECKSUM_KEY)
    if text is None:
        return {}
    what = f"metadata {_CHECKSUM_KEY!r}"
    checksums = _parse_json(src, text, what)
    if not isinstance(checksums, dict):
        src.fail(f"{what} must be a JSON object of tensor name -> SHA-256, got {_short(checksums)}")
    if set(checksums) != set(tensors):
        extra = sorted(set(checksums) - set(tensors))
        missing = sorted(set(tensors) - set(checksums))
        src.fail(f"{what} does not list the file's tensors (missing {_short(missing)}, "
                 f"not in the file {_short(extra)})")
    for name, digest in checksums.items():
        if not (isinstance(digest, str) and len(digest) == 64
                and all(c in "0123456789abcdef" for c in digest)):
            src.fail(f"{what}: tensor {name!r} has {_short(digest)}, not a SHA-256 hex digest")
    return checksums


def _check_entry(src: _Source, name: str, entry):
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        src.fail(f"tensor {name!r}: entry must be an object with exactly 'dtype', 'shape' and "
                 f"'data_offsets', got {_short(entry)}")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(code, str) or code not in _CODE_TO_NP:
        if isinstance(code, str) and code in _OTHER_CODES:
            src.fail(f"tensor {name!r}: dtype {code} is not supported by backprop (it reads "
                     f"{', '.join(_CODE_TO_NP)})")
        src.fail(f"tensor {name!r}: unknown dtype {_short(code)}")
    if not isinstance(shape, list) or not all(_is_count(s) for s in shape):
        src.fail(f"tensor {name!r}: shape must be a list of non-negative integers, "
                 f"got {_short(shape)}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(_is_count(o) for o in offsets) or offsets[0] > offsets[1]):
        src.fail(f"tensor {name!r}: data_offsets must be [begin, end] with 0 <= begin <= end, "
                 f"got {_short(offsets)}")
    return offsets[0], offsets[1], code, shape


def _is_count(x) -> bool:
    return type(x) is int and x >= 0


def _short(x) -> str:
    text = repr(x)
    return text if len(text) <= 80 else text[:77] + "..."


def _parse_json(src: _Source, raw: bytes, what: str):
    """Strict JSON: UTF-8, no NaN/Infinity literals, no duplicate keys."""
    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                src.fail(f"{what} has the key {_short(k)} twice")
            out[k] = v
        return out

    def no_constants(name):
        src.fail(f"{what} contains {name}, which is not JSON")

    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray)) else raw
        return json.loads(text, object_pairs_hook=pairs, parse_constant=no_constants)
    except SerializationError:
        raise
    except RecursionError:
        src.fail(f"{what} is nested too deeply")
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, too many int digits
        src.fail(f"{what} is not valid JSON: {e}")


def _refuse_other_formats(src: _Source, first: bytes) -> None:
    """Name the formats people will try to load by mistake, above all PyTorch's pickles."""
    advice = ("backprop.load never unpickles, because unpickling can run arbitrary code. "
              "Convert it once, in PyTorch, from a source you trust: "
              "safetensors.torch.save_file(torch.load(path), 'model.safetensors'), "
              "then load that with backprop.load")
    if first.startswith(b"PK\x03\x04"):
        src.fail(f"this is a ZIP archive: a PyTorch .pt/.pth file written by torch.save "
                 f"(or a NumPy .npz), not a safetensors file. {advice}")
    if len(first) >= 2 and first[0] == 0x80 and 2 <= first[1] <= 5:
        src.fail(f"this is a Python pickle (a legacy PyTorch .pt/.pth file?), not a "
                 f"safetensors file. {advice}")
    if first.startswith(b"\x93NUMPY"):
        src.fail("this is a NumPy .npy file, not a safetensors file; use numpy.load")


def _parse_structure(src: _Source, header: _Header):
    """The decoded-JSON structure of a file written by save(), or None for a plain file."""
    version = header.metadata.get(_VERSION_KEY)
    structure = header.metadata.get(_STRUCTURE_KEY)
    if structure is None:
        if version is not None:
            src.fail(f"metadata has {_VERSION_KEY!r} but no {_STRUCTURE_KEY!r}")
        return None
    if version != _FORMAT_VERSION:
        src.fail(f"written in backprop checkpoint format {_short(version)}; this backprop "
                 f"reads format {_FORMAT_VERSION} (a newer backprop may read it)")
    return _parse_json(src, structure, f"metadata {_STRUCTURE_KEY!r}")


def _read_array(src: _Source, info: TensorInfo, checksum: str | None = None) -> np.ndarray:
    """A new, writable, native-byte-order array holding one tensor's bytes.

    ``checksum``: the SHA-256 hex digest the bytes must have (None: not checked).
    """
    file_dtype = np.dtype(_dt.to_numpy_dtype(info.dtype)).newbyteorder("<")
    try:
        # Bools are read as bytes: a corrupted byte other than 0/1 must still be a bool.
        arr = np.empty(info.shape, np.uint8 if file_dtype.kind == "b" else file_dtype)
    except (ValueError, MemoryError, OverflowError) as e:
        src.fail(f"tensor {info.name!r}: can't allocate shape {info.shape}: {e}")
    if arr.nbytes:
        src.read_into(info.offset, arr.reshape(-1).view(np.uint8).data)
    if checksum is not None and _sha256(arr) != checksum:
        src.fail(f"tensor {info.name!r}: its {info.nbytes} bytes do not match the SHA-256 "
                 f"checksum stored when the file was saved; the file is damaged (a bit flip "
                 f"on disk or in transfer?) and its numbers can't be trusted")
    if file_dtype.kind == "b":
        return arr.astype(np.bool_)
    if not file_dtype.isnative:  # pragma: no cover (big-endian machines only)
        arr = arr.astype(file_dtype.newbyteorder("="))
    return arr


class _LoadedTensors:
    """Arrays read from the file on first reference; each name read once."""

    def __init__(self, src: _Source, header: _Header):
        self.src, self.header = src, header
        self.arrays: dict = {}
        self.objects: dict = {}   # (kind, name) -> the Tensor or array handed out: sharing survives

    def get(self, kind: str, name: str, requires_grad: bool):
        key = (kind, name)
        if key in self.objects:
            return self.objects[key]
        info = self.header.tensors[name]
        if name not in self.arrays:
            self.arrays[name] = _read_array(self.src, info, self.header.checksums.get(name))
        arr = self.arrays[name]
        if kind == "ndarray":
            obj = arr
        else:
            obj = _make(arr, requires_grad=requires_grad)
        self.objects[key] = obj
        return obj


class _Placeholders:
    """For inspect(): a TensorInfo where load() would read a tensor."""

    def __init__(self, header: _Header):
        self.header = header

    def get(self, kind: str, name: str, requires_grad: bool):
        return dataclasses.replace(self.header.tensors[name], kind=kind,
                                   requires_grad=requires_grad)


class _Decoder:
    """Rebuilds an object from the structure JSON, checking every node against the schema."""

    def __init__(self, src: _Source, header: _Header, tensors):
        self.src, self.header, self.tensors = src, header, tensors

    def decode(self, structure):
        try:
            return self._node(structure, "root")
        except RecursionError:
            self.src.fail("the stored structure is nested too deeply")

    def bad(self, where: str, problem: str):
        self.src.fail(f"stored structure at {where}: {problem}")

    def _node(self, node, where):
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, list):
            return [self._node(x, f"{where}[{i}]") for i, x in enumerate(node)]
        if not isinstance(node, dict):  # pragma: no cover (json gives no other types)
            self.bad(where, f"unexpected {type(node).__name__}")
        tag = node.get(_TAG)
        if tag == "dict":
            self._fields(node, where, {"items"}, {"ordered"})
            items = self._items(node, where)
            pairs = []
            for i, pair in enumerate(items):
                if not isinstance(pair, list) or len(pair) != 2:
                    self.bad(f"{where}.items[{i}]", f"expected a [key, value] pair, got {_short(pair)}")
                key = self._key(pair[0], f"{where}.items[{i}].key")
                pairs.append((key, self._node(pair[1], f"{where}[{key!r}]")))
            ordered = node.get("ordered", False)
            if not isinstance(ordered, bool):
                self.bad(where, f"'ordered' must be true or false, got {_short(ordered)}")
            return collections.OrderedDict(pairs) if ordered else dict(pairs)
        if tag == "tuple":
            self._fields(node, where, {"items"})
            return tuple(self._node(x, f"{where}[{i}]") for i, x in enumerate(self._items(node, where)))
        if tag in ("tensor", "ndarray"):
            self._fields(node, where, {"name"}, {"requires_grad"} if tag == "tensor" else set())
            name, requires_grad = node["name"], node.get("requires_grad", False)
            if not isinstance(name, str) or name not in self.header.tensors:
                self.bad(where, f"refers to a tensor {_short(name)} that is not in the file")
            if not isinstance(requires_grad, bool):
                self.bad(where, f"'requires_grad' must be true or false, got {_short(requires_grad)}")
            if requires_grad and not self.header.tensors[name].dtype.startswith("float"):
                self.bad(where, f"tensor {name!r} of dtype {self.header.tensors[name].dtype} is "
                                f"marked requires_grad, which only floating-point tensors can be")
            return self.tensors.get(tag, name, requires_grad)
        if tag == "float":
            self._fields(node, where, {"value"})
            value = node["value"]
            if value not in NONFINITE_WORDS:
                self.bad(where, f"a float node holds 'nan', 'inf' or '-inf', got {_short(value)}")
            return float(value)
        if tag == "numpy_scalar":
            self._fields(node, where, {"dtype", "value"})
            name = node["dtype"]
            if not isinstance(name, str) or name not in _dt._BY_NAME:
                self.bad(where, f"unknown dtype {_short(name)}")
            value = node["value"]
            if isinstance(value, dict):  # a non-finite float
                value = self._node(value, where)
            kind = _dt._BY_NAME[name].np.kind
            expected = {"b": bool, "i": int, "u": int, "f": float}[kind]
            if type(value) is not expected:
                self.bad(where, f"a NumPy {name} scalar needs a {expected.__name__} value, "
                                f"got {_short(value)}")
            try:
                with np.errstate(over="raise", invalid="ignore"):
                    return _dt._BY_NAME[name].np.type(value)
            except (OverflowError, FloatingPointError, ValueError, TypeError) as e:
                self.bad(where, f"value {_short(value)} does not fit {name}: {e}")
        if tag == "dtype":
            self._fields(node, where, {"name"})
            if not isinstance(node["name"], str) or node["name"] not in _dt._BY_NAME:
                self.bad(where, f"unknown dtype {_short(node['name'])}")
            return _dt._BY_NAME[node["name"]]
        self.bad(where, f"unknown node {_short(node)}")

    def _key(self, node, where):
        if node is None or isinstance(node, (bool, str, int, float)):
            return node
        if isinstance(node, dict) and node.get(_TAG) == "float":
            return self._node(node, where)
        if isinstance(node, dict) and node.get(_TAG) == "tuple":
            self._fields(node, where, {"items"})
            return tuple(self._key(k, f"{where}[{i}]") for i, k in enumerate(self._items(node, where)))
        self.bad(where, f"a dict key must be a str, int, float, bool, None or tuple, got {_short(node)}")

    def _fields(self, node, where, required, optional=frozenset()):
        keys = set(node) - {_TAG}
        if not required <= keys or not keys <= required | set(optional):
            self.bad(where, f"a {node[_TAG]!r} node needs {sorted(required)}"
                            f"{f' (optionally {sorted(optional)})' if optional else ''}, "
                            f"got {sorted(keys)}")

    def _items(self, node, where):
        items = node["items"]
        if not isinstance(items, list):
            self.bad(where, f"'items' must be a list, got {_short(items)}")
        return items


def _check_map_location(map_location) -> None:
    if map_location is None or callable(map_location):
        return
    if isinstance(map_location, dict):
        for target in map_location.values():
            _check_map_location(target)
        return
    from backprop.tensor import _check_device

    _check_device(map_location, "load")  # DeviceError (a ValueError) for any device but the CPU

