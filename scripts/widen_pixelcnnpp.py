"""Widen a PixelCNN++'s vertical stream without changing the function it computes.

Usage: python scripts/widen_pixelcnnpp.py IN.safetensors OUT.safetensors WIDTH

``IN`` must be weights of the registered ``pixelcnnpp`` codec's architecture. Then
fine-tune from ``OUT``, e.g.
``python -m nlc.train --codec pixelcnnpp --model-json '{"v_channels": WIDTH}' --init OUT.safetensors ...``
(see :func:`nlc.models.pixelcnnpp.widen_vertical`).
"""

from __future__ import annotations

import sys

from safetensors.torch import load_file, save_file

from nlc.models.pixelcnnpp import widen_vertical
from nlc.registry import build_model, get_spec

if __name__ == "__main__":
    src, dst, width = sys.argv[1], sys.argv[2], int(sys.argv[3])
    codec = get_spec("pixelcnnpp")
    model = build_model(codec.architecture, codec.hyperparameters)
    model.load_state_dict(load_file(src))
    save_file({k: v.contiguous() for k, v in widen_vertical(model, width).state_dict().items()}, dst)
    print(f"{src} -> {dst} (vertical stream {width} channels)")
