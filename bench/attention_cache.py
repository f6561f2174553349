"""PixelSNAIL's exact attention step against its key/value cache's layout: tile-major against chunk-major.

Usage: python bench/attention_cache.py [--tiles 96] [--rounds 3] [--json bench/results/attention-cache.json]

Times the attention of one step, its two layers (blocks), for ``--tiles`` 32x32 tiles at positions across the
tile (every 64th), as ``pixelsnail-exact``'s decoder runs it in one slice of tiles (96 tiles: 50 MB of
cache, more than the last-level cache): :func:`nlc.models.snail_steps._attend`
(the cache chunk-major, ``(chunks, tiles, heads, d, KEY_CHUNK)``, all tiles' chunks read front to back)
against the same step over a tile-major cache, ``(tiles, heads, d, positions)``, the layout before the
seventeenth session (:func:`_attend_tile_major` below, the same arithmetic). Keys, values and weights
are random values on the model's grids; both give the same outputs (checked at every position). Writes
microseconds per tile and step at each position, their mean over the sweep, and the ratio. One thread;
run it alone: the figure is the memory's, and these machines are shared.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads its BLAS

import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from nlc import fixed  # noqa: E402
from nlc.bench import write_json  # noqa: E402
from nlc.models.attention import QKV_LIMIT  # noqa: E402
from nlc.models.blas import dgemm_address, one_thread  # noqa: E402
from nlc.models.exact_steps import _snap, lut_at, products  # noqa: E402
from nlc.models.snail_steps import _attend, _scores, _weighted, cache_shape  # noqa: E402

CHANNELS, HEADS, KEYS, SIDE, BLOCKS = 48, 2, 16, 32, 2  # pixelsnail-exact's attention and tile


@njit(cache=True, nogil=True)
def _attend_tile_major(x, w_qkv, b_qkv, w_out, b_out, keys, values, pos, scale, qkv_limit, w_t, w_s, w_o, unit,
                       limit, out, blas=0):
    """:func:`nlc.models.snail_steps._attend` over a tile-major cache ``keys``, ``values`` ``(B, heads, d,
    positions)``: each tile's scores, weights and weighted sums in turn (the layout before chunks)."""
    nb, heads, d = keys.shape[0], keys.shape[1], keys.shape[2]
    hd = heads * d
    qkv = np.empty((nb, 3 * hd))
    products(x, w_qkv, b_qkv, qkv, blas)
    o = np.empty((nb, hd))
    s = np.empty(pos + 1)
    num = np.empty(d)
    for b in range(nb):
        for j in range(3 * hd):
            qkv[b, j] = min(max(_snap(qkv[b, j], unit, limit), -qkv_limit), qkv_limit)
        for h in range(heads):
            for e in range(d):
                keys[b, h, e, pos] = qkv[b, hd + h * d + e]
                values[b, h, e, pos] = qkv[b, 2 * hd + h * d + e]
            _scores(qkv[b, h * d : (h + 1) * d], keys[b, h], pos + 1, s)
            top = s[0] * scale
            for j in range(pos + 1):
                s[j] = s[j] * scale
                top = max(top, s[j])
            for j in range(pos + 1):
                s[j] = lut_at(w_t, w_s, w_o, s[j] - top)
            total = _weighted(s, values[b, h], pos + 1, num)
            for e in range(d):
                o[b, h * d + e] = _snap(num[e] / total, unit, limit)
    products(o, w_out, b_out, out, blas)
    for b in range(nb):
        for j in range(out.shape[1]):
            out[b, j] = _snap(out[b, j], unit, limit)


def _grid(rng: np.random.Generator, shape: tuple[int, ...], bits: int, scale_bits: int) -> np.ndarray:
    """Random multiples of ``2^-scale_bits`` below ``2^(bits - scale_bits)`` in magnitude."""
    return rng.integers(-(2**bits), 2**bits, shape) / 2.0**scale_bits


def main() -> None:
    """Run the sweep and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiles", type=int, default=96)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    rng = np.random.default_rng(0)
    positions = SIDE * SIDE
    hd = HEADS * KEYS
    layers = [(_grid(rng, (3 * hd, CHANNELS), 10, 14), _grid(rng, (3 * hd,), 20, 30),
               _grid(rng, (CHANNELS, hd), 10, 14), _grid(rng, (CHANNELS,), 20, 30)) for _ in range(BLOCKS)]
    xs = [_grid(rng, (a.tiles, CHANNELS), 17, 16) for _ in range(positions)]
    luts = fixed.weight_lut().kernel_args
    args = (1.0 / math.sqrt(KEYS), QKV_LIMIT, *luts, 2.0**fixed.GRID_BITS, fixed.LIMIT)
    tile_caches = [[np.zeros((a.tiles, HEADS, KEYS, positions), np.float32) for _ in range(2)] for _ in layers]
    shape = cache_shape(1, a.tiles, HEADS, KEYS, positions)[1:]
    chunk_caches = [[np.zeros(shape, np.float32) for _ in range(2)] for _ in layers]
    scores = np.empty((a.tiles, HEADS, shape[0] * shape[-1]))
    out_t, out_c = np.empty((a.tiles, CHANNELS)), np.empty((a.tiles, CHANNELS))
    sweep = list(range(31, positions, 64))
    times: dict[str, dict[int, list[float]]] = {"tile_major": {}, "chunk_major": {}}

    blas = dgemm_address()  # the steps' BLAS, as the decoder passes it

    def tile_major(pos: int) -> None:
        for w, cache in zip(layers, tile_caches):
            _attend_tile_major(xs[pos], *w, *cache, pos, *args, out_t, blas)

    def chunk_major(pos: int) -> None:
        for w, cache in zip(layers, chunk_caches):
            _attend(xs[pos], *w, *cache, scores, pos, *args, out_c, blas)

    with one_thread():
        for pos in range(positions):  # fill both caches through the steps, checking every output
            tile_major(pos)
            chunk_major(pos)
            if not np.array_equal(out_t, out_c):
                sys.exit(f"attention_cache.py: the layouts disagree at position {pos}")
        for _ in range(a.rounds):  # rerun steps at the sweep's positions over the full caches, alternating
            for pos in sweep:
                t0 = time.perf_counter()
                tile_major(pos)
                t1 = time.perf_counter()
                chunk_major(pos)
                t2 = time.perf_counter()
                times["tile_major"].setdefault(pos, []).append((t1 - t0) / a.tiles * 1e6)
                times["chunk_major"].setdefault(pos, []).append((t2 - t1) / a.tiles * 1e6)
    per_pos = {k: {p: float(np.median(v)) for p, v in d.items()} for k, d in times.items()}
    means = {k: float(np.mean(list(d.values()))) for k, d in per_pos.items()}
    result = {"tiles": a.tiles, "tile": SIDE, "blocks": BLOCKS, "heads": HEADS, "keys": KEYS, "channels": CHANNELS,
              "chunk": shape[-1], "rounds": a.rounds, "unit": "microseconds per tile and step (median of rounds)",
              "sweep_mean_us": means, "ratio": means["tile_major"] / means["chunk_major"],
              "per_position_us": {k: {str(p): round(t, 3) for p, t in d.items()} for k, d in per_pos.items()},
              "command": "python " + " ".join(sys.argv)}
    print(f"{a.tiles} tiles, positions {sweep[0]}..{sweep[-1]} every 64: tile-major {means['tile_major']:.2f} µs, "
          f"chunk-major {means['chunk_major']:.2f} µs a tile and step ({result['ratio']:.2f}x)")
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
