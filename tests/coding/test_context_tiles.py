"""Context tiles (nlc.coding.context_tiles): groups coded one after another, each tile reading coded
neighbours; exact round trips, the two decoding chains agreeing with one thread, damaged data refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlc.coding import autoregressive, context_tiles
from nlc.coding.autoregressive import TileGrid, decode_tiles, encode_tiles
from nlc.coding.coders import CoderError
from nlc.models.exact import make_exact
from tests.coding.test_adaptive import smooth
from tests.conftest import tiny_model


@pytest.fixture(scope="module")
def exact_tiny():
    return make_exact(tiny_model(3))


def test_the_schedule_goes_tile_row_by_tile_row_even_columns_first():
    groups = context_tiles.schedule(TileGrid.for_image(48, 40, 16), 8)
    assert [g.tiles.tolist() for g in groups] == [[0, 2], [1], [3, 5], [4], [6, 8], [7]]
    assert [(g.top, g.left, g.odd) for g in groups] == [(0, 0, False), (0, 8, True), (8, 0, False), (8, 8, True),
                                                        (8, 0, False), (8, 8, True)]
    assert [(g.top, g.left) for g in context_tiles.schedule(TileGrid.for_image(9, 3, 4), 8)] == [(0, 0), (4, 0),
                                                                                                  (4, 0)]


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), channels=st.sampled_from([1, 3]), tile=st.sampled_from([4, 8]),
       context=st.sampled_from([4, 8]), seed=st.integers(0, 2**16), stage=st.sampled_from(["bias-v1", "bias-v2"]))
def test_round_trip_any_size(exact_tiny, h, w, channels, tile, context, seed, stage):
    pixels = smooth(h, w, channels, seed) if seed % 2 else \
        np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    payload, bits = encode_tiles(exact_tiny, 3, pixels, tile, "range", adaptive=stage, context=context)
    assert bits <= len(payload) * 8 + 64
    out = decode_tiles(exact_tiny, 3, h, w, channels, tile, "range", payload, adaptive=stage, context=context)
    np.testing.assert_array_equal(out, pixels)


def test_one_core_decodes_the_chains_one_after_the_other(exact_tiny, monkeypatch):
    pixels = smooth(30, 37, 3, 4)
    payload, _ = encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive="bias-v2", context=8)
    monkeypatch.setattr(context_tiles, "cores", lambda: 1)
    out = decode_tiles(exact_tiny, 3, 30, 37, 3, 8, "range", payload, adaptive="bias-v2", context=8)
    np.testing.assert_array_equal(out, pixels)


def test_the_encoders_window_of_passes_changes_no_byte(exact_tiny, monkeypatch):
    pixels = smooth(40, 40, 3, 7)
    monkeypatch.setattr(autoregressive, "STEPPED_ENCODER", False)  # parameters from the parallel pass
    whole, _ = encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive="bias-v2", context=8)
    monkeypatch.setattr(context_tiles, "PASS_WINDOW", 1)  # one group per pass: memory bounded on huge images
    assert encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive="bias-v2", context=8)[0] == whole


@settings(max_examples=10, deadline=None)
@given(h=st.integers(1, 30), w=st.integers(1, 30), channels=st.sampled_from([1, 3]), tile=st.sampled_from([4, 8]),
       context=st.sampled_from([0, 4, 8]), seed=st.integers(0, 2**16),
       stage=st.sampled_from(["bias-v1", "bias-v2", None]))
def test_the_stepped_encoder_writes_the_parallel_passs_bytes(exact_tiny, h, w, channels, tile, context, seed, stage):
    """The encoder that steps through the tiles as the decoder does (the default) and the one that takes the
    parameters from a parallel pass write the same bytes and count the same bits, with context tiles and
    without, with an adaptive stage and without (``pixelcnnpp-exact``'s coding, where the pass's bits come
    from the numpy tables: the same to rounding)."""
    context = context if stage else 0  # context tiles need a stage
    pixels = smooth(h, w, channels, seed) if seed % 2 else \
        np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    out = []
    with pytest.MonkeyPatch.context() as mp:
        for stepped in (True, False):
            mp.setattr(autoregressive, "STEPPED_ENCODER", stepped)
            out.append(encode_tiles(exact_tiny, 3, pixels, tile, "range", group=5, adaptive=stage, context=context))
    assert out[0][0] == out[1][0] and out[0][1] == pytest.approx(out[1][1], rel=1e-12)


def test_context_pays_on_a_smooth_image(exact_tiny):
    pixels = smooth(64, 64, 3, 5)
    plain, _ = encode_tiles(exact_tiny, 3, pixels, 16, "range", adaptive="bias-v2")
    seeing, _ = encode_tiles(exact_tiny, 3, pixels, 16, "range", adaptive="bias-v2", context=8)
    assert len(seeing) < len(plain)


@pytest.mark.parametrize("damage", ["truncated", "extra", "words"])
def test_damaged_payloads_are_refused_without_hanging(exact_tiny, damage):
    pixels = smooth(24, 24, 3, 6)
    payload, _ = encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive="bias-v2", context=8)
    if damage == "truncated":
        bad, match = payload[:-3], "runs past the end|ends before"
    elif damage == "extra":
        bad, match = payload + b"\0\0\0\0", "unexpected bytes"
    else:  # a group's byte count that is not whole words: the even chain fails, the odd one must not wait for it
        bad, match = (5).to_bytes(4, "little") + payload[4:], "whole number of 32-bit words|past the end|unexpected"
    with pytest.raises(CoderError, match=match):
        decode_tiles(exact_tiny, 3, 24, 24, 3, 8, "range", bad, adaptive="bias-v2", context=8)


def test_context_needs_an_adaptive_exact_model_on_the_range_coder(exact_tiny):
    pixels = smooth(8, 8, 3, 0)
    with pytest.raises(ValueError, match="context tiles need"):
        encode_tiles(exact_tiny, 3, pixels, 4, "ans", adaptive="bias-v2", context=8)
    with pytest.raises(ValueError, match="context tiles need"):
        encode_tiles(exact_tiny, 3, pixels, 4, "range", context=8)


def test_the_default_codec_records_context_only_where_there_are_several_tiles():
    from PIL import Image

    from nlc.api import decode_image, encode_image, read_header

    # one tile (of 64, or of a whole image up to 128): nothing to gain, no header field
    for size, context in (((40, 30), None), ((70, 20), None), ((140, 20), 8)):
        im = Image.fromarray(smooth(size[1], size[0], 3, 9))
        data, _ = encode_image(im, "default", fallback=False)
        assert read_header(data).extra.get("context") == context
        assert decode_image(data)[0].tobytes() == im.tobytes()
