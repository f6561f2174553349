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

``default.toml`` may hold just ``alias = "NAME"``. The folders are found in
``$NLC_HOME``, next to the package (a source checkout or editable install), or in
the package's data (``nlc/_data``: a wheel installed anywhere).

Shipping new weights (:func:`ship_weights`) keeps the ones they replace in
``trained/archive/NAME-SHA12.safetensors`` with their codec file in
``codecs/archive/NAME-SHA12.toml``, so a file coded before the update still
decodes (:func:`spec_for_file` finds them by the hash in its header).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .errors import CodecError, UnknownCodecError
from .schema import CODEC_NAME

if TYPE_CHECKING:  # torch is imported where a model is built, not to read the registry
    import torch

DEFAULT = "default"
ARCHIVE = "archive"  # sub-folder of codecs/ and trained/ with superseded weights


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_root() -> Path:
    """The folder that holds ``codecs/`` and ``trained/`` (and ``bench/results``): ``$NLC_HOME``, else the
    source checkout the package runs from, else the package data of an installed wheel (any prefix,
    ``--user`` or ``--target``), else ``<prefix>/share/nlc`` (older installs)."""
    from importlib.resources import files

    candidates = []
    if os.environ.get("NLC_HOME"):
        candidates.append(Path(os.environ["NLC_HOME"]))
    candidates += [Path(__file__).resolve().parent.parent, Path(str(files(__package__ or "nlc") / "_data")),
                   Path(sys.prefix) / "share" / "nlc"]
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
    large_tile: int = 0  # where set: the tile side for images of LARGE_TILE_MIN_TILES such tiles or more that fit one group
    large_tile_all: bool = False  # with large_tile: for every image of LARGE_TILE_MIN_TILES such tiles or more, however large
    whole_tile: int = 0  # where set: an image no wider or taller than this that ``tile`` would cut codes as one tile
    arithmetic: str = "float"  # "exact": fixed-point twin of the weights, files decode on any machine
    adaptive: str = ""  # an adaptive stage (nlc.coding.adaptive) between the model and the coder; exact only
    context: int = 0  # where set: tiles coded group after group, each seeing this many coded rows and columns
    hyperparameters: dict = field(default_factory=dict)

    @property
    def family(self) -> str:
        """The codec family of its architecture (``autoregressive``, ``flow`` or ``bitsback``)."""
        return architecture(self.architecture).family

    @property
    def weights_path(self) -> Path:
        """Absolute path of the weights file."""
        return data_root() / "trained" / self.weights


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):  # e.g. idf's level_groups
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_codec_toml(spec: CodecSpec, weights: str | Path) -> Path:
    """Write the codec TOML of freshly trained ``weights`` next to them (``NAME.toml``); returns its path.

    The file is ``spec`` renamed ``NAME-run-SHA8`` with ``weights`` and ``sha256`` replaced, so that
    ``nlc compress -m RUN.toml`` writes files that name these weights (and ``nlc decompress -m RUN.toml``
    decodes them). To ship the weights as ``spec``'s, ``scripts/ship_weights.py`` archives the old ones
    and updates the registry.
    """
    weights = Path(weights)
    digest = sha256_file(weights)
    fresh = replace(spec, name=f"{spec.name}-run-{digest[:8]}", weights=weights.name, sha256=digest)
    return write_spec_toml(fresh, weights.with_suffix(".toml"))


def write_spec_toml(spec: CodecSpec, path: Path) -> Path:
    """Write ``spec`` as a codec TOML file at ``path``; returns ``path``."""
    fields = {"name": spec.name, "description": spec.description, "architecture": spec.architecture,
              "weights": spec.weights, "sha256": spec.sha256, "coder": spec.coder, "tile": spec.tile}
    if spec.arithmetic != "float":
        fields["arithmetic"] = spec.arithmetic
    if spec.adaptive:
        fields["adaptive"] = spec.adaptive
    if spec.large_tile:
        fields["large_tile"] = spec.large_tile
    if spec.large_tile_all:
        fields["large_tile_all"] = spec.large_tile_all
    if spec.whole_tile:
        fields["whole_tile"] = spec.whole_tile
    if spec.context:
        fields["context"] = spec.context
    lines = [f"{k} = {_toml_value(v)}" for k, v in fields.items()]
    lines += ["", "[hyperparameters]"] + [f"{k} = {_toml_value(v)}" for k, v in spec.hyperparameters.items()]
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
    """The codec called ``name`` (aliases resolved). A name is a registry key, never a path: one that is not
    a plain codec name (a file's header may say anything) is refused before any file is read."""
    seen = set()
    while True:
        if not isinstance(name, str) or len(name) > 64 or not CODEC_NAME.fullmatch(name):
            raise UnknownCodecError(f"unknown codec {str(name)[:80]!r} (known: {', '.join(codec_names())})")
        path = data_root() / "codecs" / f"{name}.toml"
        if not path.is_file() or name in seen:
            known = ", ".join(codec_names())
            raise UnknownCodecError(f"unknown codec {name!r} (known: {known})")
        seen.add(name)
        raw = tomllib.loads(path.read_text())
        if "alias" in raw:
            name = raw["alias"]
            continue
        raw.setdefault("name", name)
        return CodecSpec(**raw)


