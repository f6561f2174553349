"""bench/quantization.py: the rounding it simulates is what it says."""

from __future__ import annotations

import torch
from torch import nn

from bench.quantization import quantize_inputs, quantize_weights_, weighted_layers


def test_weights_round_to_levels_per_output_channel():
    torch.manual_seed(0)
    layer = nn.Linear(50, 3)
    before = layer.weight.detach().clone()
    quantize_weights_([layer], bits=4)
    w = layer.weight.detach()
    for row, old in zip(w, before):
        step = old.abs().max() / 7
        assert torch.allclose(row / step, torch.round(row / step), atol=1e-4)  # on the row's own grid
        assert len(torch.unique(row)) <= 15
        assert torch.isclose(row.abs().max(), old.abs().max())  # the largest weight keeps its value


def test_inputs_round_to_the_calibrated_levels_and_hooks_come_off():
    layer = nn.Linear(4, 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
        layer.bias.zero_()
    hooks = quantize_inputs([layer], {layer: 1.0}, bits=3)  # levels k/3, k = -3..3
    x = torch.tensor([[0.2, 0.0, 0.0, 0.0], [0.9, 0.0, 0.0, 0.0], [5.0, 0.0, 0.0, 0.0]])
    assert torch.allclose(layer(x)[:, 0], torch.tensor([1 / 3, 1.0, 1.0]))  # rounded, then clipped to the range
    for h in hooks:
        h.remove()
    assert torch.allclose(layer(x)[:, 0], x[:, 0])


def test_excluded_layers_stay_out():
    model = nn.Sequential()
    model.add_module("body", nn.Linear(2, 2))
    model.add_module("head", nn.Linear(2, 2))
    assert weighted_layers(model, ["head"]) == [model.body]
