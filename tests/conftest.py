"""Shared fixtures: a tiny seeded PixelCNN++ so round-trip tests run in milliseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nlc.api import Codec
from nlc.models.pixelcnnpp import PixelCNNPP, PixelCNNPPConfig
from nlc.registry import CodecSpec, sha256_file

TINY = dict(channels=8, levels=2, nr_resnet=1, h_layers=1, mixtures=3, dropout=0.0)
ROOT = Path(__file__).resolve().parent.parent


def tiny_model(seed: int = 0) -> PixelCNNPP:
    """A small random model whose gates are open, so every input matters."""
    torch.manual_seed(seed)
    m = PixelCNNPP(PixelCNNPPConfig(**TINY))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


@pytest.fixture(scope="session")
def tiny_codec() -> Codec:
    """The tiny model as a codec object (not in any registry)."""
    return Codec(CodecSpec(name="tiny", architecture="pixelcnnpp", sha256="0" * 64, tile=16, hyperparameters=TINY),
                 tiny_model())


@pytest.fixture()
def tiny_home(tmp_path, monkeypatch) -> Path:
    """A registry folder (``NLC_HOME``) whose default codec is the tiny model."""
    from safetensors.torch import save_file

    home = tmp_path / "home"
    (home / "codecs").mkdir(parents=True)
    (home / "trained").mkdir()
    weights = home / "trained" / "tiny.safetensors"
    save_file(tiny_model().state_dict(), str(weights))
    hp = "\n".join(f"{k} = {v}" for k, v in TINY.items())
    (home / "codecs" / "tiny.toml").write_text(
        f'name = "tiny"\ndescription = "tiny test model"\narchitecture = "pixelcnnpp"\n'
        f'weights = "tiny.safetensors"\nsha256 = "{sha256_file(weights)}"\ncoder = "range"\ntile = 16\n\n'
        f"[hyperparameters]\n{hp}\n"
    )
    (home / "codecs" / "default.toml").write_text('alias = "tiny"\n')
    monkeypatch.setenv("NLC_HOME", str(home))
    return home


def gradient_image(h: int, w: int, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A smooth image with a little noise, in any supported mode."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = (x * 7 + y * 3) % 256
    rgb = np.stack([base, (base + 80) % 256, (255 - base)], -1) + rng.integers(-4, 5, (h, w, 3))
    im = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    if mode == "RGBA":
        a = Image.fromarray(((x * 255) // max(1, w - 1)).astype(np.uint8), "L")
        im.putalpha(a)
        return im
    if mode == "P":
        return im.quantize(16)
    return im.convert(mode)


@pytest.fixture()
def photo(tmp_path: Path, tiny_home: Path) -> Path:
    """``tmp_path/photo.png``, a 20x17 gradient, with the tiny model as the default codec."""
    p = tmp_path / "photo.png"
    gradient_image(20, 17).save(p)
    return p


def photo_folder(tmp_path: Path) -> Path:
    """``tmp_path/photos`` with two 66x66 gradient photos, for training runs."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        gradient_image(66, 66, seed=i).save(photos / f"p{i}.png")
    return photos


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    """Identical mode, size, pixels and (for P) palette."""
    same = a.mode == b.mode and a.size == b.size and a.tobytes() == b.tobytes()
    if same and a.mode == "P":
        same = a.getpalette() == b.getpalette()
    return same