FAMILIES = ("autoregressive", "flow", "bitsback", "sequence", "setflow")  # how a family's models are coded (nlc.families)
SET_FAMILIES = ("bitsback", "sequence", "setflow")  # families that code sets only (their ``set_only``)


@dataclass(frozen=True)
class Architecture:
    """A registered model architecture: how to build it and which codec family codes it."""

    name: str
    builder: Callable[[dict], torch.nn.Module]
    family: str


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, builder: Callable[[dict], torch.nn.Module], family: str) -> None:
    """Make ``name`` usable in codec TOMLs: ``builder(hyperparameters)`` returns an untrained model, coded by
    ``family`` (``autoregressive``: a stepped mixture model, see :mod:`nlc.coding.autoregressive`; ``flow``:
    an integer flow; ``bitsback``: a latent-variable model for sets; ``sequence``: a model that steps through
    a set's items position by position, see :mod:`nlc.families.sequence`). The shipped models register here too."""
    if family not in FAMILIES:
        raise ValueError(f"unknown codec family {family!r} (known: {', '.join(FAMILIES)})")
    ARCHITECTURES[name] = Architecture(name, builder, family)


def _lazy(module: str, model: str, config: str) -> Callable[[dict], torch.nn.Module]:
    """A builder that imports ``module`` only when a model is built (decoding one codec loads one model)."""
    def build(hp: dict) -> torch.nn.Module:
        import importlib

        m = importlib.import_module(module, __package__)
        return getattr(m, model)(getattr(m, config)(**hp))

    return build


for _name, _module, _model, _config, _family in [
    ("pixelcnnpp", ".models.pixelcnnpp", "PixelCNNPP", "PixelCNNPPConfig", "autoregressive"),
    ("pixelcnn", ".models.pixelcnn", "PixelCNN", "PixelCNNConfig", "autoregressive"),
    ("gated-pixelcnn", ".models.gated_pixelcnn", "GatedPixelCNN", "GatedPixelCNNConfig", "autoregressive"),
    ("pixelsnail", ".models.pixelsnail", "PixelSNAIL", "PixelSNAILConfig", "autoregressive"),
    ("idf", ".models.flows", "IDF", "IDFConfig", "flow"),
    ("vae", ".models.vae", "VAE", "VAEConfig", "bitsback"),
    ("bitswap", ".models.bitswap", "BitSwapVAE", "BitSwapConfig", "bitsback"),
    ("vrnn", ".models.vrnn", "VRNN", "VRNNConfig", "bitsback"),
    ("made", ".models.made", "MADE", "MADEConfig", "sequence"),
    ("wavenet", ".models.wavenet", "WaveNet", "WaveNetConfig", "sequence"),
    ("lstm", ".models.lstm", "CharRNN", "CharRNNConfig", "sequence"),
    ("maf", ".models.maf", "IntegerMAF", "MAFConfig", "setflow"),
    ("maf-made", ".models.maf_made", "MADEBaseMAF", "MAFMadeConfig", "sequence"),
    ("vae-iaf", ".models.iaf", "IAFVAE", "IAFVAEConfig", "bitsback"),
]:
    register_architecture(_name, _lazy(_module, _model, _config), _family)


def architecture(name: str) -> Architecture:
    """The registered architecture ``name``."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise CodecError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})") from None


def build_model(architecture_name: str, hyperparameters: dict) -> torch.nn.Module:
    """An untrained model of a registered architecture."""
    return architecture(architecture_name).builder(dict(hyperparameters))


ARITHMETICS = ("float", "exact")


@functools.lru_cache(maxsize=4)
def _load(name: str, path: str, sha: str, architecture: str, hp: tuple, arithmetic: str = "float") -> torch.nn.Module:
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise CodecError(f"codec {name!r}: weights file {path} is missing")
    actual = sha256_file(path)
    if actual != sha:
        raise CodecError(f"codec {name!r}: weights sha256 {actual[:16]}... does not match the registry's {sha[:16]}...")
    if arithmetic not in ARITHMETICS:
        raise CodecError(f"codec {name!r}: unknown arithmetic {arithmetic!r} (known: {', '.join(ARITHMETICS)})")
    model = build_model(architecture, dict(hp))
    model.load_state_dict(load_file(path))
    return in_arithmetic(model, arithmetic, name)


def in_arithmetic(model: torch.nn.Module, arithmetic: str, name: str) -> torch.nn.Module:
    """A trained model ready to code in ``arithmetic``: for ``exact``, the model's own exact twin (MADE) or the
    fixed-point layers of :mod:`nlc.models.exact`; for ``float``, the model in eval mode."""
    if arithmetic != "exact":
        return model.eval()
    from .models.exact import make_exact

    try:
        own = getattr(model, "exact", None)
        return own() if callable(own) else make_exact(model)
    except ValueError as e:
        raise CodecError(f"codec {name!r}: {e}") from None


def load_model(spec: CodecSpec) -> torch.nn.Module:
    """The trained model of a codec, after checking its weights' sha256 (cached)."""
    hp = tuple(sorted((k, tuple(v) if isinstance(v, list) else v)  # TOML arrays, hashable for the cache
                      for k, v in spec.hyperparameters.items()))
    return _load(spec.name, str(spec.weights_path), spec.sha256, spec.architecture, hp, spec.arithmetic)


