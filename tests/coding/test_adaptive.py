"""The adaptive stage (nlc.coding.adaptive): exact round trips, encoder and decoder learning alike,
no peeking at symbols not yet coded, rates against -log2 p, and the pixelcnnpp-adaptive codec."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import nlc
from nlc.coding import adaptive as adaptive_mod
from nlc.coding import autoregressive
from nlc.coding.adaptive import OnlineBias, make_stage
from nlc.coding.autoregressive import decode_tiles, encode_tiles
from nlc.coding.coders import RangeQueue
from nlc.models.exact import make_exact
from tests.conftest import tiny_model

STAGE = "bias-v1"
STAGES = ["bias-v1", "bias-v2"]


@pytest.fixture(scope="module")
def exact_tiny():
    return make_exact(tiny_model(3))


def smooth(h: int, w: int, c: int, seed: int) -> np.ndarray:
    """A gradient with noise: the model's errors are correlated, so the stage has something to learn."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 3 + y * 2 + 60)[..., None] + np.arange(c)[None, None, :] * 20
    return np.clip(base + rng.integers(-4, 5, (h, w, c)), 0, 255).astype(np.uint8)


@settings(max_examples=16, deadline=None)
@given(h=st.integers(1, 19), w=st.integers(1, 19), channels=st.sampled_from([1, 3]),
       coder=st.sampled_from(["range", "ans"]), tile=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**16),
       stage=st.sampled_from(STAGES))
def test_round_trip_any_size_channels_coder_and_tile(exact_tiny, h, w, channels, coder, tile, seed, stage):
    pixels = np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)
    payload, bits = encode_tiles(exact_tiny, 3, pixels, tile, coder, adaptive=stage)
    out = decode_tiles(exact_tiny, 3, h, w, channels, tile, coder, payload, adaptive=stage)
    np.testing.assert_array_equal(out, pixels)
    assert bits > 0


@pytest.mark.parametrize("stage", STAGES)
def test_round_trip_with_several_tile_groups(exact_tiny, stage):
    pixels = smooth(20, 18, 3, 1)
    payload, _ = encode_tiles(exact_tiny, 3, pixels, 4, "range", group=7, adaptive=stage)
    out = decode_tiles(exact_tiny, 3, 20, 18, 3, 4, "range", payload, group=7, adaptive=stage)
    np.testing.assert_array_equal(out, pixels)


def _recording(monkeypatch) -> list[str]:
    """Record a digest of every stage's whole state at each row start, in call order."""
    seen: list[str] = []
    original = OnlineBias.start_row

    def start_row(self, r):
        original(self, r)
        h = hashlib.sha256()
        for a in self.state():
            h.update(np.ascontiguousarray(a).tobytes())
        seen.append(f"{r}:{h.hexdigest()}")

    monkeypatch.setattr(OnlineBias, "start_row", start_row)
    return seen


@pytest.mark.parametrize("stage", STAGES)
def test_encoder_and_decoder_states_are_equal_after_every_row(exact_tiny, stage, monkeypatch):
    pixels = smooth(24, 21, 3, 2)
    seen = _recording(monkeypatch)
    payload, _ = encode_tiles(exact_tiny, 3, pixels, 8, "range", adaptive=stage)
    encoder = list(seen)
    seen.clear()
    out = decode_tiles(exact_tiny, 3, 24, 21, 3, 8, "range", payload, adaptive=stage)
    np.testing.assert_array_equal(out, pixels)
    assert len(encoder) == 8 and encoder == seen
    assert len(set(encoder)) == len(encoder)  # the state really changes from row to row


class _Recorder(RangeQueue):
    """A range encoder that also keeps every table it is handed."""

    tables: list[np.ndarray] = []

    def encode(self, symbols, probs):
        type(self).tables.append(np.array(probs))
        super().encode(symbols, probs)


@pytest.mark.parametrize("stage", STAGES)
def test_tables_never_depend_on_a_pixel_not_yet_coded(exact_tiny, stage, monkeypatch):
    """Perturb one pixel: every table coded before it (in the decoder's order) stays identical (on the step
    by step path, whose tables the recorder sees; the compiled rows give the same bytes, test_adaptive_steps)."""
    monkeypatch.setattr(autoregressive, "make_coder", lambda name, data=None: _Recorder())
    monkeypatch.setattr(autoregressive, "COMPILED_STEPS", False)
    pixels = smooth(16, 16, 3, 3)
    r0, c0 = 5, 3  # in tile 1 of a 2x2 grid of 8x8 tiles
    runs = []
    for value in (pixels[r0, 8 + c0, 0], 255 - pixels[r0, 8 + c0, 0]):
        changed = pixels.copy()
        changed[r0, 8 + c0, 0] = value
        _Recorder.tables = []
        encode_tiles(exact_tiny, 3, changed, 8, "range", adaptive=stage)
        runs.append(_Recorder.tables)
    before = r0 * 8 + c0  # one encode call per step
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][:before], runs[1][:before]))
    # at that step (rows stage by stage, tile by tile: 6 stages of 4 tiles) the other tiles' tables and
    # the changed pixel's first table (R's bucket) are the same too
    a, b = runs[0][before], runs[1][before]
    same = [k * 4 + t for k in range(6) for t in range(4) if t != 1] + [1]
    assert np.array_equal(a[same], b[same]) and not np.array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0][before + 1:], runs[1][before + 1:]))


