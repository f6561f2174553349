"""The compiled row loop of the exact codecs (nlc.coding.adaptive_steps) codes exactly as the step-by-step path
does, with an adaptive stage or without: the same bytes, the same learned state, the same pixels or the same
refusal from damaged data."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlc.coding import autoregressive
from nlc.coding.adaptive import OnlineBias
from nlc.coding.autoregressive import decode_tiles, encode_tiles
from nlc.coding.coders import CoderError
from nlc.models.exact import make_exact
from tests.coding.test_adaptive import smooth
from tests.conftest import tiny_model

STAGES = ["bias-v1", "bias-v2"]


@pytest.fixture(scope="module")
def exact_tiny():
    return make_exact(tiny_model(3))


def _both(monkeypatch, fn):
    """``fn()`` with the compiled rows, then step by step."""
    out = []
    for compiled in (True, False):
        monkeypatch.setattr(autoregressive, "COMPILED_STEPS", compiled)
        out.append(fn())
    return out


@settings(max_examples=12, deadline=None)
@given(h=st.integers(1, 19), w=st.integers(1, 19), channels=st.sampled_from([1, 3]), tile=st.sampled_from([4, 8, 16]),
       group=st.sampled_from([3, 384]), seed=st.integers(0, 2**16), stage=st.sampled_from(STAGES))
def test_the_same_bytes_and_pixels_as_step_by_step(exact_tiny, h, w, channels, tile, group, seed, stage):
    pixels = smooth(h, w, channels, seed) if seed % 2 else \
        np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    with pytest.MonkeyPatch.context() as mp:
        (fast, fast_bits), (slow, slow_bits) = _both(
            mp, lambda: encode_tiles(exact_tiny, 3, pixels, tile, "range", group=group, adaptive=stage))
        assert fast == slow and fast_bits == pytest.approx(slow_bits, rel=1e-12)
        for out in _both(mp, lambda: decode_tiles(exact_tiny, 3, h, w, channels, tile, "range", fast, group=group,
                                                  adaptive=stage)):
            np.testing.assert_array_equal(out, pixels)


@settings(max_examples=8, deadline=None)
@given(h=st.integers(1, 19), w=st.integers(1, 19), channels=st.sampled_from([1, 3]), tile=st.sampled_from([4, 8]),
       seed=st.integers(0, 2**16))
def test_an_exact_codec_without_a_stage_decodes_as_step_by_step(exact_tiny, h, w, channels, tile, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    payload, _ = encode_tiles(exact_tiny, 3, pixels, tile, "range", group=5)
    with pytest.MonkeyPatch.context() as mp:
        for out in _both(mp, lambda: decode_tiles(exact_tiny, 3, h, w, channels, tile, "range", payload, group=5)):
            np.testing.assert_array_equal(out, pixels)


@pytest.mark.parametrize("stage", STAGES)
def test_the_same_state_after_every_row(exact_tiny, stage, monkeypatch):
    seen: list[str] = []
    original = OnlineBias.start_row

    def start_row(self, r):
        original(self, r)
        seen.append(hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in self.state())).hexdigest())

    monkeypatch.setattr(OnlineBias, "start_row", start_row)
    pixels = smooth(24, 21, 3, 7)
    runs = []
    for compiled in (True, False):
        monkeypatch.setattr(autoregressive, "COMPILED_STEPS", compiled)
        seen.clear()
        payload, _ = encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive=stage)
        runs.append(list(seen))
        seen.clear()
        decode_tiles(exact_tiny, 3, 24, 21, 3, 8, "range", payload, adaptive=stage)
        runs.append(list(seen))
    assert len(runs[0]) == 8 and all(r == runs[0] for r in runs)


@pytest.mark.parametrize("stage", [None, "bias-v2"])
@pytest.mark.parametrize("where", [0, 5, 40])
def test_damaged_data_decodes_or_fails_as_step_by_step(exact_tiny, where, stage, monkeypatch):
    pixels = smooth(16, 16, 3, 8)
    payload, _ = encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive=stage)
    damaged = bytearray(payload)
    damaged[4 + where * 4 : 8 + where * 4] = b"\xff\xff\xff\xff"  # a word of the coder's, after the group's length
    outcomes = []
    for compiled in (True, False):
        monkeypatch.setattr(autoregressive, "COMPILED_STEPS", compiled)
        try:
            outcomes.append(decode_tiles(exact_tiny, 3, 16, 16, 3, 8, "range", bytes(damaged), adaptive=stage))
        except CoderError as e:
            outcomes.append(str(e).split(":")[0])
    if isinstance(outcomes[1], str):
        assert outcomes[0] == outcomes[1] == "range decoder failed"
    else:
        np.testing.assert_array_equal(outcomes[0], outcomes[1])
