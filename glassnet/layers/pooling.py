"""Pooling layers: max and average over windows (1-D and 2-D), and global pooling.

Every window pool is a loop over the k_h * k_w kernel offsets, never over examples or output
pixels: for the offset (a, b) the units it touches in all windows at once form one strided view
of the (padded) input, ``xp[:, :, a::s, b::s]`` cropped to the output size. Forward reduces those
views into y; backward sends each view its share of delta, with a plain assignment when the
windows tile the input (stride == kernel, no padding, the common ``MaxPool2d(2)``) and with
slice-adds into a zeroed, padded buffer when windows overlap or hang over the border.

Why strided views: each is read once, in place, by one element-wise ``maximum`` or ``add``
over the whole batch. A (N, C, Ho, k, Wo, k) reshape reduced by ``max(axis=(3, 5))`` walks
memory in small inner loops, and copying the windows to (N, C, Ho, Wo, k*k) for ``argmax``
writes k*k copies of the input first; both are slower on CNN-A's shapes (bench_layers.py
measures the pooling rows; the results are in benchmarks/results/).

The 1-D layers run the 2-D code on (N, C, 1, L) with a (1, k) kernel.

Integer (and bool) input is pooled in floats, as ``Conv2d`` computes it: the smallest float
dtype that holds every value exactly (NumPy's promotion with float32: float32 for uint8 pixels,
float64 for int64), so that -inf padding and averages have a dtype to live in.

PyTorch's further options, with its names and defaults (``ceil_mode``; ``dilation`` for max
pooling; ``count_include_pad`` for average pooling), run in plain window code at the end of the
file, which the default options never reach.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .. import functional as F
from ..module import Module, ShapeError, grad_enabled, ran_under_no_grad
from ._shapes import ntuple, out_size
from .activations import ReLU, relu, relu_grad

Size = int | tuple[int, ...] | list[int]


def _plain(values: tuple[int, ...]) -> int | list[int]:
    """JSON-able form for config(): one int when every axis agrees (as it was given, usually)."""
    return values[0] if len(set(values)) == 1 else list(values)


def _copy_in_order(a: np.ndarray, order: list[int]) -> np.ndarray:
    out = F.empty_in_order(a.shape, a.dtype, order)
    out[...] = a
    return out


def _views(xp: np.ndarray, k, s, out_hw) -> list[np.ndarray]:
    """For each kernel offset (a, b), row-major, the strided view of the units it covers in
    every window: entry [n, c, i, j] is xp[n, c, i s_h + a, j s_w + b]."""
    (kh, kw), (sh, sw), (Ho, Wo) = k, s, out_hw
    return [
        xp[:, :, a : a + sh * (Ho - 1) + 1 : sh, b : b + sw * (Wo - 1) + 1 : sw]
        for a in range(kh)
        for b in range(kw)
    ]


def _as_float(x: np.ndarray) -> np.ndarray:
    """Integer or bool input as floats (see the module docstring); float input as it is."""
    return x.astype(np.result_type(x.dtype, np.float32)) if x.dtype.kind in "biu" else x


def _pad(x: np.ndarray, p, value: float) -> np.ndarray:
    ph, pw = p
    if ph == pw == 0:
        return x
    N, C, H, W = x.shape
    xp = F.empty_in_order((N, C, H + 2 * ph, W + 2 * pw), x.dtype, F.axis_order(x), fill=value)
    xp[:, :, ph : ph + H, pw : pw + W] = x
    return xp


class _Pool(Module):
    """Window pooling over the spatial axes; subclasses set ``ndim`` (1 or 2) and define
    ``_pool`` (forward on (N, C, H, W)) and ``_scatter`` (backward to the padded input)."""

    ndim: int

    def __init__(
        self,
        kernel_size: Size,
        stride: Size | None = None,
        padding: Size = 0,
        dilation: Size = 1,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        name, n = type(self).__name__, self.ndim
        self.kernel_size = ntuple(kernel_size, n, "kernel_size", name)
        self.stride = self.kernel_size if stride is None else ntuple(stride, n, "stride", name)
        self.padding = ntuple(padding, n, "padding", name)
        self.dilation = ntuple(dilation, n, "dilation", name)
        if min(self.kernel_size) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"{name}: kernel_size and stride must be >= 1 and padding >= 0, got kernel_size="
                f"{kernel_size!r}, stride={stride!r}, padding={padding!r}"
            )
        if min(self.dilation) < 1:
            raise ValueError(f"{name}: dilation must be >= 1, got {dilation!r}")
        reach = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        if any(p > r // 2 for p, r in zip(self.padding, reach)):
            # as PyTorch: a wider pad would let a window hold padding only
            dilated = f" with dilation={_plain(self.dilation)}" if max(self.dilation) > 1 else ""
            raise ValueError(
                f"{name}: padding must be at most half the kernel size, got padding="
                f"{_plain(self.padding)} for kernel_size={_plain(self.kernel_size)}{dilated}"
            )
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        # the 2-D geometry: 1-D layers pool (N, C, 1, L) with a (1, k) kernel
        pad1 = (1,) * (2 - n)
        self.k, self.s, self.p = pad1 + self.kernel_size, pad1 + self.stride, (0,) * (2 - n) + self.padding
        self.d = pad1 + self.dilation
        # windows tile the input: every unit in at most one window, backward can assign
        self.tiled = self.s == self.k and self.p == (0, 0)
        # PyTorch's further options run in the plain window code at the end of the file
        self.general = self.ceil_mode or self.d != (1, 1) or not self.count_include_pad

    def _as_4d(self, x: np.ndarray) -> np.ndarray:
        expected, spatial = ("(N, C, H, W)", "(H, W)") if self.ndim == 2 else ("(N, C, L)", "L")
        if x.ndim != self.ndim + 2:
            raise ShapeError(f"{type(self).__name__} expects input {expected}, got shape {x.shape}")
        x4 = x if self.ndim == 2 else x[:, :, None, :]
        H, W = x4.shape[2:]
        (kh, kw), (ph, pw) = self.k, self.p
        if H + 2 * ph < kh or W + 2 * pw < kw:
            raise ShapeError(
                f"{type(self).__name__}: input {spatial} = {x.shape[2:]} (padding "
                f"{_plain(self.padding)}) is smaller than kernel_size {_plain(self.kernel_size)}"
            )
        return x4

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _as_float(x)
        if self.general:
            return _general_forward(self, x)
        x4 = self._as_4d(x)
        self.x_shape = x.shape
        self.order = F.axis_order(x4)  # how x lies in memory; dx will lie the same way
        H, W = x4.shape[2:]
        self.out_hw = tuple(out_size(n, k, s, p) for n, k, s, p in zip((H, W), self.k, self.s, self.p))
        y = self._pool(x4)
        return y if self.ndim == 2 else y[:, :, 0, :]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        if self.general:
            return _general_backward(self, dy)
        dy4 = dy if self.ndim == 2 else dy[:, :, None, :]
        if F.axis_order(dy4) != self.order:
            # dy from a Flatten above arrives in C order while the pooling's arrays lie as its
            # input did (channels-last after a conv): one small copy into that layout, then a
            # scatter within one layout (scattering across two layouts strides through memory)
            dy4 = _copy_in_order(dy4, self.order)
        dx = self._scatter(dy4)
        return dx.reshape(self.x_shape)

    def _dx_buffer(self, dtype) -> np.ndarray:
        """dx over the padded input; zeros unless the windows cover every unit exactly once."""
        N, C = self.x_shape[:2]
        H, W = self.x_shape[2:] if self.ndim == 2 else (1, self.x_shape[2])
        (ph, pw), (Ho, Wo), (kh, kw) = self.p, self.out_hw, self.k
        covered = self.tiled and Ho * kh == H and Wo * kw == W
        # laid out in memory as the input was (channels-last after a convolution)
        return F.empty_in_order((N, C, H + 2 * ph, W + 2 * pw), dtype, self.order, None if covered else 0.0)

    def _crop(self, dxp: np.ndarray) -> np.ndarray:
        (ph, pw), (H, W) = self.p, dxp.shape[2:]
        return dxp[:, :, ph : H - ph, pw : W - pw]

    def config(self) -> dict:
        return {
            "kernel_size": _plain(self.kernel_size),
            "stride": _plain(self.stride),
            "padding": _plain(self.padding),
        }


class _MaxPool(_Pool):
    """Max over each window; the window's (first) argmax is all that backward keeps."""

    def __init__(
        self,
        kernel_size: Size,
        stride: Size | None = None,
        padding: Size = 0,
        dilation: Size = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation=dilation, ceil_mode=ceil_mode)

    def config(self) -> dict:
        return {**super().config(), "dilation": _plain(self.dilation), "ceil_mode": self.ceil_mode}

    def joined_step(self, before: Module):
        # the exact classes: a subclass may change either function
        plain = type(before) is ReLU and type(self) in (MaxPool1d, MaxPool2d)
        return PoolThenReLU(before, self) if plain else None

    def _pool(self, x: np.ndarray) -> np.ndarray:
        views = _views(_pad(x, self.p, -np.inf), self.k, self.s, self.out_hw)
        y = views[0].copy(order="K")  # "K": keep the input's memory layout
        if not grad_enabled():  # no backward follows (predict, evaluate): the max only
            self.idx = None
            for v in views[1:]:
                np.maximum(y, v, out=y)
            return y
        # the argmax as a kernel offset, 0 .. k_h k_w - 1 (one byte per output unit)
        self.idx = np.zeros_like(y, dtype=np.min_scalar_type(len(views) - 1))
        for o in range(1, len(views)):
            # strictly greater: on a tie the earlier unit stays the max (first max, as PyTorch).
            # Offsets rise, so the last strict improvement is the largest o that improved: a
            # maximum, not a masked assignment (idx[v > y] = o gathers and scatters index by index)
            np.maximum(self.idx, (views[o] > y) * self.idx.dtype.type(o), out=self.idx)
            np.maximum(y, views[o], out=y)
        return y

    def _scatter(self, dy: np.ndarray) -> np.ndarray:
        if self.idx is None:
            raise ran_under_no_grad(type(self).__name__, "no argmax")
        dxp = self._dx_buffer(dy.dtype)
        for o, view in enumerate(_views(dxp, self.k, self.s, self.out_hw)):
            # delta where offset o held the window's max, else 0 (a bool mask keeps the dtype)
            if self.tiled:
                np.multiply(dy, self.idx == o, out=view)
            else:
                view += dy * (self.idx == o)  # overlapping windows: a unit can be the max of several
        return self._crop(dxp)


