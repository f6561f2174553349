"""Models: mixture likelihoods and the coded information (steppers and causality: test_zoo.py)."""

import math

import numpy as np
import torch

from nlc.coding.autoregressive import encode_tiles
from nlc.models.mixture import log_likelihood
from tests.conftest import tiny_model


def test_mixture_probabilities_sum_to_one():
    torch.manual_seed(0)
    p = torch.randn(1, 30, 1, 1)
    # the marginal of R sums to one over all 256 values
    r = torch.arange(256).float() / 127.5 - 1
    x = torch.stack([r, torch.zeros(256), torch.zeros(256)], 0)[None, :, :, None]
    ll = log_likelihood(x, p.expand(1, 30, 256, 1), 3, channels=1)
    assert abs(ll.exp().sum().item() - 1) < 1e-4


def test_coded_information_equals_model_likelihood():
    m = tiny_model(3)
    rng = np.random.default_rng(0)
    img = np.cumsum(rng.integers(-3, 4, (20, 24, 3)), axis=1).clip(0, 255).astype(np.uint8)
    _, bits = encode_tiles(m, 3, img, 64, "range")
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        ideal = -m.log_likelihood(x).sum().item() / math.log(2)
    # The loss uses a density approximation for bins below 1e-5, the tables exact float32 CDF
    # differences: they agree closely, not to the last bit, on an untrained model's tails.
    assert abs(bits - ideal) / ideal < 5e-3
