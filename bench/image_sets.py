"""Small images as one set file vs one file each: size and speed of ``nlc compress --set``.

Usage: python bench/image_sets.py --data ../shared/data/kodak [--model default] [--crop 32] [--every 4]
       [--singles 24] [--json bench/results/image-set-kodak-crops.json]

The set is the ``crop x crop`` crops of every image of ``--data`` on a grid,
every ``--every``-th one in raster order (a thumbnail data set made from real
photos). All of them go into one set file (:func:`nlc.sets.encode_set`) and
back; ``--singles`` of them, spread evenly, are also coded one file each
(:func:`nlc.encode_image`, what ``nlc compress`` without ``--set`` does) to
time that and to measure the per-file header. Classical codecs (PNG, WebP,
JPEG-XL through imagecodecs) code each crop as its own file and all of them as
one mosaic image.
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import numpy as np
import torch
from PIL import Image

from nlc import __version__
from nlc.api import Codec, decode_image, encode_image
from nlc.bench import baseline_bytes, write_json
from nlc.bench.sets import mosaic
from nlc.coding.autoregressive import TileGrid
from nlc.images import list_images, read_image
from nlc.sets import decode_set, encode_set


def crops_of(folder: str, crop: int, every: int) -> np.ndarray:
    """Every ``every``-th whole ``crop x crop`` crop (raster order) of every image in ``folder``."""
    out = []
    for f in list_images(folder):
        px = np.asarray(read_image(f).convert("RGB"))
        h, w = (px.shape[0] // crop) * crop, (px.shape[1] // crop) * crop
        out.append(TileGrid(h, w, crop, crop).split(px[:h, :w])[::every])
    return np.concatenate(out)


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--singles", type=int, default=24)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    codec = Codec.load(a.model)
    items = crops_of(a.data, a.crop, a.every)
    n, subpixels = len(items), items.size
    print(f"{n} crops of {a.crop}x{a.crop} from {a.data}", flush=True)
    t0 = time.perf_counter()
    blob, stats = encode_set(items, codec)
    t1 = time.perf_counter()
    back, _ = decode_set(blob, codec)
    t2 = time.perf_counter()
    lossless = bool(np.array_equal(back, items))
    print(f"set: {len(blob)} bytes, {len(blob) * 8 / subpixels:.4f} bits/subpixel, encode {t1 - t0:.1f} s, "
          f"decode {t2 - t1:.1f} s, lossless {lossless}", flush=True)
    picks = np.linspace(0, n - 1, min(a.singles, n)).round().astype(int)
    single = {"bytes": 0, "model_bits": 0.0, "header_bytes": 0, "enc": 0.0, "dec": 0.0, "lossless": True}
    for i in picks:
        im = Image.fromarray(items[i], "RGB")
        s0 = time.perf_counter()
        data, st = encode_image(im, codec, fallback=False)
        s1 = time.perf_counter()
        out, _ = decode_image(data, codec=codec)
        s2 = time.perf_counter()
        single["bytes"] += len(data)
        single["model_bits"] += st["model_bits"]
        single["header_bytes"] += st["header_bytes"]
        single["enc"] += s1 - s0
        single["dec"] += s2 - s1
        single["lossless"] &= out.tobytes() == im.tobytes()
    k, sub_k = len(picks), len(picks) * a.crop * a.crop * 3
    print(f"one file each ({k} crops): {single['bytes'] * 8 / sub_k:.4f} bits/subpixel, "
          f"encode {single['enc'] / k:.2f} s, decode {single['dec'] / k:.2f} s per crop", flush=True)
    per_file = {name: 0 for name in ("png", "webp", "jpegxl")}
    for it in items:
        for name, b in baseline_bytes(it).items():
            per_file[name] += b
    whole = baseline_bytes(mosaic(items, per_row=int(math.sqrt(n) * 1.5) or 1))
    result = {
        "model": codec.spec.name, "data": f"{a.data}: {n} crops of {a.crop}x{a.crop} (every {a.every}th, raster order)",
        "device": f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})",
        "versions": {"nlc": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "items": n, "subpixels": int(subpixels),
        "set": {"bytes": len(blob), "header_bytes": stats["header_bytes"], "bpsp": len(blob) * 8 / subpixels,
                "bpsp_model": stats["model_bits"] / subpixels,
                "gap_pct": 100 * (len(blob) * 8 / stats["model_bits"] - 1),
                "enc_s": round(t1 - t0, 2), "dec_s": round(t2 - t1, 2),
                "enc_ms_per_item": round(1000 * (t1 - t0) / n, 2), "dec_ms_per_item": round(1000 * (t2 - t1) / n, 2),
                "lossless": lossless},
        "one_file_each": {"items": k, "bpsp": single["bytes"] * 8 / sub_k, "bpsp_model": single["model_bits"] / sub_k,
                          "header_bytes_per_file": single["header_bytes"] / k,
                          "enc_ms_per_item": round(1000 * single["enc"] / k, 1),
                          "dec_ms_per_item": round(1000 * single["dec"] / k, 1), "lossless": single["lossless"]},
        "baselines_per_file": {name: {"bpsp": b * 8 / subpixels} for name, b in per_file.items() if b},
        "baselines_mosaic": {name: {"bpsp": b * 8 / subpixels} for name, b in whole.items() if b},
        "command": "python bench/image_sets.py " + " ".join(f"--{k} {v}" for k, v in vars(a).items() if v),
    }
    print("per file: " + ", ".join(f"{k} {v['bpsp']:.4f}" for k, v in result["baselines_per_file"].items()))
    print("mosaic:   " + ", ".join(f"{k} {v['bpsp']:.4f}" for k, v in result["baselines_mosaic"].items()))
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
