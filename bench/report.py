"""Markdown tables for README from the committed bench results (no figure is typed by hand).

Usage: python bench/report.py [bench/results/kodak-pixelcnnpp.json ...]
       python bench/report.py --readme     (rewrites the generated tables of README.md and docs/results.md in place)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
BASELINE_NAMES = {"png": "PNG (level 9)", "webp": "WebP lossless (method 6)", "jpegxl": "JPEG-XL lossless (effort 9)",
                  "jpegls": "JPEG-LS (CharLS, no colour transform)", "jpeg2000": "JPEG 2000 lossless (OpenJPEG)"}


def baseline_row(name: str, v: dict) -> str:
    """A classical codec's row in a summary table: bits/subpixel, and its times where the run measured them."""
    times = f"{v['enc_s']:.2f} | {v['dec_s']:.2f}" if "dec_s" in v else " | "
    return f"| {BASELINE_NAMES.get(name, name)} | {v['bpsp']:.3f} | | | {times} | | |"


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
    for k, v in r.get("baselines", {}).items():
        rows.append(baseline_row(k, v))
    rows.append(f"\n{s['images']} images of `{r['data']}`, device {r['device']}, torch {r['versions']['torch']}.")
    if s.get("plane_bpsp"):
        rows.append(f"Of the file's {s['bpsp']:.3f} bits/subpixel, {s['plane_bpsp']:.3f} are the classical coders' "
                    "(low bytes of 16-bit samples, alpha); the model's bits are those of the high bytes.")
    if r.get("provenance", {}).get("command"):
        rows.append(f"Command: `{r['provenance']['command']}`.")
    return "\n".join(rows)


def _start(r: dict) -> str:
    """Items coded without bits-back at the chain's start and their extra bits (older JSONs: one item)."""
    s = r.get("start") or dict(r["first_item"], items=1)
    return f"{s['items']}, {s['extra_bits']:.0f}"


def set_table(paths: list[Path]) -> str:
    """One table for the set codecs' Fashion-MNIST results, classical baselines of the first result below."""
    rows = [
        "| codec | model bits/dim (−ELBO for bits-back) | file bits/dim | gap | chain start: items, bits over their −ELBO | encode s (img/s) | decode s (img/s) | lossless |",
        "|---|---|---|---|---|---|---|---|",
    ]
    results = [json.loads(p.read_text()) for p in paths]
    for r in results:
        rows.append(
            f"| nlc `{r['model']}` | {r.get('neg_elbo_bpd', r.get('model_bpd')):.4f} | **{r['file_bpd']:.4f}** "
            f"| {r['gap_pct']:+.3f}% | {_start(r) if 'start' in r or 'first_item' in r else '-'} | {r['enc_s']:.1f} ({r['enc_img_per_s']:.0f}) "
            f"| {r['dec_s']:.1f} ({r['dec_img_per_s']:.0f}) | {'all ' + str(r['items']) if r['lossless'] else 'NO'} |")
    seen = set()
    for r in results:
        base = ", ".join(f"{k} {v['bpd']:.3f}" for k, v in r.get("baselines", {}).items())
        if base and r["data"] not in seen:
            seen.add(r["data"])
            rows.append(f"\nClassical on `{r['data']}` (bits/dim): {base}.")
    return "\n".join(rows)


def model_table(names: list[str]) -> str:
    """Parameters, training steps and validation −ELBO of shipped set codecs (from trained/NAME.json)."""
    from safetensors import safe_open

    trained = RESULTS.parent.parent / "trained"
    rows = ["| codec | architecture | parameters | training steps (batch) | validation bits/dim (−ELBO, or the "
            "sequence model's −log2 p) |", "|---|---|---|---|---|"]
    for n in names:
        meta = json.loads((trained / f"{n}.json").read_text())
        with safe_open(str(trained / f"{n}.safetensors"), "pt") as f:  # masks (MADE's) are not parameters
            params = sum(f.get_tensor(k).numel() for k in f.keys() if not k.split(".")[-1].startswith("mask"))
        rows.append(f"| `{n}` | {meta['architecture']} | {params:,} "
                    f"| {meta['steps']} ({meta['batch']}) | {meta['val_neg_elbo_bits_per_dim']:.4f} |")
    return "\n".join(rows)


def _weights(name: str) -> Path:
    """The weights file of codec ``name`` (codecs may share one: ``pixelcnnpp-exact`` uses ``pixelcnnpp``'s)."""
    from nlc.registry import get_spec

    return get_spec(name).weights_path


def _parameters(name: str) -> int:
    from safetensors import safe_open

    with safe_open(str(_weights(name)), "pt") as f:
        return sum(f.get_tensor(k).numel() for k in f.keys())


