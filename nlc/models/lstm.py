"""char-RNN: an LSTM over 28x28 images as a 784-step sequence in raster order (Karpathy's char-RNN, the
lecture's pixel LSTM): a Bernoulli per pixel for binarized images, a discretized logistic mixture per pixel
(MADE's head layout) for gray levels.

Position ``d`` reads pixel ``d - 1`` (zero at the start) and, with ``location`` on, a one-hot encoding of its
own row and column appended to that input (the lecture's "location encoding": without it the network must
count positions in its state). One LSTM layer of ``hidden`` units; its output goes through a ReLU layer of
``head`` units to the pixel's outputs.

Training runs PyTorch's fused LSTM (``torch.lstm``, the kernel behind ``nn.LSTM``). Everything else is
written against an arithmetic ``A`` (:mod:`nlc.models.exact`): in the exact twin (:meth:`CharRNN.exact`:
weights of 14 significant bits, the input and recurrent layers sharing an exponent per gate so their sum is
exact, gates and ``tanh`` from correctly rounded tables, every product rounded to the ``2^-16`` grid) the
parallel pass and :meth:`CharRNN.stepper` — which carries ``(h, c)`` from one position to the next for a
whole batch — give the same outputs bit for bit, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .exact import FLOAT, make_exact
from .sequence import SequenceModel


@dataclass
class CharRNNConfig:
    """Hyper-parameters of :class:`CharRNN`."""

    bits: int = 1  # 1: binarized pixels (a Bernoulli each); 8: gray levels (a logistic mixture each)
    hidden: int = 128  # LSTM units
    head: int = 128  # ReLU units between the LSTM's output and the pixel's outputs
    location: bool = True  # one-hot row and column of the position appended to the input
    height: int = 28
    width: int = 28
    mixtures: int = 5  # logistic components per gray pixel


class CharRNN(SequenceModel):
    """Conditionals of binary or gray images in raster order from an LSTM's state."""

    exact_joint = (("ih", "hh"),)  # the input and recurrent layers' outputs are summed before rounding
    exact_input_limits = {"ih": 1.0, "hh": 1.0, "out1": 1.0}  # pixels in [-1, 1] and one-hots; |h| <= 1
    arith = FLOAT

    def __init__(self, config: CharRNNConfig) -> None:
        super().__init__()
        if config.bits not in (1, 8):
            raise ValueError("a char-RNN codes binarized (bits = 1) or gray (bits = 8) images")
        self.config = config
        n = config.hidden
        self.ih = nn.Linear(self.input_size, 4 * n)
        self.hh = nn.Linear(n, 4 * n)
        self.out1 = nn.Linear(n, config.head)
        self.out2 = nn.Linear(config.head, self.outputs_per_pixel)

    @property
    def input_size(self) -> int:
        """The previous pixel, then (with ``location``) one-hots of the row and the column."""
        return 1 + (self.config.height + self.config.width if self.config.location else 0)

    def location_codes(self) -> torch.Tensor:
        """``(D, H + W)`` one-hot row and column of every position (empty without ``location``)."""
        h, w = self.config.height, self.config.width
        dt = self.ih.weight.dtype
        if not self.config.location:
            return torch.zeros(h * w, 0, dtype=dt)
        rows = torch.eye(h, dtype=dt).repeat_interleave(w, 0)
        cols = torch.eye(w, dtype=dt).repeat(h, 1)
        return torch.cat([rows, cols], 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, input_size)`` inputs of every position: the previous pixel and the location codes."""
        A = self.arith
        v = A.input(self.inputs(x.reshape(len(x), -1)))
        prev = torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], 1)  # position d reads pixel d - 1
        loc = self.location_codes()
        return torch.cat([prev[..., None], loc[None].expand(len(x), -1, -1)], 2)

    def head_outputs(self, h: torch.Tensor) -> torch.Tensor:
        """A position's outputs from the LSTM's output ``h`` (any leading shape)."""
        A = self.arith
        return A.lin(self.out2(A.relu(A.lin(self.out1(h)))))

    def outputs(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, K)`` outputs for images ``x`` of shape ``(B, H, W)`` or ``(B, D)`` (values 0/1 or 0..255)."""
        A, n = self.arith, self.config.hidden
        feats = self.features(x)
        zero = feats.new_zeros(1, len(x), n)
        if not A.exact:
            weights = [self.ih.weight, self.hh.weight, self.ih.bias, self.hh.bias]
            h, _, _ = torch.lstm(feats, (zero, zero), weights, True, 1, 0.0, self.training, False, True)
            return self.head_outputs(h)
        pre_in = self.ih(feats)  # every position's input part at once; exact sums
        h, c, hs = zero[0], zero[0], []
        for d in range(feats.shape[1]):
            h, c = A.lstm_cell(A.lin(pre_in[:, d] + self.hh(h)), c)
            hs.append(h)
        return self.head_outputs(torch.stack(hs, 1))

    def exact(self) -> "CharRNN":
        """The exact twin: a float64 copy with fixed-point weights computing in exact arithmetic."""
        twin = make_exact(self)
        assert isinstance(twin, CharRNN)
        return twin

    def stepper(self, batch: int) -> "CharRNNStepper":
        """A position-by-position view of :meth:`outputs` for ``batch`` items (see :class:`CharRNNStepper`)."""
        return CharRNNStepper(self, batch)


class CharRNNStepper:
    """The outputs of position ``d`` for a batch, given the pixels before it; :meth:`put` adds pixel ``d``.

    Carries the LSTM's ``(h, c)``; a step is one product of the recurrent weights with ``h`` plus the
    previous pixel's column of the input weights and the position's location column sums (precomputed; all
    exact sums in the exact twin, so the parallel pass's numbers)."""

    def __init__(self, model: CharRNN, batch: int) -> None:
        self.model, self.A = model, model.arith
        w = model.ih.weight.detach()
        dt, n = w.dtype, model.config.hidden
        self.pixel = w[:, 0]
        self.bias = model.ih.bias.detach() + model.hh.bias.detach()
        self.location = model.location_codes() @ w[:, 1:].t()  # (D, 4n): one-hots pick weight columns
        self.recurrent = model.hh.weight.detach().t().contiguous()  # (n, 4n)
        self.h = torch.zeros(batch, n, dtype=dt)
        self.c = torch.zeros(batch, n, dtype=dt)
        self.prev = torch.zeros(batch, 1, dtype=dt)

    @torch.no_grad()
    def outputs(self, d: int) -> torch.Tensor:
        """``(batch, K)`` outputs of position ``d`` (steps must come in order ``0, 1, ...``)."""
        A = self.A
        pre = torch.addmm(self.bias + self.location[d], self.h, self.recurrent).addmm_(self.prev, self.pixel[None])
        self.h, self.c = A.lstm_cell(A.lin(pre), self.c)
        return self.model.head_outputs(self.h)

    def logits(self, d: int) -> torch.Tensor:
        """``(batch,)`` logits of ``p(x_d = 1 | x_<d)`` (binary models)."""
        return self.outputs(d)[:, 0]

    def params(self, d: int) -> torch.Tensor:
        """``(batch, 10M)`` mixture parameters of position ``d`` on the ``2^-16`` grid (gray models)."""
        return self.model.mixture_params(self.outputs(d), grid=True)

    def put(self, d: int, x: torch.Tensor) -> None:
        """Pixel ``d`` of every item (0/1, or 0..255)."""
        self.prev = self.A.input(self.model.inputs(x)).reshape(-1, 1)
