"""What fixed-point weights and activations cost an autoregressive model, in bits/dim.

Usage: python bench/quantization.py --model pixelcnnpp --data ../shared/data/photos-val
       [--weight-bits 8 12] [--act-bits 0 8 10 12] [--exclude skip head] [--json FILE]

A feasibility measurement for exact parallel encoding: today the encoder runs
the decoder's pixel-by-pixel computation, because a parallel pass gives
slightly different floats and so different probability tables. A network whose
layers multiply integers (weights of ``w`` bits, activations of ``a`` bits) and
sum them exactly would give the same parameters either way. This script
simulates that after training (no quantization-aware fine-tuning): every layer
with a weight, except those whose names contain an ``--exclude`` word, gets
symmetric per-output-channel weights of ``w`` bits and, unless ``a`` is 0,
symmetric per-layer inputs of ``a`` bits with scales calibrated on the same
crops. It reports bits/dim on the central 256x256 crop of every image, cut
into independent 64x64 tiles as the codecs code them.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlc.api import Codec
from nlc.coding.autoregressive import TileGrid
from nlc.train import bits_per_dim, load_rgb


def central_tiles(folder: str, crop: int = 256, tile: int = 64) -> np.ndarray:
    """The central ``crop x crop`` of every image, cut into ``tile`` tiles as the codecs cut images.

    Returns ``(N, tile, tile, 3)`` uint8.
    """
    grid = TileGrid.for_image(crop, crop, tile)
    out = []
    for im in load_rgb(folder):  # refuses Kodak
        y, x = (im.shape[0] - crop) // 2, (im.shape[1] - crop) // 2
        out.append(grid.split(im[y : y + crop, x : x + crop]))
    return np.concatenate(out)


def weighted_layers(model: nn.Module, exclude: list[str]) -> list[nn.Module]:
    """Every sub-module with its own ``weight`` parameter, except those whose names contain an ``exclude`` word."""
    return [mod for name, mod in model.named_modules()
            if mod is not model and isinstance(getattr(mod, "weight", None), nn.Parameter)
            and not any(word in name for word in exclude)]


@torch.no_grad()
def quantize_weights_(layers: list[nn.Module], bits: int) -> None:
    """Round every layer's weights in place to ``bits``-bit symmetric levels, one scale per output channel."""
    top = 2 ** (bits - 1) - 1
    for layer in layers:
        w = layer.weight
        scale = w.abs().amax(dim=tuple(range(1, w.dim())), keepdim=True).clamp_min(1e-12) / top
        w.copy_(torch.round(w / scale) * scale)


def calibrate(model: nn.Module, layers: list[nn.Module], tiles: np.ndarray) -> tuple[float, dict[nn.Module, float]]:
    """One pass over ``tiles``: the model's bits/dim and the largest absolute input each layer sees (the scales)."""
    ranges: dict[nn.Module, float] = {}

    def record(mod, args):
        ranges[mod] = max(ranges.get(mod, 0.0), float(args[0].abs().max()))

    hooks = [layer.register_forward_pre_hook(record) for layer in layers]
    bpd = bits_per_dim(model, tiles)
    for h in hooks:
        h.remove()
    return bpd, ranges


def quantize_inputs(layers: list[nn.Module], ranges: dict[nn.Module, float], bits: int) -> list:
    """Hooks rounding each layer's input to ``bits``-bit symmetric levels; returns them (``.remove()`` undoes)."""
    top = 2 ** (bits - 1) - 1

    def hook(mod, args):
        scale = max(ranges[mod], 1e-12) / top
        return (torch.round(args[0] / scale).clamp(-top, top) * scale, *args[1:])

    return [layer.register_forward_pre_hook(hook) for layer in layers]


def main() -> None:
    """Run the measurement."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", required=True)
    ap.add_argument("--weight-bits", type=int, nargs="+", default=[8, 12])
    ap.add_argument("--act-bits", type=int, nargs="+", default=[0, 8, 10, 12], help="0: float activations")
    ap.add_argument("--exclude", nargs="*", default=["skip", "head"],
                    help="layers kept in float (name contains the word)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    t0 = time.time()
    tiles = central_tiles(a.data)
    codec = Codec.load(a.model)
    float_model = copy.deepcopy(codec.model)  # Codec.load's model is cached and shared: never round it in place
    float_layers = weighted_layers(float_model, a.exclude)
    base, ranges = calibrate(float_model, float_layers, tiles)
    print(f"float: {base:.4f} bits/dim", flush=True)
    rows = []
    for wb in a.weight_bits:
        model, model_ranges = copy.deepcopy((float_model, ranges))  # one deepcopy: the ranges follow their layers
        layers = weighted_layers(model, a.exclude)
        quantize_weights_(layers, wb)
        for ab in a.act_bits:
            hooks = quantize_inputs(layers, model_ranges, ab) if ab else []
            bpd = bits_per_dim(model, tiles)
            for h in hooks:
                h.remove()
            rows.append({"weight_bits": wb, "act_bits": ab or None, "bits_per_dim": round(bpd, 4),
                         "cost_pct": round(100 * (bpd / base - 1), 3)})
            print(f"w{wb} a{ab or 'float'}: {bpd:.4f} bits/dim ({rows[-1]['cost_pct']:+.3f}%)", flush=True)
    result = {"model": codec.spec.name, "data": a.data, "tiles": int(len(tiles)), "tile": 64, "crop": 256,
              "exclude": a.exclude, "layers": len(float_layers), "float_bits_per_dim": round(base, 4), "rows": rows,
              "seconds": round(time.time() - t0, 1),
              "command": "python bench/quantization.py " + " ".join(
                  f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                  for k, v in vars(a).items() if v is not None and k != "json")
              + (f" --json {a.json}" if a.json else "")}
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
