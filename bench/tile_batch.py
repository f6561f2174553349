"""What a pixel costs by how many tiles step together: the vertical stream and the row's steps, per pixel.

Usage: python bench/tile_batch.py --data ../shared/data/photos-val [--batches 1 4 16 64] [--rounds 3]
       [--json bench/results/tile-batch-photos-val.json]

``B`` crops of 64x64 from ``--data`` (never Kodak) are coded as one group of ``B`` tiles with the default
codec's model and one adaptive stage, one thread, as the encoder steps them: per row the vertical
stream (``PixelStepper.start_row``) and the row's steps (``adaptive_steps.encode_steps_row``: the
horizontal network for the whole row, the stage, the tables and the coder). Each is timed with the
products in numba's loops and through OpenBLAS (:mod:`nlc.models.blas`), the two alternated round by
round; medians of ``--rounds`` in microseconds per pixel of one core. It answers whether coding many
small images' tiles in one step loop would pay: where one tile costs per pixel what many do, it would not.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from small_images import crops  # noqa: E402

from nlc.bench import provenance, write_json  # noqa: E402
from nlc.codec import Codec  # noqa: E402
from nlc.coding import adaptive_steps, context_tiles  # noqa: E402
from nlc.coding.adaptive import make_stage  # noqa: E402
from nlc.coding.autoregressive import TileGrid  # noqa: E402
from nlc.coding.coders import CompiledRangeQueue  # noqa: E402
from nlc.models import blas, vertical_kernel  # noqa: E402
from nlc.threads import step_threads, vertical_workers  # noqa: E402

SIDE = 64


def one_group(model, pixels: np.ndarray, address: int) -> tuple[float, float]:
    """Seconds of the vertical stream and of the row steps for the tiles ``pixels`` ``(B, 64, 64, 3)``,
    with BLAS at ``address`` (0: the loops)."""
    batch = len(pixels)
    grid = TileGrid(SIDE, SIDE * batch, SIDE, SIDE)
    image = np.concatenate(list(pixels), axis=1)
    group = context_tiles.ContextGroup(np.arange(batch), 0, 0, False)
    vertical_kernel.dgemm_address = lambda: address  # what CompiledRows.row passes to its kernel
    st = model.stepper(batch, SIDE, SIDE)
    st.fill(context_tiles.extended_input(image, True, grid, group))
    stage = make_stage("bias-v2", batch, SIDE, SIDE, 3)
    work = adaptive_steps.step_work(batch, 3, 10, 100, stage.kernel_args()[1])
    enc = CompiledRangeQueue()
    known = grid.split(image)
    hs = np.full(batch, SIDE, np.int64)
    vertical = steps = 0.0
    for r in range(SIDE):
        t0 = time.perf_counter()
        st.start_row(r)
        t1 = time.perf_counter()
        stage.start_row(r)
        args, coeffs, gram, moment = stage.kernel_args()
        _, enc.words = adaptive_steps.encode_steps_row(
            r, SIDE, hs, hs, 3, 10, st.kernel_row(), adaptive_steps.mixture_luts(), *adaptive_steps.LOG_SCALES,
            adaptive_steps.table_constants(), True, args, coeffs, gram, moment, enc.enc, enc.words,
            np.ascontiguousarray(known[:, r]), work, 0, address)
        vertical += t1 - t0
        steps += time.perf_counter() - t1
    st.release()
    return vertical, steps


def main() -> None:
    """Run the measurement."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "kodak" in a.data.lower():
        sys.exit("bench/tile_batch.py: never on Kodak")
    codec = Codec.load("default")
    pixels = np.stack([np.asarray(im) for im in crops(a.data, max(a.batches), SIDE)])
    modes = {"loops": 0, "blas": blas.dgemm_address()}
    rows = []
    real = vertical_kernel.dgemm_address
    try:
        with torch.no_grad(), vertical_workers(1), step_threads():
            one_group(codec.model, pixels[:1], modes["blas"])  # compiled (or loaded) first
            for batch in a.batches:
                times: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
                for rnd in range(a.rounds):
                    for mode in (list(modes) if rnd % 2 == 0 else list(modes)[::-1]):
                        times[mode].append(one_group(codec.model, pixels[:batch], modes[mode]))
                row: dict = {"tiles": batch}
                for mode, runs in times.items():
                    px = batch * SIDE * SIDE
                    row[f"{mode}_vertical_us_per_px"] = round(1e6 * statistics.median(v for v, _ in runs) / px, 2)
                    row[f"{mode}_steps_us_per_px"] = round(1e6 * statistics.median(s for _, s in runs) / px, 2)
                rows.append(row)
                print(json.dumps(row))
    finally:
        vertical_kernel.dgemm_address = real
    result = {"data": a.data, "tile": SIDE, "rounds": a.rounds, "rows": rows,
              "command": "python " + " ".join(sys.argv)}
    result["provenance"] = provenance(codec, result["command"])
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
