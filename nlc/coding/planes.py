"""Classical coding for the planes no model was trained on.

Alpha channels, palette indices and 1-bit images are usually flat or
structured rather than photographic, so they are coded losslessly with LZMA
after a left-neighbour difference (a PNG "sub" filter), which turns flat
runs and ramps into runs of zeros.
"""

from __future__ import annotations

import lzma

import numpy as np

from ..errors import FormatError


def encode_plane(plane: np.ndarray) -> bytes:
    """Code a 2-D uint8 plane."""
    diff = plane.astype(np.int16)
    diff[:, 1:] -= plane[:, :-1]
    return lzma.compress((diff & 0xFF).astype(np.uint8).tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode_plane(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_plane`."""
    try:
        raw = lzma.decompress(data)
    except lzma.LZMAError as e:
        raise FormatError(f"corrupted plane data ({e})") from None
    if len(raw) != height * width:
        raise FormatError("corrupted plane data (wrong size)")
    diff = np.frombuffer(raw, np.uint8).reshape(height, width)
    return np.cumsum(diff, axis=1, dtype=np.uint64).astype(np.uint8)


def encode_bits(plane: np.ndarray) -> bytes:
    """Code a 2-D boolean plane (1-bit image), rows packed to bytes."""
    return lzma.compress(np.packbits(plane, axis=1).tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode_bits(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_bits`."""
    try:
        raw = lzma.decompress(data)
    except lzma.LZMAError as e:
        raise FormatError(f"corrupted plane data ({e})") from None
    row = (width + 7) // 8
    if len(raw) != height * row:
        raise FormatError("corrupted plane data (wrong size)")
    packed = np.frombuffer(raw, np.uint8).reshape(height, row)
    return np.unpackbits(packed, axis=1, count=width).astype(bool)
