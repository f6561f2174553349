"""``nlc bench``: real file sizes against the model's bits/dim and classical codecs.

Every image of a folder is compressed, decompressed and compared pixel for
pixel. Per image and in total it reports the real ``.nlc`` size in bits per
sub-pixel, the model's ``-log2 p`` in bits per sub-pixel, their gap, encode and
decode seconds, and the process's peak memory; PNG, WebP-lossless and
JPEG-XL-lossless (imagecodecs) run on the same images in the same harness.

JSON schema (``--json FILE``)::

    {"model", "data", "device", "versions": {...},
     "images": [{"file", "pixels" (height*width), "height", "width", "channels",
                 "bytes", "header_bytes", "bpsp", "bpsp_model", "gap_pct",
                 "enc_s", "dec_s", "lossless"}],
     "summary": {"images", "bpsp", "bpsp_model", "gap_pct", "enc_s", "dec_s", "peak_mb", "all_lossless"},
     "baselines": {"png": {"bpsp"}, "webp": {"bpsp"}, "jpegxl": {"bpsp"}}}

``bpsp`` divides the file's bits by every sub-pixel of the image (height x
width x channels); ``enc_s``/``dec_s`` in the summary are means per image;
``peak_mb`` is the process's peak resident memory after nlc's encodes and
decodes, read before the classical baselines run.
"""

from __future__ import annotations

import json
import platform
import resource
import time
from pathlib import Path

import numpy as np
import torch

from . import __version__, images
from .api import Codec, decode_image, encode_image
from .registry import DEFAULT, data_root
from .train import list_images

BASELINES = {
    "png": ("png_encode", {"level": 9}),
    "webp": ("webp_encode", {"lossless": True, "method": 6}),
    "jpegxl": ("jpegxl_encode", {"lossless": True, "effort": 9}),
}


def result_path(model: str, data: str = "kodak") -> Path:
    """Where the committed bench result of a codec on a data set lives."""
    return data_root() / "bench" / "results" / f"{data}-{model}.json"


def committed_result(model: str, data: str = "kodak") -> dict | None:
    """A codec's committed bench result (the JSON in ``bench/results``), or ``None`` if it has none."""
    try:
        return json.loads(result_path(model, data).read_text())
    except (OSError, ValueError):
        return None


def kodak_result(model: str) -> float | None:
    """A codec's committed Kodak bits per sub-pixel, if a result exists."""
    try:
        return float(committed_result(model)["summary"]["bpsp"])
    except (TypeError, KeyError):
        return None


def write_json(path: str | Path, result: dict) -> None:
    """Write a bench result as indented JSON, creating its folder."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2) + "\n")


def set_result(model: str) -> float | None:
    """A set codec's committed Fashion-MNIST test-set bits per pixel (real file), if a result exists."""
    try:
        return float(committed_result(model, "fashion-mnist")["file_bpd"])
    except (TypeError, KeyError):
        return None


def committed_report(model: str) -> list[str]:
    """A codec's committed benchmark (``bench/results``) as lines to print; empty when it has none.

    What ``nlc bench --model NAME`` shows without ``--data``: the real file
    size against the model's bits/dim, the gap, speed, and the classical
    codecs measured in the same run.
    """
    from .registry import get_spec

    spec = get_spec(model)
    is_set = spec.family == "bitsback"
    data = "fashion-mnist" if is_set else "kodak"
    r = committed_result(spec.name, data)
    if r is None:
        return []
    path = result_path(spec.name, data)
    where = f"committed {path.relative_to(data_root())}; {r.get('device', '?')}, torch {r['versions']['torch']}"
    if is_set:
        lines = [f"{spec.name} on {r['data']}: {r['items']} images as one file ({where})",
                 f"  file {r['file_bpd']:.4f} bits/pixel   model (-ELBO) {r['neg_elbo_bpd']:.4f}   "
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


def _device_name(kind: str) -> str:
    if kind == "cuda":
        return f"cuda ({torch.cuda.get_device_name()})"
    return f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_bench(model: str = DEFAULT, data: str = "", *, limit: int | None = None, json_path: str | None = None,
              baselines: bool = True, device: str = "auto", progress: bool = False) -> dict:
    """Run the benchmark; prints a markdown table and returns (and optionally writes) the JSON dict."""
    from .api import resolve_device

    codec = Codec.load(model, resolve_device(device))
    files = list_images(data)[:limit]
    rows, base = [], {k: 0 for k in BASELINES}
    tot = {"bits": 0, "model_bits": 0.0, "subpixels": 0, "model_subpixels": 0, "enc": 0.0, "dec": 0.0}
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
            "channels": len(im.getbands()), "bytes": len(blob), "header_bytes": stats["header_bytes"],
            "bpsp": len(blob) * 8 / subpixels,
            "bpsp_model": stats["model_bits"] / max(1, stats["subpixels"]),
            "gap_pct": 100 * (len(blob) * 8 / stats["model_bits"] - 1) if stats["model_bits"] else None,
            "enc_s": round(t1 - t0, 3), "dec_s": round(t2 - t1, 3), "lossless": lossless,
        }
        rows.append(row)
        tot["bits"] += len(blob) * 8
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
    if baselines:
        for f in files:
            for k, v in baseline_bytes(np.asarray(images.read_image(f))).items():
                base[k] += v
    summary = {
        "images": n,
        "bpsp": tot["bits"] / tot["subpixels"],
        "bpsp_model": tot["model_bits"] / max(1, tot["model_subpixels"]),
        "gap_pct": 100 * (tot["bits"] / tot["model_bits"] - 1) if tot["model_bits"] else None,
        "enc_s": tot["enc"] / n, "dec_s": tot["dec"] / n, "peak_mb": round(peak, 1),
        "all_lossless": all(r["lossless"] for r in rows),
    }
    result = {
        "model": codec.spec.name, "data": str(data), "device": _device_name(codec.device),
        "versions": {"nlc": __version__, "torch": torch.__version__, "python": platform.python_version(),
                     "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "images": rows, "summary": summary,
        "baselines": {k: {"bpsp": v * 8 / tot["subpixels"]} for k, v in base.items() if baselines and v},
    }
    print(f"\n**total**: {summary['bpsp']:.4f} bits/subpixel from files, {summary['bpsp_model']:.4f} from the model "
          f"(gap {summary['gap_pct']:.3f}%), encode {summary['enc_s']:.2f} s, decode {summary['dec_s']:.2f} s per image, "
          f"peak {summary['peak_mb']:.0f} MB, lossless: {'all' if summary['all_lossless'] else 'NO'}")
    if result["baselines"]:
        print("baselines: " + ", ".join(f"{k} {v['bpsp']:.4f}" for k, v in result["baselines"].items()))
    if json_path:
        write_json(json_path, result)
    return result
