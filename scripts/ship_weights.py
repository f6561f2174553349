"""Ship a training run's EMA weights and metadata as a codec's weights (:func:`nlc.registry.ship_weights`).

The weights they replace are kept in trained/archive/ with their codec file in
codecs/archive/, so that files coded with them still decode.

Usage: python scripts/ship_weights.py runs/pixelcnnpp pixelcnnpp
"""

import sys

from nlc.registry import get_spec, ship_weights


def main(run: str, codec: str) -> None:
    """Ship ``run``.safetensors/.json as the weights of ``codec``."""
    digest = ship_weights(run, codec)
    print(f"{get_spec(codec).weights_path}: sha256 {digest}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
