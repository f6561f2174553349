"""Ablation of the adaptive stage (nlc.coding.adaptive): each part alone and together.

Usage: python bench/adaptive.py --data ../shared/data/photos-val [--crop 768x512] [--tile 128] [--limit N]
       [--codec pixelcnnpp-exact] [--json bench/results/adaptive-ablation-photos-val.json]

For every image (a centre crop of ``--crop``, landscape or portrait like the image, so that
1-2 MP photos cost what a Kodak image does; ``--crop 0`` keeps whole images), the exact model's
parallel pass runs once; then each variant of the stage codes the image with a real range
coder in the decoder's order. Per variant: bits per sub-pixel of the payload and of the model's
``-log2 p``, and the seconds of the coding loop (the pass is reported apart, ``pass_s``). The
variant without a stage and the full stage are also decoded (with the model's steps, as
``nlc decompress`` does) and checked pixel for pixel: ``dec_s``. ``--tile`` is the tile side (128, what the
default codec takes for images of this size). JPEG-XL effort 9 and lossless
WebP code the same pixels (imagecodecs), so ``ratio_jpegxl`` compares bytes on the same crops.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nlc.api import Codec
from nlc.coding import autoregressive as ar
from nlc.coding.adaptive import OnlineBias
from nlc.coding.coders import make_coder

VARIANTS = {  # name -> keyword switches of OnlineBias (None: no stage)
    "none": None,
    "constant+channels": dict(neighbours=False, cross=False, classes=1, gate=False),
    "+neighbours": dict(cross=False, classes=1, gate=False),
    "+cross-channel": dict(classes=1, gate=False),
    "+scale-classes": dict(gate=False),
    "+gate (bias-v1)": dict(),
    "+pixel features": dict(pixels=True),
    "+scale factors (bias-v2)": dict(pixels=True, scales=True),
}
DECODED = ("none", "+scale factors (bias-v2)")


def centre_crop(img: np.ndarray, crop: str) -> np.ndarray:
    """A ``WxH`` centre crop (turned to the image's orientation), or the image if ``crop`` is ``0``."""
    if crop == "0":
        return img
    w, h = (int(v) for v in crop.split("x"))
    if img.shape[0] > img.shape[1]:
        w, h = h, w
    if img.shape[0] < h or img.shape[1] < w:
        return img
    y0, x0 = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    return img[y0 : y0 + h, x0 : x0 + w]


def code(model, grid, hs, ws, tiles, params, switches) -> tuple[float, int, float]:
    """Code one image's tiles with one variant: (model bits, payload bytes, seconds)."""
    enc = make_coder("range")
    t0 = time.perf_counter()
    orig = ar._parallel_params
    ar._parallel_params = lambda *a, **k: params  # the pass ran once, outside the timing
    try:
        if switches is None:
            bits = ar._encode_parallel(model, 10, grid, hs, ws, 3, tiles, enc, None)
        else:
            stage = OnlineBias(len(hs), grid.tile_h, grid.tile_w, 3, **switches)
            bits = ar._encode_adaptive(model, 10, grid, hs, ws, 3, tiles, enc, stage, None)
    finally:
        ar._parallel_params = orig
    payload = enc.to_bytes()
    return bits, len(payload), time.perf_counter() - t0, payload


def main() -> None:
    """Run the ablation and print (and optionally write) the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--crop", default="768x512")
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--codec", default="pixelcnnpp-exact")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import imagecodecs

    codec = Codec.load(args.codec)
    model = codec.model
    files = sorted(p for p in Path(args.data).iterdir() if p.suffix.lower() in (".png", ".webp"))[: args.limit]
    rows = []
    for f in files:
        img = centre_crop(np.asarray(Image.open(f).convert("RGB")), args.crop)
        grid = ar.TileGrid.for_image(img.shape[0], img.shape[1], args.tile)
        tiles = grid.split(img)
        hs, ws = grid.extents()
        t0 = time.perf_counter()
        params = ar._parallel_params(model, grid, hs, ws, 3, tiles)
        row = {"file": f.name, "height": img.shape[0], "width": img.shape[1],
               "pass_s": round(time.perf_counter() - t0, 2),
               "jpegxl_bytes": len(imagecodecs.jpegxl_encode(img, lossless=True, effort=9)),
               "webp_bytes": len(imagecodecs.webp_encode(img, lossless=True, method=6)), "variants": {}}
        for name, switches in VARIANTS.items():
            bits, nbytes, seconds, payload = code(model, grid, hs, ws, tiles, params, switches)
            v = {"bpsp": nbytes * 8 / img.size, "bpsp_model": bits / img.size, "enc_s": round(seconds, 2)}
            if name in DECODED:
                stage = None if switches is None else functools.partial(OnlineBias, **switches)
                t0 = time.perf_counter()
                out = ar.decode_tiles(model, 10, img.shape[0], img.shape[1], 3, args.tile, "range",
                                      len(payload).to_bytes(4, "little") + payload, group=len(hs), adaptive=stage)
                v["dec_s"] = round(time.perf_counter() - t0, 2)
                v["lossless"] = bool(np.array_equal(out, img))
            row["variants"][name] = v
        rows.append(row)
        print(f.name, " ".join(f"{k}={v['bpsp']:.4f}" for k, v in row["variants"].items()), flush=True)
    subpixels = sum(r["height"] * r["width"] * 3 for r in rows)
    summary = {}
    for name in VARIANTS:
        vs = [r["variants"][name] for r in rows]
        s = {"bpsp": sum(v["bpsp"] * r["height"] * r["width"] * 3 for v, r in zip(vs, rows)) / subpixels,
             "bpsp_model": sum(v["bpsp_model"] * r["height"] * r["width"] * 3 for v, r in zip(vs, rows)) / subpixels,
             "enc_s": round(float(np.mean([v["enc_s"] for v in vs])), 2)}
        if name in DECODED:
            s["dec_s"] = round(float(np.mean([v["dec_s"] for v in vs])), 2)
            s["all_lossless"] = all(v["lossless"] for v in vs)
        s["ratio_jpegxl"] = s["bpsp"] * subpixels / 8 / sum(r["jpegxl_bytes"] for r in rows)
        s["gain_pct"] = 100 * (1 - s["bpsp"] / summary["none"]["bpsp"]) if summary else 0.0
        summary[name] = s
    result = {"codec": args.codec, "data": args.data, "crop": args.crop, "tile": args.tile, "images": len(rows),
              "pass_s": round(float(np.mean([r["pass_s"] for r in rows])), 2),
              "jpegxl_bpsp": sum(r["jpegxl_bytes"] for r in rows) * 8 / subpixels,
              "webp_bpsp": sum(r["webp_bytes"] for r in rows) * 8 / subpixels,
              "command": " ".join(["python", "bench/adaptive.py"] + sys.argv[1:]), "summary": summary, "rows": rows}
    for name, s in summary.items():
        print(f"{name:20s} {s['bpsp']:.4f} ({s['gain_pct']:+.2f}%) enc {s['enc_s']} s", s.get("dec_s", ""))
    print(f"JPEG-XL e9 {result['jpegxl_bpsp']:.4f}, WebP {result['webp_bpsp']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
