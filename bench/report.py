"""Markdown tables for README from the committed bench results (no figure is typed by hand).

Usage: python bench/report.py [bench/results/kodak-pixelcnnpp.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def bench_table(path: Path) -> str:
    """Summary table of one ``nlc bench`` JSON, codec next to the classical baselines."""
    r = json.loads(path.read_text())
    s = r["summary"]
    rows = [
        "| codec | bits/subpixel (file) | model bits/subpixel | gap | encode s/image | decode s/image | peak MB | lossless |",
        "|---|---|---|---|---|---|---|---|",
        f"| nlc `{r['model']}` | **{s['bpsp']:.3f}** | {s['bpsp_model']:.3f} | {s['gap_pct']:.3f}% "
        f"| {s['enc_s']:.1f} | {s['dec_s']:.1f} | {s['peak_mb']:.0f} | {'all ' + str(s['images']) if s['all_lossless'] else 'NO'} |",
    ]
    names = {"png": "PNG (level 9)", "webp": "WebP lossless (method 6)", "jpegxl": "JPEG-XL lossless (effort 9)"}
    for k, v in r.get("baselines", {}).items():
        rows.append(f"| {names.get(k, k)} | {v['bpsp']:.3f} | | | | | | |")
    rows.append(f"\n{s['images']} images of `{r['data']}`, device {r['device']}, torch {r['versions']['torch']}.")
    return "\n".join(rows)


def main() -> None:
    """Print a table for each result file given (default: every kodak-*.json)."""
    paths = [Path(p) for p in sys.argv[1:]] or sorted(RESULTS.glob("kodak-*.json"))
    for p in paths:
        print(f"### {p.name}\n\n{bench_table(p)}\n")


if __name__ == "__main__":
    main()
