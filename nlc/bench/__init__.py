"""``nlc bench``: real file sizes against the model's bits/dim and classical codecs.

Every image of a folder is compressed, decompressed and compared pixel for
pixel. Per image and in total it reports the real ``.nlc`` size in bits per
sub-pixel, the model's ``-log2 p`` in bits per sub-pixel, their gap, encode and
decode seconds, and the process's peak memory; PNG, WebP, JPEG-XL, JPEG-LS and
JPEG 2000, all lossless (imagecodecs), code the same images in the same harness, timed.

JSON schema (``--json FILE``; ``docs/bench.md`` explains every field)::

    {"model", "data", "device", "versions": {...},
     "provenance": {"codec": {"name", "architecture", "family", "weights", "sha256", "arithmetic", "adaptive",
                              "coder", "tile", "large_tile", "large_tile_all", "whole_tile", "context"},
                    "libraries": {...}, "machine": {...}, "baselines": {NAME: {"encoder", "settings"}},
                    "command", "git", "date"},
     "images": [{"file", "pixels" (height*width), "height", "width", "channels", "tile",
                 "bytes", "header_bytes", "plane_bytes", "bpsp", "bpsp_model", "gap_pct", "enc_s", "dec_s", "lossless",
                 "baselines": {NAME: {"bytes", "bpsp", "enc_s", "dec_s", "lossless"}}}],
     "summary": {"images", "bpsp", "bpsp_model", "plane_bpsp", "gap_pct", "enc_s", "dec_s", "peak_mb", "all_lossless"},
     "baselines": {NAME: {"bpsp", "enc_s", "dec_s", "all_lossless"}},
     "baselines_missing": [NAME, ...]}  # only when this imagecodecs build lacks one

``bpsp`` divides the file's bits by every sub-pixel of the image (height x
width x channels); ``enc_s``/``dec_s`` in the summary and the baselines are means per image;
``peak_mb`` is the process's peak resident memory after nlc's encodes and
decodes, read before the classical baselines run. NAME is png, webp, jpegxl, jpegls or jpeg2000.
"""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__, images
from ..api import Codec, decode_image, encode_image
from ..errors import UsageError
from ..images import list_images
from ..registry import DEFAULT, data_root
from ..results import committed_result, result_path

BASELINES = {  # name: (imagecodecs encoder, its settings); every one lossless
    "png": ("png_encode", {"level": 9}),
    "webp": ("webp_encode", {"lossless": True, "method": 6}),
    "jpegxl": ("jpegxl_encode", {"lossless": True, "effort": 9}),
    "jpegls": ("jpegls_encode", {"level": 0}),  # CharLS, near-lossless level 0, no colour transform
    "jpeg2000": ("jpeg2k_encode", {"level": 0, "reversible": True}),  # OpenJPEG, 5/3 wavelet, RCT
}
DECODERS = {"png": "png_decode", "webp": "webp_decode", "jpegxl": "jpegxl_decode", "jpegls": "jpegls_decode",
            "jpeg2000": "jpeg2k_decode"}


