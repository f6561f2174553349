"""A compiled row-at-a-time vertical stream for an exact PixelCNN++ (and Gated PixelCNN's vertical stack) on a CPU.

The decoder evaluates the vertical U-net one row at a time
(:class:`~nlc.models.rowgraph.RowOps`): about a hundred small nodes per row,
each a few torch calls on ``(B, C, W)`` tensors, so for a batch of a few tiles
the calls' overhead costs more than their arithmetic, and it holds the GIL, so
two decoding threads wait on each other. Here the same network is written once
more through an ``ops`` backend, :class:`TapeOps`, which records the nodes
(kind, inputs, weights laid out channel-last) instead of computing; the lazy
evaluation order of :class:`~nlc.models.rowgraph.RowNode` is replayed once per
tile height into a list of ``(node, row)`` entries (:func:`schedule`), each row
given a place in one buffer that it shares with rows no longer read (:func:`_place`);
and :func:`run_row` executes one output row's entries in a single compiled call that
releases the GIL (:class:`CompiledRows` drives it for a stepper).

The numbers are the torch path's, bit for bit: in exact arithmetic every sum of
products is exact in float64 (weights of 14 significant bits per output
channel on activations of the ``2^-16`` grid, checked by
:func:`~nlc.models.exact.make_exact`), so the order of the sums does not matter;
rounding to the grid is half to even and tables are read at truncated positions,
as :mod:`nlc.models.exact_steps` does. Rows are stored channel-first, so each
convolution, projection and upsampling is a product whose inner loop runs
along the row (:func:`_gemm_tap`: one OpenBLAS ``dgemm`` per tile through
:mod:`nlc.models.blas`, or where there is none :func:`_gemm_tap_loops`, blocks of 4
by 4 held in registers; exact products either way, so the same sums); a stride-1
convolution reads each tap's input row where it is instead of laying out its
columns first. Loops index views
from 0 or by unsigned offsets: numba tests every possibly negative index for
wrap-around, and a loop with such a test does not vectorize (4 times slower in
a micro-benchmark). ``tests/models/test_vertical_kernel.py``
checks every row against the torch stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numba import njit

from ..fixed import GRID_BITS, LIMIT
from .blas import contiguous, dgemm_address, gemm_tap_blas
from .exact_steps import _clamp, _elu, _snap, lut_at

SOURCE, CONV, UP, NIN, ELU, ADD, GATE, SHIFT, TANH_GATE = range(9)
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
        """Gated activation ``tanh(a) * sigmoid(b)``, ``(a, b)`` the halves of ``c`` (Gated PixelCNN)."""
        return self._add(Node(TANH_GATE, (c.id,), c.channels // 2, c.width))

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


SPARE_ROWS = 8  # rows a schedule is computed for beyond the height asked (a context tile's rows above it)
MAX_READS = 4  # rows one entry reads at most (a convolution's ``kh`` input rows)


@dataclass
class Schedule:
    """Entries ``(node, row)`` in execution order (those of output row ``r`` are ``start[r]:start[r+1]``) and
    where their rows live: every row in the buffer at ``out_at[e]`` times the batch (a row of ``channels``
    by ``batch * width`` values), the rows entry ``e`` reads at ``reads_at[e]`` (in :func:`_needs`' order,
    ``-1`` above the image), output ``q``'s row ``r`` at ``outputs_at[r, q]``; ``size`` values per tile."""

    node: np.ndarray
    row: np.ndarray
    start: np.ndarray
    out_at: np.ndarray
    reads_at: np.ndarray
    outputs_at: np.ndarray
    size: int


def schedule(nodes: list[Node], outputs: list[int], height: int) -> Schedule:
    """Replay :class:`~nlc.models.rowgraph.RowNode`'s lazy evaluation (each row computed on first demand)
    for rows ``0 .. height-1`` of ``outputs``, and place the rows (:func:`_place`)."""
    entries: list[tuple[int, int]] = []
    done: list[set[int]] = [set() for _ in nodes]
    start = [0]

    def row(n: int, r: int) -> None:
        if r < 0 or r in done[n]:
            return
        for m, k in _needs(nodes[n], r):
            row(m, k)
        entries.append((n, r))
        done[n].add(r)
        done[n].difference_update([k for k in done[n] if k < r - 1])

    for r in range(height):
        for o in outputs:
            row(o, r)
        start.append(len(entries))
    return _place(nodes, outputs, entries, start)


