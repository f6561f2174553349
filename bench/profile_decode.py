"""Where one decode spends its time, phase by phase (cProfile, aggregated by the functions of each phase).

Usage: python bench/profile_decode.py --image ../shared/data/kodak/kodim05.png [--codec default]
       [--tile N] [--json bench/results/profile-decode-kodim05.json]

The image is encoded once, then decoded under cProfile. Phases, by the functions that run them:
``vertical`` (once per row: the row-at-a-time U-net, in worker threads for an exact model, and its
projections for the row: the stepper's ``start_row``), ``compiled_rows`` (an exact PixelCNN++ on the
range coder: a tile row's steps, tables, stage and coder in one compiled call,
``adaptive_steps.decode_row``; the phases below are then empty), ``horizontal`` (the per-pixel
stream: the stepper's ``params``), ``tables`` (mixture parameters to integer tables: ``code_pixels_exact``
without the stage and the coder), ``adaptive`` (the adaptive stage's ``shift``/``observe``/``start_row``),
``coder`` (constriction's decode calls), ``other`` (the rest of the wall time: the loop, Python overhead).
Phases are cumulative times of their entry functions, so a phase called inside another is subtracted from
it. Profiling slows small calls, so the shares matter more than the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

from PIL import Image

from nlc.api import decode_image, encode_image, read_header
from nlc.registry import get_spec

ENTRIES = {  # phase -> (file suffix, function name) of the calls it is made of
    "vertical": [("pixelcnnpp.py", "start_row")],
    "compiled_rows": [("adaptive_steps.py", "decode_row")],
    "horizontal": [("pixelcnnpp.py", "params")],
    "tables": [("exact_tables.py", "code_pixels_exact")],
    "adaptive": [("adaptive.py", "shift"), ("adaptive.py", "observe"), ("adaptive.py", "start_row")],
    "coder": [("coders.py", "decode")],
}


def cumulative(stats: pstats.Stats, entries: list[tuple[str, str]]) -> float:
    """Cumulative seconds of the functions ``entries`` (outermost calls only: recursion is not double-counted)."""
    total = 0.0
    for (file, _, name), (_, _, _, cum, _) in stats.stats.items():
        if any(file.endswith(f) and name == n for f, n in entries):
            total += cum
    return total


def main() -> None:
    """Profile one decode and print (and optionally write) the phases."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--codec", default="default")
    ap.add_argument("--tile", type=int, default=None, help="tile side (default: the codec's)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    im = Image.open(args.image).convert("RGB")
    data, _ = encode_image(im, args.codec, tile=args.tile, fallback=False)
    t0 = time.perf_counter()
    decode_image(data)
    plain = time.perf_counter() - t0
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.runcall(decode_image, data)
    profiled = time.perf_counter() - t0
    stats = pstats.Stats(prof)
    phases = {k: cumulative(stats, v) for k, v in ENTRIES.items()}
    phases["tables"] -= phases["adaptive"] - cumulative(stats, [("adaptive.py", "start_row")])  # shift/observe run inside
    phases["tables"] -= phases["coder"]  # the coder is called from inside the tables' function
    phases["other"] = profiled - sum(phases.values())
    result = {"image": Path(args.image).name, "codec": get_spec(args.codec).name, "size": list(im.size), "tile": read_header(data).tile,
              "decode_s": round(plain, 2), "profiled_s": round(profiled, 2),
              "phases_s": {k: round(v, 2) for k, v in phases.items()},
              "phases_pct": {k: round(100 * v / profiled, 1) for k, v in phases.items()},
              "command": " ".join(["python", "bench/profile_decode.py"] + sys.argv[1:])}
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
