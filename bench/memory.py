"""Peak memory and time of compressing (and decompressing) a large photo.

Usage: python bench/memory.py --image ../shared/data/photos-train/001.webp --size 4000x3000
       [--decode] [--json bench/results/memory-4000x3000.json]

The photo is resized (Lanczos) to the requested size so that the test image is
photographic; the peak resident memory of this process is reported from
``getrusage``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from PIL import Image

from nlc.api import decode_image, encode_image


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--image", required=True)
    ap.add_argument("--size", default="4000x3000")
    ap.add_argument("--model", default="default")
    ap.add_argument("--decode", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    w, h = map(int, a.size.split("x"))
    im = Image.open(a.image).convert("RGB").resize((w, h), Image.LANCZOS)
    t0 = time.time()
    data, stats = encode_image(im, a.model, fallback=False)
    enc_s = time.time() - t0
    result = {"image": a.image, "size": a.size, "bytes": len(data), "bpsp": len(data) * 8 / (w * h * 3),
              "enc_s": round(enc_s, 1),
              "peak_mb_after_encode": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if a.decode:
        t0 = time.time()
        out, _ = decode_image(data)
        result["dec_s"] = round(time.time() - t0, 1)
        result["lossless"] = out.tobytes() == im.tobytes()
        result["peak_mb_after_decode"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["model"] = a.model
    result["command"] = (f"python bench/memory.py --image {a.image} --size {a.size}"
                         + (f" --model {a.model}" if a.model != "default" else "")
                         + (" --decode" if a.decode else ""))
    print(json.dumps(result, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