def _place(nodes: list[Node], outputs: list[int], entries: list[tuple[int, int]], start: list[int]) -> Schedule:
    """Give every row a place in one buffer, reusing the places of rows no longer read: a row lives from
    its entry to its last reader (an output's to the end of its output row), and a new row takes the
    place of equal size freed most recently, the one most likely still in the cache. Writing each row to
    a place of its own would touch megabytes per output row, far more than the cache holds (a Kodak
    group's element-wise nodes ran 4 times slower in the pipeline than on rows in the cache)."""
    last = {}
    for e, (n, k) in enumerate(entries):
        last[(n, k)] = e
        for m, j in _needs(nodes[n], k):
            if j >= 0:
                last[(m, j)] = e
    for r in range(len(start) - 1):
        for o in outputs:
            last[(o, r)] = max(last[(o, r)], start[r + 1] - 1)
    ending: dict[int, list[tuple[int, int]]] = {}
    for key, e in last.items():
        ending.setdefault(e, []).append(key)
    free: dict[int, list[int]] = {}
    at: dict[tuple[int, int], int] = {}
    size = 0
    out_at = np.zeros(len(entries), np.int64)
    reads_at = np.full((len(entries), MAX_READS), -1, np.int64)
    for e, (n, k) in enumerate(entries):
        need = nodes[n].channels * nodes[n].width
        places = free.get(need)
        if places:
            at[(n, k)] = places.pop()
        else:
            at[(n, k)] = size
            size += need
        out_at[e] = at[(n, k)]
        for i, (m, j) in enumerate(_needs(nodes[n], k)):
            if j >= 0:
                reads_at[e, i] = at[(m, j)]
        for key in ending.get(e, []):
            free.setdefault(nodes[key[0]].channels * nodes[key[0]].width, []).append(at[key])
    outputs_at = np.array([[at[(o, r)] for o in outputs] for r in range(len(start) - 1)], np.int64)
    arr = np.array(entries, np.int64).reshape(-1, 2)
    return Schedule(np.ascontiguousarray(arr[:, 0]), np.ascontiguousarray(arr[:, 1]), np.array(start, np.int64),
                    out_at, reads_at, outputs_at.reshape(len(start) - 1, len(outputs)), size)


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
        """The entries for tiles of at least ``height`` rows: a schedule's first rows are those of a shorter
        one's, and its places serve them as well, so one computed for ``height + SPARE_ROWS`` serves the
        heights up to that (a tile with context rows above it, then one without: about 40 ms each)."""
        fits = [h for h in self.schedules if h >= height]
        if fits:
            return self.schedules[min(fits)]
        s = self.schedules[height + SPARE_ROWS] = schedule(self.nodes, self.outputs, height + SPARE_ROWS)
        return s

    def buffers(self, batch: int, schedule: Schedule) -> tuple[np.ndarray, np.ndarray]:
        """A zeroed buffer for ``batch`` tiles' rows as ``schedule`` places them, and the scratch of the
        strided convolutions' input columns and the upsamplings' sums (see :func:`_conv`)."""
        scratch = max([n.kh * n.kw * self.nodes[n.inputs[0]].channels * batch * n.width
                       for n in self.nodes if n.kind == CONV and n.stride != 1]
                      + [n.channels * batch * self.nodes[n.inputs[0]].width for n in self.nodes if n.kind == UP],
                      default=0)
        return np.zeros(schedule.size * batch), np.zeros(scratch)


def row_tables(steps: Any) -> tuple:
    """The ELU, sigmoid and tanh tables' :meth:`~nlc.fixed.Lut.kernel_args` of an exact model's numpy steps
    (:class:`~nlc.models.exact.NumpyExactArithmetic`), as :func:`run_row` reads them."""
    return (*steps.elu_neg.kernel_args, *steps.sigmoid.kernel_args, *steps.tanh.kernel_args)


