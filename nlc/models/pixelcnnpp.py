"""PixelCNN++ with a row-cached vertical stream and a per-pixel horizontal stream.

Architecture (Salimans et al. 2017, arranged so decoding is cheap):

* **Vertical stream** ``u``: a U-net of gated resnets over ``levels`` resolutions
  (down-sampling pass, then up-sampling pass with shortcut connections from the
  first pass), built from down-shifted convolutions after a one-row shift, so the
  features of row ``r`` depend on image rows ``< r`` only. It is evaluated one row
  at a time with :class:`~nlc.models.rowgraph.RowOps` when coding.
* **Horizontal stream** ``h``: at full resolution, gated resnets with ``1 x 2``
  causal kernels over the current row, conditioned on ``u`` at the same position;
  its input reads the three pixels to the left. When coding it runs one pixel
  at a time, caching one column per layer.
* **Skip**: a linear map from the causal neighbourhood (W, WW, N, NN, NW, NE
  and their absolute differences) straight to the mixture parameters, started
  as the classical predictor ``0.75 W + 0.75 N - 0.5 NW``. It makes the model
  useful from the first step; the streams learn what it misses.
* **Head**: a mixture of ``mixtures`` discretized logistics with the linear
  dependence of G on R and of B on R, G (:mod:`nlc.models.mixture`).

The input has a fourth channel of ones so the network sees where the image
(or tile) ends; outside it everything is zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import mixture
from .layers import (
    DownsampleConv2d,
    DownShiftedConv2d,
    GatedResnet,
    Nin,
    RightShiftedConv1d,
    UpsampleConvT2d,
)
from .rowgraph import FullOps, RowOps

IN_CHANNELS = 4  # R, G, B and the ones channel
LEFT_FEATURES = 14  # W, WW (4 channels each), |W-NW|, |W-WW| (RGB)
ABOVE_FEATURES = 25  # N, NN, NW, NE (4 each), |N-NW|, |N-NE|, |N-NN| (RGB)


def _shift(x: torch.Tensor, down: int, right: int) -> torch.Tensor:
    """``out[..., r, c] = x[..., r - down, c - right]`` with zeros outside (``right`` may be -1)."""
    h, w = x.shape[-2:]
    x = F.pad(x, (max(right, 0), max(-right, 0), down, 0))
    return x[..., :h, max(-right, 0) : max(-right, 0) + w] if right < 0 else x[..., :h, :w]


def neighbour_features(x4: torch.Tensor) -> torch.Tensor:
    """Causal neighbourhood features of every pixel, ``(B, 4, H, W) -> (B, 39, H, W)``.

    Order: the 14 left features, then the 25 above features (see the constants).
    """
    w, ww = _shift(x4, 0, 1), _shift(x4, 0, 2)
    n, nn_, nw, ne = _shift(x4, 1, 0), _shift(x4, 2, 0), _shift(x4, 1, 1), _shift(x4, 1, -1)
    rgb = slice(0, 3)
    return torch.cat(
        [w, ww, (w - nw)[:, rgb].abs(), (w - ww)[:, rgb].abs(),
         n, nn_, nw, ne, (n - nw)[:, rgb].abs(), (n - ne)[:, rgb].abs(), (n - nn_)[:, rgb].abs()],
        dim=1,
    )


@dataclass(frozen=True)
class PixelCNNPPConfig:
    """Hyper-parameters of :class:`PixelCNNPP` (stored in the codec TOML)."""

    channels: int = 32
    levels: int = 3
    nr_resnet: int = 2
    h_layers: int = 3
    mixtures: int = 10
    dropout: float = 0.0


def _vresnet(c: int, aux: int, dropout: float) -> GatedResnet:
    return GatedResnet(DownShiftedConv2d(c, c), DownShiftedConv2d(c, 2 * c), c, aux=aux, dropout=dropout)


def _hresnet(c: int, dropout: float) -> GatedResnet:
    return GatedResnet(RightShiftedConv1d(c, c), RightShiftedConv1d(c, 2 * c), c, aux=c, dropout=dropout)


def _resnet(ops, blk: GatedResnet, x, a=None):
    """A gated resnet written against an ``ops`` backend (see :mod:`nlc.models.rowgraph`)."""
    c = ops.conv(blk.conv1, ops.elu(x))
    if a is not None:
        c = ops.add(c, ops.nin(blk.aux, ops.elu(a)))
    c = ops.conv(blk.conv2, ops.dropout(blk.dropout, ops.elu(c)))
    return ops.gate(x, c)


class PixelCNNPP(nn.Module):
    """The PixelCNN++ likelihood model; see the module docstring."""

    def __init__(self, config: PixelCNNPPConfig = PixelCNNPPConfig()) -> None:
        super().__init__()
        self.config = config
        c, d = config.channels, config.dropout
        self.u_in = DownShiftedConv2d(IN_CHANNELS, c)
        self.up_blocks = nn.ModuleList(
            nn.ModuleList(_vresnet(c, 0, d) for _ in range(config.nr_resnet)) for _ in range(config.levels)
        )
        self.downsample = nn.ModuleList(DownsampleConv2d(c, c) for _ in range(config.levels - 1))
        self.down_blocks = nn.ModuleList(
            nn.ModuleList(_vresnet(c, c, d) for _ in range(config.nr_resnet + 1)) for _ in range(config.levels)
        )
        self.upsample = nn.ModuleList(UpsampleConvT2d(c, c) for _ in range(config.levels - 1))
        self.h_in = RightShiftedConv1d(IN_CHANNELS, c, k=3, shift=True)
        self.h_u = Nin(c, c)
        self.h_blocks = nn.ModuleList(_hresnet(c, d) for _ in range(config.h_layers))
        self.head = Nin(c, mixture.num_params(config.mixtures))
        self.skip = nn.Linear(LEFT_FEATURES + ABOVE_FEATURES, mixture.num_params(config.mixtures))
        self._init_skip()

    def _init_skip(self) -> None:
        """Start as a classical predictor: means 0.75 W + 0.75 N - 0.5 NW, narrow scales, zero head."""
        m = self.config.mixtures
        w = torch.zeros_like(self.skip.weight)
        b = torch.zeros_like(self.skip.bias)
        for ch in range(3):
            rows = slice(m + ch * 3 * m, m + ch * 3 * m + m)
            w[rows, ch] = 0.75  # W
            w[rows, LEFT_FEATURES + ch] = 0.75  # N
            w[rows, LEFT_FEATURES + 8 + ch] = -0.5  # NW
            b[m + ch * 3 * m + m : m + ch * 3 * m + 2 * m] = -3.0  # log-scales
        with torch.no_grad():
            self.skip.weight.copy_(w)
            self.skip.bias.copy_(b)
            self.head.lin.weight.zero_()
            self.head.lin.bias.zero_()

    # -- topology ------------------------------------------------------------
    def vertical(self, ops, x):
        """The vertical U-net on an ``ops`` backend; features at row r see rows < r."""
        u = ops.down_shift(ops.conv(self.u_in, x))
        skips = [u]
        levels = self.config.levels
        for lvl in range(levels):
            for blk in self.up_blocks[lvl]:
                u = _resnet(ops, blk, u)
                skips.append(u)
            if lvl < levels - 1:
                u = ops.conv(self.downsample[lvl], u)
                skips.append(u)
        for lvl in reversed(range(levels)):
            for blk in self.down_blocks[lvl]:
                u = _resnet(ops, blk, u, skips.pop())
            if lvl > 0:
                u = ops.up(self.upsample[lvl - 1], u, skips[-1])
        return u

    # -- parallel evaluation ---------------------------------------------------
    @staticmethod
    def with_ones(x: torch.Tensor) -> torch.Tensor:
        """Append the ones channel to ``(B, 3, H, W)`` input in ``[-1, 1]``."""
        return torch.cat([x, torch.ones_like(x[:, :1])], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mixture parameters for every pixel, ``(B, 3, H, W) -> (B, 10*M, H, W)``."""
        return self.forward_x4(self.with_ones(x))

    def forward_x4(self, x4: torch.Tensor) -> torch.Tensor:
        """Like :meth:`forward` on input that already has the ones channel (zero outside the image)."""
        u = self.vertical(FullOps(), x4)
        eu = F.elu(u)
        h = self.h_in(x4) + self.h_u(eu)
        for blk in self.h_blocks:
            h = blk(h, u)
        return self.head(F.elu(h)) + torch.movedim(self.skip(torch.movedim(neighbour_features(x4), 1, -1)), -1, 1)

    def log_likelihood(self, x: torch.Tensor, channels: int = 3) -> torch.Tensor:
        """Per-pixel log-likelihood in nats of ``(B, 3, H, W)`` input in ``[-1, 1]``."""
        return mixture.log_likelihood(x, self(x), self.config.mixtures, channels)

    def stepper(self, batch: int, height: int, width: int) -> "PixelStepper":
        """An incremental evaluator for coding ``batch`` tiles of ``height x width``."""
        return PixelStepper(self, batch, height, width)

    def hyperparameters(self) -> dict:
        """The config as a plain dict."""
        return asdict(self.config)


