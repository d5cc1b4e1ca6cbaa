"""Convolutions: ``Conv2d`` and ``Conv1d`` with PyTorch's semantics, as one matrix product.

How the work is done (chosen by measurement: ``benchmarks/bench_layers.py``, results in
``benchmarks/results/``): the input is turned
channels-last, x (N, H, W, C), and the kh * kw shifted windows are copied side by side into
one matrix (im2col), so the whole convolution of the mini-batch is a single BLAS product,

    cols (N Ho Wo, kh kw C) @ Wmat (kh kw C, out) = y (N Ho Wo, out)     (channels-last y).

The output is returned as the NCHW *view* ``y.transpose(0, 3, 1, 2)``: logically NCHW as in
PyTorch, physically channels-last. Element-wise layers and pooling keep that memory order, and
the next convolution's ``transpose(0, 2, 3, 1)`` is then already contiguous, so a CNN pays for
no layout changes between its layers.

A convolution with many channels on a small image computes through the discrete Fourier
transform instead (``_spectral``, ``SPECTRAL_MAX_COST``): its rows are pixels, (H W, N C) in and
(Ho Wo, N out) out, so it reads a pixel-major or NCHW input without a copy and returns the NCHW
view of pixel-major memory.

One exception: a one-input-channel convolution whose output a max-pool reads, before another
convolution (``Sequential`` tells it: ``Conv2d.followed_by``), writes its rows pixel-major,
(Ho, Wo, N, out), and returns the NCHW view of that memory; the pool's strided reads are then
runs of N C numbers instead of C. The next convolution copies such an input channels-last once
(as any other layout) and hands its dx back in the pixel-major layout the input had.
"""

from __future__ import annotations

import copy
import time

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import functional as F
from .. import init as initializers
from .. import tuning
from ..module import (
    Module,
    Param,
    ShapeError,
    as_rng,
    check_arg,
    column_sums,
    float_dtype,
    grad_enabled,
    ran_under_no_grad,
)
from . import _padding
from ._shapes import ntuple, size
from ._shapes import out_size as conv_out_size  # the formula under its older name here
from ._spectral import Spectral
from ._spectral import cost as spectral_cost
from .activations import ReLU
from .norm import BatchNorm2d
from .pooling import MaxPool2d, PoolThenReLU

# the windows are written and multiplied this many bytes of examples at a time at most, so that
# the product reads each block while it is still in cache (in training every block lands in the
# one cols matrix that backward reads; under no_grad() only the block exists)
COLS_BLOCK_BYTES = 4 << 20
# a stride-1 convolution's dx by row-shifted products (_dx_shifted_rows) when the padded input
# has at most this many times the output's pixels: the ResNet's 3x3 maps at 28x28 (1.15); at
# 14x14 (1.31), 7x7 (1.65) and for CNN-A's 5x5 on 12x12 (2.25) the tap-by-tap adds are as fast
# or faster since they run on pixel-major memory (measured with both paths alternating in one
# process: benchmarks/bench_paths.py, docs/speed.md)
SHIFTED_DX_MAX_WASTE = 1.2
# under no_grad the blocks' windows take turns in a ring of this many bytes (the batch's whole
# windows matrix where smaller; way "ring"), of two blocks (way "two"), or in one block's buffer
# written over block after block (way "one"). Where the two cores share no cache, the BLAS thread
# on the other core reads each block, and writing again into lines it has just read costs a
# transfer between caches; a ring past the caches costs memory traffic instead. Which way is
# fastest depends on the machine and on where its cores sit (docs/speed.md): each layer times
# them (glassnet.tuning), as it times training's windows in blocks against the whole batch's
NO_GRAD_RING_BYTES = 64 << 20
WINDOW_WAYS = ("blocks", "whole")  # training, a batch of more than one block (choice "conv_windows")
NO_GRAD_WAYS = ("two", "one", "ring")  # under no_grad (choice "conv_no_grad_windows")
# the one-input-channel dW, cols^T @ delta, whose inner dimension is the whole batch's pixels, is
# summed over blocks of this many bytes of its two operands (``_long_product``)
LONG_PRODUCT_BLOCK_BYTES = 256 << 10
# the tap-by-tap dx adds its products on pixel-major memory, (H, W, N, C) (``_dx_by_taps``);
# False: on the layer's channels-last memory (the plain path, for benchmarks/bench_paths.py)
PIXEL_MAJOR_DX = True
# a one-input-channel Conv2d whose output a max-pool reads before the next convolution
# (``Conv2d.followed_by``) returns it as the NCHW view of pixel-major memory (H, W, N, C): its
# product writes rows in whatever order its windows come, and the pool's strided reads of
# pixel-major memory are runs of N C numbers instead of C (docs/speed.md). False: channels-last
# always (the plain path, for bench_paths.py)
PIXEL_MAJOR_OUT = True
# a convolution whose products through the discrete Fourier transform (``_spectral``) take at
# most this share of the windows' multiply-adds runs that way: many channels on small images,
# CNN-A's Conv2d(32, 64, 5) on 12x12 (0.51). The rule reads the layer's geometry and the input's
# size, never the batch or a timing, so a layer takes one way for every batch (its numbers differ
# from the windows' by rounding). 0: the windows always. The transforms are dense matrices, whose
# size grows with the square of the padded pixels: at most SPECTRAL_MAX_PIXELS of them
SPECTRAL_MAX_COST = 0.7
SPECTRAL_MAX_PIXELS = 32 * 32


