"""The compiled products through numpy's OpenBLAS (nlc.models.blas) give numba's loops' numbers, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from nlc.models import blas
from nlc.models.vertical_kernel import _gemm_tap

pytestmark = pytest.mark.skipif(blas.dgemm_address() == 0, reason="numpy ships no 64-bit-integer OpenBLAS here")


def _grid(rng: np.random.Generator, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """Values on the ``2^-bits`` grid, as an exact model's activations and weights are."""
    return np.round(rng.normal(size=shape) * 2**bits) / 2**bits


@pytest.mark.parametrize("cin,cout,nb,width,shift", [(32, 32, 3, 136, -1), (64, 32, 1, 64, 0), (12, 5, 2, 9, 1),
                                                     (3, 7, 4, 1, 0), (1, 1, 1, 2, -1)])
@pytest.mark.parametrize("i0", [0, 1])
def test_gemm_tap_blas_equals_the_loops(cin, cout, nb, width, shift, i0):
    """One convolution tap over every tile (input rows from ``i0``, weights from row ``k0``, the positions
    a shift leaves inside the row) with BLAS and with the loops: the same sums, bit for bit."""
    rng = np.random.default_rng(cin * 1000 + width)
    inp = _grid(rng, (cin + i0, nb * width), 16)
    k0 = 2
    w = _grid(rng, (cin + k0 + 1, cout), 8)
    x_lo, x_hi = max(0, -shift), min(width, width - shift)
    start = _grid(rng, (cout, nb * width), 16)
    loops, fast = start.copy(), start.copy()
    _gemm_tap(inp, i0, w, k0, loops, nb, width, width, shift, x_lo, x_hi, 0)
    _gemm_tap(inp, i0, w, k0, fast, nb, width, width, shift, x_lo, x_hi, blas.dgemm_address())
    assert np.array_equal(loops, fast)
    assert not np.array_equal(loops, start) or x_hi <= x_lo


def test_one_thread_restores_the_count():
    """While a step loop runs OpenBLAS keeps to the calling thread; after the last one ends, the old count."""
    lib = blas._library()
    get = getattr(lib, blas._THREADS[1])
    before = get()
    with blas.one_thread():
        with blas.one_thread():
            assert get() == 1
        assert get() == 1
    assert get() == before


def test_nlc_blas_0_turns_it_off(monkeypatch):
    """``NLC_BLAS=0``: no address, so the kernels multiply in their own loops."""
    monkeypatch.setenv("NLC_BLAS", "0")
    blas._library.cache_clear()
    blas.dgemm_address.cache_clear()
    try:
        assert blas.dgemm_address() == 0
    finally:
        monkeypatch.delenv("NLC_BLAS")
        blas._library.cache_clear()
        blas.dgemm_address.cache_clear()
    assert blas.dgemm_address() != 0


@pytest.mark.parametrize("nb,kk,jj,wider", [(1, 64, 32, 0), (6, 64, 64, 0), (16, 32, 100, 0), (5, 14, 100, 5),
                                            (4, 5, 3, 2)])
def test_products_blas_equals_the_loops(nb, kk, jj, wider):
    """A layer's products for every tile (the output array wider than the layer, as Gated PixelCNN's
    shared one): the same numbers with BLAS (from BLAS_MIN_TILES tiles) and with the loops, the columns beyond
    the layer untouched."""
    from nlc.models.exact_steps import products

    rng = np.random.default_rng(nb * 100 + kk)
    x, wt, bias = _grid(rng, (nb, kk), 16), _grid(rng, (jj, kk), 8), _grid(rng, (jj,), 16)
    loops, fast = np.full((nb, jj + wider), 7.0), np.full((nb, jj + wider), 7.0)
    products(x, wt, bias, loops, 0)
    products(x, wt, bias, fast, blas.dgemm_address())
    assert np.array_equal(loops, fast)
    assert np.array_equal(loops[:, :jj], x @ wt.T + bias) and (loops[:, jj:] == 7.0).all()