class PixelStepper:
    """Evaluates :class:`PixelCNNPP` one pixel at a time in raster order.

    Pixels enter through :meth:`fill` (an encoder may load the whole image up
    front: nothing after the current pixel is read) or :meth:`put` (a decoder
    adds each pixel once decoded). Call :meth:`start_row` once per row, then
    :meth:`params` for ``c = 0, 1, ...``; pixel ``(r, c)`` may only be asked for
    once every pixel before it is in.
    """

    TOP, LEFT = 2, 3  # zero rows above and columns left of the image in the buffer

    @torch.no_grad()
    def __init__(self, model: PixelCNNPP, batch: int, height: int, width: int) -> None:
        self.model, self.batch, self.width = model, batch, width
        self.device = next(model.parameters()).device
        t, l = self.TOP, self.LEFT
        # (B, 4, H + 2, W + 4): two zero rows on top, three zero columns left, one right.
        self.x = torch.zeros(batch, IN_CHANNELS, height + t, width + l + 1, device=self.device)
        ops = RowOps(batch, device=self.device)
        src = ops.source(lambda r: self.x[:, :, r + t, l : l + width], IN_CHANNELS, width)
        self.u_rows = model.vertical(ops, src)
        self.w_in, self.b_in = model.h_in.matrix()
        self.blocks = [(b.conv1.matrix(), b.conv2.matrix()) for b in model.h_blocks]
        w = model.skip.weight
        self.skip_left = w[:, :LEFT_FEATURES].t().contiguous()
        self.skip_above = w[:, LEFT_FEATURES:].t().contiguous()
        self.zero = torch.zeros(batch, model.config.channels, device=self.device)

    @torch.no_grad()
    def fill(self, x4: torch.Tensor) -> None:
        """Load ``(B, 4, H, W)`` input (RGB in ``[-1, 1]`` and the ones channel)."""
        t, l = self.TOP, self.LEFT
        self.x[:, :, t:, l : l + self.width] = x4

    @torch.no_grad()
    def put(self, index: torch.Tensor, r: int, c: int, rgb: torch.Tensor) -> None:
        """Set pixel ``(r, c)`` of the tiles ``index`` to ``rgb`` ``(n, 3)`` in ``[-1, 1]``."""
        self.x[index, :3, r + self.TOP, c + self.LEFT] = rgb

    @torch.no_grad()
    def start_row(self, r: int) -> None:
        """Compute everything of row ``r`` that depends on the rows above only."""
        m, t, l, w = self.model, self.TOP, self.LEFT, self.width
        eu = F.elu(self.u_rows.row(r))  # (B, C, W)
        self.r = r
        self.hu = m.h_u(eu).transpose(1, 2).contiguous()  # (B, W, C)
        self.aux = [blk.aux(eu).transpose(1, 2).contiguous() for blk in m.h_blocks]
        self.prev = [[self.zero, self.zero] for _ in m.h_blocks]
        x = self.x
        n = x[:, :, r + t - 1, l : l + w]
        nn_ = x[:, :, r + t - 2, l : l + w]
        nw = x[:, :, r + t - 1, l - 1 : l - 1 + w]
        ne = x[:, :, r + t - 1, l + 1 : l + 1 + w]
        above = torch.cat([n, nn_, nw, ne, (n - nw)[:, :3].abs(), (n - ne)[:, :3].abs(), (n - nn_)[:, :3].abs()], 1)
        self.nw = nw.transpose(1, 2).contiguous()  # (B, W, 4)
        self.above = torch.addmm(m.skip.bias, above.transpose(1, 2).reshape(-1, ABOVE_FEATURES),
                                 self.skip_above).view(self.batch, w, -1)  # (B, W, P)

    def release(self) -> None:
        """Drop the row caches now (their closures refer back to this stepper, a reference cycle)."""
        self.u_rows = self.above = self.aux = self.hu = self.prev = None

    @torch.no_grad()
    def params(self, c: int) -> torch.Tensor:
        """Mixture parameters ``(B, 10*M)`` of pixel ``(r, c)``."""
        row = self.x[:, :, self.r + self.TOP]
        cl = c + self.LEFT
        window = row[:, :, cl - 3 : cl].transpose(1, 2).reshape(self.batch, -1)
        h = torch.addmm(self.b_in, window, self.w_in) + self.hu[:, c]
        for i, ((w1, b1), (w2, b2)) in enumerate(self.blocks):
            prev = self.prev[i]
            e = F.elu(h)
            c1 = F.elu(torch.addmm(b1, torch.cat([prev[0], e], 1), w1) + self.aux[i][:, c])
            c2 = torch.addmm(b2, torch.cat([prev[1], c1], 1), w2)
            a, g = c2.chunk(2, dim=1)
            h = h + a * torch.sigmoid(g)
            prev[0], prev[1] = e, c1
        wp, wwp = row[:, :, cl - 1], row[:, :, cl - 2]
        left = torch.cat([wp, wwp, (wp - self.nw[:, c])[:, :3].abs(), (wp - wwp)[:, :3].abs()], 1)
        return self.model.head(F.elu(h)) + self.above[:, c] + left @ self.skip_left
