"""The codecs on a CUDA GPU: encode and decode seconds per image, and whether exact files stay portable.

Ready for a machine with a GPU (none is lent to this project now; docs/gpu.md has the design). For each
codec and image: encode and decode on the GPU (the file checked pixel for pixel), and for the exact
codecs whether the GPU's model payload is byte for byte the CPU's (it must be: exact arithmetic) and
whether the CPU decodes the GPU's file (``--cross N``: on the first N images). Then the tiles of
``--set-images`` crops as one set, to see how a bigger batch of tiles per step pays on a GPU.

    python bench/gpu.py --data ../shared/data/kodak --limit 4 --json bench/results/gpu-kodak.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from nlc import container, images
from nlc.api import Codec, decode_image, encode_image
from nlc.bench import provenance, write_json
from nlc.images import list_images
from nlc.sets import decode_set, encode_set

CODECS = ["pixelcnnpp-adaptive-v2", "pixelcnnpp-adaptive", "pixelcnnpp-exact", "pixelcnnpp"]


def _timed(f):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = f()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main() -> None:
    """Run the GPU benchmark (refused without CUDA)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--limit", type=int, default=4)
    p.add_argument("--codecs", nargs="+", default=CODECS)
    p.add_argument("--cross", type=int, default=1, help="images whose GPU files the CPU decodes too")
    p.add_argument("--set-images", type=int, default=64, help="128x128 crops coded as one set (0: none)")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("bench/gpu.py: no CUDA device here (docs/gpu.md)")
    files = list_images(a.data)[: a.limit]
    result = {"data": a.data, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
              "python": platform.python_version(), "codecs": {}}
    for name in a.codecs:
        gpu, cpu = Codec.load(name, "cuda"), Codec.load(name, "cpu")
        exact = gpu.spec.arithmetic == "exact"
        rows = []
        for i, f in enumerate(files):
            im = images.read_image(f)
            (blob, stats), enc = _timed(lambda: encode_image(im, gpu, device="cuda", fallback=False))
            (out, _), dec = _timed(lambda: decode_image(blob, device="cuda", codec=gpu))
            subpixels = im.width * im.height * len(im.getbands())
            row = {"file": f.name, "bytes": len(blob), "subpixels": subpixels, "bpsp": len(blob) * 8 / subpixels,
                   "enc_s": round(enc, 3), "dec_s": round(dec, 3), "lossless": out.tobytes() == im.tobytes()}
            if exact and i < a.cross:
                cpu_blob, _ = encode_image(im, cpu, device="cpu", fallback=False)
                row["payload_equals_cpu"] = container.unpack(blob)[1] == container.unpack(cpu_blob)[1]
                row["cpu_decodes_gpu_file"] = decode_image(blob, device="cpu", codec=cpu)[0].tobytes() == im.tobytes()
            rows.append(row)
            print(json.dumps({"codec": name, **row}), flush=True)
        n = len(rows)
        result["codecs"][name] = {"images": rows, "enc_s": sum(r["enc_s"] for r in rows) / n,
                                  "dec_s": sum(r["dec_s"] for r in rows) / n,
                                  "bpsp": sum(r["bytes"] for r in rows) * 8 / sum(r["subpixels"] for r in rows),
                                  "provenance": provenance(gpu)}
    if a.set_images:
        crops = [np.asarray(images.read_image(f).convert("RGB"))[:128, :128] for f in list_images(a.data)]
        items = np.stack([crops[i % len(crops)] for i in range(a.set_images)])
        gpu = Codec.load(a.codecs[0], "cuda")
        (blob, _), enc = _timed(lambda: encode_set(items, gpu, device="cuda"))
        (back, _), dec = _timed(lambda: decode_set(blob, gpu, device="cuda"))
        result["set"] = {"codec": a.codecs[0], "items": len(items), "side": 128, "enc_s": round(enc, 3),
                         "dec_s": round(dec, 3), "bytes": len(blob), "lossless": bool(np.array_equal(back, items))}
        print(json.dumps(result["set"]), flush=True)
    if a.json:
        write_json(Path(a.json), result)


if __name__ == "__main__":
    main()
