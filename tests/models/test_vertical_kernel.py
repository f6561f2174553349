"""The compiled vertical stream of an exact PixelCNN++ (nlc.models.vertical_kernel) gives the torch rows' numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nlc
from nlc.models import pixelcnnpp
from nlc.models.vertical_kernel import schedule
from tests.models.test_exact import _stepped


@pytest.fixture(scope="module")
def exact_model():
    return nlc.Codec.load("pixelcnnpp-exact").model


def _input(seed: int, b: int, h: int, w: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (b, 3, h, w), generator=g).double() / 127.5 - 1
    mask = torch.ones(b, 1, h, w, dtype=torch.float64)
    if b > 1:
        mask[-1, :, h // 2 :] = 0  # a tile cut short
    return torch.cat([x * mask, mask], 1)


@settings(max_examples=8, deadline=None)
@given(st.integers(1, 4), st.integers(1, 19), st.integers(1, 21), st.integers(0, 2**31))
def test_compiled_rows_equal_the_torch_rows_and_the_parallel_pass(exact_model, b, h, w, seed):
    """Any batch and tile size (odd widths go through the strided and upsampling layers' edges)."""
    _check_against_torch_rows(exact_model, pixelcnnpp.PixelStepper, _input(seed, b, h, w))


def _check_against_torch_rows(model, stepper: type, x4: torch.Tensor) -> None:
    """The steps with the compiled vertical stream give the torch rows' numbers and the parallel pass's."""
    compiled = _stepped(model, x4)
    stepper.compiled_vertical = False
    try:
        assert torch.equal(compiled, _stepped(model, x4))
    finally:
        stepper.compiled_vertical = True
    assert torch.equal(compiled, model.forward_x4(x4))


@pytest.mark.parametrize("workers", [2, 1], ids=["in parallel", "in turn"])
def test_slices_of_a_large_batch_give_the_same_numbers(exact_model, monkeypatch, workers):
    """Batches cut into slices (nlc.threads.vertical_parts), shared out on two cores or run in turn on one."""
    monkeypatch.setattr(pixelcnnpp, "vertical_worker_count", lambda: workers)
    monkeypatch.setattr(pixelcnnpp, "vertical_parts", lambda batch, width: [slice(0, 2), slice(2, 5)])
    x4 = _input(5, 5, 6, 8)
    st_ = exact_model.stepper(5, 6, 8)
    assert st_.program is not None and len(st_.parts) == 2 and (st_.pool is not None) == (workers > 1)
    st_.release()
    assert torch.equal(_stepped(exact_model, x4), exact_model.forward_x4(x4))


def test_a_large_batch_is_cut_into_slices_whatever_the_cores(monkeypatch):
    from nlc import threads

    for n in (1, 2):
        monkeypatch.setattr(threads, "cores", lambda n=n: n)
        assert threads.vertical_parts(96, 64) == [slice(12 * i, 12 * i + 12) for i in range(8)]
        assert threads.vertical_parts(3, 136) == [slice(0, 3)]
    with threads.vertical_workers(1):
        assert threads.vertical_worker_count() == 1
    assert threads.vertical_worker_count() == 2


def test_rows_are_computed_in_order_only(exact_model):
    st_ = exact_model.stepper(1, 4, 4)
    st_.fill(_input(0, 1, 4, 4))
    st_.start_row(0)
    with pytest.raises(RuntimeError, match="computes rows in order: asked for 2, next is 1"):
        st_.start_row(2)
    st_.release()


@pytest.mark.parametrize("height", [1, 2, 7, 64, 136])
def test_every_row_is_computed_once_and_read_where_it_was_written(exact_model, height):
    """Rows share places in the buffer (vertical_kernel._place): replaying the schedule, every read and every
    output finds the row it needs where the schedule says, not yet overwritten, and the buffer holds far
    fewer rows than the stream computes per output row."""
    from nlc.models.vertical_kernel import _needs
    program = pixelcnnpp.vertical_program(exact_model, 20)
    s = schedule(program.nodes, program.outputs, height)
    pairs = list(zip(s.node.tolist(), s.row.tolist()))
    assert len(pairs) == len(set(pairs)) and len(s.start) == height + 1
    assert np.all(np.diff(s.start) > 0)
    owner = np.full(s.size, -1, np.int64)  # which entry's row each value of the buffer holds
    for r in range(height):
        for e in range(s.start[r], s.start[r + 1]):
            n, k = pairs[e]
            for i, (m, j) in enumerate(_needs(program.nodes[n], k)):
                if j >= 0:
                    place = s.reads_at[e, i]
                    need = program.nodes[m].channels * program.nodes[m].width
                    assert np.all(owner[place : place + need] == pairs.index((m, j)))
                else:
                    assert s.reads_at[e, i] == -1
            owner[s.out_at[e] : s.out_at[e] + program.nodes[n].channels * program.nodes[n].width] = e
        for q, o in enumerate(program.outputs):
            place = s.outputs_at[r, q]
            assert np.all(owner[place : place + program.nodes[o].channels * 20] == pairs.index((o, r)))
    one_place_each = sum(program.nodes[n].channels * program.nodes[n].width for n in set(s.node.tolist()))
    assert s.size <= one_place_each // 2 or height < 2


def test_one_schedule_serves_the_shorter_tiles(exact_model):
    """Program.schedule computes SPARE_ROWS more rows than asked and serves every height up to them with
    it: a tile with context rows above it, then one without, share one schedule."""
    from nlc.models.vertical_kernel import SPARE_ROWS
    program = pixelcnnpp.vertical_program(exact_model, 12)
    program.schedules.clear()
    first = program.schedule(30)
    assert len(first.start) == 30 + SPARE_ROWS + 1
    assert program.schedule(30 + SPARE_ROWS) is first and program.schedule(3) is first
    assert program.schedule(31 + SPARE_ROWS) is not first
    x4 = _input(3, 2, 9, 12)
    assert torch.equal(_stepped(exact_model, x4), exact_model.forward_x4(x4))  # rows 0..8 of a 38-row schedule


@settings(max_examples=4, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 13), st.integers(0, 2**31))
def test_gated_pixelcnns_compiled_stack_gives_the_torch_rows_numbers(b, h, w, seed):
    """Gated PixelCNN's vertical stack and links (tanh gates: vertical_kernel.TANH_GATE) through the
    compiled rows, against its torch rows and its parallel pass."""
    from nlc.models import gated_pixelcnn
    _check_against_torch_rows(nlc.Codec.load("gated-pixelcnn-exact").model, gated_pixelcnn.GatedStepper,
                              _input(seed, b, h, w))
