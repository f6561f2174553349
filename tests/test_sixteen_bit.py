"""16-bit images: the low-byte coder, nlc's 16-bit PNG reader and writer, and whole files through the API and CLI."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nlc import png16
from nlc.api import decode_image, encode_image, png_bytes
from nlc.coding.low_bytes import MODES, decode_low_bytes, decode_rest, encode_low_bytes, encode_rest
from nlc.errors import FormatError, InputError
from nlc.images import Image16, image_from_bytes
from tests.conftest import ROOT

PNGSUITE = ROOT.parent / "shared" / "data" / "pngsuite"


def samples16(h: int, w: int, planes: int, seed: int = 0) -> np.ndarray:
    """A smooth 16-bit image with noise in the low bits."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 1900 + y * 700)[:, :, None] + 5000 * np.arange(planes)
    return ((base + rng.integers(0, 300, (h, w, planes))) % 65536).astype(np.uint16)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 3]), st.integers(0, 3), st.integers(0, 2**31))
def test_low_bytes_round_trip(h, w, c, kind, seed):
    rng = np.random.default_rng(seed)
    high = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
    low = [rng.integers(0, 256, (h, w, c)), high, np.zeros((h, w, c)), (high.astype(int) * 3 + 1) % 256][kind]
    low = low.astype(np.uint8)
    data = encode_low_bytes(high, low)
    assert np.array_equal(decode_low_bytes(data, high), low)


def test_each_channel_keeps_the_cheapest_prediction():
    rng = np.random.default_rng(1)
    v8 = rng.integers(0, 256, (40, 30, 3))
    widened = (v8 * 257).astype(np.uint16)  # 8-bit data scaled to 16 bits: low == high
    data = encode_low_bytes((widened >> 8).astype(np.uint8), (widened & 255).astype(np.uint8))
    assert [MODES[m] for m in data[1:4]] == ["copy/fold"] * 3
    assert len(data) < 100  # 3,600 samples, each low byte known from its high byte
    shifted = (v8 << 8).astype(np.uint16)
    data = encode_low_bytes((shifted >> 8).astype(np.uint8), (shifted & 255).astype(np.uint8))
    assert all(MODES[m].startswith("zero/") for m in data[1:4]) and len(data) < 100
    y, x = np.mgrid[0:40, 0:30]
    smooth = ((x * 300 + y * 200)[:, :, None] + rng.integers(0, 8, (40, 30, 3))).astype(np.uint16)
    data = encode_low_bytes((smooth >> 8).astype(np.uint8), (smooth & 255).astype(np.uint8))
    assert all(MODES[m].startswith("planar/") for m in data[1:4])
    assert len(data) < 0.6 * smooth.size  # well below the 8 bits per low byte of storing them


