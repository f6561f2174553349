"""16-bit PNG samples: read exactly, written back exactly.

Pillow opens a 16-bit gray PNG as ``I;16`` but truncates 16-bit RGB, RGBA and
gray+alpha to 8 bits. nlc reads the samples of every 16-bit PNG itself
(:func:`read_samples`: IHDR, the IDAT stream inflated with a bound from the
declared size, the five row filters undone in a compiled loop, Adam7
interlacing) and writes them itself (:func:`png_bytes`: per-row filter chosen
as libpng does, zlib level 9). The ancillary chunks (gamma, colour, text,
EXIF, resolution) are still read and written by Pillow, as for 8-bit files.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from numba import njit

from .errors import InputError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLANES = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel
MODES = {0: "I;16", 2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}  # nlc's names for the 16-bit kinds
COLOUR_TYPES = {mode: ct for ct, mode in MODES.items()}
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The ``(type, body)`` chunks of a PNG whose CRCs were already checked (:func:`nlc.images.check_png_chunks`)."""
    out, pos = [], len(SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return out


def bit_depth(data: bytes) -> int | None:
    """The bit depth a PNG's IHDR declares, or ``None`` for bytes that are not a PNG with an IHDR."""
    if not data.startswith(SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        return None
    return data[24]


@njit(cache=True)
def _unfilter(raw, rows, stride, bpp):
    """Undo PNG's row filters: ``raw`` holds ``rows`` rows of a filter byte and ``stride`` bytes; returns
    the ``(rows, stride)`` bytes, or an empty array for an unknown filter type."""
    out = np.zeros((rows, stride), np.uint8)
    for y in range(rows):
        f = raw[y * (stride + 1)]
        src = y * (stride + 1) + 1
        for i in range(stride):
            a = np.int64(out[y, i - bpp]) if i >= bpp else np.int64(0)
            b = np.int64(out[y - 1, i]) if y > 0 else np.int64(0)
            x = np.int64(raw[src + i])
            if f == 0:
                v = x
            elif f == 1:
                v = x + a
            elif f == 2:
                v = x + b
            elif f == 3:
                v = x + ((a + b) >> 1)
            elif f == 4:
                c = np.int64(out[y - 1, i - bpp]) if (y > 0 and i >= bpp) else np.int64(0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                v = x + (a if (pa <= pb and pa <= pc) else (b if pb <= pc else c))
            else:
                return np.zeros((0, 0), np.uint8)
            out[y, i] = v & 255
    return out


def _passes(width: int, height: int, interlaced: bool) -> list[tuple[int, int, int, int, int, int]]:
    """``(x0, y0, dx, dy, pass width, pass height)`` of each non-empty pass (one for a plain PNG)."""
    if not interlaced:
        return [(0, 0, 1, 1, width, height)]
    out = []
    for x0, y0, dx, dy in ADAM7:
        pw, ph = (width - x0 + dx - 1) // dx, (height - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:
            out.append((x0, y0, dx, dy, pw, ph))
    return out


def read_samples(data: bytes, name: str) -> tuple[np.ndarray, str, object]:
    """The samples of a 16-bit PNG as ``(H, W, planes)`` uint16, nlc's mode name (:data:`MODES`) and the
    tRNS colour (an int for gray, three for RGB, or ``None``). Raises :class:`InputError` for a damaged
    or inconsistent file."""
    parts = chunks(data)
    if not parts or parts[0][0] != b"IHDR" or len(parts[0][1]) != 13:
        raise InputError(f"{name}: damaged PNG (no IHDR chunk)")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", parts[0][1])
    if depth != 16 or colour not in PLANES or compression or filtering or interlace > 1 or not width or not height:
        raise InputError(f"{name}: damaged PNG (IHDR: depth {depth}, colour type {colour})")
    planes = PLANES[colour]
    bpp = 2 * planes
    passes = _passes(width, height, bool(interlace))
    size = sum(ph * (1 + pw * bpp) for *_, pw, ph in passes)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(body for kind, body in parts if kind == b"IDAT"), size + 1)
    except zlib.error as e:
        raise InputError(f"{name}: damaged PNG (image data: {e})") from None
    if len(raw) != size:
        raise InputError(f"{name}: damaged PNG (image data of {len(raw)} bytes, expected {size})")
    flat = np.frombuffer(raw, np.uint8)
    samples = np.zeros((height, width, planes), np.uint16)
    pos = 0
    for x0, y0, dx, dy, pw, ph in passes:
        n = ph * (1 + pw * bpp)
        rows = _unfilter(flat[pos : pos + n], ph, pw * bpp, bpp)
        if rows.size == 0:
            raise InputError(f"{name}: damaged PNG (unknown row filter)")
        samples[y0::dy, x0::dx] = rows.view(">u2").reshape(ph, pw, planes)
        pos += n
    transparency: object = None
    for kind, body in parts:
        if kind == b"tRNS":
            if colour not in (0, 2) or len(body) != 2 * planes:
                raise InputError(f"{name}: damaged PNG (tRNS of {len(body)} bytes for colour type {colour})")
            values = list(struct.unpack(f">{planes}H", body))
            transparency = values[0] if colour == 0 else values
    return samples, MODES[colour], transparency


FILTER_ROWS = 256  # rows filtered at once: the five candidates of a whole large image would take gigabytes


def _filtered(rows: np.ndarray, bpp: int) -> bytes:
    """The IDAT data of ``(H, stride)`` bytes: each row with the filter of least sum of absolute values
    (libpng's heuristic), the five candidates computed for :data:`FILTER_ROWS` rows at a time."""
    return b"".join(_filtered_part(rows, start, min(start + FILTER_ROWS, len(rows)), bpp)
                    for start in range(0, len(rows), FILTER_ROWS))


def _filtered_part(rows: np.ndarray, start: int, stop: int, bpp: int) -> bytes:
    """:func:`_filtered` of rows ``start .. stop - 1`` (the row above ``start`` read for the Up, Average and
    Paeth filters)."""
    x = rows[start:stop].astype(np.int16)
    above = rows[start - 1].astype(np.int16) if start else np.zeros(rows.shape[1], np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    b = np.empty_like(x)
    b[0] = above
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[:, bpp:] = b[:, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    cands = np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth]).astype(np.uint8)
    score = np.abs(cands.view(np.int8).astype(np.int32)).sum(axis=2)
    choice = score.argmin(axis=0)
    best = cands[choice, np.arange(len(x))]
    return np.concatenate([choice.astype(np.uint8)[:, None], best], axis=1).tobytes()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bytes(samples: np.ndarray, mode: str, transparency: object, ancillary: bytes) -> bytes:
    """A 16-bit PNG of ``samples`` ``(H, W, planes)`` uint16 in nlc's ``mode``, with the tRNS colour
    ``transparency`` and the ancillary chunks of the PNG ``ancillary`` (one Pillow wrote for the image's
    metadata, or none; its own IHDR, tRNS and image data are replaced)."""
    height, width, planes = samples.shape
    ihdr = struct.pack(">IIBBBBB", width, height, 16, COLOUR_TYPES[mode], 0, 0, 0)
    rows = np.ascontiguousarray(samples.astype(">u2")).view(np.uint8).reshape(height, width * 2 * planes)
    out = io.BytesIO()
    out.write(SIGNATURE + _chunk(b"IHDR", ihdr))
    if transparency is not None:
        values = transparency if isinstance(transparency, list) else [transparency]
        out.write(_chunk(b"tRNS", struct.pack(f">{len(values)}H", *values)))
    idat = _chunk(b"IDAT", zlib.compress(_filtered(rows, 2 * planes), 9))
    for kind, body in chunks(ancillary) if ancillary else []:
        if kind in (b"IDAT", b"IEND") and idat:
            out.write(idat)
            idat = b""
        if kind not in (b"IHDR", b"IDAT", b"tRNS", b"IEND"):
            out.write(_chunk(kind, body))
    return out.getvalue() + idat + _chunk(b"IEND", b"")