class CompiledRows:
    """A :class:`Program` evaluated a row at a time over ``batch`` tiles whose rows come from a stepper's
    pixel buffer ``xs`` (rows after ``top``, columns after ``left``): one compiled :func:`run_row` call per
    row and slice of the tiles (``parts``: in turn, or shared out to a thread pool). Row ``r`` of each
    output lands in ``out[q]`` ``(batch, width, channels)`` (an output of fewer channels in the first ones);
    ``luts`` are the ELU, sigmoid and tanh tables' :meth:`~nlc.fixed.Lut.kernel_args`."""

    def __init__(self, program: Program, batch: int, height: int, width: int, parts: list[slice], xs: np.ndarray,
                 top: int, left: int, luts: tuple) -> None:
        self.program, self.parts, self.xs, self.top, self.left, self.luts = program, parts, xs, top, left, luts
        self.schedule = program.schedule(height)
        self.buffers = [program.buffers(p.stop - p.start, self.schedule) for p in parts]
        self.outputs = np.array(program.outputs, np.int64)
        channels = max(program.nodes[o].channels for o in program.outputs)
        self.out = np.zeros((len(program.outputs), batch, width, channels))
        self.next_row = 0

    def row(self, r: int, pool: Any = None) -> np.ndarray:
        """Compute row ``r`` (rows in order only: the buffer holds the rows still to be read) into
        :attr:`out` and return it; ``pool`` (a ``ThreadPoolExecutor``) runs the slices at once."""
        if r != self.next_row:
            raise RuntimeError(f"the compiled vertical stream computes rows in order: asked for {r}, "
                               f"next is {self.next_row}")
        self.next_row += 1
        s, prog = self.schedule, self.program
        lo, hi = int(s.start[r]), int(s.start[r + 1])

        def run(i: int) -> None:
            part = self.parts[i]
            buf, scratch = self.buffers[i]
            step: Any = run_row  # a compiled kernel
            step(r, s.node, s.row, lo, hi, s.out_at, s.reads_at, s.outputs_at, self.outputs, prog.meta, prog.weights,
                 buf, part.stop - part.start, scratch, self.xs, part.start, self.top, self.left, self.out, *self.luts,
                 2.0**GRID_BITS, LIMIT, dgemm_address())

        if pool is None:
            for i in range(len(self.parts)):
                run(i)
        else:
            list(pool.map(run, range(len(self.parts))))
        return self.out

    def release(self) -> None:
        """Drop the buffers."""
        self.buffers = []


@njit(cache=True, nogil=True)
def _snap_all(v, unit, limit):
    """:func:`~nlc.models.exact_steps._snap` of every value of the 1-D view ``v``, in place."""
    for t in range(v.shape[0]):
        v[t] = _snap(v[t], unit, limit)


@njit(cache=True, nogil=True)
def _fill_bias(acc, bias):
    for j in range(acc.shape[0]):
        b = bias[j]
        for p in range(acc.shape[1]):
            acc[j, p] = b


@njit(cache=True, nogil=True)
def _gemm_tap(inp, i0, w, k0, acc, nb, win, wout, shift, x_lo, x_hi, blas):
    """``acc[j, b wout + x] += sum_i inp[i0 + i, b win + shift + x] * w[k0 + i, j]`` over the input rows from
    ``i0``, for every tile ``b`` and ``x_lo <= x < x_hi``: one tap of a stride-1 convolution read in place,
    or (one tile, no shift) a plain product. With ``blas`` (:func:`~nlc.models.blas.dgemm_address`, not 0)
    one BLAS product per tile, else :func:`_gemm_tap_loops`: exact products, so the same sums."""
    if blas != 0 and contiguous(inp) and contiguous(w) and contiguous(acc):
        gemm_tap_blas(blas, inp, i0, w, k0, acc, nb, win, wout, shift, x_lo, x_hi)
    else:
        _gemm_tap_loops(inp, i0, w, k0, acc, nb, win, wout, shift, x_lo, x_hi)