def test_damaged_low_bytes_are_refused():
    high = np.full((4, 4, 3), 7, np.uint8)
    data = encode_low_bytes(high, np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    with pytest.raises(FormatError, match=r"^corrupted low bytes of 16-bit samples \(prediction 9\)$"):
        decode_low_bytes(data[:1] + b"\x09" + data[2:], high)
    with pytest.raises(FormatError, match=r"^corrupted low bytes of 16-bit samples \(header\)$"):
        decode_low_bytes(data[:6], high)
    with pytest.raises(FormatError, match=r"^corrupted 16-bit planes \(truncated\)$"):
        decode_rest(b"\x01\x00", high, 4)


@pytest.mark.parametrize("planes, channels", [(1, 1), (2, 1), (3, 3), (4, 3)])
def test_the_rest_of_16_bit_samples_round_trips(planes, channels):
    s = samples16(11, 13, planes, seed=planes)
    data = encode_rest(s, channels)
    assert np.array_equal(decode_rest(data, (s[:, :, :channels] >> 8).astype(np.uint8), planes), s)


@pytest.mark.parametrize("mode", sorted(png16.COLOUR_TYPES))
def test_16_bit_png_written_and_read_back(mode):
    planes = len(Image16.bands(mode))
    s = samples16(9, 14, planes, seed=3)
    data = png16.png_bytes(s, mode, None, b"")
    back, got_mode, transparency = png16.read_samples(data, "x.png")
    assert got_mode == mode and transparency is None and np.array_equal(back, s)


@pytest.mark.skipif(not PNGSUITE.is_dir(), reason="PngSuite is in ../shared/data")
@pytest.mark.parametrize("kind", ["0g16", "2c16", "4a16", "6a16"])
def test_interlaced_16_bit_pngsuite_files_read_as_their_plain_twins(kind):
    """PngSuite's ``basi*`` (Adam7) and ``basn*`` files hold the same pixels."""
    plain = image_from_bytes((PNGSUITE / f"basn{kind}.png").read_bytes(), "basn")
    laced = image_from_bytes((PNGSUITE / f"basi{kind}.png").read_bytes(), "basi")
    assert isinstance(plain, Image16) and plain.mode == laced.mode
    assert np.array_equal(plain.samples, laced.samples)
    assert ((plain.samples >> 8) != (plain.samples & 255)).any()  # real 16-bit values, not widened 8-bit ones


def png16_file(samples: np.ndarray, mode: str, transparency=None, text: str | None = None) -> bytes:
    """A 16-bit PNG with a gamma chunk (and a text chunk)."""
    stand_in = io.BytesIO()
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Title", text)
    Image.new("L", (1, 1)).save(stand_in, format="PNG", pnginfo=info)
    data = png16.png_bytes(samples, mode, transparency, stand_in.getvalue())
    body = b"gAMA" + struct.pack(">I", 45455)
    at = data.index(b"IDAT") - 4
    return data[:at] + struct.pack(">I", 4) + body + struct.pack(">I", zlib.crc32(body)) + data[at:]


@pytest.mark.parametrize("mode, transparency", [("I;16", 1234), ("LA;16", None), ("RGB;16", [1, 2, 65535]),
                                                ("RGBA;16", None)])
def test_16_bit_images_round_trip_through_nlc_files(tiny_codec, mode, transparency):
    s = samples16(19, 23, len(Image16.bands(mode)), seed=7)
    im = image_from_bytes(png16_file(s, mode, transparency, text="sixteen"), "in.png")
    assert isinstance(im, Image16) and im.mode == mode and im.info.get("transparency") == transparency
    data, stats = encode_image(im, tiny_codec)
    out, got = decode_image(data, codec=tiny_codec)
    assert isinstance(out, Image16) and out.mode == mode and np.array_equal(out.samples, s) and got == transparency
    back = image_from_bytes(png_bytes(out, got), "out.png")
    assert np.array_equal(back.samples, s) and back.info.get("transparency") == transparency
    assert back.info["gamma"] == pytest.approx(0.45455) and back.text == {"Title": "sixteen"}


def test_a_16_bit_file_with_the_wrong_bit_depth_is_refused(tiny_codec):
    from nlc import container

    im = Image16(samples16(5, 6, 3), "RGB;16")
    header, model, plane = container.unpack(encode_image(im, tiny_codec)[0])
    header.bit_depth = 8
    with pytest.raises(FormatError, match=r"^corrupted header \(bit depth 8 for mode 'RGB;16'\)$"):
        decode_image(container.pack(header, model, plane), codec=tiny_codec)


def test_a_damaged_16_bit_png_is_refused_in_one_line():
    data = png16.png_bytes(samples16(6, 6, 3), "RGB;16", None, b"")
    at = data.index(b"IDAT")
    (n,) = struct.unpack(">I", data[at - 4 : at])
    body = b"IDAT" + zlib.compress(zlib.decompress(data[at + 4 : at + 4 + n])[:-5])  # 5 bytes short
    cut = data[: at - 4] + struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body)) \
        + data[at + 4 + n + 4 :]
    with pytest.raises(InputError, match=r"^cut.png: damaged PNG \(image data of 217 bytes, expected 222\)$"):
        image_from_bytes(cut, "cut.png")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(1, 12), st.integers(1, 12), st.sampled_from(sorted(png16.COLOUR_TYPES)), st.integers(0, 2**31))
def test_any_16_bit_image_round_trips(tiny_codec, h, w, mode, seed):
    s = np.random.default_rng(seed).integers(0, 65536, (h, w, len(Image16.bands(mode)))).astype(np.uint16)
    out, _ = decode_image(encode_image(Image16(s, mode), tiny_codec)[0], codec=tiny_codec)
    assert out.mode == mode and np.array_equal(out.samples, s)


def test_the_cli_compresses_inspects_verifies_and_decompresses_a_16_bit_png(tmp_path, tiny_home):
    import json

    from click.testing import CliRunner

    from nlc.cli import main

    s = samples16(17, 21, 4, seed=5)
    src = tmp_path / "deep.png"
    src.write_bytes(png16_file(s, "RGBA;16"))

    def run(*args):
        return CliRunner().invoke(main, [str(a) for a in args])

    assert run("compress", src).exit_code == 0
    info = run("info", "--json", tmp_path / "deep.png.nlc")
    assert info.exit_code == 0, info.output
    header = json.loads(info.stdout)
    assert header["mode"] == "RGBA;16" and header["bit_depth"] == 16
    assert run("verify", "--originals", tmp_path / "deep.png.nlc").exit_code == 0
    out = tmp_path / "back.png"
    assert run("decompress", tmp_path / "deep.png.nlc", "-o", out).exit_code == 0
    back = image_from_bytes(out.read_bytes(), "back.png")
    assert back.mode == "RGBA;16" and np.array_equal(back.samples, s)
    webp = run("decompress", tmp_path / "deep.png.nlc", "-o", tmp_path / "back.webp")
    assert webp.exit_code == 1 and "lossless WebP holds RGB and RGBA pixels only" in webp.stderr


def test_a_set_refuses_16_bit_images_instead_of_cutting_them(tmp_path):
    from nlc.sets import read_items

    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "a.png").write_bytes(png16.png_bytes(samples16(4, 5, 3), "RGB;16", None, b""))
    with pytest.raises(InputError, match=r"a.png: 16-bit samples; a set stores 8-bit images \(compress 16-bit "
                                         r"images one file each\)$"):
        read_items([folder], ("L", "RGB"))


def test_a_pillow_image_of_16_bit_samples_is_refused_with_the_way_to_keep_them(tiny_codec):
    im = Image.open(io.BytesIO(png16.png_bytes(samples16(4, 5, 3), "RGB;16", None, b"")))  # cut to 8 bits
    with pytest.raises(InputError, match=r"^image: 16-bit samples in a Pillow image \(Pillow cuts 16-bit colour to "
                                         r"8 bits\); open the file with nlc.images.read_image, which keeps all 16$"):
        encode_image(im, tiny_codec)
