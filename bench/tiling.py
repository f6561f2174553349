"""What tiling costs: the model's bits per sub-pixel on whole images vs independent tiles.

Usage: python bench/tiling.py --data ../shared/data/kodak [--model default] [--tiles 32 64 128]
       [--no-whole] [--json bench/results/tiling-kodak.json]

Uses the parallel forward pass (no entropy coding): ``whole`` evaluates each
image as one tile, the others cut it into independent tiles exactly as the
codec does (zero context across tile borders, partial tiles at the edges).
``--no-whole`` skips the whole-image pass, which attention (``pixelsnail``)
makes quadratic in the image's area; overheads are then relative to the first tiling.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from nlc.api import Codec
from nlc.coding.autoregressive import tile_log_probs
from nlc.images import list_images, read_image


def tiled_bits(model, pixels: np.ndarray, tile: int | None) -> float:
    """Model bits of an ``(H, W, 3)`` image coded in ``tile`` tiles (``None``: the whole image)."""
    tile = tile or max(pixels.shape[:2])
    return -float(tile_log_probs(model, model.config.mixtures, pixels, tile).sum()) / math.log(2)


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--tiles", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--no-whole", action="store_true", help="skip the whole-image pass")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    codec = Codec.load(a.model)
    settings = ([] if a.no_whole else [None]) + a.tiles
    bits = {str(s or "whole"): 0.0 for s in settings}
    subpixels = 0
    t0 = time.time()
    for f in list_images(a.data)[: a.limit]:
        px = np.asarray(read_image(f).convert("RGB"))
        subpixels += px.size
        for s in settings:
            bits[str(s or "whole")] += tiled_bits(codec.model, px, s)
        print(f.name, {k: round(v / subpixels, 4) for k, v in bits.items()}, flush=True)
    base = str(settings[0] or "whole")
    result = {
        "model": codec.spec.name, "data": a.data, "pixels": subpixels // 3,
        "bpsp": {k: v / subpixels for k, v in bits.items()},
        "overhead_pct": {k: 100 * (v / bits[base] - 1) for k, v in bits.items() if k != base},
        "relative_to": base,
        "seconds": round(time.time() - t0, 1),
        "command": "python bench/tiling.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items()
                                                        if v and k not in ("tiles", "no_whole"))
        + " --tiles " + " ".join(map(str, a.tiles)) + (" --no-whole" if a.no_whole else ""),
    }
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
