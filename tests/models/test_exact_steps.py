"""The compiled per-pixel steps of an exact PixelCNN++ and Gated PixelCNN (nlc.models.exact_steps) give the numpy
steps' numbers; PixelSNAIL's (nlc.models.snail_steps) the torch steps'."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nlc
from nlc import fixed
from nlc.models import gated_pixelcnn, neighbours, pixelcnnpp, pixelsnail
from nlc.models.exact import make_exact
from nlc.models.exact_steps import _snap, elu_neg_at, round_half_even
from nlc.threads import vertical_workers
from tests.models.test_exact import _stepped, _tiles, _tiny_snail


def test_the_computed_elu_gives_the_tables_value_at_every_entry():
    """exact_steps computes the ELU table's entries from small tables of exp's factors (IEEE arithmetic,
    correctly rounded factors: the same doubles everywhere): every entry of the table, from a value just
    inside its input cell's low edge, its centre and just below the next cell, and values past either end
    of the table."""
    lut = fixed.elu_lut()
    at = elu_neg_at
    table, scale, offset = lut.kernel_args
    step = 1.0 / scale
    for shift in (-0.5 + 2**-20, 0.0, 0.5 - 2**-20):  # inputs round half up to the table's positions
        x = lut.lo + (np.arange(table.shape[0]) + shift) * step
        got = np.array([at(table, scale, offset, v) for v in x])
        assert np.array_equal(got, table), int((got != table).sum())
    assert at(table, scale, offset, lut.lo - 100.0) == table[0]
    assert at(table, scale, offset, lut.hi + 100.0) == table[-1]


def test_rounding_is_half_to_even_like_numpy_also_past_two_to_the_51():
    ties = np.arange(-20, 20) + 0.5
    big = np.array([2.0**51 + 0.5, -(2.0**51) - 0.5, 2.0**51 + 1.5, 2.0**52 + 2, 2.0**60, -(2.0**51)])
    rng = np.random.default_rng(0)
    values = np.concatenate([ties, big, rng.normal(0, 1e6, 2000), rng.normal(0, 3, 2000),
                             np.nextafter(ties, 0), np.nextafter(ties, 100)])
    got = np.array([round_half_even(v) for v in values])
    assert np.array_equal(got, np.round(values))


def test_snap_is_the_grid_rounding_of_the_numpy_steps():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, s, 3000) * 2.0**-3 for s in (1, 100, 1e5)]
                       + [np.array([2.0**-17, -(2.0**-17), 3 * 2.0**-17, 1024.0, 1e9, -1e9])])
    got = np.array([_snap(v, 2.0**fixed.GRID_BITS, fixed.LIMIT) for v in x])
    assert np.array_equal(got, fixed.snap_array(x.copy()))


@pytest.mark.parametrize("h, w", [(8, 9), (5, 17)])
def test_compiled_steps_equal_the_numpy_steps_on_every_pixel(monkeypatch, h, w):
    model = nlc.Codec.load("pixelcnnpp-exact").model
    x4 = _tiles(3, b=3, h=h, w=w)
    compiled = _stepped(model, x4)
    monkeypatch.setattr(pixelcnnpp.PixelStepper, "compiled", False)
    assert torch.equal(compiled, _stepped(model, x4))
    assert torch.equal(compiled, model.forward_x4(x4))


@pytest.mark.parametrize("b, h, w", [(3, 6, 7), (4, 5, 11)])
def test_compiled_gated_steps_equal_the_numpy_steps_on_every_pixel(monkeypatch, b, h, w):
    """A batch of three tiles (one block of the kernel) and one of four (a block and one more)."""
    model = nlc.Codec.load("gated-pixelcnn-exact").model
    x4 = _tiles(5, b=b, h=h, w=w)
    compiled = _stepped(model, x4)
    monkeypatch.setattr(gated_pixelcnn.GatedStepper, "compiled", False)
    assert torch.equal(compiled, _stepped(model, x4))
    assert torch.equal(compiled, model.forward_x4(x4))


@pytest.mark.parametrize("b, h, w", [(3, 8, 9), (4, 9, 12)])
def test_the_skips_compiled_rows_equal_torchs(monkeypatch, b, h, w):
    """The neighbourhood skip's part from the rows above (and the NW pixels), one compiled call per row,
    against torch's addmm on every row of exact input, and through the whole model's steps."""
    model = nlc.Codec.load("pixelcnnpp-exact").model
    x4 = _tiles(7, b=b, h=h, w=w)
    compiled = _stepped(model, x4)
    rows = {}
    for kernel in (True, False):
        monkeypatch.setattr(neighbours.SkipStepper, "compiled", kernel)
        st = model.stepper(b, h, w)
        st.fill(x4)
        assert st.skip.kernel == kernel
        rows[kernel] = []
        for r in range(h):
            st.skip.start_row(r)
            rows[kernel].append((np.array(st.skip.above), np.array(st.skip.nw)))
        st.release()
    for (a1, n1), (a2, n2) in zip(rows[True], rows[False]):
        assert np.array_equal(a1, a2) and np.array_equal(n1, n2)
    assert torch.equal(compiled, _stepped(model, x4))


@pytest.mark.parametrize("b, h, w", [(3, 7, 9), (9, 5, 6), (3, 13, 11)])
def test_compiled_pixelsnail_steps_equal_the_torch_steps_on_every_pixel(monkeypatch, b, h, w):
    """A small PixelSNAIL of random weights (two blocks, two heads), in one slice of tiles and in four
    (nine tiles, two workers), and over two chunks of the key/value cache, the second cut short (143
    positions): every pixel's parameters, the attention over every earlier position included, the same as
    the torch steps' and the parallel pass's."""
    model = make_exact(_tiny_snail(4))
    x4 = _tiles(11, b=b, h=h, w=w)
    with vertical_workers(2):
        st = model.stepper(b, h, w)
        assert st.snail_kernel and len(st.parts) == (4 if b == 9 else 1)
        st.release()
        compiled = _stepped(model, x4)
    monkeypatch.setattr(pixelsnail.SnailStepper, "compiled", False)
    assert not model.stepper(1, 2, 2).snail_kernel
    assert torch.equal(compiled, _stepped(model, x4))
    assert torch.equal(compiled, model.forward_x4(x4))


@pytest.mark.parametrize("mode, shape", [("L", (40, 70)), ("RGB", (33, 65, 3))])
def test_pixelsnail_exact_files_of_several_tiles_round_trip_through_the_compiled_steps(monkeypatch, mode, shape):
    """``pixelsnail-exact`` (tiles of 32) encodes and decodes through its compiled steps, a column per
    compiled call (adaptive_steps.encode_step_columns, decode_step_columns): several tiles, the last ones cut
    short; the encoder writes the bytes of its parallel pass (the encoder before the steps were compiled)."""
    from PIL import Image

    from nlc.coding import autoregressive

    arr = np.random.default_rng(5).integers(0, 256, shape).astype(np.uint8)
    im = Image.fromarray(arr, mode)
    data, stats = nlc.encode_image(im, "pixelsnail-exact", device="cpu", fallback=False)
    out, _ = nlc.decode_image(data, device="cpu")
    assert out.tobytes() == im.tobytes()
    monkeypatch.setattr(autoregressive, "STEPPED_ENCODER", False)
    parallel, parallel_stats = nlc.encode_image(im, "pixelsnail-exact", device="cpu", fallback=False)
    assert parallel == data
    assert stats["model_bits"] == pytest.approx(parallel_stats["model_bits"], rel=1e-12)
