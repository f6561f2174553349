"""The loaded codec: a codec spec (:mod:`nlc.registry`), its model, and the family that codes it.

One class for every family: photo codecs, integer flows and the bits-back set codecs alike.

>>> from nlc.codec import Codec
>>> Codec.load("pixelcnnpp-exact").family.name
'autoregressive'
>>> Codec.load("vae-fmnist").shape
(28, 28)
"""

from __future__ import annotations

import copy
import json
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from .coding.autoregressive import large_tile_fits
from .coding.coders import CODERS
from .errors import CodecError, InputError
from .families import Family, family
from .registry import (
    CODEC_NAME,
    DEFAULT,
    CodecSpec,
    build_model,
    get_spec,
    in_arithmetic,
    load_model,
    sha256_file,
)


@dataclass
class Codec:
    """A codec spec with its loaded model."""

    spec: CodecSpec
    model: torch.nn.Module

    @classmethod
    def load(cls, name: str = DEFAULT, device: str = "cpu") -> "Codec":
        """Load a registered codec (weights checked against their sha256) onto ``device``; a path to a codec
        TOML (``runs/wide.toml``, as ``nlc train`` writes) loads that codec (:meth:`from_toml`)."""
        return cls.from_spec(spec_of(name), device)

    @classmethod
    def from_spec(cls, spec: CodecSpec, device: str = "cpu") -> "Codec":
        """Load the model of ``spec`` (weights checked against its sha256) onto ``device``."""
        model = load_model(spec)
        if device != "cpu":
            model = copy.deepcopy(model).to(device)
        return cls(spec, model)

    @classmethod
    def from_toml(cls, path: str | Path, device: str = "cpu") -> "Codec":
        """A codec from a TOML file a user names (a training run's, or a codec of one's own): its ``weights``
        are found beside it (or at an absolute path) and checked against its ``sha256``. Only the user's
        command line names such a file; a ``.nlc`` file's header never does."""
        return cls.from_spec(spec_from_toml(path), device)

    @classmethod
    def from_run(cls, spec: CodecSpec, weights: str | Path) -> "Codec":
        """``spec`` with other weights of its architecture (a training run's): hyper-parameters from the run's
        ``.json`` beside them, else the spec's. The codec is renamed ``NAME-run-SHA8`` and carries the weights'
        own sha256, so a file it writes names these weights, never the shipped ones."""
        from safetensors.torch import load_file

        weights = Path(weights)
        meta = weights.with_suffix(".json")
        hp = json.loads(meta.read_text())["hyperparameters"] if meta.exists() else dict(spec.hyperparameters)
        model = build_model(spec.architecture, hp)
        model.load_state_dict(load_file(str(weights)))
        digest = sha256_file(weights)
        run = replace(spec, name=run_name(spec.name, digest), weights=str(weights.resolve()), sha256=digest,
                      hyperparameters=hp)
        return cls(run, in_arithmetic(model, spec.arithmetic, run.name))

    @property
    def family(self) -> Family:
        """The family that codes this codec's model (:mod:`nlc.families`)."""
        return family(self.spec.family)

    @property
    def device(self) -> str:
        """Device type of the model's weights (``cpu`` or ``cuda``)."""
        return next(self.model.parameters()).device.type

    @property
    def _config(self) -> Any:
        """The model's hyper-parameters object (every shipped model has ``config``)."""
        return getattr(self.model, "config")

    @property
    def mixtures(self) -> int:
        """Mixture components of the model's output."""
        return int(self._config.mixtures)

    @property
    def bits(self) -> int:
        """Bits per pixel a set codec's model codes: 1 for binary images, 8 for gray levels."""
        return int(getattr(self._config, "bits", 8))

    @property
    def shape(self) -> tuple[int, int]:
        """Item height and width a bits-back set codec codes."""
        return (28, 28)

    def coding(self, coder: str | None, tile: int | None, size: tuple[int, int] | None = None) -> tuple[str, int]:
        """The coder and tile side to code with: those given, else the codec's; an unknown coder is refused.

        A codec with a ``large_tile`` codes an image of ``size`` ``(height, width)`` in such tiles where it
        makes at least :data:`~nlc.coding.autoregressive.LARGE_TILE_MIN_TILES` of them and they fit one
        coder group (:func:`~nlc.coding.autoregressive.large_tile_fits`), or with ``large_tile_all`` however
        many it makes (context tiles code group after group whatever the tile): more context for the
        network at the cost of more, smaller steps. A codec with a ``whole_tile`` codes an image no wider or taller than
        that, which its ``tile`` would cut into several tiles, as one tile of the image's size (tiles shrink
        to the image): the steps cover its pixels only, not the padding of cut tiles (a 96x80 image took
        four tiles of 64x64, 16,384 steps' pixels for 7,680), and no pixel loses context to a tile's edge."""
        coder = coder or self.spec.coder
        if coder not in CODERS:
            raise InputError(f"unknown coder {coder!r} (known: {', '.join(CODERS)})")
        if tile:
            return coder, tile
        if size is not None and self.spec.whole_tile and self.spec.tile < max(size) <= self.spec.whole_tile:
            return coder, max(size)
        if size is not None and self.spec.large_tile and large_tile_fits(*size, self.spec.large_tile,
                                                                         self.spec.large_tile_all):
            return coder, self.spec.large_tile
        return coder, self.spec.tile

    def check_file(self, name: str, sha256: str) -> None:
        """Refuse a file coded by another codec, or by other weights of this one."""
        if self.spec.name != name:
            raise CodecError(f"file was coded with codec {name!r}, not {self.spec.name!r}")
        if self.spec.sha256 != sha256:
            raise CodecError(f"file was coded with {name!r} weights {sha256[:12]}..., "
                             f"but the registry has {self.spec.sha256[:12]}...")


def run_name(name: str, sha256: str) -> str:
    """The codec name of a training run's weights of codec ``name``: ``NAME-run-SHA8``
    (:func:`nlc.registry.write_codec_toml` names a run's TOML alike)."""
    return f"{name}-run-{sha256[:8]}"


def spec_from_toml(path: str | Path) -> CodecSpec:
    """The spec in a codec TOML a user names, its ``weights`` resolved against the TOML's folder."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"{path}: not a readable codec TOML ({e})") from None
    known = {f.name for f in fields(CodecSpec)}
    if "alias" in raw or not {"name", "architecture", "weights", "sha256"} <= raw.keys() or raw.keys() - known:
        raise InputError(f"{path}: a codec TOML needs name, architecture, weights and sha256 "
                         f"(and only {', '.join(sorted(known))})")
    if not isinstance(raw["name"], str) or not CODEC_NAME.fullmatch(raw["name"]):
        raise InputError(f"{path}: codec name {str(raw['name'])[:80]!r} is not a plain codec name")
    weights = Path(raw["weights"])
    raw["weights"] = str(weights if weights.is_absolute() else (path.parent / weights).resolve())
    return CodecSpec(**raw)


def spec_of(name: str) -> CodecSpec:
    """The spec a user means by ``name``: a registered codec, or the codec TOML at a path ending ``.toml``."""
    if isinstance(name, str) and name.endswith(".toml"):
        return spec_from_toml(name)
    return get_spec(name)
