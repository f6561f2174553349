"""Thread settings that keep coding fast on a busy machine.

A coder's step loop runs thousands of small tensor operations. Intra-op
thread pools split each of them across cores and spin-wait between them, so
any other busy process on the machine (a browser, a second ``nlc``, a test
runner) turns every step into a wait for a descheduled thread: 10-30 times
slower. The step loops therefore run with one intra-op thread
(:func:`step_threads`), and the exact encoder's parallel pass shares its
chunks of tiles out to one single-threaded worker per core as they free up
(:func:`pass_workers`), so a busy core slows one worker, not every operation.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
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


@contextmanager
def step_threads() -> Iterator[None]:
    """One intra-op thread for a step loop of small tensors (see the module docstring), torch's and the
    compiled kernels' BLAS's (:func:`nlc.models.blas.one_thread`)."""
    from .models.blas import one_thread

    with torch_threads(1), one_thread():
        yield


@contextmanager
def pass_workers(workers: int | None = None) -> Iterator[ThreadPoolExecutor]:
    """A pool of ``workers`` threads (default: torch's thread count) for independent chunks of a parallel
    pass, each chunk computed with one intra-op thread (torch releases the GIL inside its operations).
    Leaving by an exception (Ctrl-C included) cancels the chunks not yet begun instead of finishing the
    pass."""
    n = workers or max(1, min(torch.get_num_threads(), cores()))
    pool = ThreadPoolExecutor(max_workers=n)
    with torch_threads(1):
        try:
            yield pool
        except BaseException:  # Ctrl-C or an error: drop the chunks not begun, do not wait for the pass
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown(wait=True)


_LIMIT = 0  # cores this process is told to use (use_threads); 0: all it may run on


def cores() -> int:
    """The cores this process may run on (at most what :func:`use_threads` set)."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return min(n, _LIMIT) if _LIMIT else n


def use_threads(n: int) -> None:
    """Use ``n`` threads from now on (``nlc --threads``): torch's intra-op threads, the exact encoder's pass
    workers and the decoder's vertical-stream workers. ``0`` keeps the default (every core)."""
    global _LIMIT
    if n < 0:
        raise ValueError(f"threads must be 0 (all cores) or more, got {n}")
    _LIMIT = n
    if n:
        torch.set_num_threads(n)


_LOCAL = threading.local()  # this thread's vertical_workers setting


@contextmanager
def vertical_workers(n: int) -> Iterator[None]:
    """Steppers made in this thread share their vertical stream's slices out to at most ``n`` workers (1: in
    turn, in this thread): for coders that already keep every core busy with chains of their own."""
    old = getattr(_LOCAL, "vertical", None)
    _LOCAL.vertical = n
    try:
        yield
    finally:
        _LOCAL.vertical = old


def vertical_worker_count() -> int:
    """The workers a stepper made in this thread may use for its vertical stream's slices: what
    :func:`vertical_workers` set here, else :func:`cores`."""
    return getattr(_LOCAL, "vertical", None) or cores()


VERTICAL_PART = 12 * 64  # columns (tiles times tile width) per slice of an exact model's row-at-a-time vertical stream


def vertical_parts(batch: int, width: int = 64) -> list[slice]:
    """Slices of a batch of tiles ``width`` wide, about :data:`VERTICAL_PART` columns each (one slice for
    small batches): a row of a slice keeps its work in the cache (one thread, 96 tiles of 64 in slices of
    12: 84 ms a row against 98 ms in slices of 24 and 130 ms in one; scratch ``runs/s11/slices.py``), and
    workers share the slices out, so a busy core slows one slice at a time. 96 tiles of 64 make eight
    slices, 24 tiles of 128 four."""
    per = max(1, VERTICAL_PART // width)
    if batch < 2 * per:
        return [slice(0, batch)]
    n = -(-batch // per)
    edges = [round(i * batch / n) for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(edges, edges[1:])]


def cpu_kind() -> str:
    """The kind of CPU kernels torch runs here (``AVX512``, ``AVX2``, ``DEFAULT``...): a float codec's
    files decode where the same kind computes the same floats."""
    return torch.backends.cpu.get_cpu_capability()
