"""Additive vs affine (lifting) coupling vs no coupling in a small integer flow, same budget.

Trains each variant of a small IDF for the same steps on photos-train crops and
reports validation bits/dim on photos-val (72 fixed 64x64 crops), as JSON.

Usage: python bench/coupling_ablation.py --data ../shared/data/photos-train --val ../shared/data/photos-val \\
           --steps 800 --json bench/results/idf-coupling-ablation.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from nlc.train import TrainConfig, train

SMALL = dict(levels=3, couplings=2, hidden=32, blocks=1, prior_hidden=32, prior_blocks=1, mixtures=3, groups=2)
VARIANTS = {
    "additive": dict(SMALL, coupling="additive"),
    "affine": dict(SMALL, coupling="affine"),
    "no coupling": dict(SMALL, couplings=0),
}


def main() -> None:
    """Train every variant and write the comparison."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val", required=True)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, hp in VARIANTS.items():
            t0 = time.time()
            cfg = TrainConfig(data=a.data, val=a.val, out=str(Path(tmp) / name.replace(" ", "-")), steps=a.steps,
                              batch=8, crop=32, lr=1e-3, warmup=100, val_every=a.steps, ckpt_every=a.steps,
                              architecture="idf", model=hp)
            meta = train(cfg, command="bench/coupling_ablation.py", progress=False)
            rows.append({"variant": name, "hyperparameters": hp, "steps": a.steps,
                         "val_bits_per_dim": meta["val_bits_per_dim"], "seconds": round(time.time() - t0, 1)})
            print(f"{name}: {meta['val_bits_per_dim']:.4f} bits/dim after {a.steps} steps ({rows[-1]['seconds']} s)",
                  flush=True)
    result = {"data": a.data, "val": a.val, "batch": 8, "crop": 32, "rows": rows,
              "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads()}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
