"""A compiled row-at-a-time vertical stream for an exact PixelCNN++ on a CPU.

The decoder evaluates the vertical U-net one row at a time
(:class:`~nlc.models.rowgraph.RowOps`): about a hundred small nodes per row,
each a few torch calls on ``(B, C, W)`` tensors, so for a batch of a few tiles
the calls' overhead costs more than their arithmetic, and it holds the GIL, so
two decoding threads wait on each other. Here the same network is written once
more through an ``ops`` backend, :class:`TapeOps`, which records the nodes
(kind, inputs, weights laid out channel-last) instead of computing; the lazy
evaluation order of :class:`~nlc.models.rowgraph.RowNode` is replayed once per
tile height into a list of ``(node, row)`` entries (:func:`schedule`); and
:func:`run_row` executes one output row's entries in a single compiled call that
releases the GIL.

The numbers are the torch path's, bit for bit: in exact arithmetic every sum of
products is exact in float64 (weights of 14 significant bits per output
channel on activations of the ``2^-16`` grid, checked by
:func:`~nlc.models.exact.make_exact`), so the order of the sums does not matter;
rounding to the grid is half to even and tables are read at truncated positions,
as :mod:`nlc.models.exact_steps` does (no fast-math). ``tests/models/test_vertical_kernel.py``
checks every row against the torch stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numba import njit

from .exact_steps import _clamp, _elu, _snap, lut_at

SOURCE, CONV, UP, NIN, ELU, ADD, GATE, SHIFT = range(8)
META = 10  # columns of a node's row in the program's ``meta`` table (see :class:`Program`)


@dataclass
class Node:
    """One recorded node: ``kind``, input node ids, channels and width of its rows, and its weights
    (channel-last: ``(kh, kw, cin, cout)`` for a convolution, ``(parity, kx, cin, cout)`` for the
    upsampling, ``(cin, cout)`` for a 1x1 projection)."""

    kind: int
    inputs: tuple[int, ...]
    channels: int
    width: int
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    kh: int = 0
    kw: int = 0
    stride: int = 1
    id: int = -1


def _array(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to(torch.float64).cpu().numpy())


class TapeOps:
    """An ``ops`` backend (as :class:`~nlc.models.rowgraph.RowOps`) that records nodes instead of computing."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def _add(self, node: Node) -> Node:
        node.id = len(self.nodes)
        self.nodes.append(node)
        return node

    def source(self, fn: Any, channels: int, width: int) -> Node:
        """The image rows (read from the stepper's pixel buffer by :func:`run_row`)."""
        return self._add(Node(SOURCE, (), channels, width))

    def conv(self, m: Any, x: Node) -> Node:
        """A down-shifted (possibly strided) convolution."""
        width = x.width if m.row_stride == 1 else (x.width + 1) // 2
        return self._add(Node(CONV, (x.id,), m.weight.shape[0], width, _array(m.weight.permute(2, 3, 1, 0)),
                              _array(m.bias), m.weight.shape[2], m.weight.shape[3], m.row_stride))

    def up(self, m: Any, x: Node, like: Node) -> Node:
        """The 2x2 stride-2 transposed convolution to ``like``'s width."""
        return self._add(Node(UP, (x.id,), m.weight.shape[1], like.width, _array(m.weight.permute(2, 3, 0, 1)),
                              _array(m.bias)))

    def nin(self, m: Any, x: Node) -> Node:
        """A 1x1 projection."""
        return self._add(Node(NIN, (x.id,), m.lin.out_features, x.width, _array(m.lin.weight.t()), _array(m.lin.bias)))

    def elu(self, x: Node) -> Node:
        """ELU."""
        return self._add(Node(ELU, (x.id,), x.channels, x.width))

    def add(self, x: Node, y: Node) -> Node:
        """Sum."""
        return self._add(Node(ADD, (x.id, y.id), x.channels, x.width))

    def gate(self, x: Node, c: Node) -> Node:
        """Gated residual ``x + a * sigmoid(b)``, ``(a, b)`` the halves of ``c``."""
        return self._add(Node(GATE, (x.id, c.id), x.channels, x.width))

    def tanh_gate(self, c: Node) -> Node:
        """Not used by PixelCNN++'s vertical stream."""
        raise NotImplementedError("the compiled vertical stream has no tanh gate")

    def dropout(self, m: Any, x: Node) -> Node:
        """Dropout is off when coding."""
        return x

    def down_shift(self, x: Node) -> Node:
        """Row ``r`` is the input's row ``r - 1``."""
        return self._add(Node(SHIFT, (x.id,), x.channels, x.width))


