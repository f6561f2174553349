"""Small images in tiles of 64 or as one tile: real file sizes and times, the choice behind ``whole_tile``.

Usage: python bench/whole_tile.py --data ../shared/data/photos-val [--model default] [--per 9]
       [--json bench/results/whole-tile-photos-val.json]

An image of 65 to 128 pixels on its longer side is cut by the default codec's 64x64 tiles into partial tiles
that still take a whole tile's steps (a 96x80 crop: four tiles, 16,384 pixels' steps for 7,680). This codes
``--per`` crops of each size from ``--data`` (never Kodak; positions drawn with a fixed seed) both ways,
``tile=64`` and ``tile`` = the longer side (one tile, shrunk to the image), with the model's coding only
(no WebP fallback), decodes each file, checks it, and reports bits per sub-pixel and the median seconds
each way, on one thread.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np
from PIL import Image

from nlc import api
from nlc.bench import provenance, write_json
from nlc.codec import Codec
from nlc.images import list_images
from nlc.threads import use_threads

SIZES = ((64, 64), (72, 72), (96, 80), (80, 96), (100, 100), (120, 72), (128, 128))


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--per", type=int, default=9, help="crops of each size")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    if "kodak" in a.data.lower():
        sys.exit("bench/whole_tile.py: never tune on Kodak")
    use_threads(1)
    codec = Codec.load(a.model)
    photos = [Image.open(p).convert("RGB") for p in list_images(a.data)]
    rng = np.random.default_rng(1)
    rows = []
    for w, h in SIZES:
        ways: dict[str, dict] = {}
        crops = []
        for i in range(a.per):
            im = photos[i % len(photos)]
            x, y = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
            crops.append(im.crop((x, y, x + w, y + h)))
        tiles = {"tiles_of_64": 64, "one_tile": max(w, h)}
        runs: dict[str, list] = {way: [] for way in tiles}
        for i, crop in enumerate(crops):
            for way in sorted(tiles, reverse=i % 2 == 1):  # alternating which goes first
                t0 = time.perf_counter()
                data = api.encode_image(crop, codec, tile=tiles[way], fallback=False)[0]
                t1 = time.perf_counter()
                back = api.decode_image(data)[0]
                t2 = time.perf_counter()
                assert back.tobytes() == crop.tobytes(), (w, h, way)
                runs[way].append((len(data), t1 - t0, t2 - t1))
        for way, got in runs.items():
            size = sum(g[0] for g in got)
            ways[way] = {"tile": tiles[way], "bytes": size, "bpsp": round(size * 8 / (a.per * w * h * 3), 4),
                         "enc_s": round(statistics.median(g[1] for g in got), 4),
                         "dec_s": round(statistics.median(g[2] for g in got), 4)}
        one, cut = ways["one_tile"], ways["tiles_of_64"]
        row = {"width": w, "height": h, "crops": a.per, **ways,
               "bytes_change_pct": round(100 * (one["bytes"] / cut["bytes"] - 1), 2),
               "enc_speedup": round(cut["enc_s"] / one["enc_s"], 2),
               "dec_speedup": round(cut["dec_s"] / one["dec_s"], 2)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    command = "python " + " ".join(sys.argv)
    result = {"data": a.data, "model": a.model, "threads": 1, "sizes": rows, "command": command,
              "provenance": provenance(codec, command)}
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
