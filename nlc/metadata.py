"""What an image file says besides its pixels, kept so that decompressing loses nothing.

nlc codes pixels; a photo's file also carries facts that change how it looks
or what it is: its colour profile (ICC, or the PNG ``gAMA``/``cHRM``/``sRGB``
chunks), EXIF (camera, orientation, date), XMP, text chunks and its
resolution. :func:`collect` takes them from an opened Pillow image,
:func:`pack` turns them into the container's metadata blob and :func:`unpack`
back; :func:`attach` puts them on a decoded image's ``info`` (as Pillow puts
them on an opened one), and :func:`png_options` writes them into the PNG that
``nlc decompress`` produces.

The blob is zlib-compressed entries ``key`` (u8 length, ASCII), ``value``
(u32 length, bytes); values that are not bytes are JSON. An image without
metadata gives an empty blob, and its file is the same as before metadata
was kept.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any, Protocol, TypeVar

from PIL import PngImagePlugin

from .errors import FormatError


class HasInfo(Protocol):
    """What the metadata functions use of an image: its ``info`` (a Pillow image, or an
    :class:`nlc.images.Image16`)."""

    info: dict


Img = TypeVar("Img", bound=HasInfo)

RAW_KEYS = ("icc_profile", "exif", "xmp")  # bytes, as they are, under Pillow's names
BYTES_KEYS = RAW_KEYS + ("comment",)  # the entries stored as bytes; the others are JSON
XMP_KEYWORD = "XML:com.adobe.xmp"  # the PNG iTXt keyword that holds XMP


def _as_bytes(v: Any) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def _text_chunks(im: HasInfo) -> list[list[str]]:
    """PNG text chunks as ``[keyword, text, language, translated keyword]`` (the last two only for iTXt)."""
    out = []
    for key, value in (getattr(im, "text", None) or {}).items():
        if key == XMP_KEYWORD:
            continue  # kept as "xmp"
        lang, tkey = getattr(value, "lang", None), getattr(value, "tkey", None)
        out.append([key, str(value)] + ([lang or "", tkey or ""] if lang is not None or tkey is not None else []))
    return out


def collect(im: HasInfo) -> dict:
    """The metadata of an opened image: a dict with any of ``icc_profile``, ``exif``, ``xmp`` (bytes),
    ``gamma`` (the PNG gAMA integer), ``chromaticity`` (8 cHRM integers), ``srgb`` (rendering intent),
    ``dpi`` (two numbers), ``aspect`` (PNG pHYs without a unit: two integers), ``text`` (PNG text chunks)
    and ``comment`` (bytes)."""
    info = im.info
    record: dict = {}
    for key in RAW_KEYS:
        v = info.get(key)
        if v:
            record[key] = _as_bytes(v)
    if record.get("exif", b"").startswith(b"Exif\x00\x00"):
        record["exif"] = record["exif"][6:]  # the bare TIFF structure, as PNG's eXIf holds it
    if info.get("gamma") is not None:
        record["gamma"] = round(float(info["gamma"]) * 100000)
    if info.get("chromaticity") is not None:
        record["chromaticity"] = [round(float(c) * 100000) for c in info["chromaticity"]]
    if info.get("srgb") is not None:
        record["srgb"] = int(info["srgb"])
    if info.get("dpi") is not None:
        record["dpi"] = [float(d) for d in info["dpi"]]
    elif info.get("aspect") is not None:  # PNG pHYs without a unit: the pixels' aspect ratio only
        record["aspect"] = [int(a) for a in info["aspect"]]
    text = _text_chunks(im)
    if text:
        record["text"] = text
    if info.get("comment") and not text:  # JPEG/GIF comments (PNG's are text chunks already)
        record["comment"] = _as_bytes(info["comment"])
    return record


def pack(record: dict) -> bytes:
    """The container's metadata blob for ``record`` (empty when there is nothing to keep)."""
    if not record:
        return b""
    parts = []
    for key, value in record.items():
        k = key.encode("ascii")
        v = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
        parts.append(struct.pack("<B", len(k)) + k + struct.pack("<I", len(v)) + v)
    return zlib.compress(b"".join(parts), 9)


MAX_METADATA = 64 << 20  # bytes of kept metadata after inflating: ICC, EXIF, XMP and text are far smaller