@pytest.mark.parametrize("stage", STAGES)
def test_the_file_is_within_a_tenth_of_a_percent_of_the_adapted_model(exact_tiny, stage):
    pixels = smooth(64, 128, 3, 4)
    payload, bits = encode_tiles(exact_tiny, 3, pixels, 32, "range", adaptive=stage)
    assert bits <= len(payload) * 8 <= bits * 1.001


@pytest.mark.parametrize("stage", STAGES)
def test_the_stage_learns_what_the_model_gets_wrong(exact_tiny, stage):
    """On a smooth image with correlated model errors the adapted model pays less than the model."""
    pixels = smooth(64, 64, 3, 5)
    _, plain = encode_tiles(exact_tiny, 3, pixels, 32, "range")
    _, adapted = encode_tiles(exact_tiny, 3, pixels, 32, "range", adaptive=stage)
    assert adapted < 0.99 * plain


def test_float_models_and_unknown_stages_are_refused(exact_tiny):
    pixels = smooth(4, 4, 3, 0)
    with pytest.raises(ValueError, match="needs a model with exact arithmetic"):
        encode_tiles(tiny_model(0), 3, pixels, 4, "range", adaptive=STAGE)
    with pytest.raises(ValueError, match="unknown adaptive stage 'bias-v9'"):
        encode_tiles(exact_tiny, 3, pixels, 4, "range", adaptive="bias-v9")
    assert make_stage(None, 1, 4, 4, 3) is None


def test_solver_matches_numpy_on_a_positive_definite_system():
    rng = np.random.default_rng(0)
    m = rng.normal(size=(9, 9))
    a = m @ m.T + 9 * np.eye(9)
    b = rng.normal(size=9)
    x = adaptive_mod._solve(a.tolist(), b.tolist())
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-10)


def test_the_compiled_solver_gives_the_reference_solvers_rounded_coefficients():
    from nlc.coding.adaptive_kernels import solve_kernel

    rng = np.random.default_rng(1)
    for d in (11, 19):
        m = rng.integers(-3000, 3000, size=(5, d, d))
        gram = np.einsum("kij,klj->kil", m, m) + 4096 * np.eye(d, dtype=np.int64)  # integer statistics, SPD
        gram[2, 0, 1:] = gram[2, 1:, 0] = 0  # a row of zeros below the pivot: the solver's skip
        moment = rng.integers(-10**7, 10**7, size=(5, d))
        want = [[int(np.floor(v * 4096 + 0.5)) for v in adaptive_mod._solve(g.astype(float).tolist(),
                                                                              b.astype(float).tolist())]
                for g, b in zip(gram, moment)]
        assert solve_kernel(gram, moment, 12).tolist() == want


def test_adaptive_codec_round_trips_through_the_api():
    im = Image.fromarray(smooth(40, 36, 3, 6))
    data, stats = nlc.encode_image(im, "pixelcnnpp-adaptive", fallback=False)
    out, _ = nlc.decode_image(data)
    assert np.array_equal(np.asarray(out), np.asarray(im))
    assert nlc.read_header(data).codec == "pixelcnnpp-adaptive"
    _, plain = nlc.encode_image(im, "pixelcnnpp-exact", fallback=False)
    assert stats["model_bits"] < plain["model_bits"]


def test_rounding_to_significant_bits_through_the_ieee_bits_is_the_definition():
    """``adaptive_kernels._round_significant`` adds half a unit to a normal double's bits and clears what is
    below: the same as ``floor(m 2^bits + 0.5) 2^(e - bits)`` for ``x = m 2^e``, ties and carries included."""
    import math

    from nlc.coding.adaptive_kernels import _round_significant

    def definition(x: float, bits: int) -> float:
        mant, ex = math.frexp(x)
        return math.ldexp(math.floor(mant * 2.0**bits + 0.5), ex - bits)

    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.uniform(0, 4, 3000), np.exp(rng.uniform(-700, 700, 3000)),
                         2.0 ** np.arange(-1074, 1023, dtype=float), np.nextafter(2.0 ** np.arange(-900, 900.0), 0)])
    for bits in (1, 8, 14, 30, 52):
        ties = [math.ldexp(k + 0.5, e - bits) for k in range(2 ** (bits - 1), 2 ** (bits - 1) + 300) for e in (-9, 0, 4)]
        for x in np.concatenate([xs, ties]):
            assert _round_significant(x, bits) == definition(x, bits), (x, bits)
