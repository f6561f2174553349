"""Copy a training run's EMA weights and metadata into trained/ and update the codec TOML's sha256.

Usage: python scripts/ship_weights.py runs/pixelcnnpp pixelcnnpp
"""

import re
import shutil
import sys
from pathlib import Path

from nlc.registry import data_root, sha256_file


def main(run: str, codec: str) -> None:
    """Ship ``run``.safetensors/.json as the weights of ``codec``."""
    root = data_root()
    src = Path(run)
    dst = root / "trained" / f"{codec}.safetensors"
    shutil.copyfile(src.with_suffix(".safetensors"), dst)
    shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
    digest = sha256_file(dst)
    toml = root / "codecs" / f"{codec}.toml"
    text = re.sub(r'^sha256 = ".*"$', f'sha256 = "{digest}"', toml.read_text(), flags=re.M)
    toml.write_text(text)
    print(f"{dst}: sha256 {digest}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
