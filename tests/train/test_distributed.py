"""`nlc train` under torchrun: DistributedDataParallel with the gloo backend, 2 CPU processes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import photo_folder


@dataclass
class LoopCfg:
    out: str
    steps: int = 3
    lr: float = 0.05
    warmup: int = 1
    ema: float = 0.9
    clip: float = 10.0
    seed: int = 0
    val_every: int = 2
    ckpt_every: int = 2
    resume: str | None = None
    minutes: float = 0.0


def _env(rank: int) -> None:
    """torchrun's variables for process ``rank`` of 2 (the group itself meets through a file store)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))


def _loop_worker(rank: int, store: str, out: str, steps: int, resume: str | None, minutes: float = 0.0) -> None:
    from nlc.train.loop import run_training

    _env(rank)
    # A file rendezvous: no port is picked, freed and raced for between the two spawns.
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)

    def batch_loss(m, rng):
        x = torch.from_numpy(rng.normal(size=(8, 4))).float()  # each process draws its own batch
        return (m(x) - x.sum(1, keepdim=True)).pow(2).mean(), {}

    run_training(LoopCfg(out=out, steps=steps, resume=resume, minutes=minutes), model, batch_loss, lambda ema: 0.0,
                 lambda step, history, vb: {"steps": step}, progress=False)
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, f"{out}.rank{rank}.pt")
    dist.barrier()  # both ranks done before either tears the group down (gloo aborted a rank otherwise, rarely)
    dist.destroy_process_group()


def test_ddp_keeps_processes_in_step_and_resumes(tmp_path):
    out = str(tmp_path / "run")
    mp.spawn(_loop_worker, args=(str(tmp_path / "store1"), out, 3, None), nprocs=2)
    a, b = torch.load(f"{out}.rank0.pt"), torch.load(f"{out}.rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # gradients averaged: identical weights on both
    ckpt = torch.load(f"{out}.ckpt", weights_only=False)
    assert ckpt["step"] == 3 and len(ckpt["rngs"]) == 2 and ckpt["rngs"][0] != ckpt["rngs"][1]
    mp.spawn(_loop_worker, args=(str(tmp_path / "store2"), out, 5, f"{out}.ckpt"), nprocs=2)
    a, b = torch.load(f"{out}.rank0.pt"), torch.load(f"{out}.rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(f"{out}.ckpt", weights_only=False)["step"] == 5
    # a time budget spent after one step: process 0's clock stops both processes at the same step
    mp.spawn(_loop_worker, args=(str(tmp_path / "store3"), out, 9, f"{out}.ckpt", 1e-9), nprocs=2)
    a, b = torch.load(f"{out}.rank0.pt"), torch.load(f"{out}.rank1.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.load(f"{out}.ckpt", weights_only=False)["step"] == 6


def _train_worker(rank: int, store: str, photos: str, out: str) -> None:
    from nlc.train import TrainConfig, train
    from tests.models.test_flows import TINY_FLOW

    _env(rank)
    # the group is up before train() runs, so it keeps it (as under torchrun) and no port is raced for
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    train(TrainConfig(data=photos, val=photos, out=out, steps=2, batch=2, crop=8, val_every=2, ckpt_every=2,
                      architecture="idf", model=dict(TINY_FLOW)), progress=False)
    dist.barrier()
    dist.destroy_process_group()


def test_photo_trainer_under_two_processes(tmp_path):
    photos = photo_folder(tmp_path)
    out = tmp_path / "run"
    mp.spawn(_train_worker, args=(str(tmp_path / "store"), str(photos), str(out)), nprocs=2)
    meta = json.loads(Path(f"{out}.json").read_text())
    assert meta["processes"] == 2 and meta["steps"] == 2 and np.isfinite(meta["val_bits_per_dim"])


def test_torchrun_trains_with_each_rank_reading_its_own_share(tiny_home, tmp_path):
    """`torchrun --nproc_per_node 2 -m nlc train ...` itself: both ranks step together (gloo on the CPU), each
    reads a disjoint share of the training images, and rank 0 writes the weights and metadata."""
    import re
    import shutil
    import subprocess
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    from tests.conftest import gradient_image

    for i in range(5):
        gradient_image(40, 40, seed=i).save(photos / f"p{i}.png")
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "nlc", "train", "--model", "tiny",
           "--data", str(photos), "--val", str(photos), "--steps", "2", "--batch", "2", "--crop", "8",
           "--val-crop", "8", "--out", str(tmp_path / "run"), "--device", "cpu"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    shares = dict(re.findall(r"rank (\d)/2 reads \d of 5 images: ([^\n]+)", r.stderr))
    assert set(shares) == {"0", "1"}, r.stderr[-2000:]
    a, b = (set(shares[k].split(", ")) for k in ("0", "1"))
    assert not a & b and a | b == {f"p{i}.png" for i in range(5)}
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["processes"] == 2 and meta["steps"] == 2 and "files[rank::processes]" in meta["data_shards"]
