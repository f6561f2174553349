"""What a shift-only autoregressive flow can reach: per-position entropy of prediction residuals.

An integer MAF step (``nlc/models/maf.py``) codes ``x_d - shift(x_<d)`` under a distribution fixed per
position: it can move each pixel's distribution, never reshape it. With one step and a fixed predictor,
the best such base is the empirical distribution of the residuals at each position, so their entropy
(measured on the training images themselves: an optimistic figure) bounds what the step can reach. This
prints and writes that entropy in bits/dim for the raw pixels and for the residuals of four classical
predictors (left, up, their mean, and the median edge detector of LOCO-I), and with ``--model`` of a
learned one: a trained gray sequence codec's (``made-fmnist``) rounded mean of its likeliest mixture
component given the pixels before, the shift one MAF step with that MADE as its conditioner would take.

Usage: python bench/shift_bound.py --data ../shared/data/fashion-mnist --model made-fmnist
           --json bench/results/shift-bound.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from nlc.datasets import load_fashion_mnist


def position_entropy(values: np.ndarray) -> float:
    """Mean over positions of the empirical entropy (bits) of ``values`` ``(N, D)`` at each position."""
    total = 0.0
    for d in range(values.shape[1]):
        counts = np.bincount(values[:, d] - values[:, d].min())
        p = counts[counts > 0] / len(values)
        total -= float((p * np.log2(p)).sum())
    return total / values.shape[1]


def residuals(x: np.ndarray, side: int) -> dict[str, np.ndarray]:
    """``(N, D)`` pixels and their residuals under the classical predictors (zeros outside the image)."""
    def shifted(k: int) -> np.ndarray:
        return np.concatenate([np.zeros((len(x), k), np.int64), x[:, :-k]], 1)

    left, up, up_left = shifted(1), shifted(side), shifted(side + 1)
    med = np.median(np.stack([left, up, left + up - up_left]), 0).astype(np.int64)
    return {"pixels": x, "left": x - left, "up": x - up, "mean": x - (left + up) // 2, "med": x - med}


def learned_residuals(x: np.ndarray, model_name: str, batch: int = 5000) -> np.ndarray:
    """``x`` minus a gray sequence codec's rounded prediction of each pixel from the pixels before it: the
    mean, in levels, of the component with the largest weight."""
    import torch

    from nlc.codec import Codec

    model = Codec.load(model_name).model
    m = model.config.mixtures
    out = np.empty_like(x)
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(x[i : i + batch])
            params = model.outputs(xb).double()
            top = params[..., :m].argmax(-1, keepdim=True)
            mean = (params[..., m : 2 * m].gather(-1, top)[..., 0].clamp(-1, 1) + 1) * 127.5
            out[i : i + batch] = (xb - torch.round(mean).long()).numpy()
    return out


def main() -> None:
    """Print and write the entropies."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", help="also a trained gray sequence codec's predictions (e.g. made-fmnist)")
    ap.add_argument("--json")
    a = ap.parse_args()
    images = load_fashion_mnist(a.data, "train")
    x = images.reshape(len(images), -1).astype(np.int64)
    found = residuals(x, images.shape[2])
    if a.model:
        found[a.model] = learned_residuals(x, a.model)
    out = {"data": f"{a.data} (all {len(x)} training images)", "bits_per_dim": {
        name: round(position_entropy(r), 4) for name, r in found.items()}}
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            f.write(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
