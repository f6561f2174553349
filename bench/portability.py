"""Which golden files decode when torch computes other floats than the machine that wrote them.

Usage: ATEN_CPU_CAPABILITY=default python bench/portability.py [--json FILE]

``tests/golden`` holds small files of every shipped codec, written on one
machine (its CPU capability is in the manifest). Run with torch's vectorised
kernels switched off (``ATEN_CPU_CAPABILITY=default``), or on another kind of
CPU, this decodes every file that holds model-coded pixels and reports, per
file, whether it came back exact. Float codecs are expected to fail (with a
CRC error, never a wrong image); codecs with exact arithmetic must not.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.test_golden import MANIFEST, check_decodes  # noqa: E402


def main() -> None:
    """Decode the golden files here and print (and optionally save) one line per file."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    here = torch.backends.cpu.get_cpu_capability()
    rows = []
    for name in sorted(MANIFEST):
        entry = MANIFEST[name]
        try:
            check_decodes(name)
            result = "exact"
        except Exception as e:  # a CRC or payload error: the floats differed
            result = f"{type(e).__name__}: {str(e).split(' (')[0]}"
        rows.append({"file": name, "codec": entry["codec"], "portable": bool(entry.get("portable")),
                     "written_on": entry["cpu_capability"], "result": result})
        print(f"{result[:60]:60s} {name}")
    out = {"command": "ATEN_CPU_CAPABILITY=default python bench/portability.py --json FILE",
           "decoded_on": here, "torch": torch.__version__, "files": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
