"""Many small images of mixed sizes: one folder run each way through the command line.

The practical-at-scale target: 1,000 crops of 64x64 and 500 of 96x80 from ``--data`` (never Kodak),
at positions drawn with a fixed seed, saved as PNG into one folder; then ``nlc compress DIR -o OUT``
and ``nlc decompress OUT -o BACK`` with the default codec (``--jobs``: nlc's ``-j``), each one command as a user runs it
(imports and the model's load included), and every decoded image compared with its crop. Writes the
seconds each way, per image, the bytes and bits per sub-pixel.

    python bench/many_images.py --data ../shared/data/photos-val --json bench/results/many-images-photos-val.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nlc.bench import provenance, write_json
from nlc.codec import Codec
from nlc.images import list_images


def crops(folder: str, sizes: list[tuple[int, int, int]], seed: int = 0) -> list[Image.Image]:
    """``count`` crops of ``width x height`` for each ``(count, width, height)``, from the photos in turn at
    positions drawn with ``seed``."""
    photos = [Image.open(p).convert("RGB") for p in list_images(folder)]
    rng = np.random.default_rng(seed)
    out = []
    for count, w, h in sizes:
        for i in range(count):
            im = photos[i % len(photos)]
            x, y = int(rng.integers(0, im.width - w + 1)), int(rng.integers(0, im.height - h + 1))
            out.append(im.crop((x, y, x + w, y + h)))
    return out


def main() -> None:
    """Run the many-images benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--small", type=int, default=1000, help="crops of 64x64")
    p.add_argument("--large", type=int, default=500, help="crops of 96x80")
    p.add_argument("--jobs", type=int, default=1, help="nlc's -j: files coded at once, each in its own process")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "kodak" in a.data.lower():
        sys.exit("bench/many_images.py: never on Kodak")
    images = crops(a.data, [(a.small, 64, 64), (a.large, 96, 80)])
    nlc = [sys.executable, "-m", "nlc"]
    result: dict = {"data": a.data, "images": {"64x64": a.small, "96x80": a.large}, "jobs": a.jobs,
                    "command": "python " + " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as d:
        src, out, back = Path(d) / "src", Path(d) / "out", Path(d) / "back"
        for folder in (src, out, back):
            folder.mkdir()
        names = [f"{i:05d}.png" for i in range(len(images))]
        for name, im in zip(names, images):
            im.save(src / name)
        t0 = time.perf_counter()
        subprocess.run(nlc + ["compress", "-q", "-j", str(a.jobs), str(src), "-o", str(out)], check=True)
        t1 = time.perf_counter()
        subprocess.run(nlc + ["decompress", "-q", "-j", str(a.jobs), str(out), "-o", str(back)], check=True)
        t2 = time.perf_counter()
        for name, im in zip(names, images):
            with Image.open(back / name) as got:
                assert got.convert("RGB").tobytes() == im.tobytes(), name
        total = sum(f.stat().st_size for f in out.iterdir())
    subpixels = sum(im.width * im.height * 3 for im in images)
    result.update({"compress_s": round(t1 - t0, 1), "decompress_s": round(t2 - t1, 1),
                   "compress_s_per_image": round((t1 - t0) / len(images), 4),
                   "decompress_s_per_image": round((t2 - t1) / len(images), 4),
                   "bytes": total, "bpsp": total * 8 / subpixels, "lossless": True})
    result["provenance"] = provenance(Codec.load("default"), result["command"])
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
