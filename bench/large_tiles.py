"""Large photos in tiles of 64 or of 128: the default codec's two tile choices on images of over 96 such tiles.

Usage: python bench/large_tiles.py --data ../shared/data/photos-val [--mosaics 2] [--big PHOTO]
       [--json bench/results/large-tiles-photos-val.json]

``pixelcnnpp-adaptive-v3`` codes an image that makes more than 96 tiles of 128 (about 1.5 MP) in tiles of
64; ``pixelcnnpp-adaptive-v4`` in tiles of 128 (``large_tile_all``). The photo sets hold no such image,
so the real-content cases are 2x2 mosaics of ``--data``'s photos (each cropped to the smallest of its
four), and ``--big`` adds one photo resized (Lanczos) to 4000x3000, as ``bench/memory.py`` does. Each
image is encoded (no WebP fallback) with ``--tile 64`` and ``--tile 128``, one after the other; bytes and
encode seconds. Never on Kodak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from PIL import Image

from nlc import api
from nlc.bench import provenance, write_json
from nlc.codec import Codec
from nlc.images import list_images


def mosaics(folder: str, count: int) -> list[tuple[str, Image.Image]]:
    """``count`` 2x2 mosaics of the folder's photos, four after four."""
    paths = list_images(folder)
    out = []
    for m in range(count):
        ims = [Image.open(p).convert("RGB") for p in paths[4 * m : 4 * m + 4]]
        w, h = min(i.width for i in ims), min(i.height for i in ims)
        mosaic = Image.new("RGB", (2 * w, 2 * h))
        for k, im in enumerate(ims):
            mosaic.paste(im.crop((0, 0, w, h)), ((k % 2) * w, (k // 2) * h))
        out.append(("mosaic of " + ", ".join(Path(p).name for p in paths[4 * m : 4 * m + 4]), mosaic))
    return out


def main() -> None:
    """Run the comparison."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--mosaics", type=int, default=2)
    p.add_argument("--big", default=None, help="a photo to resize to 4000x3000 as well")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "kodak" in a.data.lower() or (a.big and "kodak" in a.big.lower()):
        sys.exit("bench/large_tiles.py: never on Kodak")
    images = mosaics(a.data, a.mosaics)
    if a.big:
        images.append((f"{a.big} resized to 4000x3000",
                       Image.open(a.big).convert("RGB").resize((4000, 3000), Image.LANCZOS)))
    codec = Codec.load("pixelcnnpp-adaptive-v3")
    api.encode_image(Image.new("RGB", (64, 16)), codec, fallback=False)  # compiled kernels loaded first
    rows = []
    for name, im in images:
        row: dict = {"image": name, "width": im.width, "height": im.height}
        for tile in (64, 128):
            t0 = time.perf_counter()
            data, _ = api.encode_image(im, codec, fallback=False, tile=tile)
            row[f"tile{tile}"] = {"bytes": len(data), "enc_s": round(time.perf_counter() - t0, 1)}
        row["change_pct"] = round(100 * (row["tile128"]["bytes"] / row["tile64"]["bytes"] - 1), 3)
        print(row, flush=True)
        rows.append(row)
    total = {t: sum(r[f"tile{t}"]["bytes"] for r in rows) for t in (64, 128)}
    command = "python " + " ".join(sys.argv)
    result = {"data": a.data, "images": rows, "bytes": total,
              "change_pct": round(100 * (total[128] / total[64] - 1), 3),
              "enc_s": {t: round(sum(r[f"tile{t}"]["enc_s"] for r in rows), 1) for t in (64, 128)},
              "command": command, "provenance": provenance(codec, command)}
    print(f"tiles of 128 against 64: {result['change_pct']:+.3f}% bytes, encode {result['enc_s'][64]} -> "
          f"{result['enc_s'][128]} s")
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
