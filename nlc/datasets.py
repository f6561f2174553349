"""Image datasets as arrays: idx (MNIST / Fashion-MNIST, optionally gzipped) and ``.npy``.

:func:`read_array` returns the images as a ``uint8`` array ``(N, H, W)`` (or ``(N, H, W, 3)``) and a
:class:`ArrayFile` record that restores the original file byte for byte.
"""

from __future__ import annotations

import gzip
import io
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

IDX_UBYTE = 0x08


@dataclass
class ArrayFile:
    """How an array file was stored, enough to write it again byte-exact."""

    kind: str  # "idx" or "npy"
    gzipped: bool
    header: bytes  # everything before the pixel bytes
    gzip_header: bytes = b""  # the original gzip member header (name, mtime, flags)
    gzip_level: int = 9
    gzip_exact: bool = False  # whether zlib at gzip_level reproduces the original gzip bytes


def is_array_file(path: str | Path) -> bool:
    """Whether ``path`` names an idx(.gz) or .npy file."""
    name = Path(path).name.lower()
    return name.endswith((".npy", "-ubyte", "-ubyte.gz", ".idx", ".idx.gz", ".idx3", ".idx3.gz"))


def _gzip_header(raw: bytes) -> bytes:
    """The gzip member header: fixed 10 bytes plus the optional name/comment fields."""
    flags = raw[3]
    pos = 10
    if flags & 4:
        pos += 2 + struct.unpack_from("<H", raw, pos)[0]
    for bit in (8, 16):
        if flags & bit:
            pos = raw.index(b"\0", pos) + 1
    if flags & 2:
        pos += 2
    return raw[:pos]


def _gzip_level(raw: bytes) -> int:
    return 1 if raw[8] == 4 else 9  # XFL 4 = fastest, 2 = best; 9 also covers the default


def gzip_bytes(data: bytes, header: bytes, level: int) -> bytes:
    """Compress ``data`` as one gzip member carrying the given original header."""
    comp = gzip.compress(data, compresslevel=level, mtime=0)
    return header + comp[10:]  # zlib's deflate stream and trailer after our header


def image_array_shape(shape: tuple) -> bool:
    """Whether ``shape`` is that of a stack of gray ``(N, H, W)`` or RGB ``(N, H, W, 3)`` images."""
    return len(shape) == 3 or (len(shape) == 4 and shape[3] == 3)


def read_array(path: str | Path, verify_gzip: bool = False) -> tuple[np.ndarray, ArrayFile]:
    """Load a ``uint8`` image array, ``(N, H, W)`` or ``(N, H, W, 3)``, from an idx(.gz) or .npy file.

    ``verify_gzip`` re-compresses a gzipped file to learn whether
    :func:`array_bytes` reproduces it byte for byte (``ArrayFile.gzip_exact``).
    """
    path = Path(path)
    raw = path.read_bytes()
    gz = raw[:2] == b"\x1f\x8b"
    data = gzip.decompress(raw) if gz else raw
    if path.name.lower().endswith(".npy"):
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        if arr.dtype != np.uint8 or not image_array_shape(arr.shape):
            raise InputError(f"{path}: expected a uint8 array of shape (N, H, W) or (N, H, W, 3), "
                             f"got {arr.dtype} {arr.shape}")
        header = data[: len(data) - arr.nbytes]
        if not arr.flags.c_contiguous or data[len(header):] != arr.tobytes():
            raise InputError(f"{path}: only C-ordered .npy arrays are supported")
        return arr, ArrayFile("npy", gz, header)
    if len(data) < 4 or data[:2] != b"\0\0":
        raise InputError(f"{path}: not an idx file (bad magic)")
    dtype, ndim = data[2], data[3]
    head = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:head]) if len(data) >= head else ()
    if dtype != IDX_UBYTE or not image_array_shape(dims):
        raise InputError(f"{path}: expected unsigned-byte idx images of shape (N, H, W) or (N, H, W, 3), "
                         f"got type 0x{dtype:02x} with dimensions {dims or ndim}")
    n = math.prod(dims)
    if len(data) != head + n:
        raise InputError(f"{path}: idx file is {len(data)} bytes, its header promises {head + n}")
    arr = np.frombuffer(data, np.uint8, offset=head).reshape(dims).copy()
    rec = ArrayFile("idx", gz, data[:head])
    if gz:
        rec.gzip_header, rec.gzip_level = _gzip_header(raw), _gzip_level(raw)
        rec.gzip_exact = verify_gzip and array_bytes(arr, rec) == raw
    return arr, rec


def array_bytes(arr: np.ndarray, rec: ArrayFile) -> bytes:
    """The file bytes for ``arr`` stored as ``rec`` describes (the inverse of :func:`read_array`)."""
    data = rec.header + np.ascontiguousarray(arr, np.uint8).tobytes()
    return gzip_bytes(data, rec.gzip_header or gzip.compress(b"", mtime=0)[:10], rec.gzip_level) if rec.gzipped else data


def load_fashion_mnist(folder: str | Path, split: str = "train") -> np.ndarray:
    """The Fashion-MNIST images of ``split`` (``"train"`` or ``"test"``) as ``(N, 28, 28)`` uint8."""
    prefix = "train" if split == "train" else "t10k"
    folder = Path(folder)
    for name in (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-images-idx3-ubyte"):
        if (folder / name).is_file():
            return read_array(folder / name)[0]
    raise InputError(f"{folder}: no {prefix}-images-idx3-ubyte(.gz) found")


def binarize(images: np.ndarray) -> np.ndarray:
    """Binarized pixels (value > 127 -> 1) as uint8."""
    return (images > 127).astype(np.uint8)