def encoder_kind(torch_version: str, device: str, cpu: str | None) -> str:
    """How a file's header names the machine whose floats a float codec's file needs."""
    return f"torch {torch_version} on {device}" + (f" ({cpu})" if cpu else "")


def decodes_on(codec: str, torch_version: str, device: str, cpu: str | None, pixels: str = "model") -> str:
    """Where a file of ``codec`` (encoded with that torch, device and CPU kind, as its header records)
    decodes: on any machine for a codec with exact arithmetic or pixels in lossless WebP (``pixels``,
    the header's pixel coder); for a float codec, where its encoder's floats are reproduced, with the
    same torch on the same kind of device and CPU."""
    if pixels == "webp":
        return "any machine (pixels in lossless WebP, the model's coding was larger)"
    try:
        exact = get_spec(codec).arithmetic == "exact"
    except CodecError:
        return f"unknown here (codec {codec!r} is not registered)"
    if exact:
        return "any machine (exact arithmetic)"
    return encoder_kind(torch_version, device, cpu) + " (float arithmetic: the same torch and kind of machine)"


def _archive_name(name: str, sha256: str) -> str:
    return f"{name}-{sha256[:12]}"


def archived_spec(name: str, sha256: str) -> CodecSpec | None:
    """The superseded weights of codec ``name`` whose sha256 is ``sha256``, or ``None`` if none are kept."""
    path = data_root() / "codecs" / ARCHIVE / f"{_archive_name(name, sha256)}.toml"
    if not path.is_file():
        return None
    spec = CodecSpec(**tomllib.loads(path.read_text()))
    return spec if spec.sha256 == sha256 else None


def spec_for_file(name: str, sha256: str) -> CodecSpec:
    """The codec that decodes a file coded by codec ``name`` with weights ``sha256``.

    That is the registry's codec while its weights are those; after an update,
    the archived spec of the old weights. Neither: a :class:`CodecError` that
    names both hashes.
    """
    try:
        spec = get_spec(name)
    except CodecError as e:
        raise CodecError(f"{e}; a file coded with a codec of one's own (a training run's) decodes with "
                         "-m ITS.toml") from None
    if spec.sha256 == sha256:
        return spec
    old = archived_spec(spec.name, sha256)
    if old is None:
        raise CodecError(f"file was coded with {name!r} weights {sha256[:12]}..., but the registry has "
                         f"{spec.sha256[:12]}... and keeps no archived weights of that hash (codecs/{ARCHIVE}/)")
    return old


def ship_weights(run: str | Path, codec: str) -> str:
    """Make ``run``.safetensors (and its ``.json`` metadata) the weights of ``codec``; returns their sha256.

    The codec file's ``sha256`` is updated in place. The weights they replace
    move to ``trained/archive/`` with a copy of the codec file as it was in
    ``codecs/archive/``, so that files coded with them still decode. Codecs
    that share the weights file (``pixelcnnpp-exact`` uses ``pixelcnnpp``'s)
    are updated and archived alike.
    """
    root = data_root()
    spec = get_spec(codec)
    src = Path(run).with_suffix(".safetensors")
    digest = sha256_file(src)
    old = spec.weights_path
    sharers = [spec] + [other for other in map(get_spec, codec_names())
                        if other.name != spec.name and other.weights == spec.weights and other.sha256 == spec.sha256]
    if old.is_file() and spec.sha256 and spec.sha256 != digest:
        if sha256_file(old) != spec.sha256:
            raise CodecError(f"{old}: does not match the registry's sha256 {spec.sha256[:16]}...; "
                             "restore it before shipping new weights, so that the archive holds what files name")
        keep = _archive_name(spec.name, spec.sha256)
        (root / "trained" / ARCHIVE).mkdir(exist_ok=True)
        (root / "codecs" / ARCHIVE).mkdir(exist_ok=True)
        shutil.copyfile(old, root / "trained" / ARCHIVE / f"{keep}.safetensors")
        if old.with_suffix(".json").is_file():
            shutil.copyfile(old.with_suffix(".json"), root / "trained" / ARCHIVE / f"{keep}.json")
        for each in sharers:
            archived = replace(each, weights=f"{ARCHIVE}/{keep}.safetensors",
                               description=f"superseded weights of {each.name}: {each.description}")
            write_spec_toml(archived, root / "codecs" / ARCHIVE / f"{_archive_name(each.name, each.sha256)}.toml")
    dst = root / "trained" / spec.weights
    shutil.copyfile(src, dst)
    if src.with_suffix(".json").is_file():
        shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
    for each in sharers:
        toml = root / "codecs" / f"{each.name}.toml"
        toml.write_text(re.sub(r'^sha256 = ".*"$', f'sha256 = "{digest}"', toml.read_text(), flags=re.M))
    return digest
