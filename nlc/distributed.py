"""Compress or decompress a data set across the workers of a Dask cluster (``pip install 'nlc[cluster]'``).

The files are planned as ``nlc compress -r`` plans them (:func:`nlc.batch.plan`: every input folder's tree
mirrored under the output folder), and each file is one Dask task: a worker loads the codec once and
keeps it, codes the file, and writes the output through a temporary file and a rename, so an output
that exists is whole. Each result goes to the manifest (a JSON line per file, as ``--report`` writes)
as soon as it is known; a task that fails on a worker (a lost worker, not a bad file) is retried; a
run started again skips every file whose output exists. The default codec is exact, so any worker
decodes any file, whatever its CPU.

    >>> from nlc.distributed import run
    >>> results = run(["photos/"], "archive/", workers=2, manifest="archive.jsonl")   # doctest: +SKIP
    >>> run(["archive/"], "restored/", action="decompress", scheduler="tcp://head:8786")  # doctest: +SKIP

From the shell: ``python -m nlc.distributed compress photos/ -o archive/ --workers 2``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .batch import Job, compress_job, decompress_job, image_suffixes, output_of, plan
from .errors import UsageError

_CODECS: dict[tuple[str, str], Any] = {}  # per worker process: codecs loaded so far


def _codec(name: str) -> Any:
    from .codec import Codec

    key = (name, os.environ.get("NLC_HOME", ""))
    if key not in _CODECS:
        _CODECS[key] = Codec.load(name, "cpu")
    return _CODECS[key]


def code_file(action: str, src: str, dst: str, codec: str) -> dict:
    """One file on a worker: compress or decompress ``src`` to ``dst`` (the worker keeps the codec loaded).
    A bad file is a result with ``status: failed``, not a task failure (that would only be retried)."""
    from .errors import NlcError

    job = Job(Path(src), Path(dst))
    try:
        if action == "compress":
            out = compress_job(job, {"codec": _codec(codec), "progress": False})
            out.pop("stats", None)
        else:
            out = decompress_job(job, {"progress": False})
        return dict(out, input=src, status="ok", worker=os.getpid())
    except NlcError as e:
        return {"input": src, "output": dst, "status": "failed", "error": str(e), "worker": os.getpid()}


def run(inputs: list[str], output: str, *, action: str = "compress", codec: str = "default",
        workers: int = 2, scheduler: str | None = None, retries: int = 2, manifest: str | None = None,
        skip_existing: bool = True) -> list[dict]:
    """Code every file of ``inputs`` (files or folders, recursively) into the folder ``output`` on a Dask
    cluster: the one at ``scheduler`` (an address), else a local one of ``workers`` single-threaded worker
    processes. Returns one result per file (``status``: ``ok``, ``skipped`` or ``failed``), each also
    appended to ``manifest`` as a JSON line when it is known."""
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UsageError("nlc.distributed needs Dask: pip install 'nlc[cluster]'") from None
    if action not in ("compress", "decompress"):
        raise UsageError(f"unknown action {action!r} (compress or decompress)")
    from .api import SUFFIX

    decompress = action == "decompress"
    suffixes = {SUFFIX} if decompress else image_suffixes()
    Path(output).mkdir(parents=True, exist_ok=True)
    jobs = plan(inputs, output, suffixes=suffixes, decompress=decompress, recursive=True)
    results: list[dict] = []
    sink = open(manifest, "a") if manifest else None  # kept open for the run, closed below

    def emit(result: dict) -> None:
        results.append(result)
        if sink:
            sink.write(json.dumps(result) + "\n")
            sink.flush()

    try:
        todo = []
        for job in jobs:
            dst = output_of(job, decompress)
            if skip_existing and os.path.lexists(dst):
                emit({"input": str(job.src), "output": str(dst), "status": "skipped"})
            else:
                todo.append((str(job.src), str(dst)))
        if not todo:
            return results
        cluster = None if scheduler else LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                      dashboard_address=None)
        with Client(scheduler or cluster) as client:
            futures = [client.submit(code_file, action, src, dst, codec, retries=retries, pure=False)
                       for src, dst in todo]
            for future in as_completed(futures):
                emit(future.result())
        if cluster is not None:
            cluster.close()
    finally:
        if sink:
            sink.close()
    return results


def main(argv: list[str] | None = None) -> None:
    """``python -m nlc.distributed compress|decompress INPUT... -o DIR [--workers N] [--scheduler ADDR]``."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["compress", "decompress"])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("-m", "--model", default="default")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--scheduler", default=None)
    ap.add_argument("--manifest", default=None)
    a = ap.parse_args(argv)
    results = run(a.inputs, a.output, action=a.action, codec=a.model, workers=a.workers, scheduler=a.scheduler,
                  manifest=a.manifest)
    failed = [r for r in results if r["status"] == "failed"]
    for r in failed:
        print(f"nlc: error: {r['input']}: {r['error']}", file=sys.stderr)
    done = sum(r["status"] == "ok" for r in results)
    print(f"{done} coded, {len(results) - done - len(failed)} skipped, {len(failed)} failed", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