def _needs(node: Node, r: int) -> list[tuple[int, int]]:
    """The ``(node, row)`` pairs that row ``r`` of ``node`` reads, in :class:`RowOps`' order."""
    k = node.kind
    if k == SOURCE:
        return []
    if k == CONV:
        first = r * node.stride - node.kh + 1
        return [(node.inputs[0], first + dy) for dy in range(node.kh)]
    if k == UP:
        return [(node.inputs[0], r // 2)]
    if k == SHIFT:
        return [(node.inputs[0], r - 1)]
    if k == GATE:
        return [(node.inputs[1], r), (node.inputs[0], r)]
    return [(i, r) for i in node.inputs]


@dataclass
class Schedule:
    """Entries ``(node, row)`` in execution order; those of output row ``r`` are ``start[r]:start[r+1]``."""

    node: np.ndarray
    row: np.ndarray
    start: np.ndarray
    slots: np.ndarray  # rows each node's ring buffer holds (int64, per node)


def schedule(nodes: list[Node], outputs: list[int], height: int) -> Schedule:
    """Replay :class:`~nlc.models.rowgraph.RowNode`'s lazy evaluation (each row computed on first demand,
    the last two rows of a node kept) for rows ``0 .. height-1`` of ``outputs``, and give each node the
    fewest rows of ring buffer (1 to 4) that hold every row of it when it is read: most nodes are read
    only in the row that made them, and one row each halves the buffers' memory."""
    entries: list[tuple[int, int]] = []
    cache: list[set[int]] = [set() for _ in nodes]
    start = [0]

    def row(n: int, r: int) -> None:
        if r < 0 or r in cache[n]:
            return
        for m, k in _needs(nodes[n], r):
            row(m, k)
        entries.append((n, r))
        cache[n].add(r)
        cache[n].difference_update([k for k in cache[n] if k < r - 1])

    for r in range(height):
        for o in outputs:
            row(o, r)
        start.append(len(entries))
    slots = [1] * len(nodes)
    while (short := _short(nodes, outputs, entries, start, slots)) is not None:
        slots[short] += 1
        if slots[short] > 4:
            raise ValueError("the vertical stream's rows do not fit ring buffers of 4 rows")
    arr = np.array(entries, np.int64).reshape(-1, 2)
    return Schedule(np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1]), np.array(start, np.int64),
                    np.array(slots, np.int64))


def _short(nodes: list[Node], outputs: list[int], entries: list[tuple[int, int]], start: list[int],
           slots: list[int]) -> int | None:
    """The first node whose ring buffer of ``slots[node]`` rows has lost a row when an entry reads it (or,
    for an output, after its row's entries), or None if every read finds its row."""
    held = [[-1] * k for k in slots]
    for r in range(len(start) - 1):
        for n, k in entries[start[r] : start[r + 1]]:
            for m, j in _needs(nodes[n], k):
                if j >= 0 and held[m][j % slots[m]] != j:
                    return m
            held[n][k % slots[n]] = k
        for o in outputs:
            if held[o][r % slots[o]] != r:
                return o
    return None


