"""Encode and decode seconds of an older checkout against this one, alternating image by image.

Usage: git worktree add /tmp/old COMMIT
       python bench/compare_times.py --old /tmp/old [--codec pixelcnnpp-adaptive-v2] [--tile 0]
       [--images kodim05.png kodim13.png kodim20.png] [--data ../shared/data/kodak] [--fallback] [--repeats N]
       [--json bench/results/compare-times-kodak.json]

The machines are shared and noisy, so a change is timed against the old code in the same run: for
each image, each configuration runs in a fresh process (imports and compiled kernels warmed on a
small crop first), encodes the image, decodes it, checks the pixels; medians per configuration, and whether the old and new files are the same bytes (sha256).
Configurations: the old checkout's ``--codec`` in ``--tile`` tiles (0: the codec's choice), this
checkout's the same (the same payload: the speed of the coding loop alone) and this checkout's
default codec with its own tile choice.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = r"""
import hashlib, sys, time
from PIL import Image
from nlc import api
im = Image.open(sys.argv[1]).convert("RGB"); tile = int(sys.argv[2]) or None; codec = sys.argv[3]
fallback = sys.argv[4] == "1"
api.encode_image(im.crop((0, 0, 64, 16)), codec, fallback=fallback)
t0 = time.perf_counter(); data, st = api.encode_image(im, codec, fallback=fallback, tile=tile); t1 = time.perf_counter()
out, _ = api.decode_image(data); t2 = time.perf_counter()
assert out.tobytes() == im.tobytes()
print(len(data), round(t1 - t0, 2), round(t2 - t1, 2), api.read_header(data).tile, api.read_header(data).codec,
      hashlib.sha256(data).hexdigest())
"""


def run_one(root: Path, image: Path, tile: int, codec: str, fallback: bool = False) -> dict:
    """Encode (with the WebP fallback beside the model, as ``nlc compress`` does, where ``fallback``) and
    decode ``image`` with the checkout at ``root`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(root))
    out = subprocess.run([sys.executable, "-c", SNIPPET, str(image), str(tile), codec, str(int(fallback))],
                         env=env, cwd=root,
                         capture_output=True, text=True, check=True).stdout.split()
    return {"image": image.name, "bytes": int(out[0]), "enc_s": float(out[1]), "dec_s": float(out[2]),
            "tile": int(out[3]), "codec": out[4], "sha256": out[5]}


def main() -> None:
    """Alternate the configurations over the images; print and optionally write the medians."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", required=True, help="a checkout of the older commit (git worktree add)")
    ap.add_argument("--data", default="../shared/data/kodak")
    ap.add_argument("--codec", default="pixelcnnpp-adaptive-v2", help="the codec both checkouts run")
    ap.add_argument("--tile", type=int, default=0, help="its tile side (0: the codec's choice)")
    ap.add_argument("--images", nargs="+", default=["kodim05.png", "kodim13.png", "kodim20.png"])
    ap.add_argument("--without-default", action="store_true", help="leave out this checkout's default codec")
    ap.add_argument("--fallback", action="store_true",
                    help="encode as nlc compress does, with the lossless-WebP fallback (default: the model only)")
    ap.add_argument("--repeats", type=int, default=1, help="rounds over the images")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    old = Path(args.old).resolve()
    commit = subprocess.run(["git", "-C", str(old), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    tiles = f"{args.tile}x{args.tile}" if args.tile else "its tile"
    configs = {f"old ({commit[:7]}): {args.codec}, {tiles}": (old, args.tile, args.codec),
               f"new: {args.codec}, {tiles}": (ROOT, args.tile, args.codec),
               "new: default, its tile": (ROOT, 0, "default")}
    if args.without_default:
        del configs["new: default, its tile"]
    rows: dict[str, list[dict]] = {k: [] for k in configs}
    for name in args.images * args.repeats:
        for label, (root, tile, codec) in configs.items():
            rows[label].append(run_one(root, Path(args.data).resolve() / name, tile, codec, args.fallback))
            print(label, rows[label][-1], flush=True)
    summary = {k: {"enc_s_median": statistics.median(r["enc_s"] for r in v),
                   "dec_s_median": statistics.median(r["dec_s"] for r in v), "rows": v} for k, v in rows.items()}
    pairs = list(zip(*(rows[k] for k in list(configs)[:2])))
    result = {"old_commit": commit, "data": args.data, "fallback": args.fallback, "summary": summary,
              "same_bytes": all(a["sha256"] == b["sha256"] for a, b in pairs),
              "command": " ".join(["python", "bench/compare_times.py"] + sys.argv[1:])}
    print(json.dumps(summary, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
