"""WaveNet (van den Oord et al. 2016) on 28x28 images as a 784-step sequence in raster order: a Bernoulli per
pixel for binarized images, a discretized logistic mixture per pixel (MADE's head layout) for gray levels.

Stacks of dilated causal 1-D convolutions (kernel 2, dilations ``1, 2, 4, ...``) with gated activations
``tanh(a) * sigmoid(b)``, residual connections into the next layer and skip connections summed into a head
of two 1x1 layers; the input is shifted by one position, so position ``d`` sees pixels ``< d`` only. A learned
bias per position (a location encoding) is added to the outputs: the receptive field (``2 + sum of the
dilations`` positions) is shorter than an image.

Everything is computed through an arithmetic ``A`` (:mod:`nlc.models.exact`): floats in training; in the exact
twin (:meth:`WaveNet.exact`, weights of 14 significant bits, activations on the ``2^-16`` grid, gates from
correctly rounded tables) every sum is exact, so :meth:`WaveNet.stepper` — which decodes position by position
with a queue of each layer's past inputs (as in Fast WaveNet) instead of re-running the stack — gives the
parallel pass's outputs bit for bit, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .exact import FLOAT, make_exact
from .sequence import SequenceModel


@dataclass
class WaveNetConfig:
    """Hyper-parameters of :class:`WaveNet`."""

    bits: int = 1  # 1: binarized pixels (a Bernoulli each); 8: gray levels (a logistic mixture each)
    channels: int = 32  # residual channels
    skip: int = 64  # skip and head channels
    dilations: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    height: int = 28
    width: int = 28
    mixtures: int = 5  # logistic components per gray pixel


class WaveNet(SequenceModel):
    """Conditionals of binary or gray images in raster order from one causal convolutional pass."""

    exact_joint = ()  # no outputs summed across layers before rounding
    arith = FLOAT

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__()
        if config.bits not in (1, 8):
            raise ValueError("a WaveNet codes binarized (bits = 1) or gray (bits = 8) images")
        config.dilations = tuple(config.dilations)
        self.config = config
        c, s = config.channels, config.skip
        self.inp = nn.Conv1d(1, c, 2)
        self.dilated = nn.ModuleList(nn.Conv1d(c, 2 * c, 2, dilation=d) for d in config.dilations)
        self.res = nn.ModuleList(nn.Conv1d(c, c, 1) for _ in config.dilations)
        self.skips = nn.ModuleList(nn.Conv1d(c, s, 1) for _ in config.dilations)
        self.out1 = nn.Conv1d(s, s, 1)
        self.out2 = nn.Conv1d(s, self.outputs_per_pixel, 1)
        self.position = nn.Parameter(torch.zeros(self.outputs_per_pixel, self.dims))

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, K)`` outputs for images ``x`` of shape ``(B, H, W)`` or ``(B, D)`` (values 0/1 or 0..255)."""
        A = self.arith
        v = A.input(self.inputs(x.reshape(len(x), 1, -1)))
        h = A.lin(self.inp(F.pad(v, (2, -1))))  # position d reads pixels d-2 and d-1
        skip: Any = None
        for conv, res, sk, d in zip(self.dilated, self.res, self.skips, self.config.dilations):
            z = A.tanh_gate(A.lin(conv(F.pad(h, (d, 0)))))
            h = A.add(h, A.lin(res(z)))
            part = A.lin(sk(z))
            skip = part if skip is None else A.add(skip, part)
        o = A.lin(self.out1(A.relu(skip)))
        out = A.add(A.lin(self.out2(A.relu(o))), A.lin(self.position)[None])
        return out.transpose(1, 2)

    def exact(self) -> "WaveNet":
        """The exact twin: a float64 copy with fixed-point weights computing in exact arithmetic."""
        twin = make_exact(self)
        assert isinstance(twin, WaveNet)
        return twin

    def stepper(self, batch: int) -> "WaveNetStepper":
        """A position-by-position view of :meth:`outputs` for ``batch`` items (see :class:`WaveNetStepper`)."""
        return WaveNetStepper(self, batch)


