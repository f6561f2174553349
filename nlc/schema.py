"""What a header may hold: types, ranges and lengths of every field a ``.nlc`` file's header carries,
checked when the file is parsed, before anything uses them.

A file's CRCs only say that it is as written; anyone can write a header with new CRCs. These checks
make a crafted header a one-line :class:`~nlc.errors.FormatError` instead of a traceback, an absurd
allocation or a path outside the chosen folder (a set's file names are plain names, never paths).
FORMAT.md lists the same rules.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import FormatError

CODEC_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[a-z0-9_-]+)*")  # no path separators, no "..", no leading dot
SHA256 = re.compile(r"[0-9a-f]{64}")
WORD = re.compile(r"[A-Za-z0-9_.+-]{1,64}")  # versions, devices, CPU kinds
MAX_NAMES = 1 << 24  # file names in a set
MAX_NAME = 255  # bytes of one file name


def _show(value: Any, width: int = 40) -> str:
    """A value as a message quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _fail(what: str) -> FormatError:
    return FormatError(f"corrupted header ({what})")


def _int(value: Any, low: int, high: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(f"{what} {_show(value)}, expected an integer in [{low}, {high}]")
    return value


def _number(value: Any, low: float, high: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _fail(f"{what} {_show(value)}, expected a number in [{low}, {high}]")
    return float(value)


def _word(value: Any, what: str, pattern: re.Pattern = WORD) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(f"{what} {_show(value)}")
    return value


def _choice(value: Any, choices: tuple, what: str) -> Any:
    if isinstance(value, bool) or value not in choices:
        raise _fail(f"{what} {_show(value)}, expected one of {', '.join(map(str, choices))}")
    return value


def file_name(value: Any, what: str = "file name") -> str:
    """A plain file name (no folder, no ``..``, no control characters): what a set may restore."""
    if (not isinstance(value, str) or not value or value in (".", "..") or len(value.encode()) > MAX_NAME
            or any(c in value for c in "/\\\0") or any(ord(c) < 32 for c in value)):
        raise _fail(f"{what} {_show(value, 60)}: not a plain file name")
    return value


def check_extra(extra: Any) -> dict:
    """The image header's ``extra`` JSON: an object of the known fields only, each of its type."""
    if not isinstance(extra, dict):
        raise _fail(f"extra fields of type {type(extra).__name__}, expected an object")
    for key, value in extra.items():
        if key == "transparency":
            values = value if isinstance(value, list) else [value]
            if not 1 <= len(values) <= 256:
                raise _fail(f"transparency with {len(values)} entries")
            for v in values:
                _int(v, 0, 65535, "transparency")
        elif key == "palette_mode":
            _choice(value, ("RGB", "RGBA"), "palette mode")
        elif key == "pixels":
            if isinstance(value, bool) or value not in ("model", "webp"):
                raise FormatError(f"unknown pixel coder {_show(value)} (this nlc knows model and webp)")
        elif key == "cpu":
            _word(value, "CPU kind")
        elif key == "threads":
            _int(value, 1, 1024, "threads")
        elif key == "context":
            _int(value, 4, 64, "context")
        else:
            raise _fail(f"unknown extra field {str(key)[:40]!r}")
    return extra


def check_image_header(codec: str, sha256: str, coder: str, strings: tuple[str, ...], mode: str) -> None:
    """The image header's strings: a plain codec name, a sha256, a known coder and Pillow mode, and
    version-like words (constriction, torch, device)."""
    _word(codec, "codec id", CODEC_NAME)
    _choice(coder, ("range", "ans"), "coder")
    _choice(mode, ("RGB", "L", "RGBA", "LA", "P", "1", "I;16", "LA;16", "RGB;16", "RGBA;16"), "mode")
    for s in strings:
        _word(s, "version or device")


def _source(source: Any, count: int) -> None:
    if not isinstance(source, dict):
        raise _fail("source")
    kind = _choice(source.get("kind"), ("files", "array", "array-memory"), "source kind")
    if "root" in source and source["root"] is not None:
        file_name(source["root"], "folder name")
    if kind == "files":
        names, formats = source.get("names"), source.get("formats")
        if not isinstance(names, list) or not isinstance(formats, list) or len(names) != count \
                or len(formats) != count or count > MAX_NAMES:
            raise _fail("source names or formats")
        for n in names:
            file_name(n)
        if len(set(names)) != len(names):
            raise _fail("the same file name twice")
        for f in formats:
            _choice(f, ("PNG", "BMP", "TIFF", "WEBP", "PPM", "GIF"), "image format")
        _choice(source.get("mode"), ("L", "1", "RGB"), "source mode")
    elif kind == "array":
        file_name(source.get("name"), "array file name")
        _choice(source.get("format"), ("idx", "npy"), "array format")
        for key in ("header", "gzip_header"):
            if not isinstance(source.get(key), str) or len(source[key]) > 1 << 16:
                raise _fail(f"array {key}")
        if not isinstance(source.get("gzipped"), bool):
            raise _fail("array gzipped")
        _int(source.get("gzip_level"), -1, 9, "gzip level")


def check_set_header(fields: dict, max_side: int, max_pixels: int) -> None:
    """A set header's JSON (before it becomes a ``SetHeader``): every field of its type and range, the file
    names of what it restores plain names."""
    _word(fields.get("codec"), "codec id", CODEC_NAME)
    _word(fields.get("weights_sha256"), "weights sha256", SHA256)
    for key in ("constriction", "torch", "device"):
        _word(fields.get(key), key)
    dims = [fields.get(k) for k in ("count", "height", "width")]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in dims):
        raise FormatError(f"header claims absurd dimensions: {_show(dims[0])} images of {_show(dims[2])}x{_show(dims[1])}")
    count, h, w = (int(v) for v in dims)  # type: ignore[arg-type]  # checked to be ints just above
    if count < 0 or not (1 <= h <= max_side and 1 <= w <= max_side) or count * h * w > max_pixels:
        raise FormatError(f"header claims absurd dimensions: {count} images of {w}x{h}")
    _choice(fields.get("bits"), (1, 8), "bits")
    _choice(fields.get("scale"), (1, 255), "scale")
    _int(fields.get("pixels_crc32"), 0, 2**32 - 1, "pixels CRC")
    schedule = fields.get("schedule")
    if not isinstance(schedule, list) or len(schedule) > max(1, count):
        raise _fail("batch schedule")
    for run in schedule:
        if not isinstance(run, list) or len(run) != 2:
            raise _fail("batch schedule")
        _int(run[0], 1, max(1, count), "batch size")
        _int(run[1], 1, max(1, count), "batch repeats")
    _source(fields.get("source"), count)
    if "coder" in fields:
        _choice(fields["coder"], ("range", "ans"), "coder")
    for key, low, high in (("precision", 1, 32), ("start_bits", 0, 2**62), ("start_items", 0, max_pixels),
                           ("threads", 1, 1024), ("channels", 1, 3), ("tile", 0, max_side), ("group", 0, 1 << 20)):
        if key in fields:
            _int(fields[key], low, high, key.replace("_", " "))
    for key in ("latent_step", "latent_bound", "start_step"):
        if key in fields:
            _number(fields[key], 2.0**-16, 64.0, key.replace("_", " "))
    if "coding" in fields:
        _choice(fields["coding"], ("bits-back", "tiles", "sequence", "flow"), "coding")
