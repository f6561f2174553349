"""The codec registry: one TOML file per named codec in ``codecs/``.

A codec file names the architecture and its hyper-parameters, the weights file
in ``trained/`` with its sha256, the entropy coder and the tiling::

    name = "pixelcnnpp"
    description = "PixelCNN++ ..."
    architecture = "pixelcnnpp"
    weights = "pixelcnnpp.safetensors"
    sha256 = "..."
    coder = "range"
    tile = 64
    [hyperparameters]
    channels = 32

``default.toml`` may hold just ``alias = "NAME"``. The folders are found next to
the package (a source checkout or editable install), in ``$NLC_HOME``, or in
``<prefix>/share/nlc`` (a wheel install).
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import CodecError

DEFAULT = "default"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_root() -> Path:
    """The folder that holds ``codecs/`` and ``trained/``."""
    candidates = []
    if os.environ.get("NLC_HOME"):
        candidates.append(Path(os.environ["NLC_HOME"]))
    candidates += [Path(__file__).resolve().parent.parent, Path(sys.prefix) / "share" / "nlc"]
    for c in candidates:
        if (c / "codecs").is_dir():
            return c
    raise CodecError("cannot find the codec registry (codecs/); set NLC_HOME to the nlc source folder")


@dataclass
class CodecSpec:
    """A parsed codec TOML."""

    name: str
    architecture: str
    description: str = ""
    weights: str = ""
    sha256: str = ""
    coder: str = "range"
    tile: int = 64
    hyperparameters: dict = field(default_factory=dict)

    @property
    def weights_path(self) -> Path:
        """Absolute path of the weights file."""
        return data_root() / "trained" / self.weights


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_codec_toml(spec: CodecSpec, weights: str | Path) -> Path:
    """Write the codec TOML of freshly trained ``weights`` next to them (``NAME.toml``); returns its path.

    The file is ``spec`` with ``weights`` and ``sha256`` replaced: copy it into
    ``codecs/`` and the weights into ``trained/`` to ship them
    (``scripts/ship_weights.py`` does both).
    """
    weights = Path(weights)
    fields = {"name": spec.name, "description": spec.description, "architecture": spec.architecture,
              "weights": weights.name, "sha256": sha256_file(weights), "coder": spec.coder, "tile": spec.tile}
    lines = [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
    lines += ["", "[hyperparameters]"] + [f"{k} = {_toml_value(v)}" for k, v in spec.hyperparameters.items()]
    path = weights.with_suffix(".toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def codec_names() -> list[str]:
    """Names of all registered codecs (aliases excluded), sorted."""
    names = []
    for p in sorted((data_root() / "codecs").glob("*.toml")):
        if "alias" not in tomllib.loads(p.read_text()):
            names.append(p.stem)
    return names


def get_spec(name: str = DEFAULT) -> CodecSpec:
    """The codec called ``name`` (aliases resolved)."""
    seen = set()
    while True:
        path = data_root() / "codecs" / f"{name}.toml"
        if not path.is_file() or name in seen:
            known = ", ".join(codec_names())
            raise CodecError(f"unknown codec {name!r} (known: {known})")
        seen.add(name)
        raw = tomllib.loads(path.read_text())
        if "alias" in raw:
            name = raw["alias"]
            continue
        raw.setdefault("name", name)
        return CodecSpec(**raw)


def build_model(architecture: str, hyperparameters: dict) -> torch.nn.Module:
    """An untrained model of a registered architecture."""
    if architecture == "pixelcnnpp":
        from .models.pixelcnnpp import PixelCNNPP, PixelCNNPPConfig

        return PixelCNNPP(PixelCNNPPConfig(**hyperparameters))
    if architecture == "pixelcnn":
        from .models.pixelcnn import PixelCNN, PixelCNNConfig

        return PixelCNN(PixelCNNConfig(**hyperparameters))
    if architecture == "gated-pixelcnn":
        from .models.gated_pixelcnn import GatedPixelCNN, GatedPixelCNNConfig

        return GatedPixelCNN(GatedPixelCNNConfig(**hyperparameters))
    if architecture == "pixelsnail":
        from .models.pixelsnail import PixelSNAIL, PixelSNAILConfig

        return PixelSNAIL(PixelSNAILConfig(**hyperparameters))
    if architecture == "idf":
        from .models.flows import IDF, IDFConfig

        return IDF(IDFConfig(**hyperparameters))
    if architecture in ("vae", "bitswap", "vrnn"):
        from .train_latent import build_latent_model

        return build_latent_model(architecture, hyperparameters)
    raise CodecError(f"unknown architecture {architecture!r}")


@functools.lru_cache(maxsize=4)
def _load(name: str, path: str, sha: str, architecture: str, hp: tuple) -> torch.nn.Module:
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CodecError(f"codec {name!r}: weights file {path} is missing")
    actual = sha256_file(path)
    if actual != sha:
        raise CodecError(f"codec {name!r}: weights sha256 {actual[:16]}... does not match the registry's {sha[:16]}...")
    model = build_model(architecture, dict(hp))
    model.load_state_dict(load_file(path))
    return model.eval()


def load_model(spec: CodecSpec) -> torch.nn.Module:
    """The trained model of a codec, after checking its weights' sha256 (cached)."""
    hp = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)  # TOML arrays, hashable for the cache
                      for k, v in spec.hyperparameters.items()))
    return _load(spec.name, str(spec.weights_path), spec.sha256, spec.architecture, hp)
