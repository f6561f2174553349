"""Small images: what one thumbnail costs, alone and in a run of many.

Crops of ``--size`` (default 64x64) from the centres of a folder's photos (never Kodak's), each coded
to its own file with the default codec: ``nlc compress``/``nlc decompress`` of one crop as a user runs
them (a fresh process: imports and the model's load included; the median of three runs, beside the
imports alone and ``nlc --help``), then ``--count`` crops in one process
through the library (``nlc compress DIR``'s loop), then the same crops as one ``--set`` file. Writes
seconds per image each way and bits per sub-pixel.

    python bench/small_images.py --data ../shared/data/photos-val --json bench/results/small-images-photos-val.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from nlc import api, sets
from nlc.bench import provenance, write_json
from nlc.codec import Codec
from nlc.images import list_images

RUNS = 3  # fresh processes per command line timed; the median is kept


def crops(folder: str, count: int, side: int) -> list[Image.Image]:
    """``count`` crops of ``side x side``: the centre of each photo, then shifted ones, in turn."""
    photos = [Image.open(p).convert("RGB") for p in list_images(folder)]
    out = []
    for i in range(count):
        im = photos[i % len(photos)]
        k = i // len(photos)
        x = min(im.width - side, im.width // 2 - side // 2 + k * side)
        y = min(im.height - side, im.height // 2 - side // 2)
        out.append(im.crop((x, y, x + side, y + side)))
    return out


def main() -> None:
    """Run the small-image benchmark."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--count", type=int, default=12)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if "kodak" in a.data.lower():
        sys.exit("bench/small_images.py: never on Kodak")
    images = crops(a.data, a.count, a.size)
    nlc = [sys.executable, "-m", "nlc"]
    result: dict = {"data": a.data, "size": a.size, "count": a.count, "command": "python " + " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as d:
        one = Path(d) / "one.png"
        images[0].save(one)

        def seconds(cmd: list[str]) -> float:
            """The median of :data:`RUNS` runs of ``cmd`` (a fresh process each)."""
            times = []
            for _ in range(RUNS):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                times.append(time.perf_counter() - t0)
            return round(statistics.median(times), 2)

        result["one_image_cli"] = {
            "runs": RUNS,
            "compress_s": seconds(nlc + ["compress", "-q", "-f", str(one)]),
            "decompress_s": seconds(nlc + ["decompress", "-q", "-f", str(one) + ".nlc", "-o", str(Path(d) / "b.png")]),
            "import_api_s": seconds([sys.executable, "-c", "import nlc.api"]),  # what a coding command imports
            "import_torch_s": seconds([sys.executable, "-c", "import torch"]),
            "help_s": seconds(nlc + ["--help"]),  # a command that codes nothing: no torch
            "bytes": (Path(d) / "one.png.nlc").stat().st_size}
        codec = Codec.load("default")
        enc = dec = 0.0
        total = 0
        for i, im in enumerate(images):
            t0 = time.perf_counter()
            data, _ = api.encode_image(im, codec, fallback=False)
            t1 = time.perf_counter()
            out, _ = api.decode_image(data, codec=codec)
            dec += time.perf_counter() - t1
            enc += t1 - t0
            total += len(data)
            assert out.tobytes() == im.tobytes()
        subpixels = a.count * a.size * a.size * 3
        result["files_in_one_process"] = {"enc_s_per_image": round(enc / a.count, 3),
                                          "dec_s_per_image": round(dec / a.count, 3),
                                          "bpsp": total * 8 / subpixels}
        items = np.stack([np.asarray(im) for im in images])
        t0 = time.perf_counter()
        blob, _ = sets.encode_set(items, codec)
        t1 = time.perf_counter()
        back, _ = sets.decode_set(blob, codec)
        t2 = time.perf_counter()
        assert np.array_equal(back, items)
        result["one_set_file"] = {"enc_s_per_image": round((t1 - t0) / a.count, 3),
                                  "dec_s_per_image": round((t2 - t1) / a.count, 3), "bpsp": len(blob) * 8 / subpixels}
    result["provenance"] = provenance(codec, result["command"])
    print(json.dumps({k: v for k, v in result.items() if k != "provenance"}, indent=1))
    if a.json:
        write_json(a.json, result)


if __name__ == "__main__":
    main()