ORDER = ["pixelcnn", "gated-pixelcnn", "pixelcnnpp", "pixelcnnpp-exact", "pixelcnnpp-adaptive", "pixelcnnpp-adaptive-v2",
         "pixelcnnpp-adaptive-v3", "pixelcnnpp-adaptive-v4", "pixelsnail", "idf"]  # the zoo first, then the flow


def _order(path: Path) -> tuple[int, str]:
    name = path.stem.removeprefix("kodak-")
    return (ORDER.index(name) if name in ORDER else len(ORDER), name)


def kodak_table(paths: list[Path]) -> str:
    """One row per image codec's Kodak result: model, training, validation and real file sizes."""
    paths = sorted(paths, key=_order)
    rows = ["| codec | parameters | training steps (batch x crop) | photos-val bits/dim | Kodak model bits/subpixel "
            "| Kodak file bits/subpixel | gap | encode s/image | decode s/image | peak MB | lossless |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    results = [json.loads(p.read_text()) for p in paths]
    for r in results:
        s = r["summary"]
        meta = json.loads(_weights(r["model"]).with_suffix(".json").read_text())
        # fine-tunes list the steps of the runs they started from (base_steps), then their own
        steps = " + ".join(f"{n:,}" for n in [*meta.get("base_steps", []), meta["steps"]])
        if meta.get("base_steps"):
            steps += f" ({meta.get('base_label', 'fine-tune')})"
        rows.append(f"| nlc `{r['model']}` | {_parameters(r['model']):,} | {steps} ({meta['batch']} x "
                    f"{meta['crop']}²) | {meta['val_bits_per_dim']:.4f} | {s['bpsp_model']:.4f} | **{s['bpsp']:.4f}** "
                    f"| {s['gap_pct']:.3f}% | {s['enc_s']:.2f} | {s['dec_s']:.2f} | {s['peak_mb']:.0f} "
                    f"| {'all ' + str(s['images']) if s['all_lossless'] else 'NO'} |")
    base = next((r["baselines"] for r in results if r.get("baselines")), {})
    if base:
        rows.append("\nClassical codecs on the same images, same harness (bits/subpixel): "
                    + ", ".join(f"{BASELINE_NAMES.get(k, k)} {v['bpsp']:.3f}" for k, v in base.items()) + ".")
    most = max(r["summary"]["images"] for r in results)
    for r in results:
        if r["summary"]["images"] < most:
            files = ", ".join(i["file"] for i in r["images"])
            rows.append(f"`{r['model']}` ran on {r['summary']['images']} images only ({files}): "
                        "its figures are not averages over the whole set.")
    devices = sorted({r["device"] for r in results})
    rows.append(f"Device: {'; '.join(devices)}.")
    return "\n".join(rows)


def _replace(text: str, tag: str, body: str) -> str:
    start, end = f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"
    i, j = text.index(start) + len(start), text.index(end)
    return text[:i] + f"\n{body}\n" + text[j:]


HEADLINE = ["pixelcnnpp-adaptive-v4", "pixelcnnpp-adaptive-v2", "pixelcnnpp-exact", "pixelcnnpp"]  # the default first


def headline_table(names: list[str] = HEADLINE) -> str:
    """README's table: the default codec and its non-adaptive and float twins on Kodak, then the classical
    codecs of the default's run."""
    from nlc.registry import DEFAULT, get_spec

    default = get_spec(DEFAULT).name
    rows = ["| codec | bits/subpixel (file) | model bits/subpixel | gap | encode s/image | decode s/image | peak MB "
            "| lossless |", "|---|---|---|---|---|---|---|---|"]
    results = [json.loads((RESULTS / f"kodak-{n}.json").read_text()) for n in names]
    for r in results:
        s = r["summary"]
        label = f"nlc `{r['model']}`" + (" (default)" if r["model"] == default else "")
        rows.append(f"| {label} | **{s['bpsp']:.3f}** | {s['bpsp_model']:.3f} | {s['gap_pct']:.3f}% "
                    f"| {s['enc_s']:.1f} | {s['dec_s']:.1f} | {s['peak_mb']:.0f} "
                    f"| {'all ' + str(s['images']) if s['all_lossless'] else 'NO'} |")
    for k, v in results[0].get("baselines", {}).items():
        rows.append(baseline_row(k, v))
    r = results[0]
    kinds = sorted({x.get("provenance", {}).get("machine", {}).get("cpu_kind", "?") for x in results})
    rows.append(f"\n{r['summary']['images']} images of `{r['data']}`, device {r['device']} "
                f"(torch's CPU kernels: {', '.join(kinds)}), torch {r['versions']['torch']}; "
                + ", ".join(f"[{n}](bench/results/kodak-{n}.json)" for n in names)
                + "; made by `nlc bench --model NAME --data ../shared/data/kodak --json bench/results/kodak-NAME.json`.")
    return "\n".join(rows)


def ablation_table(path: Path) -> str:
    """The adaptive stage's ablation (``bench/adaptive.py``): each part added in turn, with times."""
    r = json.loads(path.read_text())
    rows = ["| stage | payload bits/subpixel | model bits/subpixel | smaller than none | coding loop s/image "
            "| decode s/image | bytes / JPEG-XL e9's |", "|---|---|---|---|---|---|---|"]
    for name, v in r["summary"].items():
        dec = f"{v['dec_s']:.1f}" if "dec_s" in v else ""
        rows.append(f"| {name} | **{v['bpsp']:.4f}** | {v['bpsp_model']:.4f} | {v['gain_pct']:.2f}% | {v['enc_s']:.1f} "
                    f"| {dec} | {v['ratio_jpegxl']:.3f} |")
    tile = r.get("tile", 64)
    rows.append(f"\n{r['images']} images of `{r['data']}`, centre crops {r['crop']} in {tile}x{tile} tiles; JPEG-XL effort 9 "
                f"{r['jpegxl_bpsp']:.4f} and lossless WebP {r['webp_bpsp']:.4f} bits/subpixel on the same crops. "
                f"The network's parallel pass ({r['pass_s']:.1f} s/image) is not in the coding loop's time. "
                f"Command: `{r['command']}`.")
    return "\n".join(rows)


CONTEXT_LABELS = {"independent": "independent tiles (`v2`)", "rows": "context above only",
                  "schedule": "the codec's groups (`v3`)", "wavefront": "above and left for every tile",
                  "whole": "one whole-crop tile"}


def context_table(path: Path) -> str:
    """What context tiles recover (``bench/context.py``): the float model's bits per arrangement."""
    r = json.loads(path.read_text())
    rows = ["| tiles | model bits/subpixel | against independent tiles |", "|---|---|---|"]
    for kind, bpsp in r["bpsp"].items():
        rows.append(f"| {CONTEXT_LABELS.get(kind, kind)} | {bpsp:.4f} | {r['vs_independent_pct'][kind]:+.3f}% |")
    rows.append(f"\n`{r['model']}` (float) on centre crops {r['crop']} of `{r['data']}` in {r['tile']}x{r['tile']} tiles, "
                f"{r['context']} rows and columns of context. Command: `{r['command']}`.")
    return "\n".join(rows)


def speed_table(path: Path) -> str:
    """Encode and decode seconds of an older checkout against this one (``bench/compare_times.py``)."""
    r = json.loads(path.read_text())
    rows = ["| configuration | bytes (first image) | encode s (median) | decode s (median) |", "|---|---|---|---|"]
    for label, v in r["summary"].items():
        rows.append(f"| {label} | {v['rows'][0]['bytes']:,} | {v['enc_s_median']:.2f} | {v['dec_s_median']:.2f} |")
    names = [row["image"] for row in next(iter(r["summary"].values()))["rows"]]
    rounds = len(names) // len(set(names))
    images = ", ".join(dict.fromkeys(names)) + (f" ({rounds} rounds)" if rounds > 1 else "")
    same = {True: " Old and new files are the same bytes (sha256).", False: " The files differ.",
            None: ""}[r.get("same_bytes")]
    rows.append(f"\n{images} of `{r['data']}`, each configuration in a fresh process, alternating; old commit "
                f"`{r['old_commit'][:7]}`.{same} Command: `{r['command']}`.")
    return "\n".join(rows)


def vertical_rows_table(path: Path) -> str:
    """Milliseconds per row of the compiled and the torch vertical stream (``bench/vertical_rows.py``)."""
    r = json.loads(path.read_text())
    rows = ["| batch | tiles x width | compiled ms/row | torch ms/row | speed-up |", "|---|---|---|---|---|"]
    for v in r["shapes"]:
        rows.append(f"| {v['what']} | {v['tiles']} x {v['width']} | {v['compiled_ms']:.2f} | {v['torch_ms']:.2f} | "
                    f"{v['speedup']:.2f}x |")
    rows.append(f"\n`{r['codec']}`, {r['rows']} rows, one thread, medians of {r['repeats']}. Command: `{r['command']}`.")
    return "\n".join(rows)


def whole_tile_table(path: Path) -> str:
    """Small images in tiles of 64 or as one tile (``bench/whole_tile.py``): bits per sub-pixel and seconds."""
    r = json.loads(path.read_text())
    rows = ["| crops | tiles of 64: bits/subpixel | one tile: bits/subpixel | bytes | encode s (64 / one) | "
            "decode s (64 / one) |", "|---|---|---|---|---|---|"]
    for v in r["sizes"]:
        cut, one = v["tiles_of_64"], v["one_tile"]
        rows.append(f"| {v['crops']} of {v['width']}x{v['height']} | {cut['bpsp']:.4f} | {one['bpsp']:.4f} | "
                    f"{v['bytes_change_pct']:+.2f}% | {cut['enc_s']:.3f} / {one['enc_s']:.3f} | "
                    f"{cut['dec_s']:.3f} / {one['dec_s']:.3f} |")
    rows.append(f"\n`{r['model']}`, model coding only, crops of `{r['data']}`, medians per crop, one thread; "
                f"64x64 crops are one tile either way (the control). Command: `{r['command']}`.")
    return "\n".join(rows)


def update_readme(root: Path) -> None:
    """Rewrite the generated tables: README's ``headline``, docs/results.md's ``kodak`` and ``sets``,
    docs/adaptive.md's ``ablation``, ``context``, ``speed``, ``speed-v3``, ``speed-kernels``, ``speed-stepped``,
    ``speed-taps``, ``speed-places``, ``speed-gated``, ``speed-snail``, ``speed-blas``, ``speed-snail-chunks``,
    ``vertical-rows`` and ``whole-tile``, and
    docs/sixteen-bit.md's ``photos16`` and
    ``pngsuite16`` (between ``<!-- TAG:start -->`` and ``<!-- TAG:end -->``)."""
    readme = root / "README.md"
    readme.write_text(_replace(readme.read_text(), "headline", headline_table()))
    results = root / "docs" / "results.md"
    sets = sorted(RESULTS.glob("fashion-mnist-*.json"))
    names = [json.loads(p.read_text())["model"] for p in sets]
    text = _replace(results.read_text(), "sets", f"{set_table(sets)}\n\n{model_table(names)}")
    kodak = sorted(RESULTS.glob("kodak-*.json"))
    if "<!-- kodak:start -->" in text and kodak:
        text = _replace(text, "kodak", kodak_table(kodak))
    results.write_text(text)
    adaptive = root / "docs" / "adaptive.md"
    ablation = RESULTS / "adaptive-ablation-photos-val.json"
    if ablation.exists() and "<!-- ablation:start -->" in adaptive.read_text():
        adaptive.write_text(_replace(adaptive.read_text(), "ablation", ablation_table(ablation)))
    for tag, name, table in (("context", "context-photos-val.json", context_table),
                             ("speed", "compare-times-kodak.json", speed_table),
                             ("speed-v3", "compare-times-kodak-v3.json", speed_table),
                             ("speed-kernels", "compare-times-kodak-kernels.json", speed_table),
                             ("speed-stepped", "compare-times-kodak-stepped-encoder.json", speed_table),
                             ("speed-taps", "compare-times-kodak-taps.json", speed_table),
                             ("speed-places", "compare-times-kodak-places.json", speed_table),
                             ("speed-gated", "compare-times-kodak-gated.json", speed_table),
                             ("speed-snail", "compare-times-kodak-pixelsnail-exact.json", speed_table),
                             ("speed-blas", "compare-times-kodak-blas.json", speed_table),
                             ("speed-snail-chunks", "compare-times-kodak-pixelsnail-chunks.json", speed_table),
                             ("vertical-rows", "vertical-rows.json", vertical_rows_table),
                             ("whole-tile", "whole-tile-photos-val.json", whole_tile_table)):
        if (RESULTS / name).exists() and f"<!-- {tag}:start -->" in adaptive.read_text():
            adaptive.write_text(_replace(adaptive.read_text(), tag, table(RESULTS / name)))
    sixteen = root / "docs" / "sixteen-bit.md"
    for tag, name in (("photos16", "photos-val-16bit-pixelcnnpp-adaptive-v3.json"),
                      ("pngsuite16", "pngsuite-16bit-pixelcnnpp-adaptive-v3.json")):
        if (RESULTS / name).exists() and f"<!-- {tag}:start -->" in sixteen.read_text():
            sixteen.write_text(_replace(sixteen.read_text(), tag, bench_table(RESULTS / name)))


def main() -> None:
    """Print a table for each result file given (default: every kodak-*.json, then the fashion-mnist-*.json set)."""
    if sys.argv[1:] == ["--readme"]:
        update_readme(RESULTS.parent.parent)
        return
    paths = [Path(p) for p in sys.argv[1:]] or sorted(RESULTS.glob("kodak-*.json"))
    for p in paths:
        if p.name.startswith("fashion-mnist-"):
            continue
        print(f"### {p.name}\n\n{bench_table(p)}\n")
    sets = [p for p in paths if p.name.startswith("fashion-mnist-")] or sorted(RESULTS.glob("fashion-mnist-*.json"))
    if sets:
        print(f"### Fashion-MNIST sets\n\n{set_table(sets)}\n")
        names = [json.loads(p.read_text())["model"] for p in sets]
        print(f"### Set models\n\n{model_table(names)}\n")


if __name__ == "__main__":
    main()
