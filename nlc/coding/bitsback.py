"""Bits-back ANS (Townsend et al. 2019) for latent-variable models, written as push/pop pairs.

Every codec here works on an :class:`~nlc.coding.coders.AnsStack` and has two
halves that undo each other: ``push`` (encode) and ``pop`` (decode). The pieces:

- :class:`LatentGrid` codes latent values on a fixed uniform grid under a
  Gaussian (constriction's ``QuantizedGaussian``), as prior or as posterior;
- :class:`PixelCodec` codes images under a model's staged likelihood;
- :class:`HierarchicalCodec` composes them into BB-ANS (one latent layer) and
  Bit-Swap (several layers, interleaved so each layer's bits come back before
  the next is sampled);
- :class:`VRNNCodec` composes them per time step of a variational RNN.

Bits-back encoding of an item *pops* its latent from the stack under the
approximate posterior (taking bits off, which the decoder gives back when it
pushes the latent again), then pushes the data and the latent under the prior.
The net cost of an item is −log p(x|z) − log p(z) + log q(z|x) with
discretized densities: its −ELBO.

:func:`encode_chain` and :func:`decode_chain` chain batches of items through
one stack so that the initial bits are paid once per file: the first item is
coded without bits-back (its latent is the posterior's mode, nothing is
popped), on the grid of :data:`START_STEPS` that codes it in the fewest bits
(:func:`start_grid`), and so are the next ones until the stack holds enough
bits to borrow; then batch sizes grow as the stack fills.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np
import torch

from ..models.heads import split_logistic
from .coders import AnsStack, CoderError
from .logistic_mixture import mixture_tables

Gaussian = tuple[torch.Tensor, torch.Tensor]
MAX_BATCH = 256
# Latent grid steps tried for the chain's start items, which have no bits to borrow and pay
# for their latents in full: a coarse grid makes a latent cheap, a fine one keeps it exact.
START_STEPS = tuple(2.0**e for e in range(3, -7, -1))


@dataclass(frozen=True)
class LatentGrid:
    """Latent values ``k * step`` for integers ``|k| <= bound / step``, coded under Gaussians.

    ``None`` as a distribution means the standard normal prior.
    """

    step: float = 2.0**-6
    # constriction's QuantizedGaussian gives every bin of the range at least 2^-24, so a
    # posterior sample lands far from its Gaussian with probability about bins * 2^-24 and
    # then costs many bits under the prior: fewer bins, fewer such samples (bench/latent_range.py).
    # A model whose latents need more sets ``latent_bound`` (see :func:`model_grid`).
    bound: float = 8.0

    @property
    def half(self) -> int:
        """Largest grid index."""
        return int(round(self.bound / self.step))

    def values(self, idx: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        """Latent values of grid indices, shaped ``shape``."""
        return torch.from_numpy(idx.astype(np.float32) * np.float32(self.step)).view(shape)

    def _scaled(self, dist: Gaussian | None, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        if dist is None:
            n = int(np.prod(shape))
            return np.zeros(n), np.full(n, 1.0 / self.step)
        mean, log_std = dist
        m = mean.detach().double().cpu().numpy().reshape(-1) / self.step
        return np.clip(m, -self.half, self.half), np.exp(log_std.detach().double().cpu().numpy().reshape(-1)) / self.step

    def push(self, stack: AnsStack, idx: np.ndarray, dist: Gaussian | None) -> None:
        """Push grid indices under ``dist``."""
        m, s = self._scaled(dist, idx.shape)
        stack.encode_gaussian(idx.reshape(-1), m, s, self.half)

    def pop(self, stack: AnsStack, dist: Gaussian | None, shape: tuple[int, ...]) -> np.ndarray:
        """Pop grid indices of ``shape`` under ``dist``."""
        m, s = self._scaled(dist, shape)
        return stack.decode_gaussian(m, s, self.half).reshape(shape)

    def mode(self, dist: Gaussian) -> np.ndarray:
        """The grid index nearest each mean (used where there are no bits to borrow)."""
        m, _ = self._scaled(dist, tuple(dist[0].shape))
        return np.rint(m).astype(np.int64).reshape(tuple(dist[0].shape))


def _pixel_tables(params: torch.Tensor, bits: int, mixtures: int) -> np.ndarray:
    """Per-pixel coding distributions from ``(n, C)`` parameters: 256-bin tables or P(1)."""
    if bits == 1:
        return torch.sigmoid(params[:, 0].double()).clamp(2.0**-20, 1 - 2.0**-20).numpy()
    return mixture_tables(*split_logistic(params, mixtures)).numpy()


def push_symbols(stack: AnsStack, symbols: np.ndarray, dist: np.ndarray, bits: int) -> None:
    """Push pixels under tables (8-bit) or Bernoulli probabilities (1-bit)."""
    if bits == 1:
        stack.encode_bernoulli(symbols, dist)
    else:
        stack.encode(symbols, dist)


def pop_symbols(stack: AnsStack, dist: np.ndarray, bits: int) -> np.ndarray:
    """Pop pixels: the inverse of :func:`push_symbols`."""
    return stack.decode_bernoulli(dist) if bits == 1 else stack.decode(dist)


class PixelCodec:
    """Images ``(B, 28, 28)`` under ``model.obs`` (a :class:`~nlc.models.staged.StagedLikelihood`)
    given decoder features; stages are pushed last-first so that they pop first-first."""

    def __init__(self, obs: Any) -> None:
        self.obs = obs

    def _stage_dist(self, feats: torch.Tensor, x: torch.Tensor, s: int) -> tuple[torch.Tensor, np.ndarray]:
        p = self.obs.params(feats, x, s)
        mask = self.obs.masks[s]
        sel = p.permute(0, 2, 3, 1)[:, mask]  # (B, n_s, C)
        return mask, _pixel_tables(sel.reshape(-1, sel.shape[-1]), self.obs.bits, self.obs.mixtures)

    def push(self, stack: AnsStack, feats: torch.Tensor, x: torch.Tensor) -> None:
        """Push images ``x`` (integer tensor)."""
        for s in reversed(range(self.obs.stages)):
            mask, dist = self._stage_dist(feats, x, s)
            push_symbols(stack, x[:, mask].reshape(-1).numpy(), dist, self.obs.bits)

    def pop(self, stack: AnsStack, feats: torch.Tensor) -> torch.Tensor:
        """Pop ``len(feats)`` images."""
        x = torch.zeros(feats.shape[0], *self.obs.masks.shape[1:], dtype=torch.int64)
        for s in range(self.obs.stages):
            mask, dist = self._stage_dist(feats, x, s)
            vals = pop_symbols(stack, dist, self.obs.bits)
            x[:, mask] = torch.from_numpy(vals.astype(np.int64)).view(x.shape[0], -1)
        return x


class ItemCodec(Protocol):
    """A codec for a batch of items on an ANS stack, with or without bits-back."""

    def push(self, stack: AnsStack, x: torch.Tensor, bits_back: bool = True) -> None:
        """Encode the batch ``x``."""

    def pop(self, stack: AnsStack, n: int, bits_back: bool = True) -> torch.Tensor:
        """Decode a batch of ``n`` items."""


class HierarchicalCodec:
    """BB-ANS for a chain ``p(z_L) p(z_{L-1}|z_L) ... p(x|z_1)`` with ``q(z_1|x) q(z_2|z_1) ...``, in Bit-Swap order.

    Encoding a batch: for each layer ``i`` from the bottom, pop ``z_i`` under
    ``q(z_i|below)`` and push what is below (``x`` under ``p(x|z_1)``, or
    ``z_{i-1}`` under ``p(z_{i-1}|z_i)``); finally push the top latent under the
    standard normal. With one layer this is BB-ANS; with several, each layer's
    sample is paid for with bits the layer below has just pushed (Bit-Swap).
    The model provides ``layers``, ``latent_shapes``, ``posterior(i, below)``,
    ``prior(i, above)`` (``None`` = standard normal), ``features(z_1)`` and ``obs``.
    """

    def __init__(self, model: Any, grid: LatentGrid = LatentGrid()) -> None:
        self.model, self.grid = model, grid
        self.pixels = PixelCodec(model.obs)

    def _shapes(self, n: int) -> list[tuple[int, ...]]:
        return [(n, *s) for s in self.model.latent_shapes]

    @torch.no_grad()
    def push(self, stack: AnsStack, x: torch.Tensor, bits_back: bool = True) -> None:
        """Encode images ``x`` ``(B, 28, 28)``."""
        shapes = self._shapes(x.shape[0])
        below_val = x  # what layer i's posterior reads, and its grid indices (latents only)
        below_idx: np.ndarray | None = None
        for i in range(self.model.layers):
            q = self.model.posterior(i, below_val)
            z = self.grid.pop(stack, q, shapes[i]) if bits_back else self.grid.mode(q)
            z_val = self.grid.values(z, shapes[i])
            if i == 0:
                self.pixels.push(stack, self.model.features(z_val), x)
            else:
                assert below_idx is not None  # the layer below's latents
                self.grid.push(stack, below_idx, self.model.prior(i - 1, z_val))
            below_val, below_idx = z_val, z
        assert below_idx is not None  # the top layer's latents
        self.grid.push(stack, below_idx, None)

    @torch.no_grad()
    def pop(self, stack: AnsStack, n: int, bits_back: bool = True) -> torch.Tensor:
        """Decode ``n`` images."""
        shapes = self._shapes(n)
        z = self.grid.pop(stack, None, shapes[-1])
        for i in reversed(range(self.model.layers)):
            z_val = self.grid.values(z, shapes[i])
            if i == 0:
                below_idx, below_val = None, self.pixels.pop(stack, self.model.features(z_val))
            else:
                below_idx = self.grid.pop(stack, self.model.prior(i - 1, z_val), shapes[i - 1])
                below_val = self.grid.values(below_idx, shapes[i - 1])
            if bits_back:
                self.grid.push(stack, z, self.model.posterior(i, below_val))
            if below_idx is not None:  # (None after the pixels: the loop ends)
                z = below_idx
        return below_val


class VRNNCodec:
    """Bits-back for a VRNN: one latent per row, every latent's bits given back.

    Encoding pops ``z_1 .. z_T`` in time order under ``q(z_t|x_t, h_{t-1})``
    (the state ``h`` needs the earlier latents), then pushes, from the last row
    to the first, ``x_t`` under ``p(x_t|z_t, h_{t-1})`` and ``z_t`` under
    ``p(z_t|h_{t-1})``. Decoding pops prior latent and row in time order, then
    pushes the latents back under the posterior, last row first.
    """

    def __init__(self, model: Any, grid: LatentGrid = LatentGrid()) -> None:
        self.model, self.grid = model, grid
        self.bits, self.mixtures = model.config.bits, model.config.mixtures

    def _row_dist(self, h: torch.Tensor, z_val: torch.Tensor) -> np.ndarray:
        p = self.model.obs_params(h, z_val).permute(0, 2, 1)
        return _pixel_tables(p.reshape(-1, p.shape[-1]), self.bits, self.mixtures)

    @torch.no_grad()
    def push(self, stack: AnsStack, x: torch.Tensor, bits_back: bool = True) -> None:
        """Encode images ``x`` ``(B, rows, width)``."""
        n, rows = x.shape[0], x.shape[1]
        shape = (n, self.model.config.latent)
        h = self.model.init_state(n)
        steps = []
        for t in range(rows):
            q = self.model.posterior(h, x[:, t])
            z = self.grid.pop(stack, q, shape) if bits_back else self.grid.mode(q)
            z_val = self.grid.values(z, shape)
            steps.append((h, z, z_val))
            h = self.model.step(h, x[:, t], z_val)
        for t in reversed(range(rows)):
            h, z, z_val = steps[t]
            push_symbols(stack, x[:, t].reshape(-1).numpy(), self._row_dist(h, z_val), self.bits)
            self.grid.push(stack, z, self.model.prior(h))

    @torch.no_grad()
    def pop(self, stack: AnsStack, n: int, bits_back: bool = True, rows: int = 28) -> torch.Tensor:
        """Decode ``n`` images."""
        shape = (n, self.model.config.latent)
        h = self.model.init_state(n)
        x = torch.zeros(n, rows, self.model.config.width, dtype=torch.int64)
        steps = []
        for t in range(rows):
            z = self.grid.pop(stack, self.model.prior(h), shape)
            z_val = self.grid.values(z, shape)
            x[:, t] = torch.from_numpy(pop_symbols(stack, self._row_dist(h, z_val), self.bits).astype(np.int64)).view(n, -1)
            steps.append((h, z))
            h = self.model.step(h, x[:, t], z_val)
        if bits_back:
            for t in reversed(range(rows)):
                h, z = steps[t]
                self.grid.push(stack, z, self.model.posterior(h, x[:, t]))
        return x


class IAFCodec:
    """BB-ANS for a VAE whose posterior is an inverse autoregressive flow (:class:`nlc.models.iaf.IAFVAE`).

    The posterior is a Gaussian per latent dimension given the dimensions before it, so encoding pops the
    dimensions one at a time in order (each conditional needs the values popped before it), then pushes
    the pixels under ``p(x|z)`` and the latent under the standard normal. Decoding pops latent and pixels,
    recomputes the same conditionals from the decoded latent in the same order, and pushes the dimensions
    back last first.
    """

    MIN_STD = 1e-3  # a conditional's std as coded (both sides clamp alike)

    def __init__(self, model: Any, grid: LatentGrid = LatentGrid()) -> None:
        self.model, self.grid = model, grid
        self.pixels = PixelCodec(model.obs)

    def _dist(self, mean: torch.Tensor, std: torch.Tensor) -> Gaussian:
        return mean, torch.log(std.clamp_min(self.MIN_STD))

    @torch.no_grad()
    def push(self, stack: AnsStack, x: torch.Tensor, bits_back: bool = True) -> None:
        """Encode images ``x`` ``(B, 28, 28)``."""
        n, shape = x.shape[0], (x.shape[0], *self.model.latent_shapes[0])
        idx = np.zeros((n, self.model.dims), np.int64)

        def pick(i: int, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
            dist = self._dist(mean, std)
            idx[:, i] = self.grid.pop(stack, dist, (n,)) if bits_back else self.grid.mode(dist)
            return self.grid.values(idx[:, i], (n,))

        self.model.conditionals(x, pick=pick)
        self.pixels.push(stack, self.model.features(self.grid.values(idx, shape)), x)
        self.grid.push(stack, idx, None)

    @torch.no_grad()
    def pop(self, stack: AnsStack, n: int, bits_back: bool = True) -> torch.Tensor:
        """Decode ``n`` images."""
        shape = (n, *self.model.latent_shapes[0])
        idx = self.grid.pop(stack, None, shape).reshape(n, -1)
        z_val = self.grid.values(idx, shape)
        x = self.pixels.pop(stack, self.model.features(z_val))
        if bits_back:
            means, stds, _ = self.model.conditionals(x, values=z_val.reshape(n, -1))
            for i in reversed(range(idx.shape[1])):
                self.grid.push(stack, idx[:, i], self._dist(means[:, i], stds[:, i]))
        return x


def model_grid(model: torch.nn.Module) -> LatentGrid:
    """The latent grid a model is coded on: the default, on the range ``model.latent_bound`` where it has one."""
    return LatentGrid(bound=getattr(model, "latent_bound", LatentGrid.bound))


def make_item_codec(model: torch.nn.Module, grid: LatentGrid | None = None) -> ItemCodec:
    """The bits-back codec that fits a model (IAF VAE, VRNN or layered VAE), on ``grid`` or :func:`model_grid`."""
    grid = grid or model_grid(model)
    if hasattr(model, "conditionals"):
        return IAFCodec(model, grid)
    return VRNNCodec(model, grid) if hasattr(model, "init_state") else HierarchicalCodec(model, grid)


def start_grid(model: torch.nn.Module, item: np.ndarray, grid: LatentGrid | None = None) -> LatentGrid:
    """The grid of :data:`START_STEPS` (on the range of ``grid``, else :func:`model_grid`) on which ``item``
    costs the fewest bits when coded without bits-back (as the chain's start items are); ties go to the
    coarser grid."""
    grid = grid or model_grid(model)
    x = torch.from_numpy(np.asarray(item)[None].astype(np.int64))
    best, best_bits = grid, None
    for step in START_STEPS:
        candidate = LatentGrid(step, grid.bound)
        stack = AnsStack()
        make_item_codec(model, candidate).push(stack, x, bits_back=False)
        if best_bits is None or stack.num_valid_bits() < best_bits:
            best, best_bits = candidate, stack.num_valid_bits()
    return best


def borrowed_bits(codec: ItemCodec, item: np.ndarray, seed: int = 0) -> int:
    """Bits a bits-back push of ``item`` pops off the stack, measured on a scratch stack of random bits."""
    words = np.random.default_rng(seed).integers(1, 2**32, 4096, dtype=np.uint32)
    scratch = AnsStack(words.astype("<u4").tobytes())
    codec.push(scratch, torch.from_numpy(np.asarray(item)[None].astype(np.int64)), bits_back=True)
    return scratch.popped_bits


@dataclass
class ChainStats:
    """What a chained encode cost."""

    start_items: int  # items coded without bits-back at the start of the chain
    start_bits: int  # what they cost
    schedule: list[int]


def encode_chain(codec: ItemCodec, items: np.ndarray, max_batch: int = MAX_BATCH,
                 progress: Callable[[int], None] | None = None,
                 start_codec: ItemCodec | None = None) -> tuple[bytes, ChainStats]:
    """Encode all ``items`` ``(N, H, W)`` into one ANS message.

    Bits-back needs bits on the stack to borrow, so the chain starts with items
    coded one at a time without bits-back (by ``start_codec`` when given: the
    same model on a coarser latent grid, see :func:`start_grid`) until the stack
    holds what one item borrows (a pop from a stack that runs dry gives the
    lowest latent values, which are legal but costly). Later batches grow while
    the stack holds enough bits to pay for their posterior samples (estimated
    from what earlier batches borrowed, with a 50% margin). Returns the message and
    the batch schedule, which the decoder needs with the number of start items.
    """
    stack = AnsStack()
    n_items = len(items)
    schedule: list[int] = []
    start_items = start_bits = 0
    need = float(borrowed_bits(codec, items[0])) if n_items else 0.0
    i = 0
    while i < n_items:
        if i == start_items and stack.num_valid_bits() < need + 64:
            n, bits_back, coder = 1, False, start_codec or codec
        else:
            n = int(max(1, min(max_batch, n_items - i, stack.num_valid_bits() // max(1.0, 1.5 * need))))
            bits_back, coder = True, codec
        before, popped = stack.num_valid_bits(), stack.popped_bits
        coder.push(stack, torch.from_numpy(items[i : i + n].astype(np.int64)), bits_back=bits_back)
        if bits_back:
            need = max(need, (stack.popped_bits - popped) / n)
        else:
            start_items, start_bits = start_items + 1, start_bits + stack.num_valid_bits() - before
        schedule.append(n)
        i += n
        if progress:
            progress(n)
    data = stack.to_bytes() if n_items else b""
    return data, ChainStats(start_items, start_bits, schedule)


def decode_chain(codec: ItemCodec, data: bytes, schedule: list[int], start_items: int,
                 progress: Callable[[int], None] | None = None,
                 start_codec: ItemCodec | None = None) -> np.ndarray:
    """Decode the items of :func:`encode_chain` (returned in their original order); ``start_codec``
    and ``start_items`` must be what the encoder used."""
    stack = AnsStack(data)
    batches = []
    for k in reversed(range(len(schedule))):
        plain = k < start_items
        coder = (start_codec or codec) if plain else codec
        batches.append(coder.pop(stack, schedule[k], bits_back=not plain).numpy())
        if progress:
            progress(schedule[k])
    if not stack.is_empty():
        raise CoderError("data left on the stack after the last item (corrupted or wrong model)")
    if not batches:
        return np.zeros((0, 28, 28), np.uint8)
    return np.concatenate(batches[::-1]).astype(np.uint8)
