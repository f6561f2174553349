"""Classical coding for the planes no model was trained on, and for pixels a model codes badly.

Alpha channels, palette indices and 1-bit images are usually flat or
structured rather than photographic, so they are coded losslessly with LZMA
after a left-neighbour difference (a PNG "sub" filter), which turns flat
runs and ramps into runs of zeros. Colour or gray pixels that are not
photographic (screenshots, graphics, text) can cost a photo model many times
what lossless WebP needs; :func:`encode_webp` is that alternative.
"""

from __future__ import annotations

import io
import lzma

import numpy as np

from ..errors import FormatError


def encode_plane(plane: np.ndarray) -> bytes:
    """Code a 2-D uint8 plane."""
    diff = plane.astype(np.int16)
    diff[:, 1:] -= plane[:, :-1]
    return lzma.compress((diff & 0xFF).astype(np.uint8).tobytes(), preset=9 | lzma.PRESET_EXTREME)


def lzma_exactly(data: bytes, size: int) -> bytes:
    """LZMA-decompress ``data`` that must hold exactly ``size`` bytes, never producing more than one byte
    over (a crafted payload cannot make the decoder allocate more than the header declared)."""
    dec = lzma.LZMADecompressor()
    try:
        raw = dec.decompress(data, max_length=size + 1)
    except lzma.LZMAError as e:
        raise FormatError(f"corrupted plane data ({e})") from None
    if len(raw) != size or not dec.eof:
        raise FormatError("corrupted plane data (wrong size)")
    return raw


def decode_plane(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_plane`."""
    raw = lzma_exactly(data, height * width)
    if len(raw) != height * width:
        raise FormatError("corrupted plane data (wrong size)")
    diff = np.frombuffer(raw, np.uint8).reshape(height, width)
    return np.cumsum(diff, axis=1, dtype=np.uint64).astype(np.uint8)


def encode_bits(plane: np.ndarray) -> bytes:
    """Code a 2-D boolean plane (1-bit image), rows packed to bytes."""
    return lzma.compress(np.packbits(plane, axis=1).tobytes(), preset=9 | lzma.PRESET_EXTREME)


def decode_bits(data: bytes, height: int, width: int) -> np.ndarray:
    """Inverse of :func:`encode_bits`."""
    row = (width + 7) // 8
    raw = lzma_exactly(data, height * row)
    if len(raw) != height * row:
        raise FormatError("corrupted plane data (wrong size)")
    packed = np.frombuffer(raw, np.uint8).reshape(height, row)
    return np.unpackbits(packed, axis=1, count=width).astype(bool)


WEBP_LOSSLESS = {"lossless": True, "quality": 100, "method": 4, "exact": True}  # effort: 0.4-0.8 s on Kodak
WEBP_MAX_SIDE = 16383  # the format's limit


def webp_can_hold(height: int, width: int) -> bool:
    """Whether lossless WebP can hold an image of this size (at most 16383 pixels a side)."""
    return max(height, width) <= WEBP_MAX_SIDE


def encode_webp(pixels: np.ndarray) -> bytes:
    """Code ``(H, W, C)`` uint8 pixels (``C`` = 1 or 3) as lossless WebP, a gray image as R = G = B.

    The classical alternative for pixels a model codes badly (screenshots,
    graphics): the image codec keeps whichever file is smaller.
    """
    from PIL import Image

    rgb = np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb), "RGB").save(buf, "WEBP", **WEBP_LOSSLESS)
    return buf.getvalue()


def decode_webp(data: bytes, height: int, width: int, channels: int) -> np.ndarray:
    """Inverse of :func:`encode_webp`: ``(height, width, channels)`` uint8 pixels."""
    from PIL import Image

    try:
        im = Image.open(io.BytesIO(data))
        if im.format != "WEBP":
            raise ValueError(f"a {im.format} image where WebP was expected")
        rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:
        raise FormatError(f"corrupted WebP pixels ({e})") from None
    if rgb.shape != (height, width, 3):
        raise FormatError("corrupted WebP pixels (wrong size)")
    return rgb[:, :, :1] if channels == 1 else rgb