def _taps(conv: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A kernel-2 convolution's weights as two ``(in, out)`` matrices (older tap, newer tap) and its bias."""
    w = conv.weight.detach()
    assert conv.bias is not None
    return w[:, :, 0].t().contiguous(), w[:, :, 1].t().contiguous(), conv.bias.detach()


def _one_by_one(conv: nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x1 convolution as an ``(in, out)`` matrix and its bias."""
    assert conv.bias is not None
    return conv.weight.detach()[:, :, 0].t().contiguous(), conv.bias.detach()


class WaveNetStepper:
    """The outputs of position ``d`` for a batch, given the pixels before it; :meth:`put` adds pixel ``d``.

    Each layer keeps a queue of its last ``dilation`` inputs (Fast WaveNet), so a step is one matrix
    product per layer on the batch's current column: the same sums as the parallel pass (exact for the
    exact twin, whose every product and sum is exact in float64)."""

    def __init__(self, model: WaveNet, batch: int) -> None:
        self.model, self.A = model, model.arith
        dt = model.position.dtype
        c = model.config.channels
        self.inp = _taps(model.inp)
        self.layers = [(_taps(conv), _one_by_one(res), _one_by_one(sk))  # type: ignore[arg-type]
                       for conv, res, sk in zip(model.dilated, model.res, model.skips)]
        self.head = _one_by_one(model.out1), _one_by_one(model.out2)
        self.position = self.A.lin(model.position.detach()).t().contiguous()  # (D, K)
        self.prev = [torch.zeros(batch, 1, dtype=dt), torch.zeros(batch, 1, dtype=dt)]  # pixels d-2, d-1
        self.queues = [torch.zeros(d, batch, c, dtype=dt) for d in model.config.dilations]  # inputs d-k .. d-1
        self.heads = [0] * len(self.queues)  # the queue slot holding the input of position d - dilation

    def outputs(self, d: int) -> torch.Tensor:
        """``(batch, K)`` outputs of position ``d``."""
        A = self.A
        w0, w1, b = self.inp
        h = A.lin(torch.addmm(b, self.prev[0], w0) + self.prev[1] @ w1)
        skip: Any = None
        for i, (((v0, v1, vb), (rw, rb), (sw, sb)), q) in enumerate(zip(self.layers, self.queues)):
            slot = self.heads[i]
            old = q[slot].clone()
            q[slot] = h
            self.heads[i] = (slot + 1) % len(q)
            z = A.tanh_gate(A.lin(torch.addmm(vb, old, v0) + h @ v1).unsqueeze(2)).squeeze(2)
            h = A.add(h, A.lin(torch.addmm(rb, z, rw)))
            part = A.lin(torch.addmm(sb, z, sw))
            skip = part if skip is None else A.add(skip, part)
        (o1w, o1b), (o2w, o2b) = self.head
        o = A.lin(torch.addmm(o1b, A.relu(skip), o1w))
        return A.add(A.lin(torch.addmm(o2b, A.relu(o), o2w)), self.position[d])

    def logits(self, d: int) -> torch.Tensor:
        """``(batch,)`` logits of ``p(x_d = 1 | x_<d)`` (binary models)."""
        return self.outputs(d)[:, 0]

    def params(self, d: int) -> torch.Tensor:
        """``(batch, 10M)`` mixture parameters of position ``d`` on the ``2^-16`` grid (gray models)."""
        return self.model.mixture_params(self.outputs(d), grid=True)

    def put(self, d: int, x: torch.Tensor) -> None:
        """Pixel ``d`` of every item (0/1, or 0..255)."""
        v = self.A.input(self.model.inputs(x)).reshape(-1, 1)
        self.prev = [self.prev[1], v]
