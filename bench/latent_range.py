"""What the bits-back latent grid's range and step cost: real bits per image over the −ELBO.

constriction's ``QuantizedGaussian`` gives every bin of its range at least 2^-24
of probability, so the more bins, the more often a posterior sample lands far
from its Gaussian, where the prior charges many bits. This pushes test images
with bits-back onto a stack pre-filled with random words (no chain start, no
header), in batches of 256, for several grids, and compares the bits added with
the average −ELBO over 4 posterior samples.

Usage: python bench/latent_range.py --model vae-fmnist-binary --data ../shared/data/fashion-mnist \\
           --json bench/results/latent-range.json
"""

from __future__ import annotations

import argparse
import json
import platform

import numpy as np
import torch

from nlc.codec import Codec
from nlc.coding.bitsback import LatentGrid, make_item_codec
from nlc.coding.coders import AnsStack
from nlc.datasets import binarize, load_fashion_mnist
from nlc.train.latent import neg_elbo_bits

GRIDS = [(16.0, 2.0**-6), (8.0, 2.0**-6), (6.0, 2.0**-6), (16.0, 2.0**-8)]


def excess_bits(model: torch.nn.Module, items: np.ndarray, grid: LatentGrid, neg_elbo: float) -> float:
    """Bits per item that bits-back coding on ``grid`` adds to a random-filled stack, minus the −ELBO."""
    words = np.random.default_rng(0).integers(1, 2**32, 2**18, dtype=np.uint32)
    stack = AnsStack(words.astype("<u4").tobytes())
    codec = make_item_codec(model, grid)
    before = stack.num_valid_bits()
    for i in range(0, len(items), 256):
        codec.push(stack, torch.from_numpy(items[i : i + 256].astype(np.int64)))
    return (stack.num_valid_bits() - before) / len(items) - neg_elbo


def main() -> None:
    """Measure every grid of :data:`GRIDS` and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vae-fmnist-binary")
    ap.add_argument("--data", required=True)
    ap.add_argument("--items", type=int, default=2048)
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(1)
    codec = Codec.load(a.model)
    items = load_fashion_mnist(a.data, "test")[: a.items]
    if codec.bits == 1:
        items = binarize(items)
    elbo = float(np.mean([neg_elbo_bits(codec.model, items, seed=s).sum() for s in range(4)]) / len(items))
    rows = []
    for bound, step in GRIDS:
        extra = excess_bits(codec.model, items, LatentGrid(step, bound), elbo)
        rows.append({"bound": bound, "step": step, "bins": 2 * int(round(bound / step)) + 1,
                     "excess_bits_per_item": round(extra, 3)})
        print(f"[-{bound:g}, {bound:g}] step 2^{int(np.log2(step))}: {extra:+.3f} bits per image over the -ELBO")
    res = {"model": a.model, "items": len(items), "neg_elbo_bits_per_item": round(elbo, 3), "grids": rows,
           "device": f"cpu (1 thread, {platform.machine()})",
           "command": "python bench/latent_range.py --model {} --data {} --json {}".format(a.model, a.data, a.json)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
