"""The latent and sequence models' training loop: a run started from saved weights keeps them (``--init``),
records where it started, and refuses weights with parameters the model lacks."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nlc.train.latent import LatentTrainConfig, build_latent_model, train_latent

VAE = dict(bits=8, latent=2, hidden=8, mixtures=2, stages=4)
IAF = dict(VAE, steps=1, flow_hidden=8, context=2)


@pytest.fixture()
def fmnist(tmp_path):
    """A Fashion-MNIST folder of 40 random training images (an uncompressed idx3 file)."""
    images = np.random.default_rng(0).integers(0, 256, (40, 28, 28)).astype(np.uint8)
    folder = tmp_path / "fm"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 40, 28, 28) + images.tobytes())
    return folder


def test_a_run_started_from_saved_weights_keeps_them(fmnist, tmp_path):
    torch.manual_seed(0)
    vae = build_latent_model("vae", VAE)
    save_file(vae.state_dict(), str(tmp_path / "vae.safetensors"))
    cfg = LatentTrainConfig("vae-iaf", str(fmnist), str(tmp_path / "run"), IAF, steps=1, batch=4, lr=0.0,
                            val_every=1, ckpt_every=1, init=str(tmp_path / "vae.safetensors"))
    meta = train_latent(cfg, command="test", progress=False)
    shipped = load_file(str(tmp_path / "run.safetensors"))
    assert all(torch.equal(shipped[k], v) for k, v in vae.state_dict().items())  # lr 0: the VAE's weights
    assert any(k.startswith("flow.") for k in shipped)
    assert meta["init"] == cfg.init == json.loads((tmp_path / "run.json").read_text())["init"]


def test_weights_with_parameters_the_model_lacks_are_refused(fmnist, tmp_path):
    save_file(build_latent_model("vae-iaf", IAF).state_dict(), str(tmp_path / "iaf.safetensors"))
    cfg = LatentTrainConfig("vae", str(fmnist), str(tmp_path / "run"), VAE, steps=1, batch=4,
                            init=str(tmp_path / "iaf.safetensors"))
    with pytest.raises(ValueError, match=r"iaf.safetensors has parameters the model lacks: "):
        train_latent(cfg, command="test", progress=False)


def test_a_made_starts_an_integer_mafs_base(fmnist, tmp_path):
    """``--init base=FILE``: a trained MADE's parameters become the base's; the steps start at the identity."""
    hp = dict(bits=8, hidden=8, mixtures=2)
    torch.manual_seed(1)
    made = build_latent_model("made", hp)
    save_file(made.state_dict(), str(tmp_path / "made.safetensors"))
    cfg = LatentTrainConfig("maf-made", str(fmnist), str(tmp_path / "run"),
                            dict(hp, base_hidden=8, layers=1, shift_scale=8.0), steps=1, batch=4, lr=0.0,
                            val_every=1, ckpt_every=1, init=f"base={tmp_path / 'made.safetensors'}")
    train_latent(cfg, command="test", progress=False)
    shipped = load_file(str(tmp_path / "run.safetensors"))
    assert all(torch.equal(shipped[f"base.{k}"], v) for k, v in made.state_dict().items())
    assert not shipped["steps.0.w_out"].any()


def test_nlc_train_starts_a_set_codec_from_prefixed_weights_and_refuses_what_it_cannot(fmnist, tmp_path):
    """``nlc train --model maf-fmnist --init base=trained/made-fmnist.safetensors``: the shipped command of
    ``maf-fmnist``'s training through the CLI; bad ``--init`` and ``--freeze`` uses are usage errors (exit 2)."""
    from click.testing import CliRunner

    from nlc.cli import main
    from nlc.registry import data_root

    made = data_root() / "trained" / "made-fmnist.safetensors"
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", "--model", "maf-fmnist", "--data", str(fmnist), "--steps", "1",
                                  "--batch", "4", "--lr", "1e-9", "--init", f"base={made}", "--out", str(run)])
    assert r.exit_code == 0, r.output
    shipped = load_file(str(run) + ".safetensors")
    assert all(torch.allclose(shipped[f"base.{k}"], v, rtol=0, atol=1e-6) for k, v in load_file(str(made)).items())
    assert json.loads((tmp_path / "run.json").read_text())["init"] == f"base={made}"
    for args, message in [(["--model", "maf-fmnist", "--freeze", "steps"], "--freeze is for photo codecs"),
                          (["--model", "maf-fmnist", "--init", "base=nowhere.safetensors"],
                           "--init: no file 'nowhere.safetensors'"),
                          (["--model", "pixelcnnpp", "--init", f"base={made}"],
                           "--init PREFIX=WEIGHTS is for set codecs")]:
        r = CliRunner().invoke(main, ["train", "--data", str(fmnist), "--steps", "1", *args])
        assert r.exit_code == 2 and message in r.output, r.output
