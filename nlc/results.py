"""The committed bench results (``bench/results``): read without the bench's imports (torch, the codecs),
so that ``nlc models`` lists the codecs at once."""

from __future__ import annotations

import json
from pathlib import Path

from .registry import data_root


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
        return float(committed_result(model)["summary"]["bpsp"])  # type: ignore[index]  # None: TypeError
    except (TypeError, KeyError):
        return None


def set_result(model: str) -> float | None:
    """A set codec's committed Fashion-MNIST test-set bits per pixel (real file), if a result exists."""
    try:
        return float(committed_result(model, "fashion-mnist")["file_bpd"])  # type: ignore[index]  # None: TypeError
    except (TypeError, KeyError):
        return None
