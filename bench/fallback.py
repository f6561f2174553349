"""Whether the lossless-WebP fallback changes a benchmark: per image, the model's file against the
fallback's WebP pixels, and the time the WebP attempt adds to encoding.

Usage: python bench/fallback.py --data ../shared/data/kodak --results bench/results/kodak-pixelcnnpp-exact.json
       [--json bench/results/fallback-kodak.json]

``--results`` is a committed ``nlc bench`` result of the codec (its per-image file sizes, coded
with ``fallback=False``); WebP is what :func:`nlc.api.encode_image` tries (``WEBP_LOSSLESS``).
It also codes drawn screenshots (lines of text and a rectangle, 256x192 and 1920x1080) with the
codec, with and without the fallback: the kind of image the fallback is for.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nlc.api import encode_image
from nlc.coding.planes import WEBP_LOSSLESS, encode_webp
from nlc.images import model_pixels, read_image


def screenshot(width: int = 256, height: int = 192) -> Image.Image:
    """A drawing of lines of text and a filled rectangle, like a screenshot."""
    im = Image.new("RGB", (width, height), (255, 255, 255))
    d = ImageDraw.Draw(im)
    for i in range(height // 15 - 1):
        d.text((5, i * 15), f"The quick brown fox jumps over the lazy dog {i} " * (width // 256), fill=(20, 20, 20))
    d.rectangle((width * 3 // 5, 20, width * 15 // 16, height // 2), fill=(30, 120, 200))
    return im


def screenshot_sizes(codec: str, width: int, height: int) -> dict:
    """A screenshot's file and encoding time with the fallback, and its file without it."""
    im = screenshot(width, height)
    t0 = time.perf_counter()
    with_fallback, stats = encode_image(im, codec)
    seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    model_only, _ = encode_image(im, codec, fallback=False)
    model_seconds = time.perf_counter() - t0
    subpixels = im.width * im.height * 3
    return {"size": list(im.size), "file_bytes": len(with_fallback), "file_bpsp": len(with_fallback) * 8 / subpixels,
            "pixels_coder": stats["pixels_coder"], "model_estimate_bpsp": stats.get("model_estimate"),
            "encode_s": round(seconds, 2), "model_file_bytes": len(model_only),
            "model_bpsp": len(model_only) * 8 / subpixels, "model_encode_s": round(model_seconds, 2)}


def main() -> None:
    """Run the comparison."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    bench = json.loads(Path(a.results).read_text())
    rows = []
    for r in bench["images"]:
        px = model_pixels(read_image(Path(a.data) / r["file"]))
        t0 = time.perf_counter()
        webp = len(encode_webp(px))
        seconds = time.perf_counter() - t0
        rows.append({"file": r["file"], "model_file_bytes": r["bytes"], "webp_pixels_bytes": webp,
                     "webp_s": round(seconds, 3), "fallback_wins": webp < r["bytes"] - r["header_bytes"]})
        print(rows[-1], flush=True)
    result = {
        "codec": bench["model"], "data": a.data, "results": a.results, "webp": WEBP_LOSSLESS, "images": rows,
        "fallback_wins": sum(r["fallback_wins"] for r in rows),
        "webp_s_mean": float(np.mean([r["webp_s"] for r in rows])),
        "screenshots": [screenshot_sizes(bench["model"], 256, 192), screenshot_sizes(bench["model"], 1920, 1080)],
        "command": f"python bench/fallback.py --data {a.data} --results {a.results}"
                   + (f" --json {a.json}" if a.json else ""),
    }
    print({k: v for k, v in result.items() if k != "images"})
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
