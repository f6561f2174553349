"""Progress bars on standard error (tqdm), off unless asked for."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "row") -> Iterator[Callable[[int], None]]:
    """A tqdm bar of ``total`` ``unit`` on stderr (disabled unless ``enabled``); yields its ``update``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=False)

    def update(n: int) -> None:
        bar.update(n)

    try:
        yield update
    finally:
        bar.close()
