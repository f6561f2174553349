"""The machine's BLAS for the exact models' compiled products: numpy's own OpenBLAS, called from numba.

The compiled vertical stream (:mod:`nlc.models.vertical_kernel`) and the encoder's
row of horizontal steps (:mod:`nlc.models.exact_rows`) spend most of their time in
small matrix products, one per convolution tap and tile. Numba's own loops reach
about 40 GFLOPS on them and 25 on a single 64-pixel tile; OpenBLAS's ``dgemm``
reaches 52 and 45 on the same shapes (``python bench/products.py``). Every
product of an exact model is exact in float64 (grid values whose sums stay far
below ``2^53``), so any order of the sums, BLAS's included, gives the same bits.

The BLAS is the one numpy's wheels ship (``scipy-openblas``, 64-bit integers:
``scipy_cblas_dgemm64_``), found next to numpy and called through its address,
which the compiled kernels take as an argument (so their cache holds no address
of one process). Where numpy has no such library, or ``NLC_BLAS=0`` is set,
:func:`dgemm_address` is 0 and the kernels run their own loops: the same numbers.
OpenBLAS's threads would spin beside the coder's own: :func:`one_thread` keeps
it to the calling thread while a step loop runs.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os
import threading
from contextlib import contextmanager
from typing import Iterator

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_SYMBOL = "scipy_cblas_dgemm64_"
_THREADS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_")


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL | None:
    """numpy's bundled 64-bit-integer OpenBLAS, or None."""
    if os.environ.get("NLC_BLAS", "1") == "0":
        return None
    root = os.path.dirname(np.__file__)
    for pattern in ("../numpy.libs/libscipy_openblas64_*", ".dylibs/libscipy_openblas64_*"):
        for path in sorted(glob.glob(os.path.join(root, pattern))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            if all(hasattr(lib, name) for name in (_SYMBOL, *_THREADS)):
                return lib
    return None


@functools.lru_cache(maxsize=None)
def dgemm_address() -> int:
    """The address of numpy's OpenBLAS ``cblas_dgemm`` (64-bit integers), or 0 where there is none (the
    kernels then multiply with their own loops)."""
    lib = _library()
    return 0 if lib is None else int(ctypes.cast(getattr(lib, _SYMBOL), ctypes.c_void_p).value or 0)


_LOCK = threading.Lock()
_USERS = [0, 0]  # step loops running, the thread count to restore


@contextmanager
def one_thread() -> Iterator[None]:
    """OpenBLAS on the calling thread only while this runs (its pool's threads spin-wait; the coder already
    keeps the cores busy). Nested and concurrent uses restore the old count when the last one ends."""
    lib = _library()
    if lib is None:
        yield
        return
    with _LOCK:
        if _USERS[0] == 0:
            _USERS[1] = int(getattr(lib, _THREADS[1])())
            getattr(lib, _THREADS[0])(1)
        _USERS[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS[0] -= 1
            if _USERS[0] == 0:
                getattr(lib, _THREADS[0])(_USERS[1])


NO_TRANS, TRANS = 111, 112  # CBLAS_TRANSPOSE


@intrinsic
def _dgemm_call(typingctx, fn, ta, tb, m, n, k, a, lda, b, ldb, c, ldc):
    """``cblas_dgemm(RowMajor, ta, tb, m, n, k, 1, a, lda, b, ldb, 1, c, ldc)`` (``C += op(A) op(B)``) through
    the function at address ``fn``; ``a``, ``b``, ``c`` are addresses of float64 data."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64, types.int64, types.int64, types.uintp,
                     types.int64, types.uintp, types.int64, types.uintp, types.int64)

    def codegen(context, builder, signature, args):
        fn, ta, tb, m, n, k, a, lda, b, ldb, c, ldc = args
        i32, i64, dbl = ir.IntType(32), ir.IntType(64), ir.DoubleType()
        ptr = dbl.as_pointer()
        fty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, dbl, ptr, i64, ptr, i64, dbl, ptr, i64])
        one = ir.Constant(dbl, 1.0)
        builder.call(builder.inttoptr(fn, fty.as_pointer()),
                     [ir.Constant(i32, 101), builder.trunc(ta, i32), builder.trunc(tb, i32), m, n, k, one,
                      builder.inttoptr(a, ptr), lda, builder.inttoptr(b, ptr), ldb, one, builder.inttoptr(c, ptr), ldc])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, nogil=True)
def contiguous(a):
    """Whether the 2-D ``a`` is laid out row after row with no gaps (as BLAS is told it is)."""
    return a.strides[1] == a.itemsize and a.strides[0] == a.shape[1] * a.itemsize


@njit(cache=True, nogil=True)
def products_blas(fn, x, wt, out):
    """``out[b, j] += sum_k x[b, k] * wt[j, k]`` for ``b < B``, ``j < J``, ``k < K`` (``x`` ``(B, K)``, ``wt``
    ``(J, K')`` and ``out`` ``(B', J')`` C-contiguous, ``K' >= K``, ``B' >= B``, ``J' >= J``) by one ``dgemm`` at
    address ``fn``."""
    nb, kk = x.shape
    jj = wt.shape[0]
    if nb > 0 and jj > 0 and kk > 0:
        _dgemm_call(fn, NO_TRANS, TRANS, nb, jj, kk, x.ctypes.data, kk, wt.ctypes.data, wt.shape[1], out.ctypes.data,
                    out.shape[1])


@njit(cache=True, nogil=True)
def gemm_tap_blas(fn, inp, i0, w, k0, acc, nb, win, wout, shift, x_lo, x_hi):
    """:func:`~nlc.models.vertical_kernel._gemm_tap` by one ``dgemm`` per tile at address ``fn``:
    ``acc[j, b wout + x] += sum_i inp[i0 + i, b win + shift + x] * w[k0 + i, j]`` (all three C-contiguous)."""
    cin = inp.shape[0] - i0
    cout = w.shape[1]
    span = x_hi - x_lo
    if cin <= 0 or cout <= 0 or span <= 0:
        return
    a = w.ctypes.data + 8 * k0 * cout
    for b in range(nb):
        _dgemm_call(fn, TRANS, NO_TRANS, cout, span, cin, a, cout, inp.ctypes.data + 8 * (i0 * inp.shape[1] + b * win + shift + x_lo),
                    inp.shape[1], acc.ctypes.data + 8 * (b * wout + x_lo), acc.shape[1])
