"""How fast the vertical stream's products run, against the machine's BLAS on one thread.

Usage: python bench/products.py [--json bench/results/products-rate.json]

Times :func:`nlc.models.vertical_kernel._gemm_tap` (one tap of a stride-1 convolution, as a Kodak
group's rows run it: 3 tiles of 136 columns, 32 or 64 channels) and numpy's matrix product on one
thread (OpenBLAS: a 2048x2048 product, and one of the tap's shape), best of 5 rounds each, in GFLOPS
(two per multiply-add). Run it alone: the figure is the machine's, and these machines are shared.
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
from nlc.models.vertical_kernel import _gemm_tap  # noqa: E402

TILES, WIDTH, CALLS = 3, 136, 2000


def _best(run, rounds: int = 5) -> float:
    """The least seconds of ``rounds`` calls of ``run``."""
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def tap_rate(cin: int, cout: int, rng: np.random.Generator) -> dict:
    """GFLOPS of one convolution tap over a group's row (grid values, exact products), and of numpy's
    product of the same shape."""
    inp = np.round(rng.normal(size=(cin, TILES * WIDTH)) * 2**10) / 2**10
    w = np.round(rng.normal(size=(cin, cout)) * 2**8) / 2**8
    acc = np.zeros((cout, TILES * WIDTH))
    _gemm_tap(inp, 0, w, 0, acc, TILES, WIDTH, WIDTH, -1, 1, WIDTH, 0)  # compiled (or loaded) first
    flops = 2 * cin * cout * TILES * (WIDTH - 1) * CALLS

    def taps() -> None:
        for _ in range(CALLS):
            _gemm_tap(inp, 0, w, 0, acc, TILES, WIDTH, WIDTH, -1, 1, WIDTH, 0)

    wt = np.ascontiguousarray(w.T)

    def blas() -> None:
        for _ in range(CALLS):
            wt @ inp

    return {"in": cin, "out": cout, "tap_gflops": round(flops / _best(taps) / 1e9, 1),
            "blas_same_shape_gflops": round(2 * cin * cout * TILES * WIDTH * CALLS / _best(blas) / 1e9, 1)}


def main() -> None:
    """Run the measurement."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    big = rng.random((2048, 2048))
    result = {"blas_2048_gflops": round(2 * 2048**3 / _best(lambda: big @ big, 3) / 1e9, 1),
              "taps": [tap_rate(cin, cout, rng) for cin, cout in ((32, 32), (32, 64), (64, 32))],
              "command": "python bench/products.py" + (f" --json {a.json}" if a.json else "")}
    for row in result["taps"]:
        print(f"{row['in']:>3} -> {row['out']:<3} tap {row['tap_gflops']:5.1f} GFLOPS, "
              f"BLAS same shape {row['blas_same_shape_gflops']:5.1f}")
    print(f"BLAS 2048x2048: {result['blas_2048_gflops']} GFLOPS (one thread)")
    result["provenance"] = provenance(Codec.load("pixelcnnpp-adaptive-v3"), result["command"])
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