def _pair(v, name: str, layer: str) -> tuple[int, int]:
    return ntuple(v, 2, name, layer, "an int or a pair of ints")


def _cols(xp: np.ndarray, k, s, d, out_hw, out: np.ndarray | None = None) -> np.ndarray:
    """im2col of a channels-last, padded input xp (N, Hp, Wp, C): row (n, i, j) holds the window
    under output pixel (i, j), ordered (kh, kw, C), so cols (N Ho Wo, kh kw C), with

        cols[(n, i, j), (a, b, c)] = xp[n, i s_h + a d_h, j s_w + b d_w, c].

    One copy of a strided window view, not kh * kw slice copies: NumPy's copy loop then runs once
    over the whole input instead of once per tap. ``out``: a (N Ho Wo, kh kw C) matrix to fill."""
    (kh, kw), (sh, sw), (dil_h, dil_w), (ho, wo) = k, s, d, out_hw
    n, c = xp.shape[0], xp.shape[3]
    win = sliding_window_view(xp, ((kh - 1) * dil_h + 1, (kw - 1) * dil_w + 1), axis=(1, 2))
    win = win[
        :, : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw, :, ::dil_h, ::dil_w
    ]  # (N, Ho, Wo, C, kh, kw)
    win = win.transpose(0, 1, 2, 4, 5, 3)  # (N, Ho, Wo, kh, kw, C)
    if out is None:  # a copy even where the windows are contiguous already (a 1x1 kernel on
        # channels-last input): the layer writes the next step's windows into this matrix
        return np.array(win, order="C").reshape(n * ho * wo, kh * kw * c)
    np.copyto(out.reshape(n, ho, wo, kh, kw, c), win)
    return out


def _pixel_rows(a: np.ndarray) -> np.ndarray:
    """a (N, C, H, W) as the matrix (H W, N C) whose rows are pixels: a view where a lies
    pixel-major, or in NCHW order (the transposed view of (N C, H W)); else a pixel-major copy."""
    n, c, h, w = a.shape
    if a.flags.c_contiguous:
        return a.reshape(n * c, h * w).T
    return np.ascontiguousarray(a.transpose(2, 3, 0, 1)).reshape(h * w, n * c)


def _cols_t_one_channel(xp: np.ndarray, k, s, d, out_hw, ones_row: bool, pixel_major=False) -> np.ndarray:
    """cols^T for one input channel, xp (N, Hp, Wp) padded: (kh kw [+ 1], N Ho Wo), with

        cols_t[(a, b), (n, i, j)] = xp[n, i s_h + a d_h, j s_w + b d_w]   (= cols^T of ``_cols``)

    and, when ``ones_row``, a last row of ones, so that ``cols_t.T @ [Wmat; b] = cols Wmat + b``
    and ``cols_t @ delta`` holds dW's rows and then db = sum of delta (BP4 and BP3 in one product).

    Why: with C = 1 a window row has only kh kw numbers, and the window copy of ``_cols`` writes
    them kh kw at a time; here each tap's shifted image is one contiguous row, copied as a block,
    and the bias add over y and the separate sum of delta for db disappear into the products.

    ``pixel_major``: the columns in (i, j, n) order instead, (kh kw [+ 1], Ho Wo N), so that the
    product's rows, y's pixels, come pixel-major (``PIXEL_MAJOR_OUT``); xp is copied to
    (Hp, Wp, N) first, and each tap's shifted image is then Ho runs of Wo N numbers."""
    (kh, kw), (sh, sw), (dil_h, dil_w), (ho, wo) = k, s, d, out_hw
    n = xp.shape[0]
    if pixel_major:
        src = np.ascontiguousarray(xp.transpose(1, 2, 0))  # (Hp, Wp, N)
        cols_t = np.empty((kh * kw + ones_row, ho, wo, n), dtype=xp.dtype)
    else:
        src, cols_t = xp, np.empty((kh * kw + ones_row, n, ho, wo), dtype=xp.dtype)
    for a in range(kh):
        for b in range(kw):
            rows = slice(a * dil_h, a * dil_h + sh * (ho - 1) + 1, sh)
            cols = slice(b * dil_w, b * dil_w + sw * (wo - 1) + 1, sw)
            cols_t[a * kw + b] = src[rows, cols] if pixel_major else src[:, rows, cols]
    if ones_row:
        cols_t[-1] = 1
    return cols_t.reshape(len(cols_t), n * ho * wo)


