"""Where an encode and a decode of one image spend their time, per thread, for codecs whose work runs
in several threads (context tiles' two column chains, the pass's workers).

Usage: python bench/decode_phases.py --image ../shared/data/kodak/kodim05.png [--codec default]
       [--json bench/results/decode-phases-kodim05.json]

The image is encoded and decoded once to warm the compiled kernels, then again with wall-clock timers
around the calls that make each phase, summed per thread: ``pass`` (the encoder's exact parallel
pass: torch's float64 network over whole tiles), ``encode_rows`` (a tile row's tables, stage and coder
per compiled call, ``adaptive_steps.encode_row``), ``encode_steps`` (the stepped encoder's tile row:
the per-pixel network steps, tables, stage and coder per compiled call,
``adaptive_steps.encode_steps_row``), ``vertical`` (the vertical stream of a row, the decoder's and
the stepped encoder's: ``PixelStepper.start_row``), ``decode_rows`` (a tile row's per-pixel network steps, tables,
stage and coder per compiled call, ``adaptive_steps.decode_row``). A phase running in two threads at
once counts twice in its sum, so the sums can exceed the wall-clock seconds. (``profile_decode.py``
splits a one-thread decode further with cProfile.)
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from nlc.api import decode_image, encode_image
from nlc.coding import adaptive_steps
from nlc.coding import autoregressive as ar
from nlc.models.pixelcnnpp import PixelStepper
from nlc.registry import get_spec

PHASES: list[tuple[Any, str, str]] = [(ar, "_pass", "pass"), (adaptive_steps, "encode_row", "encode_rows"),
                                      (adaptive_steps, "encode_steps_row", "encode_steps"),
                                      (PixelStepper, "start_row", "vertical"),
                                      (adaptive_steps, "decode_row", "decode_rows")]


def timed(record: Callable[[str, float], None]) -> None:
    """Wrap each phase's function so that it reports its seconds to ``record(phase, seconds)``."""
    for owner, name, phase in PHASES:
        f = getattr(owner, name)

        def wrapper(*a, __f=f, __phase=phase, **k):
            t0 = time.perf_counter()
            try:
                return __f(*a, **k)
            finally:
                record(__phase, time.perf_counter() - t0)

        setattr(owner, name, wrapper)


def main() -> None:
    """Time one encode and one decode, phase by phase and thread by thread."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True)
    ap.add_argument("--codec", default="default")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    im = Image.open(args.image).convert("RGB")
    decode_image(encode_image(im, args.codec, fallback=False)[0])  # kernels compiled or loaded
    seconds: dict[tuple[str, int], float] = collections.defaultdict(float)
    lock = threading.Lock()

    def record(phase: str, s: float) -> None:
        with lock:
            seconds[(phase, threading.get_ident())] += s

    timed(record)
    result: dict[str, Any] = {"image": Path(args.image).name, "codec": get_spec(args.codec).name, "size": list(im.size)}
    for step, run in (("encode", lambda: encode_image(im, args.codec, fallback=False)[0]), ("decode", None)):
        seconds.clear()
        t0 = time.perf_counter()
        data = run() if run else decode_image(result.pop("_data"))
        wall = time.perf_counter() - t0
        if step == "encode":
            result["_data"] = data
        threads = sorted({t for _, t in seconds})
        per_thread = [{p: round(s, 2) for (p, t), s in sorted(seconds.items()) if t == tid} for tid in threads]
        sums: dict[str, float] = collections.defaultdict(float)
        for (p, _), s in seconds.items():
            sums[p] += s
        result[step] = {"wall_s": round(wall, 2), "phases_s": {p: round(s, 2) for p, s in sums.items()},
                        "threads": per_thread}
    result["command"] = " ".join(["python", "bench/decode_phases.py"] + sys.argv[1:])
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
