"""Progress bars on standard error (tqdm), off unless asked for, and a way to stop the work they count.

:func:`abort_when` makes every bar created inside it (in this context: its thread, or a task it starts)
check a predicate at each update, from whatever thread updates it, and raise :class:`Superseded` once the
predicate holds: the image encoder stops a model's coding this way as soon as lossless WebP, run beside it,
shows that the model's rate should be estimated first (:func:`nlc.api.encode_image`).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Callable, Iterator

_ABORT: ContextVar[Callable[[], bool] | None] = ContextVar("nlc_abort", default=None)


class Superseded(Exception):
    """The work a progress bar counts is no longer wanted (see :func:`abort_when`)."""


@contextmanager
def abort_when(predicate: Callable[[], bool]) -> Iterator[None]:
    """Within the block, the updates of bars created in it raise :class:`Superseded` once ``predicate()``
    is true (it is called at every update, so it must be cheap)."""
    token = _ABORT.set(predicate)
    try:
        yield
    finally:
        _ABORT.reset(token)


@contextmanager
def progress_bar(total: int, desc: str, enabled: bool, unit: str = "row") -> Iterator[Callable[[int], None]]:
    """A tqdm bar of ``total`` ``unit`` on stderr (disabled unless ``enabled``); yields its ``update``."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr, leave=False)
    abort = _ABORT.get()

    def update(n: int) -> None:
        if abort is not None and abort():
            raise Superseded
        bar.update(n)

    try:
        yield update
    finally:
        bar.close()
