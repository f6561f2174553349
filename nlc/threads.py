"""Thread settings that keep coding fast on a busy machine.

A coder's step loop runs thousands of small tensor operations. Intra-op
thread pools split each of them across cores and spin-wait between them, so
any other busy process on the machine (a browser, a second ``nlc``, a test
runner) turns every step into a wait for a descheduled thread: 10-30 times
slower. The step loops therefore run with one intra-op thread
(:func:`step_threads`); the big parallel passes keep torch's pool.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Iterator

import torch


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads. Conv and matrix kernels split their sums by thread, so a float
    decoder that runs whole passes must use the encoder's thread count to compute bit-identical floats."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def step_threads() -> "AbstractContextManager[None]":
    """One intra-op thread for a step loop of small tensors (see the module docstring)."""
    return torch_threads(1)