class _AvgPool(_Pool):
    """Mean over each window, padding counted as zeros (``count_include_pad=True``, the default)
    or left out of the count (``False``)."""

    def __init__(
        self,
        kernel_size: Size,
        stride: Size | None = None,
        padding: Size = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__(
            kernel_size, stride, padding, ceil_mode=ceil_mode, count_include_pad=count_include_pad
        )

    def config(self) -> dict:
        return {**super().config(), "ceil_mode": self.ceil_mode, "count_include_pad": self.count_include_pad}

    def _pool(self, x: np.ndarray) -> np.ndarray:
        views = _views(_pad(x, self.p, 0.0), self.k, self.s, self.out_hw)
        y = views[0].copy(order="K")
        for v in views[1:]:
            y += v
        y *= 1.0 / len(views)  # a Python float keeps float32
        return y

    def _scatter(self, dy: np.ndarray) -> np.ndarray:
        dxp = self._dx_buffer(dy.dtype)
        share = dy * (1.0 / (self.k[0] * self.k[1]))
        for view in _views(dxp, self.k, self.s, self.out_hw):
            if self.tiled:
                view[...] = share
            else:
                view += share  # overlapping windows: a unit collects a share from each
        return self._crop(dxp)


class MaxPool2d(_MaxPool):
    """The largest unit of each k_h x k_w window (PyTorch's ``nn.MaxPool2d``; padding is -inf).

    Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo), Ho = floor((H + 2 p - d (k - 1) - 1) / s) + 1, as
    Wo (``ceil_mode=True``: ceil, without a last window starting past the input and its padding).
    ``dilation`` d spaces the window's taps d apart.
    Backward: delta passes to the unit that was the max of its window, the others get 0:
        dx[unit] = sum of dy[window] over the windows whose (first) max it was
    (on a tie the first maximum in row-major order takes it all, as PyTorch).
    """

    ndim = 2


class MaxPool1d(_MaxPool):
    """The largest unit of each length-k window along the last axis (``nn.MaxPool1d``).

    Shapes: x (N, C, L) -> y (N, C, Lo), Lo = floor((L + 2 p - k) / s) + 1.
    Backward: delta passes to the (first) max of each window, the others get 0.
    """

    ndim = 1


class AvgPool2d(_AvgPool):
    """The mean of each k_h x k_w window (PyTorch's ``nn.AvgPool2d``; padding counts as zeros).

    Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo), Ho = floor((H + 2 p - k) / s) + 1, as Wo
    (``ceil_mode=True``: ceil, as MaxPool2d).
    The divisor is k_h k_w; with ``count_include_pad=False`` it counts only the window's units
    inside the input, and a ceil-mode window never counts what it reaches past the padding.
    Backward: each window spreads delta / divisor over its units:
        dx[unit] = sum of dy[window] / divisor[window] over the windows that hold it
    """

    ndim = 2


class AvgPool1d(_AvgPool):
    """The mean of each length-k window along the last axis (``nn.AvgPool1d``; padding counted).

    Shapes: x (N, C, L) -> y (N, C, Lo), Lo = floor((L + 2 p - k) / s) + 1.
    Backward: each window spreads delta / k over its units.
    """

    ndim = 1


def _check_4d(layer: Module, x: np.ndarray) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{type(layer).__name__} expects input (N, C, H, W), got shape {x.shape}")


class GlobalAvgPool2d(Module):
    """The mean of each feature map: ``AdaptiveAvgPool2d(1)`` followed by ``Flatten()``.

    Shapes: x (N, C, H, W) -> y (N, C).
    Backward: each map spreads delta / (H W) over its units: dx = dy[:, :, None, None] / (H W).
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_4d(self, x)
        x = _as_float(x)
        self.x_shape = x.shape
        return x.mean(axis=(2, 3))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        N, C, H, W = self.x_shape
        dx = np.empty(self.x_shape, dy.dtype)
        dx[...] = (dy * (1.0 / (H * W)))[:, :, None, None]
        return dx


class GlobalMaxPool2d(Module):
    """The largest unit of each feature map: ``AdaptiveMaxPool2d(1)`` followed by ``Flatten()``.

    Shapes: x (N, C, H, W) -> y (N, C).
    Backward: delta passes to the unit that was the map's (first) max, the others get 0.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_4d(self, x)
        x = _as_float(x)
        self.x_shape = x.shape
        flat = x.reshape(*x.shape[:2], math.prod(x.shape[2:]))  # (N, C, H W), zero rows too
        self.idx = flat.argmax(axis=2)[:, :, None]  # the first maximum, as PyTorch
        return np.take_along_axis(flat, self.idx, axis=2)[:, :, 0]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        N, C, H, W = self.x_shape
        dx = np.zeros((N, C, H * W), dy.dtype)
        np.put_along_axis(dx, self.idx, dy[:, :, None], axis=2)
        return dx.reshape(self.x_shape)


class PoolThenReLU:
    """A ``ReLU`` directly followed by a max-pool, run by ``Sequential`` as one step: the pool
    first, then the ReLU on the pooled map.

    Max and ReLU commute: ReLU never puts two numbers in the other order, so
        relu(max(z_1, ..., z_k)) = max(relu(z_1), ..., relu(z_k)),
    and y is the layers' y, number for number, with the ReLU run on the pooled units only (a
    quarter of them after a 2x2 pool; CNN-A's first ReLU has 2.4 million). Backward is the
    chain rule through the two functions in this order, BP2 for the ReLU then the pool's
    scatter:
        dp = dy * [y > 0],   dx[unit] = dp[window] where the unit is the window's (first) max.
    Where a window's max is > 0 it is the same unit in both orders, and it gets dy; where the
    max is <= 0, both orders send 0 to every unit of the window (ReLU'(z) = 0 for z <= 0). So
    dx is the layer-by-layer dx too (``tests/test_pooling.py`` checks both, bit for bit).

    Not a module: the ReLU and the pool stay in the model as they are (``summary``, ``save``,
    the parameter names), and a walk (diagnostics, ``trace``, NaN provenance) runs them one by
    one and reports the ReLU's own output. ``glassnet.module.JOIN_STEPS = False`` runs the
    layers one by one everywhere (``benchmarks/bench_paths.py`` times both).
    """

    reports = 1  # Sequential names the pool (index 1 of the pair), which checks shapes

    def __init__(self, relu_layer: ReLU, pool: _MaxPool) -> None:
        self.relu, self.pool = relu_layer, pool

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.relu.y = None  # it kept no output of its own: its backward alone refuses to run
        self.y = relu(self.pool.forward(x))
        return self.y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self.pool.backward(relu_grad(dy, self.y))


# --- PyTorch's further options: ceil_mode, dilation (max), count_include_pad=False (average) ------
# Plain window code, one strided view of every window at once: the options change which units a
# window holds and what an average divides by, not the pooling itself. With the default options
# it computes what the fast code above does (tests/test_pooling.py checks that they agree).


def pooled_size(n: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's output length: floor (or ceil) of (n + 2p - d (k - 1) - 1) / s, plus 1; in ceil
    mode a last window that would start past the input and its left padding is dropped."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _general_geometry(layer: _Pool, x: np.ndarray):
    x4 = layer._as_4d(x)  # rank and the undilated size checks
    H, W = x4.shape[2:]
    out_hw = tuple(
        pooled_size(n, k, s, p, d, layer.ceil_mode)
        for n, k, s, p, d in zip((H, W), layer.k, layer.s, layer.p, layer.d)
    )
    if min(out_hw) < 1:
        raise ShapeError(
            f"{type(layer).__name__}: input {x.shape[2:]} (padding {_plain(layer.padding)}) is smaller "
            f"than the dilated kernel (kernel_size {_plain(layer.kernel_size)}, dilation "
            f"{_plain(layer.dilation)})"
        )
    # padding after the input: p, plus what the last (ceil mode) window reaches past it
    after = tuple(
        max(p, (o - 1) * s + d * (k - 1) + 1 - n - p)
        for n, k, s, p, d, o in zip((H, W), layer.k, layer.s, layer.p, layer.d, out_hw)
    )
    return x4, out_hw, after


def _windows(xp: np.ndarray, layer: _Pool, out_hw) -> np.ndarray:
    """(N, C, Ho, Wo, k_h, k_w): entry [n, c, i, j, a, b] = xp[n, c, i s_h + a d_h, j s_w + b d_w]."""
    (kh, kw), (sh, sw), (dil_h, dil_w), (Ho, Wo) = layer.k, layer.s, layer.d, out_hw
    win = sliding_window_view(xp, ((kh - 1) * dil_h + 1, (kw - 1) * dil_w + 1), axis=(2, 3))
    return win[:, :, : sh * (Ho - 1) + 1 : sh, : sw * (Wo - 1) + 1 : sw, ::dil_h, ::dil_w]


def _divisor(layer: _Pool, H: int, W: int) -> np.ndarray:
    """What each window's sum is divided by, (Ho, Wo), as PyTorch: the units of the window
    inside the padded input (count_include_pad) or inside the input alone; never the units a
    ceil-mode window reaches past the padding."""
    counts = []
    for n, k, s, p, o in zip((H, W), layer.k, layer.s, layer.p, layer.out_hw):
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        if not layer.count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, n)
        counts.append(end - start)
    return np.outer(counts[0], counts[1])


def _general_forward(layer: _Pool, x: np.ndarray) -> np.ndarray:
    x4, layer.out_hw, after = _general_geometry(layer, x)
    layer.x_shape = x.shape
    ph, pw = layer.p
    maximum = isinstance(layer, _MaxPool)
    fill = -np.inf if maximum else 0.0  # max: padding never wins; average: adds nothing
    xp = np.pad(x4, ((0, 0), (0, 0), (ph, after[0]), (pw, after[1])), constant_values=fill)
    win = _windows(xp, layer, layer.out_hw)
    if maximum:
        flat = win.reshape(*win.shape[:4], -1)
        layer.idx = flat.argmax(axis=-1)  # the first maximum in row-major order, as PyTorch
        y = np.take_along_axis(flat, layer.idx[..., None], axis=-1)[..., 0]
    else:
        layer.divisor = _divisor(layer, *x4.shape[2:]).astype(x.dtype)
        y = win.sum(axis=(-2, -1)) / layer.divisor
    layer.padded_hw = xp.shape[2:]
    return y if layer.ndim == 2 else y[:, :, 0, :]


def _general_backward(layer: _Pool, dy: np.ndarray) -> np.ndarray:
    """Max: delta to each window's (first) max; average: delta / divisor to every unit of the
    window; each kernel offset (a, b) adds into its strided view of the padded input's dx."""
    dy4 = dy if layer.ndim == 2 else dy[:, :, None, :]
    (kh, kw), (sh, sw), (dil_h, dil_w), (Ho, Wo) = layer.k, layer.s, layer.d, layer.out_hw
    N, C = dy4.shape[:2]
    dxp = np.zeros((N, C, *layer.padded_hw), dy.dtype)
    share = None if isinstance(layer, _MaxPool) else dy4 / layer.divisor
    for a in range(kh):
        for b in range(kw):
            view = dxp[
                :,
                :,
                a * dil_h : a * dil_h + sh * (Ho - 1) + 1 : sh,
                b * dil_w : b * dil_w + sw * (Wo - 1) + 1 : sw,
            ]
            view += dy4 * (layer.idx == a * kw + b) if share is None else share
    (ph, pw), H, W = layer.p, *(layer.x_shape[2:] if layer.ndim == 2 else (1, layer.x_shape[2]))
    return dxp[:, :, ph : ph + H, pw : pw + W].reshape(layer.x_shape)
