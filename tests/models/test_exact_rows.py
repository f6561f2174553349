"""A whole row of an exact PixelCNN++'s steps at once (nlc.models.exact_rows) gives the per-pixel steps' numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nlc
from nlc.models.blas import dgemm_address
from nlc.models.exact_rows import row_params
from nlc.models.exact_steps import pixel_step
from tests.models.test_vertical_kernel import _input


@pytest.fixture(scope="module", params=["default", "pixelcnnpp-exact"])
def exact_model(request):
    return nlc.Codec.load(request.param).model


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 4), st.integers(1, 7), st.integers(1, 19), st.integers(0, 2**31))
def test_row_params_equal_the_steps_column_by_column(exact_model, b, h, w, seed):
    """Every row of random tiles (one cut short), every column: the same parameters, bit for bit, as
    pixel_step called column after column from the row's first (its previous-column inputs carried)."""
    stepper = exact_model.stepper(b, h, w)
    stepper.fill(_input(seed, b, h, w))
    try:
        for r in range(h):
            stepper.start_row(r)
            (xs, row, left, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1, head_wt, head_b, above, nw, w_left,
             *luts) = stepper.kernel_row()
            whole = row_params(xs, row, left, w, w_in, b_in, hu, w1, b1, w2, b2, aux, head_wt, head_b, above, nw,
                               w_left, *luts)
            steps = np.stack([pixel_step(xs, row, left + c, c, w_in, b_in, hu, w1, b1, w2, b2, aux, prev0, prev1,
                                         head_wt, head_b, above, nw, w_left, *luts) for c in range(w)])
            assert whole.shape == (w, b, head_b.shape[0])
            assert np.array_equal(whole, steps)
            with_blas = row_params(xs, row, left, w, w_in, b_in, hu, w1, b1, w2, b2, aux, head_wt, head_b, above, nw,
                                   w_left, *luts, dgemm_address())
            assert np.array_equal(with_blas, steps)
    finally:
        stepper.release()
