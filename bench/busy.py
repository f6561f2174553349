"""Compress and decompress times on an idle machine and with one busy process beside them.

Usage: python bench/busy.py --image ../shared/data/kodak/kodim15.png [--crop 256x128]
       [--codecs pixelcnnpp-exact,pixelcnnpp] [--repeats 3] [--json bench/results/busy-kodim15.json]

Each run is the real command line (``nlc compress --no-fallback``, then ``nlc decompress``) in a
fresh process, so thread pools start as a user's would. The busy process is a Python busy loop
that this script starts before and stops after each loaded run (one core of two busy, as a
browser or a second ``nlc`` would make it). Idle and loaded runs alternate; medians are reported.
The ``ratio`` fields are loaded over idle seconds; the compressed bytes of every run are checked
to be identical.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def _spin() -> None:
    while True:
        pass


def _timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def measure(codec: str, png: Path, work: Path, busy: bool) -> dict:
    """One compress and one decompress of ``png`` with ``codec``, with or without a busy process."""
    nlc = [sys.executable, "-m", "nlc.cli"]
    out, back = work / f"{codec}.nlc", work / f"{codec}.png"
    for p in (out, back):
        p.unlink(missing_ok=True)
    spinner = mp.Process(target=_spin, daemon=True) if busy else None
    if spinner:
        spinner.start()
        time.sleep(0.5)
    try:
        enc = _timed(nlc + ["compress", str(png), "-m", codec, "--no-fallback", "-o", str(out)])
        dec = _timed(nlc + ["decompress", str(out), "-o", str(back)])
    finally:
        if spinner:
            spinner.terminate()
            spinner.join()
    ok = np.array_equal(np.asarray(Image.open(png)), np.asarray(Image.open(back)))
    return {"encode_s": enc, "decode_s": dec, "bytes": out.stat().st_size, "lossless": ok,
            "sha": hashlib.sha256(out.read_bytes()).hexdigest()}


def main() -> None:
    """Run the comparison and print (and optionally write) the medians."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--crop", default=None, help="WxH crop from the top-left corner, e.g. 256x128")
    ap.add_argument("--codecs", default="pixelcnnpp-exact,pixelcnnpp")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        im = Image.open(args.image).convert("RGB")
        if args.crop:
            w, h = (int(v) for v in args.crop.split("x"))
            im = im.crop((0, 0, w, h))
        png = work / "input.png"
        im.save(png)
        results = {}
        for codec in args.codecs.split(","):
            runs: dict[str, list[dict]] = {"idle": [], "busy": []}
            for _ in range(args.repeats):
                for kind in ("idle", "busy"):
                    runs[kind].append(measure(codec, png, work, kind == "busy"))
            shas = {r["sha"] for rs in runs.values() for r in rs}
            row = {"bytes": runs["idle"][0]["bytes"], "sha256": runs["idle"][0]["sha"], "identical_bytes": len(shas) == 1,
                   "lossless": all(r["lossless"] for rs in runs.values() for r in rs)}
            for kind, rs in runs.items():
                for key in ("encode_s", "decode_s"):
                    row[f"{kind}_{key}"] = round(statistics.median(r[key] for r in rs), 3)
                    row[f"{kind}_{key}_all"] = [round(r[key], 3) for r in rs]
            row["encode_ratio"] = round(row["busy_encode_s"] / row["idle_encode_s"], 2)
            row["decode_ratio"] = round(row["busy_decode_s"] / row["idle_decode_s"], 2)
            results[codec] = row
            print(codec, json.dumps({k: v for k, v in row.items() if not k.endswith("_all")}), flush=True)
    out = {"image": Path(args.image).name, "crop": args.crop, "size": list(im.size), "cores": os.cpu_count(),
           "repeats": args.repeats, "command": " ".join(["python", "bench/busy.py"] + sys.argv[1:]), "codecs": results}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
