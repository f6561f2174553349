"""A flow's model bits per sub-pixel on whole validation photos, not on 64x64 crops.

Usage: python bench/whole_images.py --data ../shared/data/photos-val [--model idf]
       [--weights runs/idf-top.safetensors ...] [--size 768x512] [--json FILE]

Training validates on fixed 64x64 crops, where an integer flow's top levels are
2x2 or smaller: what they learn about spatial context only shows on whole
images. This evaluates ``-log2 p`` of the top-left ``--size`` crop of every
image (no entropy coding) for the codec's weights and any others given.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nlc.api import Codec
from nlc.registry import get_spec, load_model
from nlc.train import bits_per_dim, load_rgb


def bits_per_subpixel(model: torch.nn.Module, crops: list[np.ndarray]) -> float:
    """Model bits per sub-pixel over ``crops`` (uint8 ``(H, W, 3)``, any sizes), one image at a time."""
    return sum(bits_per_dim(model, c[None], batch=1) * c.size for c in crops) / sum(c.size for c in crops)


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="idf")
    ap.add_argument("--weights", nargs="*", default=[],
                    help="other weights of the same architecture, with the hyper-parameters of their training "
                         "metadata (the .json beside them) or else the codec's")
    ap.add_argument("--size", default="768x512")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    width, height = map(int, a.size.split("x"))
    spec = get_spec(a.model)
    crops = [im[:height, :width] for im in load_rgb(a.data)]  # read once, for every set of weights
    result = {"model": a.model, "data": a.data, "images": len(crops), "size": a.size, "bpsp": {}}
    result["bpsp"][f"codec {a.model}"] = bits_per_subpixel(load_model(spec), crops)
    for w in a.weights:
        result["bpsp"][w] = bits_per_subpixel(Codec.from_run(spec, w).model, crops)
    result["command"] = "python bench/whole_images.py " + " ".join(
        f"--{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(a).items() if v)
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
