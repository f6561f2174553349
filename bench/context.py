"""What context tiles recover: the model's bits per sub-pixel with tiles that read coded neighbours.

Usage: python bench/context.py --data ../shared/data/photos-val [--model pixelcnnpp] [--tile 128]
       [--context 8] [--crop 768x512] [--json bench/results/context-photos-val.json]

The parallel forward pass of the float model (no entropy coding, no adaptive stage) on centre crops,
each tile extended by ``--context`` rows above and columns left of real pixels as
:func:`nlc.coding.context_tiles.extended_input` builds them, its own pixels' bits counted:
``independent`` (no context: the codecs before ``pixelcnnpp-adaptive-v3``), ``rows`` (context above
only, for every tile below the first row), ``schedule`` (the codec's groups,
:func:`nlc.coding.context_tiles.schedule`: above for every tile below the first row, left for tiles
in odd columns), ``wavefront`` (above and left for every tile that has them: what a tile-by-tile
order would give), ``whole`` (one tile: the whole crop).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from nlc.api import Codec
from nlc.coding.autoregressive import TileGrid
from nlc.coding.context_tiles import ContextGroup, extended_input, schedule
from nlc.images import list_images, read_image
from nlc.models.mixture import log_likelihood


def groups_for(kind: str, grid: TileGrid, context: int) -> list[ContextGroup]:
    """The tiles' contexts of one measured arrangement (``whole`` is one tile without context)."""
    if kind == "schedule":
        return schedule(grid, context)
    out = []
    for t in range(grid.batch):
        ty, tx = divmod(t, grid.nx)
        top = context if ty and kind in ("rows", "wavefront") else 0
        left = context if tx and kind == "wavefront" else 0
        out.append(ContextGroup(np.array([t]), top, left, False))
    return out


@torch.no_grad()
def bits(model, pixels: np.ndarray, grid: TileGrid, groups: list[ContextGroup]) -> float:
    """The model's bits of the tiles' own pixels, each read with its group's context."""
    total = 0.0
    hs, ws = grid.extents()
    for group in groups:
        x4 = extended_input(pixels, True, grid, group)
        ll = log_likelihood(x4[:, :3], model.forward_x4(x4), model.config.mixtures, 3)
        for i, t in enumerate(group.tiles):
            total -= float(ll[i, group.top : group.top + hs[t], group.left : group.left + ws[t]].sum())
    return total / math.log(2)


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="pixelcnnpp")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--context", type=int, default=8)
    ap.add_argument("--crop", default="768x512")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    model = Codec.load(a.model).model
    cw, ch = (int(v) for v in a.crop.split("x"))
    kinds = ["independent", "rows", "schedule", "wavefront", "whole"]
    totals = dict.fromkeys(kinds, 0.0)
    subpixels, t0 = 0, time.time()
    for f in list_images(a.data):
        im = np.asarray(read_image(f).convert("RGB"))
        y, x = (im.shape[0] - ch) // 2, (im.shape[1] - cw) // 2
        px = np.ascontiguousarray(im[y : y + ch, x : x + cw])
        subpixels += px.size
        for kind in kinds:
            grid = TileGrid.for_image(ch, cw, max(ch, cw) if kind == "whole" else a.tile)
            totals[kind] += bits(model, px, grid, groups_for(kind, grid, a.context))
        print(f.name, {k: round(v / subpixels, 4) for k, v in totals.items()}, flush=True)
    result = {"model": a.model, "data": a.data, "crop": a.crop, "tile": a.tile, "context": a.context,
              "bpsp": {k: v / subpixels for k, v in totals.items()},
              "vs_independent_pct": {k: 100 * (v / totals["independent"] - 1) for k, v in totals.items()},
              "seconds": round(time.time() - t0, 1),
              "command": "python bench/context.py " + " ".join(
                  f"--{k} {v}" for k, v in vars(a).items() if v is not None)}
    print(json.dumps(result, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
