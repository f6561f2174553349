"""Property tests: decode(encode(x)) == x for random images of every mode, size and content."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nlc.api import decode_image, encode_image
from tests.conftest import gradient_image, same_pixels

MODES = ["RGB", "L", "RGBA", "LA", "P", "1"]


@st.composite
def images(draw):
    h = draw(st.integers(1, 32))
    w = draw(st.integers(1, 32))
    mode = draw(st.sampled_from(MODES))
    kind = draw(st.sampled_from(["noise", "flat", "gradient"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    if kind == "gradient":
        return gradient_image(h, w, mode, seed)
    if kind == "flat":
        rgba = np.broadcast_to(rng.integers(0, 256, 4, dtype=np.uint8), (h, w, 4)).copy()
    else:
        rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    im = Image.fromarray(rgba, "RGBA")
    if mode == "P":
        return im.convert("RGB").quantize(draw(st.integers(2, 256)))
    return im.convert(mode)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(im=images(), coder=st.sampled_from(["range", "ans"]), tile=st.sampled_from([8, 13, 16, 32]))
def test_round_trip_any_image(tiny_codec, im, coder, tile):
    data, stats = encode_image(im, tiny_codec, coder=coder, tile=tile)
    out, _ = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im)


@pytest.mark.parametrize("coder", ["range", "ans"])
def test_file_size_tracks_model_information(tiny_codec, coder):
    im = gradient_image(48, 40)
    data, stats = encode_image(im, tiny_codec, coder=coder)
    payload_bits = (len(data) - stats["header_bytes"]) * 8
    assert abs(payload_bits - stats["model_bits"]) <= stats["model_bits"] * 0.001 + 64


def test_palette_transparency_survives(tiny_codec):
    im = gradient_image(9, 7, "P")
    im.info["transparency"] = 3
    data, _ = encode_image(im, tiny_codec)
    out, transparency = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im) and transparency == 3


def test_rgba_palette_survives(tiny_codec):
    im = Image.new("P", (5, 4))
    im.putpalette(bytes(range(64)), rawmode="RGBA")
    im.putdata([i % 16 for i in range(20)])
    data, _ = encode_image(im, tiny_codec)
    out, _ = decode_image(data, codec=tiny_codec)
    assert same_pixels(out, im)


@pytest.mark.parametrize("coder", ["range", "ans"])
def test_several_tile_groups(tiny_codec, coder):
    from nlc.coding.autoregressive import decode_tiles, encode_tiles

    px = np.asarray(gradient_image(21, 30))
    payload, bits = encode_tiles(tiny_codec.model, 3, px, 8, coder, group=4)  # 12 tiles -> 3 groups
    back = decode_tiles(tiny_codec.model, 3, 21, 30, 3, 8, coder, payload, group=4)
    assert np.array_equal(back, px)


def test_shipped_default_codec_round_trip():
    """The committed weights match their registry hash and code a small photo crop exactly."""
    from nlc.api import Codec

    codec = Codec.load("default")
    im = gradient_image(12, 20)
    data, stats = encode_image(im, codec)
    out, _ = decode_image(data)
    assert same_pixels(out, im)
    assert stats["model_bits"] > 0