@njit(cache=True, nogil=True, fastmath={"contract"})
def _gemm_tap_loops(inp, i0, w, k0, acc, nb, win, wout, shift, x_lo, x_hi):
    """:func:`_gemm_tap` in numba's loops: blocks of 4 outputs by 4 input rows held in registers, the
    inner loop along the positions; fused multiply-adds of exact products (the only fast-math flag,
    ``contract``, gives the same sums). Indices are unsigned, so numba adds no wrap-around test for
    negative ones and the inner loop vectorizes."""
    jj = w.shape[1]
    cin = inp.shape[0] - i0
    span = np.uint64(x_hi - x_lo)
    j = 0
    while j + 4 <= jj:
        r0, r1, r2, r3 = acc[j], acc[j + 1], acc[j + 2], acc[j + 3]
        i = 0
        while i + 4 <= cin:
            p0, p1, p2, p3 = inp[i0 + i], inp[i0 + i + 1], inp[i0 + i + 2], inp[i0 + i + 3]
            k = k0 + i
            w00, w10, w20, w30 = w[k, j], w[k + 1, j], w[k + 2, j], w[k + 3, j]
            w01, w11, w21, w31 = w[k, j + 1], w[k + 1, j + 1], w[k + 2, j + 1], w[k + 3, j + 1]
            w02, w12, w22, w32 = w[k, j + 2], w[k + 1, j + 2], w[k + 2, j + 2], w[k + 3, j + 2]
            w03, w13, w23, w33 = w[k, j + 3], w[k + 1, j + 3], w[k + 2, j + 3], w[k + 3, j + 3]
            for b in range(nb):
                o = np.uint64(b * wout + x_lo)
                s = np.uint64(b * win + shift + x_lo)
                for x in range(np.uint64(0), span):
                    q0, q1, q2, q3 = p0[s + x], p1[s + x], p2[s + x], p3[s + x]
                    r0[o + x] += q0 * w00 + q1 * w10 + q2 * w20 + q3 * w30
                    r1[o + x] += q0 * w01 + q1 * w11 + q2 * w21 + q3 * w31
                    r2[o + x] += q0 * w02 + q1 * w12 + q2 * w22 + q3 * w32
                    r3[o + x] += q0 * w03 + q1 * w13 + q2 * w23 + q3 * w33
            i += 4
        while i < cin:
            p0 = inp[i0 + i]
            k = k0 + i
            w00, w01, w02, w03 = w[k, j], w[k, j + 1], w[k, j + 2], w[k, j + 3]
            for b in range(nb):
                o = np.uint64(b * wout + x_lo)
                s = np.uint64(b * win + shift + x_lo)
                for x in range(np.uint64(0), span):
                    q0 = p0[s + x]
                    r0[o + x] += q0 * w00
                    r1[o + x] += q0 * w01
                    r2[o + x] += q0 * w02
                    r3[o + x] += q0 * w03
            i += 1
        j += 4
    while j < jj:
        r0 = acc[j]
        for i in range(cin):
            p0 = inp[i0 + i]
            w00 = w[k0 + i, j]
            for b in range(nb):
                o = np.uint64(b * wout + x_lo)
                s = np.uint64(b * win + shift + x_lo)
                for x in range(np.uint64(0), span):
                    r0[o + x] += p0[s + x] * w00
        j += 1


@njit(cache=True, nogil=True)
def _gemm(a, w, k0, acc, blas):
    """``acc[j, p] += sum_k a[k, p] * w[k, j]`` over rows ``k0:`` of ``a`` ``(K, P)`` and ``w`` ``(K, J)`` into
    ``acc`` ``(J, P)``: :func:`_gemm_tap` over one run of all ``P`` positions."""
    npos = a.shape[1]
    _gemm_tap(a, k0, w, k0, acc, 1, npos, npos, 0, 0, npos, blas)


