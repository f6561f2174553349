"""Milliseconds per row of an exact PixelCNN++'s vertical stream: the compiled rows against the torch rows.

Usage: python bench/vertical_rows.py [--codec default] [--rows 24] [--repeats 3]
       [--json bench/results/vertical-rows.json]

For batches of the shapes the decoder meets (a context-tile group of a Kodak image: 3 tiles of 136
columns; a 4000x3000 photo's group: 31 tiles of 72; a coder group of 64x64 tiles: 96 of 64; one
thumbnail), a stepper of the codec's exact model computes ``--rows`` rows of its vertical stream
(``start_row``: the U-net and the projections the per-pixel steps read) with the compiled rows
(:mod:`nlc.models.vertical_kernel`) and with the torch rows (``PixelStepper.compiled_vertical =
False``), alternating, on one thread and in one slice; medians of ``--repeats``. Both give the same
numbers (``tests/models/test_vertical_kernel.py``); this measures only their speed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from nlc.codec import Codec
from nlc.models import pixelcnnpp

SHAPES = ((3, 136, "a Kodak context-tile group"), (31, 72, "a 4000x3000 photo's context-tile group"),
          (96, 64, "a coder group of 64x64 tiles"), (1, 64, "one 64x64 thumbnail"))


def ms_per_row(model, batch: int, width: int, rows: int, compiled: bool) -> float:
    """Milliseconds per row of ``rows`` rows of a fresh stepper's vertical stream."""
    pixelcnnpp.PixelStepper.compiled_vertical = compiled
    try:
        x4 = torch.cat([torch.rand(batch, 3, rows, width) * 2 - 1, torch.ones(batch, 1, rows, width)], 1)
        st = model.stepper(batch, rows, width)
        st.fill(x4)
        t0 = time.perf_counter()
        for r in range(rows):
            st.start_row(r)
        elapsed = time.perf_counter() - t0
        st.release()
        return elapsed / rows * 1e3
    finally:
        pixelcnnpp.PixelStepper.compiled_vertical = True


def main() -> None:
    """Measure every shape and print (and optionally write) the medians."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codec", default="default")
    ap.add_argument("--rows", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    pixelcnnpp.vertical_parts = lambda batch, width: [slice(0, batch)]  # one slice: one thread each way
    model = Codec.load(args.codec).model
    ms_per_row(model, 1, 16, 4, True)  # compile (or load) the kernels first
    rows = []
    for batch, width, what in SHAPES:
        times: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for compiled in (True, False):
                times[compiled].append(ms_per_row(model, batch, width, args.rows, compiled))
        row = {"tiles": batch, "width": width, "what": what, "compiled_ms": round(statistics.median(times[True]), 2),
               "torch_ms": round(statistics.median(times[False]), 2)}
        row["speedup"] = round(row["torch_ms"] / row["compiled_ms"], 2)
        rows.append(row)
        print(row, flush=True)
    result = {"codec": args.codec, "rows": args.rows, "repeats": args.repeats, "threads": 1, "shapes": rows,
              "command": " ".join(["python", "bench/vertical_rows.py"] + sys.argv[1:])}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
