"""What mixing trained models would give: model bits of each codec and of their best mixture.

Usage: python bench/ensemble.py --models pixelcnnpp,pixelcnnpp-wide,pixelsnail --data ../shared/data/photos-val
       [--tile 64] [--crop 768x512] [--json bench/results/ensemble-photos-val.json]

Each image's centre crop (landscape or portrait) is cut into the codec's independent tiles, as
the codecs code them, and every model gives each pixel's log-probability in one parallel pass.
A mixture ``p = sum_i w_i p_i`` of whole-pixel probabilities is a valid model (a mixture of
discretized logistic mixtures is one with their components together), so this measures what a
mixture codec would cost; the weights ``w`` are fitted on the same pixels (an upper bound on
what fixed weights give elsewhere). Run it on ``photos-val``, never to tune on Kodak.
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
from nlc.coding.autoregressive import tile_log_probs
from nlc.images import list_images, read_image


def centre_crop(px: np.ndarray, long: int, short: int) -> np.ndarray:
    """The centre ``long x short`` crop (landscape) or ``short x long`` (portrait) of ``(H, W, 3)`` pixels."""
    h, w = px.shape[:2]
    ch, cw = (short, long) if w >= h else (long, short)
    ch, cw = min(ch, h), min(cw, w)
    return px[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]


def fit_weights(lls: torch.Tensor, steps: int = 300) -> tuple[torch.Tensor, float]:
    """Mixture weights ``(K,)`` that minimise the bits of ``lls`` ``(K, N)``, and those bits per pixel."""
    logw = torch.zeros(lls.shape[0], 1, requires_grad=True)
    opt = torch.optim.Adam([logw], lr=0.05)
    for _ in range(steps):
        opt.zero_grad()
        loss = -torch.logsumexp(lls + torch.log_softmax(logw, 0), 0).mean()
        loss.backward()
        opt.step()
    w = torch.softmax(logw.detach(), 0)
    return w.flatten(), float(-torch.logsumexp(lls + w.log(), 0).mean()) / math.log(2)


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", required=True, help="comma-separated codec names")
    ap.add_argument("--data", required=True)
    ap.add_argument("--tile", type=int, default=64)
    ap.add_argument("--crop", default="768x512")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    names = a.models.split(",")
    codecs = [Codec.load(n) for n in names]
    long, short = map(int, a.crop.split("x"))
    t0, per_model, subpixels = time.time(), [], 0
    for f in list_images(a.data):
        px = centre_crop(np.asarray(read_image(f).convert("RGB")), long, short)
        per_model.append(torch.stack([tile_log_probs(c.model, c.mixtures, px, a.tile) for c in codecs]))
        subpixels += px.size
        print(f.name, flush=True)
    lls = torch.cat(per_model, 1)
    bpsp = {n: float(-lls[i].sum()) / math.log(2) / subpixels for i, n in enumerate(names)}
    w, mix_bits = fit_weights(lls)
    mix_bpsp = mix_bits * lls.shape[1] / subpixels
    best = min(bpsp.values())
    result = {
        "models": names, "data": a.data, "tile": a.tile, "crop": a.crop, "subpixels": subpixels,
        "bpsp": bpsp, "mixture_weights": dict(zip(names, w.tolist())), "mixture_bpsp": mix_bpsp,
        "gain_vs_best_pct": 100 * (1 - mix_bpsp / best), "seconds": round(time.time() - t0, 1),
        "command": f"python bench/ensemble.py --models {a.models} --data {a.data} --tile {a.tile} --crop {a.crop}"
                   + (f" --json {a.json}" if a.json else ""),
    }
    print(json.dumps({k: v for k, v in result.items() if k != "command"}, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