@dataclass
class Program:
    """A recorded vertical stream: ``meta`` ``(nodes, META)`` int64 rows ``(kind, in0, in1, channels, width,
    weight offset, bias offset, kh, kw, stride)`` into the flat ``weights``; ``outputs`` the node ids
    whose rows :func:`run_row` hands out; schedules cached per height."""

    nodes: list[Node]
    meta: np.ndarray
    weights: np.ndarray
    outputs: list[int]
    schedules: dict[int, Schedule] = field(default_factory=dict)

    @classmethod
    def record(cls, nodes: list[Node], outputs: list[int]) -> "Program":
        """Lay out ``nodes`` for :func:`run_row`."""
        meta = np.zeros((len(nodes), META), np.int64)
        flat: list[np.ndarray] = []
        offset = 0
        for n in nodes:
            w_off = b_off = -1
            if n.weight is not None:
                assert n.bias is not None
                w_off, b_off = offset, offset + n.weight.size
                flat += [n.weight.reshape(-1), n.bias.reshape(-1)]
                offset += n.weight.size + n.bias.size
            ins = list(n.inputs) + [-1, -1]
            meta[n.id] = (n.kind, ins[0], ins[1], n.channels, n.width, w_off, b_off, n.kh, n.kw, n.stride)
        weights = np.concatenate(flat) if flat else np.zeros(0)
        return cls(nodes, meta, weights, outputs)

    def schedule(self, height: int) -> Schedule:
        """The entries for tiles of ``height`` rows (computed once per height)."""
        s = self.schedules.get(height)
        if s is None:
            s = self.schedules[height] = schedule(self.nodes, self.outputs, height)
        return s

    def buffers(self, batch: int, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Zeroed ring buffers for ``batch`` tiles: the flat array and each node's offset into it (node
        ``n``'s buffer is ``(slots[n], batch, width, channels)``)."""
        sizes = [int(slots[n.id]) * batch * n.width * n.channels for n in self.nodes]
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        return np.zeros(int(sum(sizes))), offsets


@njit(cache=True, nogil=True)
def _row(buf, offs, n, k, slots, positions, channels):
    """Row ``k`` of node ``n`` as a ``(positions, channels)`` view of its ring buffer slot."""
    size = positions * channels
    start = offs[n] + (k % slots[n]) * size
    return buf[start : start + size].reshape((positions, channels))


@njit(cache=True, nogil=True)
def _conv(meta, n, r, weights, buf, offs, slots, nb):
    """Row ``r`` of convolution node ``n`` (down-shifted, column stride = row stride) before rounding: two
    output columns at a time, four input channels per pass over the outputs (exact sums: any order)."""
    src = meta[n, 1]
    cout, wout = meta[n, 3], meta[n, 4]
    cin, win = meta[src, 3], meta[src, 4]
    w_off, b_off, kh, kw, stride = meta[n, 5], meta[n, 6], meta[n, 7], meta[n, 8], meta[n, 9]
    pw = kw // 2
    wt = weights[w_off : w_off + kh * kw * cin * cout].reshape((kh * kw * cin, cout))
    bias = weights[b_off : b_off + cout]
    out = _row(buf, offs, n, r, slots, nb * wout, cout)
    first = r * stride - kh + 1
    a0 = np.empty(cout)
    a1 = np.empty(cout)
    zero = np.zeros(cin)
    c4 = cin - cin % 4
    for b in range(nb):
        for x in range(0, wout, 2):
            two = x + 1 < wout
            for j in range(cout):
                a0[j] = bias[j]
                a1[j] = bias[j]
            for dy in range(kh):
                rin = first + dy
                if rin < 0:
                    continue
                inp = _row(buf, offs, src, rin, slots, nb * win, cin)
                for dx in range(kw):
                    xi0 = x * stride + dx - pw
                    xi1 = xi0 + stride
                    q0 = inp[b * win + xi0] if 0 <= xi0 < win else zero
                    q1 = inp[b * win + xi1] if two and 0 <= xi1 < win else zero
                    k0 = (dy * kw + dx) * cin
                    for i in range(0, c4, 4):
                        u0, u1, u2, u3 = q0[i], q0[i + 1], q0[i + 2], q0[i + 3]
                        v0, v1, v2, v3 = q1[i], q1[i + 1], q1[i + 2], q1[i + 3]
                        w0, w1, w2, w3 = wt[k0 + i], wt[k0 + i + 1], wt[k0 + i + 2], wt[k0 + i + 3]
                        for j in range(cout):
                            a0[j] += u0 * w0[j] + u1 * w1[j] + u2 * w2[j] + u3 * w3[j]
                            a1[j] += v0 * w0[j] + v1 * w1[j] + v2 * w2[j] + v3 * w3[j]
                    for i in range(c4, cin):
                        for j in range(cout):
                            a0[j] += q0[i] * wt[k0 + i, j]
                            a1[j] += q1[i] * wt[k0 + i, j]
            o = b * wout + x
            for j in range(cout):
                out[o, j] = a0[j]
            if two:
                for j in range(cout):
                    out[o + 1, j] = a1[j]


@njit(cache=True, nogil=True)
def run_row(r, entries_node, entries_row, lo, hi, meta, weights, buf, offs, slots, nb, xs, b0, top, left, outputs,
            out, elu_t, elu_s, elu_o, sig_t, sig_s, sig_o, unit, limit):
    """Execute entries ``lo:hi`` (output row ``r``'s) of a :class:`Schedule` for ``nb`` tiles: the source
    rows come from the pixel buffer ``xs`` ``(B, 4, H', W')`` (tiles from ``b0``, rows after ``top``,
    columns after ``left``); then row ``r`` of each node of ``outputs`` is copied to ``out[k, b0 + b]``
    ``(len(outputs), B, W, C)``."""
    for e in range(lo, hi):
        n = entries_node[e]
        k = entries_row[e]
        kind = meta[n, 0]
        ch, wd = meta[n, 3], meta[n, 4]
        size = nb * wd * ch
        o = offs[n] + (k % slots[n]) * size
        if kind == CONV:
            _conv(meta, n, k, weights, buf, offs, slots, nb)
            for t in range(o, o + size):
                buf[t] = _snap(buf[t], unit, limit)
        elif kind == SOURCE:
            for b in range(nb):
                for x in range(wd):
                    for c in range(ch):
                        buf[o + (b * wd + x) * ch + c] = xs[b0 + b, c, top + k, left + x]
        elif kind == SHIFT:
            src = meta[n, 1]
            if k == 0:
                for t in range(o, o + size):
                    buf[t] = 0.0
            else:
                s = offs[src] + ((k - 1) % slots[src]) * size
                for t in range(size):
                    buf[o + t] = buf[s + t]
        elif kind == ELU:
            s = offs[meta[n, 1]] + (k % slots[meta[n, 1]]) * size
            for t in range(size):
                buf[o + t] = _elu(buf[s + t], elu_t, elu_s, elu_o)
        elif kind == ADD:
            s1 = offs[meta[n, 1]] + (k % slots[meta[n, 1]]) * size
            s2 = offs[meta[n, 2]] + (k % slots[meta[n, 2]]) * size
            for t in range(size):
                buf[o + t] = _clamp(buf[s1 + t] + buf[s2 + t], limit)
        elif kind == GATE:
            s1 = offs[meta[n, 1]] + (k % slots[meta[n, 1]]) * size
            s2 = offs[meta[n, 2]] + (k % slots[meta[n, 2]]) * 2 * size
            for p in range(nb * wd):
                for c in range(ch):
                    a = buf[s2 + p * 2 * ch + c]
                    g = buf[s2 + p * 2 * ch + ch + c]
                    buf[o + p * ch + c] = _clamp(_snap(a * lut_at(sig_t, sig_s, sig_o, g), unit, limit)
                                                 + buf[s1 + p * ch + c], limit)
        elif kind == NIN:
            src = meta[n, 1]
            cin = meta[src, 3]
            inp = _row(buf, offs, src, k, slots, nb * wd, cin)
            dst = _row(buf, offs, n, k, slots, nb * wd, ch)
            w_off, b_off = meta[n, 5], meta[n, 6]
            wt = weights[w_off : w_off + cin * ch].reshape((cin, ch))
            acc = np.empty(ch)
            for p in range(nb * wd):
                for j in range(ch):
                    acc[j] = weights[b_off + j]
                for i in range(cin):
                    v = inp[p, i]
                    for j in range(ch):
                        acc[j] += v * wt[i, j]
                for j in range(ch):
                    dst[p, j] = _snap(acc[j], unit, limit)
        else:  # UP: output row k reads input row k // 2, columns x // 2, taps (k % 2, x % 2)
            src = meta[n, 1]
            cin, win = meta[src, 3], meta[src, 4]
            inp = _row(buf, offs, src, k // 2, slots, nb * win, cin)
            dst = _row(buf, offs, n, k, slots, nb * wd, ch)
            w_off, b_off = meta[n, 5], meta[n, 6]
            wt = weights[w_off : w_off + 4 * cin * ch].reshape((4 * cin, ch))
            acc = np.empty(ch)
            for b in range(nb):
                for x in range(wd):
                    for j in range(ch):
                        acc[j] = weights[b_off + j]
                    k0 = ((k % 2) * 2 + x % 2) * cin
                    p = b * win + x // 2
                    for i in range(cin):
                        v = inp[p, i]
                        for j in range(ch):
                            acc[j] += v * wt[k0 + i, j]
                    for j in range(ch):
                        dst[b * wd + x, j] = _snap(acc[j], unit, limit)
    for q in range(outputs.shape[0]):
        n = outputs[q]
        ch, wd = meta[n, 3], meta[n, 4]
        o = offs[n] + (r % slots[n]) * nb * wd * ch
        for b in range(nb):
            for x in range(wd):
                for c in range(ch):
                    out[q, b0 + b, x, c] = buf[o + (b * wd + x) * ch + c]
    return 0
