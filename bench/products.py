"""How fast the vertical stream's products run, against the machine's BLAS on one thread.

Usage: python bench/products.py [--json bench/results/products-rate.json]

Times :func:`nlc.models.vertical_kernel._gemm_tap` (one tap of a stride-1 convolution, as a Kodak
group's rows run it: 3 tiles of 136 columns, 32 or 64 channels; and as one 64x64 tile's: 1 of 64) in
numba's loops (``tap_gflops``) and through numpy's OpenBLAS as nlc now runs it (``tap_blas_gflops``:
:mod:`nlc.models.blas`, one ``dgemm`` per tile), and numpy's matrix product on one thread (a 2048x2048
product, and one of the tap's shape), best of 5 rounds each, in GFLOPS (two per multiply-add). Run it
alone: the figure is the machine's, and these machines are shared.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads its BLAS
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from nlc.bench import provenance, write_json  # noqa: E402
from nlc.codec import Codec  # noqa: E402
from nlc.models.blas import dgemm_address, one_thread  # noqa: E402
from nlc.models.vertical_kernel import _gemm_tap  # noqa: E402

CALLS = 2000


def _best(run, rounds: int = 5) -> float:
    """The least seconds of ``rounds`` calls of ``run``."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def tap_rate(cin: int, cout: int, tiles: int, width: int, rng: np.random.Generator) -> dict:
    """GFLOPS of one convolution tap over a row of ``tiles`` tiles ``width`` wide (grid values, exact
    products) in numba's loops and through BLAS, and of numpy's product of the same shape."""
    inp = np.round(rng.normal(size=(cin, tiles * width)) * 2**10) / 2**10
    w = np.round(rng.normal(size=(cin, cout)) * 2**8) / 2**8
    acc = np.zeros((cout, tiles * width))
    fast = acc.copy()
    _gemm_tap(inp, 0, w, 0, acc, tiles, width, width, -1, 1, width, 0)  # compiled (or loaded) first
    _gemm_tap(inp, 0, w, 0, fast, tiles, width, width, -1, 1, width, dgemm_address())
    assert np.array_equal(acc, fast)  # exact products: the same sums either way
    flops = 2 * cin * cout * tiles * (width - 1) * CALLS

    def taps(address: int = 0) -> None:
        for _ in range(CALLS):
            _gemm_tap(inp, 0, w, 0, acc, tiles, width, width, -1, 1, width, address)

    wt = np.ascontiguousarray(w.T)

    def numpy_product() -> None:
        for _ in range(CALLS):
            wt @ inp

    with one_thread():
        through_blas = _best(lambda: taps(dgemm_address())) if dgemm_address() else float("nan")
    return {"in": cin, "out": cout, "tiles": tiles, "width": width, "tap_gflops": round(flops / _best(taps) / 1e9, 1),
            "tap_blas_gflops": round(flops / through_blas / 1e9, 1),
            "blas_same_shape_gflops": round(2 * cin * cout * tiles * width * CALLS / _best(numpy_product) / 1e9, 1)}


def main() -> None:
    """Run the measurement."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    big = rng.random((2048, 2048))
    result = {"blas_2048_gflops": round(2 * 2048**3 / _best(lambda: big @ big, 3) / 1e9, 1),
              "taps": [tap_rate(cin, cout, tiles, width, rng) for tiles, width in ((3, 136), (1, 64))
                       for cin, cout in ((32, 32), (32, 64), (64, 32))],
              "command": "python bench/products.py" + (f" --json {a.json}" if a.json else "")}
    for row in result["taps"]:
        print(f"{row['tiles']} x {row['width']:<3} {row['in']:>3} -> {row['out']:<3} tap {row['tap_gflops']:5.1f} GFLOPS, "
              f"through BLAS {row['tap_blas_gflops']:5.1f}, BLAS same shape {row['blas_same_shape_gflops']:5.1f}")
    print(f"BLAS 2048x2048: {result['blas_2048_gflops']} GFLOPS (one thread)")
    result["provenance"] = provenance(Codec.load("default"), result["command"])
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