@njit(cache=True, nogil=True)
def _conv(meta, n, r, weights, buf, reads, at, nb, scratch, blas):
    """Row ``r`` of convolution node ``n`` (down-shifted, column stride = row stride) before rounding, into
    the buffer at ``at``: the bias plus, tap by tap, the weights times the input rows (at ``reads``, see
    :class:`Schedule`) read in place (:func:`_gemm_tap`); a strided convolution's input columns are laid
    out first in ``scratch`` (row ``(dy, dx, channel)`` holds that tap's input for every output position,
    zero outside the row). Taps above the image are left out."""
    src = meta[n, 1]
    cout, wout = meta[n, 3], meta[n, 4]
    cin, win = meta[src, 3], meta[src, 4]
    w_off, b_off, kh, kw, stride = meta[n, 5], meta[n, 6], meta[n, 7], meta[n, 8], meta[n, 9]
    pw = kw // 2
    kk = kh * kw * cin
    npos = nb * wout
    wt = weights[w_off : w_off + kk * cout].reshape((kk, cout))
    first = r * stride - kh + 1
    d0 = min(max(-first, 0), kh)
    acc = buf[at : at + cout * npos].reshape((cout, npos))
    _fill_bias(acc, weights[b_off : b_off + cout])
    isize = cin * nb * win
    if stride == 1:  # each tap read where it is
        for dy in range(d0, kh):
            inp = buf[reads[dy] * nb : reads[dy] * nb + isize].reshape((cin, nb * win))
            for dx in range(kw):
                _gemm_tap(inp, 0, wt, (dy * kw + dx) * cin, acc, nb, win, wout, dx - pw, max(0, pw - dx),
                          min(wout, win + pw - dx), blas)
        return
    cols = scratch[: kk * npos].reshape((kk, npos))
    for dy in range(d0, kh):
        inp = buf[reads[dy] * nb : reads[dy] * nb + isize].reshape((cin, nb * win))
        for dx in range(kw):
            k0 = (dy * kw + dx) * cin
            x_lo = max(0, (pw - dx + stride - 1) // stride)  # the output columns whose tap is inside the row
            x_hi = min(wout, (win - 1 + pw - dx) // stride + 1)
            for i in range(cin):
                q = inp[i]
                c = cols[k0 + i]
                for b in range(nb):
                    p = b * wout
                    for x in range(x_lo):
                        c[p + x] = 0.0
                    for x in range(x_hi, wout):
                        c[p + x] = 0.0
                    shift = b * win + dx - pw
                    for x in range(x_lo, x_hi):
                        c[p + x] = q[shift + x * stride]
    _gemm(cols, wt, d0 * kw * cin, acc, blas)


@njit(cache=True, nogil=True)
def run_row(r, entries_node, entries_row, lo, hi, out_at, reads_at, outputs_at, outputs, meta, weights, buf, nb, scratch, xs,
            b0, top, left, out, elu_t, elu_s, elu_o, sig_t, sig_s, sig_o, tanh_t, tanh_s, tanh_o, unit, limit, blas):
    """Execute entries ``lo:hi`` (output row ``r``'s) of a :class:`Schedule` for ``nb`` tiles, every row
    channel-first ``(channels, nb * width)`` in ``buf`` where the schedule places it (``scratch`` from
    :meth:`Program.buffers`): the source rows come from the pixel buffer ``xs`` ``(B, 4, H', W')`` (tiles
    from ``b0``, rows after ``top``, columns after ``left``); then row ``r`` of each output is copied to
    ``out[q, b0 + b]`` ``(outputs, B, W, C)`` (an output of fewer channels to the first ones). The tables
    are ELU's, the sigmoid's and tanh's (:meth:`nlc.fixed.Lut.kernel_args`); ``blas`` is
    :func:`~nlc.models.blas.dgemm_address` (0: the products in numba's loops)."""
    for e in range(lo, hi):
        n = entries_node[e]
        k = entries_row[e]
        kind = meta[n, 0]
        ch, wd = meta[n, 3], meta[n, 4]
        npos = nb * wd
        size = npos * ch
        o = out_at[e] * nb
        reads = reads_at[e]
        dst = buf[o : o + size]  # views indexed from 0: no wrap-around tests, so the loops vectorize
        if kind == CONV:
            _conv(meta, n, k, weights, buf, reads, o, nb, scratch, blas)
            _snap_all(dst, unit, limit)
        elif kind == SOURCE:
            for c in range(ch):
                for b in range(nb):
                    for x in range(wd):
                        dst[c * npos + b * wd + x] = xs[b0 + b, c, top + k, left + x]
        elif kind == SHIFT:
            if k == 0:
                dst[:] = 0.0
            else:
                s = reads[0] * nb
                dst[:] = buf[s : s + size]
        elif kind == ELU:
            s = reads[0] * nb
            a1 = buf[s : s + size]
            for t in range(size):
                dst[t] = _elu(a1[t], elu_t, elu_s, elu_o)
        elif kind == ADD:
            s1, s2 = reads[0] * nb, reads[1] * nb
            a1, a2 = buf[s1 : s1 + size], buf[s2 : s2 + size]
            for t in range(size):
                dst[t] = _clamp(a1[t] + a2[t], limit)
        elif kind == GATE:  # the gated convolution's first ``ch`` channels times the sigmoid of the rest
            s1, s2 = reads[1] * nb, reads[0] * nb  # (the residual, the convolution: in _needs' order)
            res, a1, g1 = buf[s1 : s1 + size], buf[s2 : s2 + size], buf[s2 + size : s2 + 2 * size]
            for t in range(size):  # the table's lookups first, alone: the products' loop then vectorizes
                dst[t] = lut_at(sig_t, sig_s, sig_o, g1[t])
            for t in range(size):
                dst[t] = _clamp(_snap(a1[t] * dst[t], unit, limit) + res[t], limit)
        elif kind == TANH_GATE:  # tanh of the input's first ``ch`` channels times the sigmoid of the rest
            s = reads[0] * nb
            a1, g1 = buf[s : s + size], buf[s + size : s + 2 * size]
            for t in range(size):
                dst[t] = _snap(lut_at(tanh_t, tanh_s, tanh_o, a1[t]) * lut_at(sig_t, sig_s, sig_o, g1[t]), unit, limit)
        elif kind == NIN:
            cin = meta[meta[n, 1], 3]
            w_off, b_off = meta[n, 5], meta[n, 6]
            out2 = dst.reshape((ch, npos))
            _fill_bias(out2, weights[b_off : b_off + ch])
            s = reads[0] * nb
            _gemm(buf[s : s + cin * npos].reshape((cin, npos)), weights[w_off : w_off + cin * ch].reshape((cin, ch)),
                  0, out2, blas)
            _snap_all(dst, unit, limit)
        else:  # UP: output row k reads input row k // 2, columns x // 2, taps (k % 2, x % 2)
            src = meta[n, 1]
            cin, win = meta[src, 3], meta[src, 4]
            s = reads[0] * nb
            inp = buf[s : s + cin * nb * win].reshape((cin, nb * win))
            up = dst.reshape((ch, npos))
            w_off, b_off = meta[n, 5], meta[n, 6]
            acc = scratch[: ch * nb * win].reshape((ch, nb * win))
            for px in range(2):
                k0 = ((k % 2) * 2 + px) * cin
                _fill_bias(acc, weights[b_off : b_off + ch])
                _gemm(inp, weights[w_off + k0 * ch : w_off + (k0 + cin) * ch].reshape((cin, ch)), 0, acc, blas)
                for j in range(ch):
                    for b in range(nb):
                        for x in range(px, wd, 2):
                            up[j, b * wd + x] = _snap(acc[j, b * win + x // 2], unit, limit)
    wd = out.shape[2]
    for q in range(outputs_at.shape[1]):
        ch = meta[outputs[q], 3]
        s = outputs_at[r, q] * nb
        row = buf[s : s + ch * nb * wd].reshape((ch, nb * wd))
        for b in range(nb):
            for x in range(wd):
                for c in range(ch):
                    out[q, b0 + b, x, c] = row[c, b * wd + x]
    return 0