def inflate_bounded(blob: bytes, limit: int) -> bytes:
    """zlib-inflate ``blob``, refusing (``zlib.error``) to produce more than ``limit`` bytes or to leave
    input unread: a small crafted blob cannot make the decoder allocate gigabytes."""
    d = zlib.decompressobj()
    out = d.decompress(blob, limit + 1)
    if len(out) > limit or not d.eof:
        raise zlib.error(f"inflates past {limit} bytes or is cut short")
    return out


def unpack(blob: bytes) -> dict:
    """Inverse of :func:`pack`; raises :class:`~nlc.errors.FormatError` for a damaged blob."""
    if not blob:
        return {}
    try:
        raw = inflate_bounded(blob, MAX_METADATA)
        record, pos = {}, 0
        while pos < len(raw):
            n = raw[pos]
            key = raw[pos + 1 : pos + 1 + n].decode("ascii")
            pos += 1 + n
            (m,) = struct.unpack("<I", raw[pos : pos + 4])
            value = raw[pos + 4 : pos + 4 + m]
            if len(value) != m:
                raise ValueError("truncated entry")
            pos += 4 + m
            record[key] = value if key in BYTES_KEYS else json.loads(value)
    except (zlib.error, ValueError, UnicodeDecodeError, struct.error, IndexError):
        raise FormatError("corrupted metadata") from None
    return record


def summary(record: dict) -> dict:
    """What ``nlc info`` shows: each entry's size (bytes values), keywords (text chunks) or value."""
    out: dict = {}
    for k, v in record.items():
        if isinstance(v, bytes):
            out[k] = f"{len(v)} bytes"
        elif k == "text":
            out[k] = [entry[0] for entry in v]
        else:
            out[k] = v
    return out


def attach(im: Img, record: dict) -> Img:
    """Put ``record`` on ``im.info`` under Pillow's names (``text`` as ``im.info["nlc_text"]``); returns ``im``.
    A record whose values have the wrong types (a crafted file with its CRCs recomputed) is a
    :class:`~nlc.errors.FormatError`."""
    try:
        return _attach(im, record)
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError):
        raise FormatError("corrupted metadata (a value of the wrong type)") from None


def _attach(im: Img, record: dict) -> Img:
    for key in RAW_KEYS:
        if key in record:
            im.info[key] = record[key]
    if "gamma" in record:
        im.info["gamma"] = record["gamma"] / 100000.0
    if "chromaticity" in record:
        im.info["chromaticity"] = tuple(c / 100000.0 for c in record["chromaticity"])
    for key in ("srgb", "comment"):
        if key in record:
            im.info[key] = record[key]
    if "dpi" in record:
        im.info["dpi"] = tuple(record["dpi"])
    if "aspect" in record:
        x, y = (int(a) for a in record["aspect"])
        if not (0 < x < 2**31 and 0 < y < 2**31):
            raise ValueError("aspect out of range")
        im.info["aspect"] = (x, y)
    if "text" in record:
        im.info["nlc_text"] = record["text"]
    return im


def png_options(info: dict) -> dict:
    """Keyword arguments of Pillow's PNG writer that store the metadata :func:`attach` put on ``info``."""
    kw: dict = {}
    png = PngImagePlugin.PngInfo()
    chunks = False
    if info.get("icc_profile"):
        kw["icc_profile"] = info["icc_profile"]
    elif info.get("srgb") is not None:  # PNG allows sRGB only without an ICC profile
        png.add(b"sRGB", struct.pack(">B", int(info["srgb"])))
        chunks = True
    if info.get("gamma") is not None:
        png.add(b"gAMA", struct.pack(">I", round(info["gamma"] * 100000)))
        chunks = True
    if info.get("chromaticity") is not None:
        png.add(b"cHRM", struct.pack(">8I", *(round(c * 100000) for c in info["chromaticity"])))
        chunks = True
    if info.get("exif"):
        kw["exif"] = info["exif"]
    if info.get("dpi") is not None:
        kw["dpi"] = tuple(info["dpi"])
    for entry in info.get("nlc_text", []):
        key, text = entry[0], entry[1]
        if len(entry) > 2:
            png.add_itxt(key, text, entry[2], entry[3])
        else:
            png.add_text(key, text)
        chunks = True
    if info.get("comment") and not info.get("nlc_text"):
        png.add_text("Comment", _as_bytes(info["comment"]).decode("latin-1"))
        chunks = True
    if info.get("xmp"):
        png.add_itxt(XMP_KEYWORD, _as_bytes(info["xmp"]).decode("utf-8", "replace"), zip=True)
        chunks = True
    if chunks:
        kw["pnginfo"] = png
    return kw
