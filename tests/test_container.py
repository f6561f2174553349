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
