"""Grow an integer flow's additive couplings into affine ones that compute exactly the same map.

Usage: python scripts/additive_to_affine.py IN.safetensors OUT.safetensors

Then fine-tune the affine flow from there, e.g.
``python -m nlc.train --codec idf --model-json '{"coupling": "affine"}' --init OUT.safetensors ...``
(see :func:`nlc.models.flows.idf.affine_from_additive`).
"""

from __future__ import annotations

import sys

from safetensors.torch import load_file, save_file

from nlc.models.flows.idf import affine_from_additive

if __name__ == "__main__":
    src, dst = sys.argv[1:3]
    save_file(affine_from_additive(load_file(src)), dst)
    print(f"{src} -> {dst}")
