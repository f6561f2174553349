"""Container: header round trip; truncations and byte flips always give the documented error."""


import numpy as np
import pytest

from nlc import container
from nlc.api import decode_image, encode_image
from nlc.errors import FormatError
from tests.conftest import gradient_image


@pytest.fixture(scope="module")
def real_file(tiny_codec):
    return encode_image(gradient_image(12, 10, "RGBA"), tiny_codec, fallback=False)[0]


def header(**kw):
    h = dict(codec="tiny", weights_sha256="ab" * 32, coder="range", precision=24, constriction="0.5.0",
             torch="2.13.0", device="cpu", width=3, height=2, mode="RGB", model_channels=3, bit_depth=8, tile=64,
             pixels_crc32=123)
    h.update(kw)
    return container.Header(**h)


def test_header_round_trip():
    h = header(palette=b"\1\2\3", extra={"transparency": 2})
    back, model, plane = container.unpack(container.pack(h, b"abcd", b"xy"))
    assert back == h and model == b"abcd" and plane == b"xy"


def test_every_truncation_is_a_format_error(tiny_codec, real_file):
    for n in range(len(real_file)):
        with pytest.raises(FormatError):
            decode_image(real_file[:n], codec=tiny_codec)


def test_random_byte_flips_are_format_errors(tiny_codec, real_file):
    rng = np.random.default_rng(0)
    for pos in rng.choice(len(real_file), size=80, replace=False):
        bad = bytearray(real_file)
        bad[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises(FormatError):
            decode_image(bytes(bad), codec=tiny_codec)


def test_wrong_magic():
    with pytest.raises(FormatError, match="wrong magic"):
        container.unpack(b"PNG\x00" + b"\0" * 40)


def test_unknown_version():
    data = bytearray(container.pack(header(), b"", b""))
    data[4] = 9
    with pytest.raises(FormatError, match="unknown format version 9"):
        container.unpack(bytes(data))


def test_absurd_dimensions_refused_before_decoding():
    data = container.pack(header(width=1 << 20, height=1 << 20), b"", b"")
    with pytest.raises(FormatError, match="absurd dimensions"):
        container.unpack(data)


def test_trailing_garbage():
    with pytest.raises(FormatError, match="trailing"):
        container.unpack(container.pack(header(), b"", b"") + b"x")


def test_decoded_pixels_checked_against_crc(tiny_codec):
    data = encode_image(gradient_image(6, 5), tiny_codec, fallback=False)[0]
    h, model, plane = container.unpack(data)
    h.pixels_crc32 ^= 1
    with pytest.raises(FormatError, match="CRC-32"):
        decode_image(container.pack(h, model, plane), codec=tiny_codec)


def _documented_fields() -> list[tuple[str, str]]:
    """The header fields of FORMAT.md's first table: ``(name, type)`` in order."""
    import re

    from tests.conftest import ROOT

    table = (ROOT / "FORMAT.md").read_text().split("```")[1]
    rows = table.split("header fields, in this order:")[1].split("\n7+N")[0]
    found = []
    for line in rows.splitlines():
        m = re.match(r"^ {16}(\S.*?)\s{2,}(str8|str16|u8|u16|u32, u32|u32|32 bytes)\b", line)
        if m:
            found.append((m.group(1), m.group(2)))
    return found


def test_the_image_header_is_what_format_md_says():
    """FORMAT.md is the specification: reading a packed header field by field with the document's types
    gives back every value, and ends where the header's length says."""
    import struct

    h = header(extra={"cpu": "AVX2"}, palette=b"\x01\x02\x03", metadata=b"meta")
    data = container.pack(h, b"MODEL", b"PL")
    assert data[:4] == b"\x89NLC" and data[4] == 2
    n = struct.unpack_from("<H", data, 5)[0]
    pos, values = 7, []
    for name, kind in _documented_fields():
        if kind in ("str8", "str16"):
            size = 1 if kind == "str8" else 2
            length = int.from_bytes(data[pos:pos + size], "little")
            values.append(data[pos + size:pos + size + length])
            pos += size + length
        else:
            fmt, size = {"u8": ("<B", 1), "u16": ("<H", 2), "u32": ("<I", 4), "u32, u32": ("<II", 8),
                         "32 bytes": (None, 32)}[kind]
            values.append(data[pos:pos + size] if fmt is None else struct.unpack_from(fmt, data, pos))
            pos += size
    assert pos == 7 + n
    names = [name for name, _ in _documented_fields()]
    got = dict(zip(names, values))
    assert got["codec id"] == h.codec.encode() and got["weights sha256"].hex() == h.weights_sha256
    assert got["width, height"] == (h.width, h.height) and got["mode"] == h.mode.encode()
    assert got["palette"] == h.palette and got["extra"] == b'{"cpu":"AVX2"}'
    assert got["model payload"] == (5,) and got["plane payload"] == (2,) and got["metadata payload"] == (4,)
    assert len(names) == 19


def set_header(**kw) -> container.SetHeader:
    """A set header as a sequence codec writes it, with ``kw`` changed."""
    fields = dict(codec="made-fmnist-binary", weights_sha256="ab" * 32, constriction="0.5.0", torch="2.13.0+cpu",
                  device="cpu", count=10000, height=28, width=28, bits=1, scale=255, pixels_crc32=3333884758,
                  schedule=[], source={"kind": "array-memory"}, coder="ans", coding="sequence")
    return container.SetHeader(**{**fields, **kw})


@pytest.mark.parametrize("kw", [{}, {"coding": "bits-back", "schedule": [[1, 1], [500, 20]], "start_bits": 1234,
                                     "latent_bound": 8.0, "threads": 2, "coder": "ans", "bits": 8, "scale": 1},
                                {"coding": "tiles", "channels": 3, "tile": 64, "group": 96, "coder": "range",
                                 "count": 3, "height": 70000, "width": 200},
                                {"coding": "flow", "coder": "range", "count": 0, "bits": 8, "scale": 1}],
                         ids=["sequence", "bits-back", "tiles", "flow"])
def test_a_compact_set_header_gives_back_every_field(kw):
    h = set_header(**kw)
    data = container.pack_set(h, b"PAYLOAD!")
    assert data[4] == container.SET_VERSION_COMPACT
    assert container.unpack_set(data) == (h, b"PAYLOAD!")
    old = container.pack_set(h, b"PAYLOAD!", compact=False)  # the older versions still read
    assert old[4] == container.SET_VERSIONS[h.coding] and container.unpack_set(old) == (h, b"PAYLOAD!")


def test_a_compact_set_header_is_small():
    """What issue 28's 0.1% needs: 10,000 binarized 28x28 images cost about 190 KB, so the file's whole
    overhead (header, CRCs, framing) must stay well below 190 bytes."""
    data = container.pack_set(set_header(), b"")
    legacy = container.pack_set(set_header(), b"", compact=False)
    assert len(data) <= 140 and 2 * len(data) < len(legacy)


def test_what_a_compact_set_header_refuses():
    import struct
    import zlib

    data = container.pack_set(set_header(), b"P")

    def recrc(blob: bytes) -> bytes:
        head = container.SET_MAGIC + struct.pack("<BI", 5, len(blob)) + blob
        return head + struct.pack("<I", zlib.crc32(head)) + b"P" + struct.pack("<I", zlib.crc32(b"P"))

    n = struct.unpack_from("<I", data, 5)[0]
    blob = data[9:9 + n]
    with pytest.raises(FormatError, match=r"^corrupted header \(coding or coder\)$"):
        container.unpack_set(recrc(bytes([4]) + blob[1:]))
    with pytest.raises(FormatError, match=r"^corrupted header$"):  # a packed field again in the JSON part
        json_at = blob.rindex(b'{"source":{"kind":"array-memory"}}')
        container.unpack_set(recrc(blob[:json_at] + b'{"source":{"kind":"array-memory"},"count":3}'))
    with pytest.raises(FormatError, match=r"^corrupted header$"):  # neither JSON nor zlib
        container.unpack_set(recrc(blob[:json_at] + b"[1]"))
    with pytest.raises(FormatError, match=r"^corrupted header \(bits 7, expected one of 1, 8\)$"):
        container.unpack_set(recrc(blob[:2] + bytes([7]) + blob[3:]))
    with pytest.raises(FormatError, match="unknown set format version 6"):
        container.unpack_set(data[:4] + bytes([6]) + data[5:])