def write_json(path: str | Path, result: dict) -> None:
    """Write a bench result as indented JSON, creating its folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def committed_report(model: str) -> list[str]:
    """A codec's committed benchmark (``bench/results``) as lines to print; empty when it has none.

    What ``nlc bench --model NAME`` shows without ``--data``: the real file
    size against the model's bits/dim, the gap, speed, and the classical
    codecs measured in the same run.
    """
    from ..registry import get_spec

    spec = get_spec(model)
    from ..families import family

    is_set = family(spec.family).set_only
    data = "fashion-mnist" if is_set else "kodak"
    r = committed_result(spec.name, data)
    if r is None:
        return []
    path = result_path(spec.name, data)
    where = f"committed {path.relative_to(data_root())}; {r.get('device', '?')}, torch {r['versions']['torch']}"
    if is_set:
        lines = [f"{spec.name} on {r['data']}: {r['items']} images as one file ({where})",
                 f"  file {r['file_bpd']:.4f} bits/pixel   model{' (-ELBO)' if 'neg_elbo_bpd' in r else ''} {r.get('neg_elbo_bpd', r.get('model_bpd', 0.0)):.4f}   "
                 f"gap {r['gap_pct']:.3f}%   {'lossless' if r['lossless'] else 'NOT LOSSLESS'}",
                 f"  encode {r['enc_img_per_s']:.1f} images/s   decode {r['dec_img_per_s']:.1f} images/s"]
        unit, key = "bits/pixel", "bpd"
    else:
        m = r["summary"]
        lines = [f"{spec.name} on {r['data']}: {m['images']} images ({where})",
                 f"  file {m['bpsp']:.4f} bits/subpixel   model {m['bpsp_model']:.4f}   gap {m['gap_pct']:.3f}%   "
                 f"{'all lossless' if m['all_lossless'] else 'NOT ALL LOSSLESS'}",
                 f"  encode {m['enc_s']:.2f} s/image   decode {m['dec_s']:.2f} s/image   peak {m['peak_mb']:.0f} MB"]
        unit, key = "bits/subpixel", "bpsp"
    base = r.get("baselines") or {}
    if base:
        lines.append("  " + "   ".join(f"{k} {v[key]:.3f}" for k, v in base.items()) + f" {unit} (same images)")
    return lines


def baseline_bytes(pixels: np.ndarray) -> dict[str, int]:
    """Sizes of classical lossless encodings of an ``(H, W[, C])`` uint8 array."""
    try:
        import imagecodecs
    except ImportError:
        return {}
    out = {}
    for name, (fn, kw) in BASELINES.items():
        try:
            out[name] = len(getattr(imagecodecs, fn)(pixels, **kw))
        except Exception:  # a codec missing from this imagecodecs build
            continue
    return out


def baseline_runs(pixels: np.ndarray) -> dict[str, dict]:
    """Each classical codec on an ``(H, W[, C])`` uint8 array: ``bytes``, ``enc_s``, ``dec_s`` and whether its
    decoding gave the pixels back (``lossless``). A codec missing from this imagecodecs build is left out."""
    import imagecodecs

    out = {}
    for name, (fn, kw) in BASELINES.items():
        coded = pixels
        if name == "webp" and pixels.ndim == 2:  # lossless WebP holds gray as R = G = B
            coded = np.repeat(pixels[:, :, None], 3, axis=2)
        try:
            t0 = time.perf_counter()
            blob = getattr(imagecodecs, fn)(coded, **kw)
            t1 = time.perf_counter()
            back = np.asarray(getattr(imagecodecs, DECODERS[name])(blob))
            t2 = time.perf_counter()
        except Exception:  # a codec missing from this imagecodecs build
            continue
        if coded is not pixels and back.ndim == 3:
            back = back[:, :, 0]
        out[name] = {"bytes": len(blob), "enc_s": round(t1 - t0, 4), "dec_s": round(t2 - t1, 4),
                     "lossless": bool(back.shape == pixels.shape and np.array_equal(back, pixels))}
    return out


def check_baselines() -> None:
    """Refuse to bench with baselines when imagecodecs is missing (``pip install 'nlc[bench]'``)."""
    try:
        import imagecodecs  # noqa: F401
    except ImportError:
        raise UsageError("the classical baselines need imagecodecs: pip install 'nlc[bench]', "
                         "or pass --no-baselines") from None


def provenance(codec: Codec, command: str | None = None) -> dict:
    """What a bench result was measured with: the codec (weights sha256, coder, tile, arithmetic, adaptive
    stage), the libraries' versions, the machine, the baselines' settings, the command and the git commit."""
    import importlib.metadata
    import subprocess
    from datetime import datetime, timezone

    from ..threads import cores, cpu_kind

    def version(package: str) -> str | None:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return None

    try:
        git = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=data_root()).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        git = None
    spec = codec.spec
    return {
        "codec": {"name": spec.name, "architecture": spec.architecture, "family": spec.family,
                  "weights": spec.weights, "sha256": spec.sha256, "arithmetic": spec.arithmetic,
                  "adaptive": spec.adaptive or None, "coder": spec.coder, "tile": spec.tile,
                  "large_tile": spec.large_tile or None, "large_tile_all": spec.large_tile_all or None,
                  "whole_tile": spec.whole_tile or None,
                  "context": spec.context or None},
        "libraries": {p: version(p) for p in ("nlc", "torch", "numpy", "constriction", "numba", "pillow",
                                              "imagecodecs")} | {"python": platform.python_version()},
        "machine": {"cpu": platform.processor() or platform.machine(), "cpu_kind": cpu_kind(), "cores": cores(),
                    "torch_threads": torch.get_num_threads()},
        "baselines": {name: {"encoder": f"imagecodecs.{fn}", "settings": kw} for name, (fn, kw) in BASELINES.items()},
        "command": command, "git": git, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _device_name(kind: str) -> str:
    if kind == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_bench(model: str = DEFAULT, data: str = "", *, limit: int | None = None, json_path: str | None = None,
              baselines: bool = True, device: str = "auto", progress: bool = False, command: str | None = None,
              plot: str | None = None) -> dict:
    """Run the benchmark; prints a markdown table and returns (and optionally writes) the JSON dict. With
    ``baselines`` (imagecodecs needed, else a :class:`UsageError` before anything runs) every classical
    codec codes the same images, timed, per image. ``plot``: a PNG of bits/subpixel against decode seconds."""
    from ..api import resolve_device

    if baselines:
        check_baselines()
    codec = Codec.load(model, resolve_device(device))
    files = list_images(data)[:limit]
    rows, base = [], {k: 0 for k in BASELINES}
    tot = {"bits": 0, "plane_bits": 0, "model_bits": 0.0, "subpixels": 0, "model_subpixels": 0, "enc": 0.0, "dec": 0.0}
    print("| image | pixels | bytes | bits/subpixel | model bits/subpixel | gap % | encode s | decode s | lossless |")
    print("|---|---|---|---|---|---|---|---|---|")
    for f in files:
        im = images.read_image(f)
        t0 = time.perf_counter()
        blob, stats = encode_image(im, codec, device=device, progress=progress, fallback=False)
        t1 = time.perf_counter()
        out, _ = decode_image(blob, device=device, progress=progress, codec=codec)
        t2 = time.perf_counter()
        lossless = out.mode == im.mode and out.tobytes() == im.tobytes()
        subpixels = im.width * im.height * len(im.getbands())
        row = {
            "file": f.name, "pixels": im.width * im.height, "height": im.height, "width": im.width,
            "channels": len(im.getbands()), "tile": stats["tile"], "bytes": len(blob),
            "header_bytes": stats["header_bytes"], "plane_bytes": stats["plane_bytes"],
            "bpsp": len(blob) * 8 / subpixels,
            "bpsp_model": stats["model_bits"] / max(1, stats["subpixels"]),
            "gap_pct": 100 * ((len(blob) - stats["plane_bytes"]) * 8 / stats["model_bits"] - 1)
            if stats["model_bits"] else None,
            "enc_s": round(t1 - t0, 3), "dec_s": round(t2 - t1, 3), "lossless": lossless,
        }
        rows.append(row)
        tot["bits"] += len(blob) * 8
        tot["plane_bits"] += stats["plane_bytes"] * 8
        tot["model_bits"] += stats["model_bits"]
        tot["subpixels"] += subpixels
        tot["model_subpixels"] += stats["subpixels"]
        tot["enc"] += t1 - t0
        tot["dec"] += t2 - t1
        gap = f"{row['gap_pct']:.3f}" if row["gap_pct"] is not None else "-"
        print(f"| {f.name} | {im.width}x{im.height} | {len(blob)} | {row['bpsp']:.4f} | {row['bpsp_model']:.4f} "
              f"| {gap} | {row['enc_s']:.2f} | {row['dec_s']:.2f} | {'yes' if lossless else 'NO'} |", flush=True)
    n = len(rows)
    peak = _peak_mb()  # before the baselines, whose encoders (JPEG-XL effort 9) use much memory of their own
    base_time = {k: [0.0, 0.0] for k in BASELINES}
    if baselines:
        for f, row in zip(files, rows):
            row["baselines"] = runs = baseline_runs(np.asarray(images.read_image(f)))
            for k, v in runs.items():
                v["bpsp"] = v["bytes"] * 8 / (row["pixels"] * row["channels"])
                base[k] += v["bytes"]
                base_time[k][0] += v["enc_s"]
                base_time[k][1] += v["dec_s"]
    summary = {
        "images": n,
        "bpsp": tot["bits"] / tot["subpixels"],
        "bpsp_model": tot["model_bits"] / max(1, tot["model_subpixels"]),
        "gap_pct": 100 * ((tot["bits"] - tot["plane_bits"]) / tot["model_bits"] - 1) if tot["model_bits"] else None,
        "plane_bpsp": tot["plane_bits"] / tot["subpixels"],
        "enc_s": tot["enc"] / n, "dec_s": tot["dec"] / n, "peak_mb": round(peak, 1),
        "all_lossless": all(r["lossless"] for r in rows),
    }
    result: dict = {
        "model": codec.spec.name, "data": str(data), "device": _device_name(codec.device),
        "versions": {"nlc": __version__, "torch": torch.__version__, "python": platform.python_version(),
                     "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "provenance": provenance(codec, command),
        "images": rows, "summary": summary,
        "baselines": {k: {"bpsp": v * 8 / tot["subpixels"], "enc_s": base_time[k][0] / n, "dec_s": base_time[k][1] / n,
                          "all_lossless": all(r["baselines"][k]["lossless"] for r in rows)}
                      for k, v in base.items() if baselines and all(k in r["baselines"] for r in rows)},
    }
    missing = sorted(set(BASELINES) - set(result["baselines"])) if baselines else []
    if missing:
        result["baselines_missing"] = missing
        print(f"warning: {', '.join(missing)} (imagecodecs) could not code every image; left out of the totals",
              file=sys.stderr)
    print(f"\n**total**: {summary['bpsp']:.4f} bits/subpixel from files, {summary['bpsp_model']:.4f} from the model "
          f"(gap {summary['gap_pct']:.3f}%), encode {summary['enc_s']:.2f} s, decode {summary['dec_s']:.2f} s per image, "
          f"peak {summary['peak_mb']:.0f} MB, lossless: {'all' if summary['all_lossless'] else 'NO'}")
    if result["baselines"]:
        print("baselines: " + ", ".join(f"{k} {v['bpsp']:.4f} (decode {v['dec_s']:.3f} s)"
                                        for k, v in result["baselines"].items()))
    if json_path:
        write_json(json_path, result)
    if plot:
        plot_results([result], plot)
    return result


def plot_results(results: list[dict], path: str | Path) -> Path:
    """A PNG at ``path``: bits per sub-pixel against decode seconds per image (log scale) for every bench
    result given (each codec one point) and the classical baselines of the first result that has them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in results:
        m = r["summary"]
        ax.scatter(m["dec_s"], m["bpsp"], color="tab:blue", zorder=3)
        ax.annotate(r["model"], (m["dec_s"], m["bpsp"]), textcoords="offset points", xytext=(5, 3), fontsize=8)
    base = next((r for r in results if r.get("baselines") and "dec_s" in next(iter(r["baselines"].values()))), None)
    if base:
        for k, v in base["baselines"].items():
            ax.scatter(v["dec_s"], v["bpsp"], color="tab:gray", marker="s", zorder=3)
            ax.annotate(k, (v["dec_s"], v["bpsp"]), textcoords="offset points", xytext=(5, 3), fontsize=8,
                        color="dimgray")
    ax.set_xscale("log")
    ax.set_xlabel("decode seconds per image (2 CPU cores; log scale)")
    ax.set_ylabel("bits per sub-pixel (real files)")
    ax.set_title(f"{Path(str(results[0]['data'])).name}: size against decode time", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)