def _long_product(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for a short, wide a (k, K) and a tall, narrow b (K, m), as the sum over blocks of
    the inner dimension of a[:, block] @ b[block]: the same sum of products, added in another
    order (the same to rounding). The one-input-channel convolution's dW is such a product,
    its inner dimension the batch's N Ho Wo pixels (73,728 for CNN-A's first layer), and
    OpenBLAS takes longer for it in one call than in blocks whose two operands fit in the
    core's cache together (``LONG_PRODUCT_BLOCK_BYTES``; ``benchmarks/bench_paths.py``)."""
    k, inner = a.shape
    rows = max(1, LONG_PRODUCT_BLOCK_BYTES // ((k + b.shape[1]) * a.itemsize))
    if inner <= 2 * rows:
        return a @ b
    out = a[:, :rows] @ b[:rows]
    part = np.empty_like(out)
    for start in range(rows, inner, rows):
        out += np.matmul(a[:, start : start + rows], b[start : start + rows], out=part)
    return out


def _dx_shifted_rows(delta: np.ndarray, taps: np.ndarray, hp: int, wp: int) -> np.ndarray:
    """dLoss/d(padded input) of a stride-1, undilated convolution, as row-shifted products.

    Number the pixels of the padded input (N, Hp, Wp, C) row by row, r = (n Hp + i) Wp + j. Then
    input pixel (n, i + a, j + b) is pixel r + a Wp + b, so tap (a, b) sends output pixel r's
    delta to input row r + a Wp + b:

        dxp[r + a Wp + b] += delta[r] @ W[:, :, a, b]^T       (BP2, col2im in one line)

    With delta laid on the padded grid (zeros where no output pixel sits, the last kh - 1 rows
    and kw - 1 columns of each image), each tap's update is one product of contiguous rows added
    to a contiguous block of dxp: no strided scatter. It costs Hp Wp / (Ho Wo) times the tap
    products' rows (the zeros), so it is used where that waste is small (``SHIFTED_DX_MAX_WASTE``).
    delta (N, Ho, Wo, out), taps (kh, kw, out, C); returns dxp (N, Hp, Wp, C)."""
    n, ho, wo, out = delta.shape
    kh, kw, _, c = taps.shape
    grid = np.zeros((n, hp, wp, out), delta.dtype)
    grid[:, :ho, :wo] = delta
    rows = max(n * hp * wp - (kh - 1) * wp - (kw - 1), 0)  # the pixels r whose every tap lands inside
    d = grid.reshape(n * hp * wp, out)[:rows]
    dxp = np.zeros((n * hp * wp, c), delta.dtype)
    share = np.empty((rows, c), delta.dtype)
    for a in range(kh):
        for b in range(kw):
            np.matmul(d, taps[a, b], out=share)
            dxp[a * wp + b : a * wp + b + rows] += share
    return dxp.reshape(n, hp, wp, c)


def _dx_by_taps(delta: np.ndarray, taps: np.ndarray, hw_p, s, d, p, hw, pixel_major=False) -> np.ndarray:
    """dLoss/dx of a convolution, one kernel tap at a time (BP2 and col2im):

        dxp[n, i s_h + a d_h, j s_w + b d_w] += delta[n, i, j] @ W[:, :, a, b]^T

    for each tap (a, b), then dx = dxp without its padding. delta (N, Ho, Wo, out), taps
    (kh, kw, out, C); returns dx as the NCHW view of channels-last (N, H, W, C) memory, or of
    pixel-major memory where the adds ran on it and ``pixel_major`` (the input came so).

    Each product is added at once to its shifted slice of dxp, while it is still in cache. The
    adds run on pixel-major memory (``PIXEL_MAJOR_DX``): delta copied to (Ho, Wo, N, out) and
    dxp (Hp, Wp, N, C), so that a tap's slice of dxp is Ho runs of Wo N C contiguous numbers;
    on channels-last memory it is N Ho runs of Wo C, and NumPy's add restarts its loop at every
    run. The layout copies (delta in; dx out, unless the input came pixel-major) cost less than
    that (``benchmarks/bench_paths.py`` times both). The same products and the same adds in the
    same order either way: the same numbers.

    Each tap's product has a buffer of its own: the BLAS thread on the other core writes half
    of each product and this thread reads it for the add, and a buffer written over tap after
    tap would have that core take back, at every tap, lines this one has just read, which costs
    a transfer between caches where the two cores share none (benchmarks/probe_cores.py)."""
    n, ho, wo, out = delta.shape
    kh, kw, _, c = taps.shape
    (hp, wp), (sh, sw), (dil_h, dil_w), (ph, pw), (h, w) = hw_p, s, d, p, hw
    pixels = (1, 2, 0, 3)  # (N, H, W, C) -> (H, W, N, C): the axes the adds index
    if PIXEL_MAJOR_DX:
        rows = np.ascontiguousarray(delta.transpose(pixels)).reshape(ho * wo * n, out)
        grid = np.zeros((hp, wp, n, c), dtype=delta.dtype)  # dxp, pixel-major memory
    else:
        rows = delta.reshape(n * ho * wo, out)
        grid = np.zeros((n, hp, wp, c), dtype=delta.dtype).transpose(pixels)  # channels-last memory
    shares = np.empty((kh, kw, ho * wo * n, c), dtype=delta.dtype)
    for a in range(kh):
        for b in range(kw):
            share = np.matmul(rows, taps[a, b], out=shares[a, b])
            share = (
                share.reshape(ho, wo, n, c)
                if PIXEL_MAJOR_DX
                else share.reshape(n, ho, wo, c).transpose(pixels)
            )
            tap_rows = slice(a * dil_h, a * dil_h + sh * ho, sh)  # the input rows under tap a
            tap_cols = slice(b * dil_w, b * dil_w + sw * wo, sw)
            grid[tap_rows, tap_cols] += share
    dx = grid[ph : ph + h, pw : pw + w].transpose(2, 0, 1, 3)  # (N, H, W, C)
    if PIXEL_MAJOR_DX and not pixel_major:
        dx = np.array(dx, order="C")  # channels-last, as the input came
    return dx.transpose(0, 3, 1, 2)


class Conv2d(Module):
    """2-D convolution (cross-correlation, as PyTorch's ``nn.Conv2d``).

    ``W`` is stored (out_channels, in_channels, kh, kw) and ``b`` (out_channels,), PyTorch's
    layout; the default init is PyTorch's (uniform +-1/sqrt(in_channels kh kw)).

    PyTorch's options, with its names and defaults: ``groups`` (the channels split into blocks,
    each convolved with its own out/groups filters; ``groups=in_channels`` is depthwise; ``W``
    is then (out_channels, in_channels / groups, kh, kw)), ``padding="same"`` (stride 1 only; an
    odd reach d (k - 1) pads one more unit after than before) or ``"valid"`` (no padding), and
    ``padding_mode`` "zeros", "reflect", "replicate" or "circular" (see ``_padding``).

    Shapes: x (N, C_in, H, W) -> y (N, C_out, Ho, Wo), Ho = floor((H + 2p - d (kh - 1) - 1) / s) + 1.

    Backward, with delta = dy the error of the output feature maps (BP1/BP2 in the book's
    convolutional notation, vectorised through the im2col matrix):
        db   += sum over n, i, j of delta                                      (BP3)
        dW   += cols^T delta   : the correlation of the input with delta      (BP4)
        dx    = col2im(delta Wmat^T) : each input pixel collects delta times every kernel
                weight it met, i.e. the full correlation of delta with the flipped kernel
                (computed tap by tap: dx[shifted by (i, j)] += delta W[:, :, i, j]).
    With groups, each group's three lines on its block of channels (dW, db: its rows; dx: its
    input channels); with a padding mode, dx is then folded back through the padding (``_padding``).
    With one input channel the windows are kept transposed, with a row of ones for the bias
    (``_cols_t_one_channel``): the same products, y = cols Wmat + b and [dW; db] = [cols 1]^T delta.
    Under ``no_grad()`` (predict, evaluate) no windows are kept (they are built for a few
    examples at a time, ``COLS_BLOCK_BYTES``), and backward raises.

    Many channels on a small image (CNN-A's second layer; the rule is ``SPECTRAL_MAX_COST``) go
    through the discrete Fourier transform instead of windows (``_spectral``): the correlation
    over channels becomes one small complex product per frequency, and the same three lines
    read dW^ = X^T conj(G), dX^ = G W^T per frequency, db = the zero frequency of delta. The
    same convolution to rounding; y then lies pixel-major, (Ho, Wo, N, out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        init: str = "torch_default",
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        check_arg(name, "in_channels", in_channels, lambda v: v >= 1, "an integer >= 1", int)
        check_arg(name, "out_channels", out_channels, lambda v: v >= 1, "an integer >= 1", int)
        in_channels, out_channels, dtype = int(in_channels), int(out_channels), float_dtype(dtype, name)
        self.kernel_size = _pair(kernel_size, "kernel_size", name)
        self.stride = _pair(stride, "stride", name)
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding", name)
        self.dilation = _pair(dilation, "dilation", name)
        for what, low in (("kernel_size", 1), ("stride", 1), ("dilation", 1), ("padding", 0)):
            ok = lambda v, low=low: min(v) >= low  # noqa: E731
            if not isinstance(getattr(self, what), str):
                check_arg(name, what, getattr(self, what), ok, f">= {low} (an int or a pair of ints)", None)
        self.groups = _groups(name, groups, in_channels, out_channels)
        self.padding_mode = padding_mode
        self._set_padding(name)
        self.in_channels, self.out_channels, self.init = in_channels, out_channels, init
        initializers.get(init)
        self.W = Param(np.empty(self._weight_shape(), dtype), "W")
        self.b = Param(np.empty(out_channels, dtype), "b", decay=False) if bias else None
        self.params = [self.W] if self.b is None else [self.W, self.b]
        self.pixel_major_out = False  # set by followed_by: y as a view of pixel-major memory
        self.reset_parameters(as_rng(rng, name))

    def _weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    def followed_by(self, steps: list) -> None:
        """One input channel, a max-pool next (after batch norm or a ReLU, which keep the layout)
        and a convolution after the pool: return y as the NCHW view of pixel-major (H, W, N, C)
        memory, where the pool's strided reads are long runs (``PIXEL_MAJOR_OUT``). The same
        numbers in another layout. (A Flatten after the pool would pay for it: its C-order copy
        of a pixel-major view reads one number per run, 1.7 against 0.26 ms for CNN-A's pooled
        map, docs/speed.md; a convolution copies it channels-last in long runs.)"""
        i = 0
        while i < len(steps) and type(steps[i]) in (BatchNorm2d, ReLU):
            i += 1
        pooled = i + 1 < len(steps) and type(steps[i]) in (MaxPool2d, PoolThenReLU)
        pooled = pooled and isinstance(steps[i + 1], Conv2d)
        self.pixel_major_out = type(self) is Conv2d and self.in_channels == 1 and self.groups == 1 and pooled

    def _set_padding(self, name: str) -> None:
        """Split the padding between the kernel (zeros, the same on both sides: the fast path)
        and a padding layer before it (``_padding``: the other modes, and "same" when the
        kernel's reach is odd, which pads one unit more after than before)."""
        if self.padding_mode not in _padding.MODES:
            raise ValueError(
                f"{name}: padding_mode must be one of {list(_padding.MODES)}, got {self.padding_mode!r}"
            )
        if isinstance(self.padding, str):
            if self.padding not in ("same", "valid"):
                raise ValueError(
                    f"{name}: padding must be an int, a pair of ints, 'same' or 'valid', got {self.padding!r}"
                )
            if self.padding == "same" and self.stride != (1, 1):
                raise ValueError(
                    f"{name}: padding='same' is not supported for strided convolutions (as in "
                    f"PyTorch), got stride={_plain_stride(self)}"
                )
            pads = (
                _padding.same_padding(self.kernel_size, self.dilation)
                if self.padding == "same"
                else ((0, 0), (0, 0))
            )
        else:
            pads = tuple((p, p) for p in self.padding)
        symmetric = all(before == after for before, after in pads)
        if self.padding_mode == "zeros" and symmetric:
            self._kernel_padding, self._outer_pads = tuple(before for before, _ in pads), None
        else:
            self._kernel_padding = (0, 0)
            self._outer_pads = pads if any(max(p) for p in pads) else None

    def reset_parameters(self, rng: np.random.Generator) -> Conv2d:
        dtype = self.W.data.dtype
        self.W.data[...] = initializers.get(self.init)(self.W.shape, rng, dtype)
        if self.b is not None:
            fan_in = initializers.fans(self.W.shape)[0]
            self.b.data[...] = initializers.bias_init(self.init, fan_in, self.b.shape, rng, dtype)
        return self

    # --- the two passes, on 4-D arrays --------------------------------------------------------
    def _kernel(self) -> np.ndarray:
        """W as (kh, kw, C_in, out): the rows of Wmat in im2col's column order."""
        return self.W.data.reshape(self.out_channels, self.in_channels, *self.kernel_size).transpose(
            2, 3, 1, 0
        )

    def _forward4(self, x: np.ndarray) -> np.ndarray:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self._kernel_padding
        dil_h, dil_w = self.dilation  # not dh, dw: d<name> is dLoss/d(name)
        n, c, h, w = x.shape
        ho, wo = conv_out_size(h, kh, sh, ph, dil_h), conv_out_size(w, kw, sw, pw, dil_w)
        if ho < 1 or wo < 1:
            raise ShapeError(
                f"{type(self).__name__}: input {h}x{w} is smaller than the (dilated, padded) kernel "
                f"{kh}x{kw}; got shape {x.shape}"
            )
        self.x_shape, self.out_hw = x.shape, (ho, wo)
        self.x_pixel_major = c > 1 and F.lies_as(x, F.PIXEL_MAJOR)  # dx will lie so too
        keep = grad_enabled()
        self.spectral = None
        if self._spectral_pays(c, h, w, ho, wo):  # reads x as it lies: no windows, no padded copy
            return self._forward_spectral(x, ho, wo, keep)
        # channels-last, zero-padded input xp (N, H + 2ph, W + 2pw, C); without padding, the
        # channels-last view itself (no copy when x came from a conv or pooling: NHWC memory)
        if ph == pw == 0:
            xp = x.transpose(0, 2, 3, 1)
            if c > 1 and not xp.flags.c_contiguous:  # NCHW or pixel-major memory: one copy, so
                xp = np.ascontiguousarray(xp)  # that the window copy reads runs of kw C numbers
        else:
            xp = np.zeros((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
            xp[:, ph : ph + h, pw : pw + w, :] = x.transpose(0, 2, 3, 1)
        self.pixel_rows = False  # y's rows (and the windows' columns) pixel-major: (Ho, Wo, N)
        per_example = ho * wo * (kh * kw * c + 1) * x.dtype.itemsize  # bytes of cols per example
        step = max(1, COLS_BLOCK_BYTES // per_example)
        # where the batch is more than one block, which way is faster depends on the machine:
        # timed on this layer's own calls (glassnet.tuning; the ways give the same numbers)
        way = None
        if step < n and c > 1:
            choice = ("conv_windows", WINDOW_WAYS) if keep else ("conv_no_grad_windows", NO_GRAD_WAYS)
            fastest = tuning.for_work(self, *choice, (n, h, w, x.dtype.char))
            way, started = fastest.pick(), time.perf_counter()
        # blocks in no_grad's ring: as many as NO_GRAD_RING_BYTES holds, or one or two
        ring = {"one": 1, "two": 2}.get(way) or max(1, NO_GRAD_RING_BYTES // (step * per_example))
        if step >= n or way == "whole" or (c == 1 and (keep or ring * step >= n)):
            self.pixel_rows = c == 1 and self.pixel_major_out and PIXEL_MAJOR_OUT
            y, cols = self._product(xp, ho, wo)
        else:
            # a few examples at a time: their windows are written, then multiplied while they
            # are still in cache, into their rows of y (the same rows of the same products as
            # the whole batch's). In training each block is a block of rows of the whole cols
            # matrix that backward reads; under no_grad the blocks take turns in a ring of
            # ``ring`` blocks' rows, where block b writes after block b - ring: memory stays
            # small, and no block writes over the one just multiplied
            rows = ho * wo
            y = np.empty((n * rows, self.out_channels), dtype=np.result_type(x, self.W.data))
            cols = self._cols_buffer(xp, rows, kh * kw * c) if keep else None
            if cols is None and c > 1:  # (one channel under no_grad: each block its own cols^T)
                kept = n if keep else min(n, ring * step)
                cols = np.empty((kept * rows, kh * kw * c), dtype=xp.dtype)
            wmat = self._wmat(c)
            for b, start in enumerate(range(0, n, step)):
                block = slice(start * rows, min(start + step, n) * rows)
                at = (start if keep else (b % ring) * step) * rows  # the block's first row in cols
                part = None if cols is None else cols[at : at + block.stop - block.start]
                self._product(xp[start : start + step], ho, wo, y[block], part, wmat)
        if way is not None:
            fastest.record(way, time.perf_counter() - started)
        self.cols, self.cols_t = (None, None) if not keep else (None, cols) if c == 1 else (cols, None)
        if self.pixel_rows:
            return y.reshape(ho, wo, n, self.out_channels).transpose(2, 3, 0, 1)
        return y.reshape(n, ho, wo, self.out_channels).transpose(0, 3, 1, 2)

    def _spectral_pays(self, c: int, h: int, w: int, ho: int, wo: int) -> bool:
        """Whether the products through the DFT (``_spectral``) cost at most SPECTRAL_MAX_COST of the
        windows' multiply-adds for this input size (the batch cancels out)."""
        grid = (h + 2 * self._kernel_padding[0], w + 2 * self._kernel_padding[1])
        if SPECTRAL_MAX_COST <= 0 or grid[0] * grid[1] > SPECTRAL_MAX_PIXELS:
            return False
        taps = self.kernel_size[0] * self.kernel_size[1]
        return spectral_cost(c, self.out_channels, h * w, ho * wo, grid, taps) <= SPECTRAL_MAX_COST

    def _forward_spectral(self, x: np.ndarray, ho: int, wo: int, keep: bool) -> np.ndarray:
        """y through the DFT (``_spectral``): x's pixels as rows, y's likewise, returned as the
        NCHW view of pixel-major (Ho, Wo, N, out) memory. Keeps the spectra backward needs."""
        n, _, h, w = x.shape
        spectral = Spectral(
            (h, w), self._kernel_padding, (ho, wo), self.stride, self.kernel_size, self.dilation, x.dtype
        )
        b = None if self.b is None else self.b.data
        y = spectral.forward(_pixel_rows(x), self.W.data, b, n, keep)
        self.cols = self.cols_t = None
        self.spectral = spectral if keep else None
        return y.reshape(ho, wo, n, self.out_channels).transpose(2, 3, 0, 1)

    def _backward_spectral(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        """dW, db (and dx, lying pixel-major if x did, else channels-last) through the DFT."""
        n, c, h, w = self.x_shape
        dw, db, dx = self.spectral.backward(_pixel_rows(dy), n, need_dx, self.b is not None)
        self.W.grad += dw.reshape(self.W.shape)  # BP4
        if db is not None:
            self.b.grad += db  # BP3
        if dx is None:
            return None
        dx = dx.reshape(h, w, n, c).transpose(2, 0, 1, 3)  # (N, H, W, C), pixel-major memory
        if not self.x_pixel_major:
            dx = np.array(dx, order="C")  # channels-last, as the windows' way gives it
        return dx.transpose(0, 3, 1, 2)

    def _wmat(self, c: int) -> np.ndarray:
        """Wmat (kh kw C, out), the kernel as im2col's product needs it."""
        return self._kernel().reshape(self.kernel_size[0] * self.kernel_size[1] * c, self.out_channels)

    def _product(self, xp, ho: int, wo: int, y=None, cols=None, wmat=None) -> tuple[np.ndarray, np.ndarray]:
        """y = cols Wmat + b for the channels-last padded input xp, as (N Ho Wo, out) rows, and
        the windows backward needs: cols, or cols^T (with a row of ones) for one input channel.
        ``y``, ``cols``: matrices of those shapes to write into (None: new ones; cols: the last
        training step's, where it fits); ``wmat``: ``_wmat``'s, made once for many blocks."""
        k, c = self.kernel_size, xp.shape[3]
        wmat = self._wmat(c) if wmat is None else wmat
        if c == 1:
            # one input channel: cols^T, built tap by tap, with the bias as one more row
            cols_t = _cols_t_one_channel(
                xp[..., 0], k, self.stride, self.dilation, (ho, wo), self.b is not None, self.pixel_rows
            )
            wb = wmat if self.b is None else np.concatenate([wmat, self.b.data[None]])
            return np.matmul(cols_t.T, wb, out=y), cols_t  # = cols @ Wmat + b
        if cols is None:
            cols = self._cols_buffer(xp, ho * wo, wmat.shape[0])
        cols = _cols(xp, k, self.stride, self.dilation, (ho, wo), out=cols)
        y = np.matmul(cols, wmat, out=y)
        if self.b is not None:
            y += self.b.data
        return y, cols

    def _cols_buffer(self, xp: np.ndarray, per_example: int, width: int) -> np.ndarray | None:
        """The last training step's windows, to be written over (None: a fresh matrix). cols
        lives from forward to backward anyway; keeping it to the next step costs no memory at the
        peak, and spares the page faults of a fresh one above glibc's 32 MB mmap threshold, where
        every call would map new pages (NO_GRAD: not kept, nothing to reuse)."""
        old, shape = getattr(self, "cols", None), (xp.shape[0] * per_example, width)
        if grad_enabled() and old is not None and old.shape == shape and old.dtype == xp.dtype:
            return old
        return None

    def _backward4(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self._kernel_padding
        dil_h, dil_w = self.dilation  # not dh, dw: d<name> is dLoss/d(name)
        n, c, h, w = self.x_shape
        ho, wo = self.out_hw
        if self.spectral is not None:  # set by every forward, as x_shape is
            return self._backward_spectral(dy, need_dx)
        if self.cols is None and self.cols_t is None:
            raise ran_under_no_grad(type(self).__name__, "no input windows")
        d4 = dy.transpose(0, 2, 3, 1)  # (N, Ho, Wo, out)
        # delta's rows in the windows' order: (n, i, j), or (i, j, n) (no copy if dy lies so)
        order = F.PIXEL_MAJOR if self.pixel_rows else F.CHANNELS_LAST
        delta = dy.transpose(order).reshape(n * ho * wo, self.out_channels)
        if self.cols_t is not None:  # one input channel: dW and db in one product (BP4, BP3)
            # rows: the kh kw taps, then (with a bias) the sum of delta
            dwb = _long_product(self.cols_t, delta)
            dk, db = dwb[: kh * kw], dwb[kh * kw :]
        else:
            dk = self.cols.T @ delta  # BP4
            db = column_sums(delta)[None] if self.b is not None else None  # BP3
        self.W.grad += dk.reshape(kh, kw, c, self.out_channels).transpose(3, 2, 0, 1).reshape(self.W.shape)
        if self.b is not None:
            self.b.grad += db[0]
        if not need_dx:
            return None
        # BP2 + col2im: row-shifted products where the padding wastes little, else tap by tap
        taps = self._kernel().transpose(0, 1, 3, 2).copy()  # (kh, kw, out, C)
        hp, wp = h + 2 * ph, w + 2 * pw
        if (sh, sw, dil_h, dil_w) == (1, 1, 1, 1) and hp * wp <= SHIFTED_DX_MAX_WASTE * ho * wo:
            dxp = _dx_shifted_rows(d4, taps, hp, wp)
            return dxp[:, ph : ph + h, pw : pw + w, :].transpose(0, 3, 1, 2)
        return _dx_by_taps(d4, taps, (hp, wp), (sh, sw), (dil_h, dil_w), (ph, pw), (h, w),
                           self.x_pixel_major)  # fmt: skip

    # --- the layer protocol -----------------------------------------------------------------
    def _check(self, x: np.ndarray, rank: int, layout: str) -> None:
        if x.ndim != rank:
            raise ShapeError(f"{type(self).__name__} expects input {layout}, got shape {x.shape}")
        if x.shape[1] != self.in_channels:
            raise ShapeError(
                f"{type(self).__name__} expects {self.in_channels} input channels, got {x.shape[1]} "
                f"(input shape {x.shape})"
            )

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x, 4, "(N, C, H, W)")
        return self._forward_padded(x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward_padded(dy, need_dx=True)

    def backward_params(self, dy: np.ndarray) -> None:
        self._backward_padded(dy, need_dx=False)

    # --- padding modes and groups, around the two passes -----------------------------------------
    def _forward_padded(self, x: np.ndarray) -> np.ndarray:
        """The padding layer (``_padding``: reflect, replicate, circular, odd "same"), if any, then
        the convolution of each group."""
        if self._outer_pads is not None:
            _padding.check(type(self).__name__, x.shape[2:], self._outer_pads, self.padding_mode)
            x = _padding.pad(x, self._outer_pads, self.padding_mode)
        return self._forward_groups(x)

    def _backward_padded(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        dx = self._backward_groups(dy, need_dx)
        if dx is not None and self._outer_pads is not None:
            dx = _padding.fold(dx, self._outer_pads, self.padding_mode)  # BP2 through the padding
        return dx

    def _forward_groups(self, x: np.ndarray) -> np.ndarray:
        """groups > 1: the input channels split into ``groups`` blocks, block g convolved with its
        own out/groups filters (rows g of W), the outputs concatenated along the channels."""
        if self.groups == 1:
            return self._forward4(x)
        self._group_convs = [self._group(g) for g in range(self.groups)]
        c = self.in_channels // self.groups
        return np.concatenate(
            [conv._forward4(x[:, g * c : (g + 1) * c]) for g, conv in enumerate(self._group_convs)], axis=1
        )

    def _backward_groups(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        """Each group's backward on its block of delta's channels: dW and db land in that group's
        rows of W.grad and b.grad; dx is the groups' input deltas side by side."""
        if self.groups == 1:
            return self._backward4(dy, need_dx)
        c = self.out_channels // self.groups
        dxs = []
        for g, conv in enumerate(self._group_convs):
            self._point_at_rows(conv, g)  # the grads as they are now (an optimizer may re-point them)
            dxs.append(conv._backward4(dy[:, g * c : (g + 1) * c], need_dx))
        return np.concatenate(dxs, axis=1) if need_dx else None

    def _group(self, g: int) -> Conv2d:
        """Group g as a convolution of in/groups to out/groups channels: this layer's geometry,
        its W and b rows g (views, so its gradients are written into this layer's)."""
        conv = copy.copy(self)
        conv.in_channels, conv.out_channels = (
            self.in_channels // self.groups,
            self.out_channels // self.groups,
        )
        conv.groups, conv._group_convs = 1, None
        conv._fastest = tuning.choosers(self)  # its timed ways: this layer's, kept across calls
        conv.W = Param(self.W.data, "W")
        conv.b = None if self.b is None else Param(self.b.data, "b", decay=False)
        self._point_at_rows(conv, g)
        return conv

    def _point_at_rows(self, conv: Conv2d, g: int) -> None:
        rows = slice(g * conv.out_channels, (g + 1) * conv.out_channels)
        for own, view in ((self.W, conv.W), (self.b, conv.b)):
            if own is not None:
                view.data, view.grad = own.data[rows], own.grad[rows]

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": list(self.stride),
            "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
            "dilation": list(self.dilation),
            "groups": self.groups,
            "bias": self.b is not None,
            "padding_mode": self.padding_mode,
            "init": self.init,
        }

    @classmethod
    def state_shapes(
        cls, in_channels, out_channels, kernel_size, bias=True, groups=1, **_
    ) -> dict[str, tuple[int, ...]]:
        name = cls.__name__
        c_in, c_out = size(name, "in_channels", in_channels), size(name, "out_channels", out_channels)
        groups = _groups(name, groups, c_in, c_out)
        taps = cls._kernel_taps(kernel_size)
        shapes = {"W": (c_out, c_in // groups, *(size(name, "kernel_size", k) for k in taps))}
        if bias:
            shapes["b"] = (c_out,)
        return shapes

    @staticmethod
    def _kernel_taps(kernel_size) -> tuple[int, ...]:
        """The kernel's axes as ``W`` stores them (Conv1d: one)."""
        return _pair(kernel_size, "kernel_size", "Conv2d")


def _groups(layer: str, groups, in_channels: int, out_channels: int) -> int:
    """``groups`` as an int >= 1 that divides both channel counts (PyTorch's rule)."""
    groups = int(check_arg(layer, "groups", groups, lambda v: v >= 1, "an integer >= 1", int))
    for what, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
        if channels % groups:
            raise ValueError(
                f"{layer}: {what} must be divisible by groups, got {what}={channels}, groups={groups}"
            )
    return groups


def _plain_stride(conv: Conv2d):
    return conv.stride[1] if isinstance(conv, Conv1d) else conv.stride


class Conv1d(Conv2d):
    """1-D convolution (PyTorch's ``nn.Conv1d``): a ``Conv2d`` over a height-1 image.

    ``W`` is stored (out_channels, in_channels, k) as in PyTorch.

    Shapes: x (N, C_in, L) -> y (N, C_out, Lo), Lo = floor((L + 2p - d (k - 1) - 1) / s) + 1.
    Backward: Conv2d's, on x viewed as (N, C_in, 1, L).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int | str = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        init: str = "torch_default",
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        k, s, d = (
            _single(kernel_size, "kernel_size"),
            _single(stride, "stride"),
            _single(dilation, "dilation"),
        )
        p = padding if isinstance(padding, str) else (0, _single(padding, "padding"))
        super().__init__(
            in_channels, out_channels, (1, k), (1, s), p, (1, d), groups, bias, padding_mode, init, rng, dtype
        )

    def _weight_shape(self) -> tuple[int, ...]:
        return (self.out_channels, self.in_channels // self.groups, self.kernel_size[1])

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x, 3, "(N, C, L)")
        return self._forward_padded(x[:, :, None, :])[:, :, 0, :]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward_padded(dy[:, :, None, :], need_dx=True)[:, :, 0, :]

    def backward_params(self, dy: np.ndarray) -> None:
        self._backward_padded(dy[:, :, None, :], need_dx=False)

    def config(self) -> dict:
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size[1],
            "stride": self.stride[1],
            "padding": self.padding if isinstance(self.padding, str) else self.padding[1],
            "dilation": self.dilation[1],
            "groups": self.groups,
            "bias": self.b is not None,
            "padding_mode": self.padding_mode,
            "init": self.init,
        }

    @staticmethod
    def _kernel_taps(kernel_size) -> tuple[int, ...]:
        return (_single(kernel_size, "kernel_size"),)


def _single(v, name: str) -> int:
    return ntuple(v, 1, name, "Conv1d", "an int")[0]
