"""Thumbnails: rate and speed of codecs on small crops (what a faster codec for small images would cost).

Crops of each ``--sizes`` (``WxH``) at positions drawn with a fixed seed from a folder's photos (never
Kodak's), each coded to its own file in one process through the library (``nlc compress DIR``'s loop,
imports and model loads excluded); the codecs take turns image by image, so a busy moment of the
machine costs them alike. Every file is decoded and compared with its crop. Writes, per size and
codec, bits per sub-pixel of the files and the median seconds per image each way, and the classical
codecs' bits per sub-pixel on the same crops (``baselines``, :data:`nlc.bench.BASELINES`), and what each
codec is (``codecs``: name, weights sha256, arithmetic, stage, hyper-parameters). A codec is a
registered name, or ``NAME=WEIGHTS``: that codec with a training run's weights (hyper-parameters from the
run's ``.json`` beside them), e.g. ``pixelcnnpp-exact=runs/thumb16.safetensors`` for a narrower network in
exact arithmetic.

    python bench/thumbnails.py --data ../shared/data/photos-train --json bench/results/thumbnails-photos-train.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter

import numpy as np
from many_images import crops  # beside this script (the bench folder is not a package)

from nlc import api
from nlc.bench import baseline_bytes, check_baselines, provenance, write_json
from nlc.codec import Codec
from nlc.registry import get_spec


def load(name: str) -> Codec:
    """The codec ``name``, or for ``NAME=WEIGHTS`` that codec with a training run's weights."""
    if "=" not in name:
        return Codec.load(name)
    base, weights = name.split("=", 1)
    return Codec.from_run(get_spec(base), weights)


def main() -> None:
    """Run the thumbnails benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--sizes", nargs="+", default=["64x64", "96x80", "128x128"])
    p.add_argument("--count", type=int, default=40, help="crops of each size")
    p.add_argument("--codecs", nargs="+", default=["pixelcnnpp-adaptive-v4", "pixelcnnpp-exact"],
                   help="registered names, or NAME=WEIGHTS (a training run's weights)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "kodak" in a.data.lower():
        sys.exit("bench/thumbnails.py: never on Kodak")
    check_baselines()
    codecs = {name: load(name) for name in a.codecs}
    result: dict = {"data": a.data, "count": a.count, "command": "python " + " ".join(sys.argv), "sizes": {},
                    "codecs": {name: {"codec": c.spec.name, "sha256": c.spec.sha256, "arithmetic": c.spec.arithmetic,
                                      "adaptive": c.spec.adaptive, "hyperparameters": dict(c.spec.hyperparameters)}
                               for name, c in codecs.items()}}
    for size in a.sizes:
        w, h = map(int, size.split("x"))
        images = crops(a.data, [(a.count, w, h)], seed=1)
        for codec in codecs.values():  # the first image once untimed: compiled kernels load, scratch grows
            api.decode_image(api.encode_image(images[0], codec, fallback=False)[0], codec=codec)
        rows = {name: {"bytes": 0, "enc": [], "dec": []} for name in codecs}
        for im in images:
            for name, codec in codecs.items():
                t0 = time.perf_counter()
                data, _ = api.encode_image(im, codec, fallback=False)
                t1 = time.perf_counter()
                out, _ = api.decode_image(data, codec=codec)
                t2 = time.perf_counter()
                assert out.tobytes() == im.tobytes(), (name, size)
                row = rows[name]
                row["bytes"] += len(data)
                row["enc"].append(t1 - t0)
                row["dec"].append(t2 - t1)
        subpixels = a.count * w * h * 3
        result["sizes"][size] = {name: {"bpsp": round(r["bytes"] * 8 / subpixels, 4),
                                        "enc_s_per_image": round(statistics.median(r["enc"]), 4),
                                        "dec_s_per_image": round(statistics.median(r["dec"]), 4)}
                                 for name, r in rows.items()}
        classical = Counter()
        for im in images:
            classical.update(baseline_bytes(np.asarray(im)))
        result["sizes"][size]["baselines"] = {k: round(v * 8 / subpixels, 4) for k, v in classical.items()}
        print(size, json.dumps(result["sizes"][size]), flush=True)
    result["provenance"] = provenance(next(iter(codecs.values())), result["command"])
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
