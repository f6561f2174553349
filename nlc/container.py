"""The ``.nlc`` file formats: single images (magic ``\\x89NLC``) and sets (``\\x89NLS``).

``FORMAT.md`` at the top of the repository is the one specification of both, field by field; this
module writes and reads exactly that (``tests/test_container.py`` checks it against the document's
byte layout). Decoding checks the magic, the version and both CRCs, and the caller finally checks the
CRC of the decoded pixels: a damaged file is an error, never a silently wrong image.
"""

from __future__ import annotations

import copy
import json
import struct
import zlib
from dataclasses import MISSING, asdict, dataclass, field
from dataclasses import fields as dataclass_fields

from . import schema
from .errors import FormatError
from .metadata import inflate_bounded

MAX_SET_HEADER = 64 << 20  # bytes of a set header after inflating (names of every item included)

MAGIC = b"\x89NLC"
VERSION = 1
VERSION_METADATA = 2  # a version-1 file with a metadata payload after the others
MAX_PIXELS = 1 << 28  # 268 megapixels: anything larger is refused before allocating
MAX_SIDE = 1 << 20


@dataclass
class Header:
    """Everything in a ``.nlc`` header."""

    codec: str
    weights_sha256: str
    coder: str
    precision: int
    constriction: str
    torch: str
    device: str
    width: int
    height: int
    mode: str
    model_channels: int
    bit_depth: int
    tile: int
    pixels_crc32: int
    palette: bytes = b""
    extra: dict = field(default_factory=dict)
    group: int = 384
    metadata: bytes = b""  # the packed metadata payload (:func:`nlc.metadata.pack`), empty for none

    def as_dict(self) -> dict:
        """JSON-friendly view (palette and metadata as their lengths)."""
        d = asdict(self)
        d["palette"] = len(self.palette)
        d["metadata"] = len(self.metadata)
        return d


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.pos, self.what = data, 0, what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError(f"truncated {self.what}")
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def u(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def str8(self) -> str:
        try:
            return self.take(self.u("B")).decode("ascii")
        except UnicodeDecodeError:
            raise FormatError(f"corrupted {self.what}") from None

    def bytes16(self) -> bytes:
        return self.take(self.u("H"))


def _str8(s: str) -> bytes:
    b = s.encode("ascii")
    if len(b) > 255:
        raise ValueError(f"header string too long: {s[:40]}...")
    return struct.pack("<B", len(b)) + b


def _bytes16(b: bytes) -> bytes:
    return struct.pack("<H", len(b)) + b


def pack(header: Header, model_payload: bytes, plane_payload: bytes = b"") -> bytes:
    """Serialise a header and payloads into a ``.nlc`` file."""
    fields = b"".join(
        [
            _str8(header.codec),
            bytes.fromhex(header.weights_sha256) if header.weights_sha256 else b"\0" * 32,
            _str8(header.coder),
            struct.pack("<B", header.precision),
            _str8(header.constriction),
            _str8(header.torch),
            _str8(header.device),
            struct.pack("<II", header.width, header.height),
            _str8(header.mode),
            struct.pack("<BBHH", header.model_channels, header.bit_depth, header.tile, header.group),
            _bytes16(header.palette),
            _bytes16(json.dumps(header.extra, separators=(",", ":")).encode() if header.extra else b""),
            struct.pack("<III", header.pixels_crc32, len(model_payload), len(plane_payload)),
            struct.pack("<I", len(header.metadata)) if header.metadata else b"",
        ]
    )
    version = VERSION_METADATA if header.metadata else VERSION
    head = MAGIC + struct.pack("<BH", version, len(fields)) + fields
    payload = model_payload + plane_payload + header.metadata
    return head + struct.pack("<I", zlib.crc32(head)) + payload + struct.pack("<I", zlib.crc32(payload))


def unpack(data: bytes) -> tuple[Header, bytes, bytes]:
    """Parse and check a ``.nlc`` file; returns the header and the two payloads.

    Raises :class:`~nlc.errors.FormatError` for anything that is not a complete,
    undamaged version-1 or version-2 file (the metadata payload is in the header).
    """
    r = _Reader(data, "file")
    if len(data) < 4 or data[:4] != MAGIC:
        raise FormatError("not an nlc file (wrong magic bytes)")
    r.take(4)
    version = r.u("B")
    if version not in (VERSION, VERSION_METADATA):
        raise FormatError(f"unknown format version {version} (this nlc reads versions {VERSION} and {VERSION_METADATA})")
    n = r.u("H")
    end = r.pos + n
    r.take(n)
    (crc,) = struct.unpack("<I", r.take(4))
    if crc != zlib.crc32(data[:end]):
        raise FormatError("corrupted header (CRC mismatch)")
    h = _Reader(data[7:end], "header")
    codec = h.str8()
    sha = h.take(32).hex()
    coder = h.str8()
    precision = h.u("B")
    constriction, torch_v, device = h.str8(), h.str8(), h.str8()
    width, height = h.u("I"), h.u("I")
    mode = h.str8()
    model_channels, bit_depth, tile, group = h.u("B"), h.u("B"), h.u("H"), h.u("H")
    palette = h.bytes16()
    extra_raw = h.bytes16()
    pixels_crc, n_model, n_plane = h.u("I"), h.u("I"), h.u("I")
    n_meta = h.u("I") if version == VERSION_METADATA else 0
    if version == VERSION_METADATA and (h.pos != len(h.data) or not n_meta):
        raise FormatError("corrupted header (length)")
    if width < 1 or height < 1 or width > MAX_SIDE or height > MAX_SIDE or width * height > MAX_PIXELS:
        raise FormatError(f"header claims absurd dimensions {width}x{height}")
    if tile < 1 or group < 1:
        raise FormatError("corrupted header (tile size or group 0)")
    try:
        extra = json.loads(extra_raw) if extra_raw else {}
    except ValueError:
        raise FormatError("corrupted header (extra fields)") from None
    schema.check_image_header(codec, sha, coder, (constriction, torch_v, device), mode)
    schema.check_extra(extra)
    body = data[r.pos :]
    if len(body) < n_model + n_plane + n_meta + 4:
        raise FormatError("truncated file (payload shorter than the header says)")
    if len(body) > n_model + n_plane + n_meta + 4:
        raise FormatError("corrupted file (trailing bytes after the payload)")
    payload = body[:-4]
    if struct.unpack("<I", body[-4:])[0] != zlib.crc32(payload):
        raise FormatError("corrupted payload (CRC mismatch)")
    header = Header(codec, sha, coder, precision, constriction, torch_v, device, width, height, mode,
                    model_channels, bit_depth, tile, pixels_crc, palette, extra, group,
                    payload[n_model + n_plane :])
    return header, payload[:n_model], payload[n_model : n_model + n_plane]


# --------------------------------------------------------------------------------------------
# Sets: many same-sized images (a folder or an array file) in one file, coded as one chain.

SET_MAGIC = b"\x89NLS"
SET_VERSION = 1  # a set coded by a latent-variable codec (bits-back chain)
SET_VERSION_TILES = 2  # a set coded by an autoregressive codec (one batch of tiles)
SET_VERSION_SEQUENCE = 3  # a set coded by a sequence codec (all items, one position per step)
SET_VERSION_FLOW = 4  # a set coded by a set-flow codec (every item's integer latents, position by position)
SET_VERSIONS = {"bits-back": SET_VERSION, "tiles": SET_VERSION_TILES, "sequence": SET_VERSION_SEQUENCE,
                "flow": SET_VERSION_FLOW}
SET_VERSION_COMPACT = 5  # any coding: the fixed fields in binary, the others as JSON when not their defaults
SET_CODINGS = ("bits-back", "tiles", "sequence", "flow")  # a compact header's coding byte indexes these
SET_CODERS = ("range", "ans")  # and its coder byte these
_COMPACT_FIXED = ("coding", "coder", "bits", "scale", "weights_sha256", "pixels_crc32", "count", "height",
                  "width", "codec", "constriction", "torch", "device")
_COMPACT_DEFAULTS: dict = {"schedule": []}  # left out of a compact header's JSON when so (and the dataclass defaults)


@dataclass
class SetHeader:
    """Everything in a set file's header."""

    codec: str
    weights_sha256: str
    constriction: str
    torch: str
    device: str
    count: int
    height: int
    width: int
    bits: int  # 8 or 1: what the model codes
    scale: int  # stored pixel = coded value * scale (255 for 0/255 binary images, else 1)
    pixels_crc32: int
    schedule: list  # [[batch size, repeats], ...] in encoding order
    source: dict  # {"kind": "files", "names": [...], "formats": [...]} or {"kind": "array", ...}
    coder: str = "ans"
    precision: int = 24
    latent_step: float = 2.0**-6
    latent_bound: float = 16.0  # latents lie in [-bound, bound] (the model's range; older files: 16)
    start_bits: int = 0  # what the start items cost
    start_items: int = 1  # items coded without bits-back at the start of the chain
    start_step: float = 2.0**-6  # their latent grid step
    threads: int = 1  # torch intra-op threads of the encoder; the decoder uses the same number
    coding: str = "bits-back"  # or "tiles": an autoregressive codec's batch of tiles (format version 2)
    channels: int = 1  # tiles only: 1 (gray) or 3 (RGB) sub-pixels per pixel
    tile: int = 0  # tiles only: tile side
    group: int = 0  # tiles only: tiles per coder group


def _varint(n: int) -> bytes:
    """``n >= 0`` in LEB128: seven bits a byte, low first, the top bit set on all bytes but the last."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(h: _Reader) -> int:
    """An unsigned LEB128 number (:func:`_varint`) from ``h``."""
    n = 0
    for shift in range(0, 64, 7):
        byte = h.u("B")
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n
    raise FormatError("corrupted header (a number longer than 64 bits)")


def _compact_blob(header: SetHeader) -> bytes:
    """A set header's compact form (format version 5): the fixed fields packed, then the others that differ
    from their defaults as JSON, zlib-compressed where that is shorter (FORMAT.md)."""
    fields = asdict(header)
    defaults = {**{f.name: f.default for f in dataclass_fields(SetHeader) if f.default is not MISSING},
                **_COMPACT_DEFAULTS}
    rest = {k: v for k, v in fields.items() if k not in _COMPACT_FIXED and (k not in defaults or v != defaults[k])}
    return b"".join([
        struct.pack("<4B", SET_CODINGS.index(header.coding), SET_CODERS.index(header.coder), header.bits, header.scale),
        bytes.fromhex(header.weights_sha256), struct.pack("<I", header.pixels_crc32),
        _varint(header.count), _varint(header.height), _varint(header.width),
        *(_str8(fields[k]) for k in ("codec", "constriction", "torch", "device")),
        _smaller(json.dumps(rest, separators=(",", ":")).encode()),
    ])


def _smaller(text: bytes) -> bytes:
    """A JSON object's bytes, zlib-compressed where that is shorter (a zlib stream starts with ``x``, a JSON
    object with ``{``, so a reader tells them apart)."""
    packed = zlib.compress(text, 9)
    return packed if len(packed) < len(text) else text


def _compact_fields(blob: bytes) -> dict:
    """The fields of a compact set header (:func:`_compact_blob`), before they are checked."""
    h = _Reader(blob, "header")
    coding, coder, bits, scale = (h.u("B") for _ in range(4))
    if coding >= len(SET_CODINGS) or coder >= len(SET_CODERS):
        raise FormatError("corrupted header (coding or coder)")
    fields: dict = {"coding": SET_CODINGS[coding], "coder": SET_CODERS[coder], "bits": bits, "scale": scale,
                    "weights_sha256": h.take(32).hex(), "pixels_crc32": h.u("I")}
    for k in ("count", "height", "width"):
        fields[k] = _read_varint(h)
    for k in ("codec", "constriction", "torch", "device"):
        fields[k] = h.str8()
    try:
        tail = blob[h.pos:]
        rest = json.loads(tail if tail[:1] == b"{" else inflate_bounded(tail, MAX_SET_HEADER))
    except (ValueError, zlib.error):
        raise FormatError("corrupted header") from None
    if not isinstance(rest, dict) or set(rest) & set(fields):
        raise FormatError("corrupted header")
    return {**copy.deepcopy(_COMPACT_DEFAULTS), **fields, **rest}  # a header's own schedule list, not the constant's


def pack_set(header: SetHeader, payload: bytes, compact: bool = True) -> bytes:
    """Serialise a set header and its payload: the compact header (format version 5), or with ``compact``
    false the JSON header of the coding's older version (1 to 4, as older nlc wrote them)."""
    if compact:
        version, blob = SET_VERSION_COMPACT, _compact_blob(header)
    else:
        fields, version = asdict(header), SET_VERSIONS[header.coding]
        if version == SET_VERSION:  # version 1 files stay byte for byte what older nlc wrote
            for k in ("coding", "channels", "tile", "group"):
                del fields[k]
        blob = zlib.compress(json.dumps(fields, separators=(",", ":")).encode(), 9)
    head = SET_MAGIC + struct.pack("<BI", version, len(blob)) + blob
    return head + struct.pack("<I", zlib.crc32(head)) + payload + struct.pack("<I", zlib.crc32(payload))


def is_set(data: bytes) -> bool:
    """Whether ``data`` starts like a set file."""
    return data[:4] == SET_MAGIC


def unpack_set(data: bytes) -> tuple[SetHeader, bytes]:
    """Parse and check a set file; raises :class:`~nlc.errors.FormatError` if it is damaged."""
    if len(data) < 4 or data[:4] != SET_MAGIC:
        raise FormatError("not an nlc set file (wrong magic bytes)")
    if len(data) < 13:
        raise FormatError("truncated file")
    version, n = struct.unpack("<BI", data[4:9])
    known = sorted([*SET_VERSIONS.values(), SET_VERSION_COMPACT])
    if version not in known:
        raise FormatError(f"unknown set format version {version} "
                          f"(this nlc reads versions {', '.join(map(str, known))})")
    if len(data) < 9 + n + 8:
        raise FormatError("truncated file")
    if struct.unpack("<I", data[9 + n : 13 + n])[0] != zlib.crc32(data[: 9 + n]):
        raise FormatError("corrupted header (CRC mismatch)")
    payload = data[13 + n : -4]
    if struct.unpack("<I", data[-4:])[0] != zlib.crc32(payload):
        raise FormatError("truncated or corrupted payload (CRC mismatch)")
    try:
        blob = data[9 : 9 + n]
        fields = _compact_fields(blob) if version == SET_VERSION_COMPACT else \
            json.loads(inflate_bounded(blob, MAX_SET_HEADER))
        if not isinstance(fields, dict):
            raise TypeError("not an object")
        if "first_item_bits" in fields:  # older headers: one start item, fine grid
            fields["start_bits"] = fields.pop("first_item_bits")
        schema.check_set_header(fields, MAX_SIDE, MAX_PIXELS)
        header = SetHeader(**fields)
    except (ValueError, TypeError, zlib.error):
        raise FormatError("corrupted header") from None
    if version != SET_VERSION_COMPACT and SET_VERSIONS.get(header.coding) != version:
        raise FormatError(f"corrupted header (coding {header.coding!r} in a version {version} set file)")
    if header.coding != "bits-back":
        return header, payload
    if len(payload) % 4:
        raise FormatError("corrupted payload (not whole 32-bit words)")
    return header, payload


def schedule_runs(schedule: list[int]) -> list[list[int]]:
    """Run-length form ``[[size, repeats], ...]`` of a batch schedule."""
    runs: list[list[int]] = []
    for n in schedule:
        if runs and runs[-1][0] == n:
            runs[-1][1] += 1
        else:
            runs.append([n, 1])
    return runs


def schedule_from_runs(runs: list) -> list[int]:
    """The batch schedule from its run-length form."""
    try:
        return [int(n) for n, k in runs for _ in range(int(k))]
    except (TypeError, ValueError):
        raise FormatError("corrupted header (batch schedule)") from None
