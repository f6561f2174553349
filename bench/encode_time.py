"""Encoding time and real bits of one image under other weights of a codec's architecture.

Usage: python bench/encode_time.py --image PHOTO [--model pixelcnnpp] [--size 768x512]
       [--weights runs/X.safetensors ...] [--json FILE]

Codes the top-left ``--size`` crop of ``PHOTO`` with the codec's shipped weights and
then with each of ``--weights`` (:meth:`nlc.api.Codec.from_run`: hyper-parameters from the
``.json`` beside them, else the codec's), one
after the other in one process, so a fine-tune's cost in coding time and its
real size are compared on the same host.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from PIL import Image

from nlc.api import Codec, encode_image


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--image", required=True)
    ap.add_argument("--model", default="pixelcnnpp")
    ap.add_argument("--size", default="768x512")
    ap.add_argument("--weights", nargs="*", default=[])
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    width, height = map(int, a.size.split("x"))
    image = Image.open(a.image).convert("RGB").crop((0, 0, width, height))
    shipped = Codec.load(a.model)
    codecs = {f"codec {a.model}": shipped, **{w: Codec.from_run(shipped.spec, w) for w in a.weights}}
    result = {"model": a.model, "image": a.image, "size": f"{image.width}x{image.height}", "runs": {}}
    for name, codec in codecs.items():
        start = time.perf_counter()
        data, stats = encode_image(image, codec, device="cpu", fallback=False)
        result["runs"][name] = {"encode_seconds": round(time.perf_counter() - start, 2),
                                "parameters": sum(p.numel() for p in codec.model.parameters()),
                                "file_bpsp": len(data) * 8 / stats["subpixels"],
                                "model_bpsp": stats["model_bits"] / stats["subpixels"]}
        print(name, result["runs"][name], flush=True)
    result["command"] = "python bench/encode_time.py " + " ".join(
        f"--{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(a).items() if v)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
