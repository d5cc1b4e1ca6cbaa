"""Batch normalization (Ioffe & Szegedy 2015) with PyTorch's semantics, and layer normalization
(``LayerNorm``, at the end of the file: the same derivation over the features of one example).

Each channel c is normalised over its m = N * L values (L = 1, the length, or H * W): the batch
and every position share one mean and one variance. In training the statistics are the batch's
own and the running estimates are updated; in eval the running estimates are used, so the layer
is a fixed affine map per channel.

Forward, for one channel with values x_i, i = 1..m:
    mu = (1/m) sum_i x_i,   var = (1/m) sum_i (x_i - mu)^2  (biased),  sigma = sqrt(var + eps)
    x_hat_i = (x_i - mu) / sigma,   y_i = gamma x_hat_i + beta
    running_mean = (1 - f) running_mean + f mu
    running_var  = (1 - f) running_var  + f var m/(m - 1)   (the unbiased variance)
with f = momentum, or f = 1/t after t training batches when momentum is None (a cumulative
average). ``num_batches_tracked`` counts t in either case, as in PyTorch. With
``track_running_stats=False`` (PyTorch's option) there are no running estimates and no buffers:
the batch's own statistics are used in eval too, and backward is the training one in both modes.

Backward (delta_i = dy_i, the output error). gamma and beta are a per-channel scale and bias:
    dbeta  = sum_i dy_i            (BP3: a bias collects the summed delta)
    dgamma = sum_i dy_i x_hat_i    (BP4, with x_hat in the place of the activation)
x_i reaches the loss through x_hat_i and, through mu and sigma, through every x_hat_j. With
dmu/dx_i = 1/m and dsigma/dx_i = x_hat_i / m,
    dx_hat_j/dx_i = (1/sigma) (delta_ij - 1/m - x_hat_i x_hat_j / m),
so with dx_hat = dy gamma the three-term formula
    dx_i = (1/(m sigma)) (m dx_hat_i - sum_j dx_hat_j - x_hat_i sum_j dx_hat_j x_hat_j).
gamma is constant over the channel, so sum_j dx_hat_j = gamma dbeta and
sum_j dx_hat_j x_hat_j = gamma dgamma: the code computes
    dx = (gamma / (m sigma)) (m dy - dbeta - x_hat dgamma)
from the two sums it needs for the parameters anyway. In eval mu and sigma are constants and
dx = dy gamma / sigma_running.

Synchronised batch norm (``sync``, set by ``glassnet.distributed`` with ``sync_batchnorm=True``,
and by ``glassnet.shards`` for the parts of a batch run on threads, where every part's delta is
the whole batch's loss's already: w_r = 1):
the batch is split over K processes, rank r holding n_r of the n_b examples, and the statistics
must be the whole batch's. With M = n_b L values per channel, forward sums over every rank:
    mu = (1/M) allreduce(sum_i x_i),   var = (1/M) allreduce(sum_i (x_i - mu)^2)
(two reductions, centred as above: E[x^2] - mu^2 in one would cancel catastrophically in float32).
In backward, rank r's delta is its own loss's, dy^r = dy / w_r with w_r = n_r / n_b (its loss is
a mean over n_r examples, the whole batch's over n_b); the sums in dx are the whole batch's,
    dbeta = allreduce(w_r sum_i dy^r_i),   dgamma = allreduce(w_r sum_i dy^r_i x_hat_i),
and dx^r = dx / w_r = (gamma / sigma) (dy^r - (dbeta + x_hat dgamma) / (M w_r)).
The parameters' own gradients stay the rank's sums: the gradient average weights them by w_r.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..module import (
    Module,
    Param,
    ShapeError,
    by_row_vector,
    check_arg,
    column_sums,
    float_dtype,
    is_int,
    row_sums,
)
from ._shapes import MAX_SIZE, size


def _channel_sum(a: np.ndarray, c: int, channels_last: bool = False) -> np.ndarray:
    """Per-channel sum over N and L of an (N, C*L) array, or of an (N, L*C) one when
    ``channels_last``: shape (C,).

    einsum reduces the two axes in one pass, where ``sum(axis=(0, 2))`` makes NumPy iterate
    over a strided axis. Channels-last: the sum over N first, as whole rows added together
    (contiguous), then over the L positions of that one row. ``column_sums`` of the (N L, C)
    rows (a BLAS product with ones, as Conv2d's bias gradient takes it) was timed against this
    on CNN-A's two batch-norm shapes: no faster at two BLAS threads, so the one NumPy pass stays.
    """
    if channels_last:
        return np.einsum("lc->c", a.sum(axis=0).reshape(-1, c))
    return np.einsum("ncl->c", a.reshape(a.shape[0], c, -1))


def _channel_dot(a: np.ndarray, b: np.ndarray, c: int, channels_last: bool = False) -> np.ndarray:
    """Per-channel sum over N and L of a * b, for (N, C*L) arrays (or (N, L*C) when
    ``channels_last``), with no temporary of their size."""
    if channels_last:
        return np.einsum("lc->c", np.einsum("nk,nk->k", a, b).reshape(-1, c))
    if a.shape[1] == c:  # (N, C): einsum, where vecdot would make N*C calls of length 1
        return np.einsum("nc,nc->c", a, b)
    n = a.shape[0]
    return np.vecdot(a.reshape(n, c, -1), b.reshape(n, c, -1)).sum(axis=0)


class _BatchNorm(Module):
    """Shared by ``BatchNorm1d`` and ``BatchNorm2d``; they differ only in the shapes accepted.

    ``weight`` (gamma, ones) and ``bias`` (beta, zeros) are ``decay=False``: the L1/L2
    regularizers skip them, as they skip biases (an optimizer's ``weight_decay`` still applies to
    every parameter it is given, as in PyTorch). The buffers
    ``running_mean``, ``running_var`` and ``num_batches_tracked`` (a 0-d int64 array) are
    saved with the weights; ``buffers()`` names them by their attribute names.
    """

    mixes_examples = True  # its training statistics are the whole batch's

    ndims: tuple[int, ...] = ()
    layout: str = ""  # the accepted shapes, ``{}`` standing for num_features

    # a reduction over the batch's parts, or None: glassnet.distributed's over processes
    # (sync_batchnorm), glassnet.shards's over threads; it says whether this layer updates the
    # running statistics (each process its own copy; one thread for the replicas' shared one)
    sync = None

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        num_features = int(
            check_arg(name, "num_features", num_features, lambda v: v >= 1, "an integer >= 1", int)
        )
        check_arg(name, "eps", eps, lambda v: 0 < v < math.inf, "a number > 0")
        if momentum is not None:
            check_arg(name, "momentum", momentum, lambda v: 0.0 <= v <= 1.0, "in [0, 1] or None")
        dtype = float_dtype(dtype, name)
        self.num_features, self.affine = num_features, affine
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        if affine:
            self.weight = Param(np.ones(num_features, dtype), "weight", decay=False)
            self.bias = Param(np.zeros(num_features, dtype), "bias", decay=False)
            self.params = [self.weight, self.bias]
        # track_running_stats=False (PyTorch's option): no running statistics at all, and the
        # batch's own statistics in eval too
        self.track_running_stats = bool(track_running_stats)
        self.running_mean = self.running_var = self.num_batches_tracked = None
        if self.track_running_stats:
            self.running_mean = np.zeros(num_features, dtype)
            self.running_var = np.ones(num_features, dtype)
            self.num_batches_tracked = np.array(0, dtype=np.int64)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> _BatchNorm:
        """gamma = 1, beta = 0 and fresh running statistics, as PyTorch (``rng`` is unused)."""
        if self.affine:
            self.weight.data[...] = 1.0
            self.bias.data[...] = 0.0
        self.reset_running_stats()
        return self

    def reset_running_stats(self) -> None:
        if not self.track_running_stats:
            return
        self.running_mean[...] = 0.0
        self.running_var[...] = 1.0
        self.num_batches_tracked[...] = 0

    def buffers(self) -> dict[str, np.ndarray]:
        if not self.track_running_stats:
            return {}
        return {
            "running_mean": self.running_mean,
            "running_var": self.running_var,
            "num_batches_tracked": self.num_batches_tracked,
        }

    def to(self, dtype) -> _BatchNorm:
        """Parameters and the running statistics to ``dtype`` (new arrays); the count stays int64."""
        super().to(dtype)
        if not self.track_running_stats:
            return self
        self.running_mean = self.running_mean.astype(dtype)
        self.running_var = self.running_var.astype(dtype)
        return self

    # --- the two passes -------------------------------------------------------------------
    # Arrays are handled as (N, C*L), one row per example, and a per-channel vector v as
    # repeat(v, L), laid out along a row: NumPy's inner loop then runs over two contiguous
    # operands, instead of restarting for every channel as a (C, 1) broadcast over (N, C, L) does.
    # A convolution's output (an NCHW view of channels-last memory) is handled as (N, H W C)
    # rows instead, v laid out as tile(v, H W): the same contiguous loops, without copying x
    # into NCHW order, and y and dx keep the channels-last layout (the next layers' element-wise
    # passes and the next convolution's transposes then stay copy-free). A view of pixel-major
    # (H, W, N, C) memory (a one-channel convolution's output before a max-pool) is handled as
    # (H, W N C) rows, v laid out as tile(v, W N), for the same reasons (rows of N C numbers,
    # H W of them, were slower: NumPy restarts its loop over a broadcast row at every row).
    def _rows(self, a: np.ndarray) -> np.ndarray:
        """``a`` as the 2-D array the passes run on: (N, C*L), (N, H*W*C) when channels-last,
        (H, W*N*C) when pixel-major."""
        width = math.prod(a.shape[1:])  # not -1: NumPy cannot infer it for a batch of zero rows
        if self.pixel_major:
            n, c, h, w = a.shape
            return a.transpose(2, 3, 0, 1).reshape(h, w * n * c)  # a copy only if a lies otherwise
        if self.channels_last:
            return a.transpose(0, 2, 3, 1).reshape(a.shape[0], width)  # a copy only if a is NCHW
        return a.reshape(a.shape[0], width)

    def _unrows(self, a2: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if self.pixel_major:
            n, c, h, w = shape
            return a2.reshape(h, w, n, c).transpose(2, 3, 0, 1)
        if self.channels_last:
            n, c, h, w = shape
            return a2.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return a2.reshape(shape)

    def _sum(self, a: np.ndarray) -> np.ndarray:  # channels innermost either way: the same sums
        return _channel_sum(a, self.num_features, self.channels_last or self.pixel_major)

    def _dot(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _channel_dot(a, b, self.num_features, self.channels_last or self.pixel_major)

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim not in self.ndims or x.shape[1] != self.num_features:
            expected = self.layout.format(self.num_features)
            raise ShapeError(f"{type(self).__name__} expects input {expected}, got shape {x.shape}")
        n, c = x.shape[:2]
        length = math.prod(x.shape[2:])  # L: 1, the sequence length, or H * W
        m = n * length  # values per channel
        self.channels_last = x.ndim == 4 and c > 1 and F.lies_as(x, F.CHANNELS_LAST)
        self.pixel_major = not self.channels_last and x.ndim == 4 and c > 1 and F.lies_as(x, F.PIXEL_MAJOR)
        self.length = length
        # where channels are innermost, how often a per-channel vector repeats along a row
        self.tiles = length if self.channels_last else x.shape[3] * n if self.pixel_major else 0
        x2 = self._rows(x)
        # backward follows the mode forward ran in; without running statistics, always the batch's
        self.batch_stats = self.training or not self.track_running_stats
        self.xc = self.x2 = None  # drop the other mode's arrays
        if not self.batch_stats:
            return self._unrows(self._forward_eval(x2), x.shape)
        sync = self.sync
        if sync is not None:
            m = sync.examples * self.length  # M: the values per channel over every rank
        if m < 2:
            raise ShapeError(
                f"{type(self).__name__}: Expected more than 1 value per channel when training, "
                f"got input size {x.shape}"
            )
        if sync is None:
            mu = self._sum(x2) * (1.0 / m)
        else:
            mu = sync.allreduce(self._sum(x2)) * (1.0 / m)
        xc = x2 - self._spread(mu)  # centred first: var from E[(x - mu)^2] has no cancellation
        if sync is None:
            var = self._dot(xc, xc) * (1.0 / m)  # biased: what normalises
        else:
            var = sync.allreduce(self._dot(xc, xc)) * (1.0 / m)
        # a sync may leave the update to one of the parts sharing the statistics (glassnet.shards)
        if self.training and self.track_running_stats and getattr(sync, "updates_running_stats", True):
            self._update_running_stats(mu, var, m)
        inv_sigma = 1.0 / np.sqrt(var + self.eps)
        # x_hat = xc / sigma is never stored: y = xc (gamma / sigma) + beta in two passes, and
        # backward's sums and products with x_hat take xc and fold 1 / sigma into the per-channel
        # factors (one pass over the batch fewer each way)
        self.xc, self.inv_sigma = xc, inv_sigma
        scale = inv_sigma * self.weight.data if self.affine else inv_sigma
        y = xc * self._spread(scale)
        if self.affine:
            y += self._spread(self.bias.data)
        return self._unrows(y, x.shape)

    def _spread(self, v: np.ndarray) -> np.ndarray:
        """A per-channel vector (C,) laid out along a (C*L) row (an (L*C) row: channels-last;
        a (W*N*C) row: pixel-major)."""
        return np.tile(v, self.tiles) if self.tiles else np.repeat(v, self.length)

    def _forward_eval(self, x2: np.ndarray) -> np.ndarray:
        """y = x scale + shift with scale = gamma / sigma, shift = beta - mu scale: two passes."""
        self.mu, self.inv_sigma = self.running_mean.copy(), 1.0 / np.sqrt(self.running_var + self.eps)
        self.x2 = x2  # x_hat is formed in backward, and only if gamma needs its gradient
        scale = self.inv_sigma * self.weight.data if self.affine else self.inv_sigma
        shift = -self.mu * scale
        if self.affine:
            shift += self.bias.data
        y = x2 * self._spread(scale)
        y += self._spread(shift)
        return y

    def _update_running_stats(self, mu: np.ndarray, var: np.ndarray, m: int) -> None:
        self.num_batches_tracked += 1
        f = 1.0 / int(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean *= 1.0 - f
        self.running_mean += f * mu
        self.running_var *= 1.0 - f
        self.running_var += (f * m / (m - 1)) * var  # the unbiased batch variance

    def backward(self, dy: np.ndarray) -> np.ndarray:
        k = self.inv_sigma * self.weight.data if self.affine else self.inv_sigma  # gamma / sigma
        if not self.batch_stats:
            dy2 = self._rows(dy)
            self._eval_param_grads(dy2)
            return self._unrows(dy2 * self._spread(k), dy.shape)  # dx = dy gamma / sigma_running
        xc, c = self.xc, self.num_features
        dy2 = self._rows(dy)
        m = xc.size // c  # values per channel
        dbeta = self._sum(dy2)  # BP3
        dgamma = self._dot(dy2, xc) * self.inv_sigma  # sum dy x_hat, x_hat = xc / sigma
        if self.affine:
            self.weight.grad += dgamma
            self.bias.grad += dbeta
        if self.sync is not None:
            return self._unrows(self._backward_synced(dy2, dbeta, dgamma, k), dy.shape)
        # dx = (gamma / (m sigma)) (m dy - dbeta - x_hat dgamma), in four passes and one array
        dx = xc * self._spread(dgamma * (-self.inv_sigma / m))
        dx += dy2
        dx -= self._spread(dbeta * (1.0 / m))
        dx *= self._spread(k)
        return self._unrows(dx, dy.shape)

    def _backward_synced(self, dy2, dbeta, dgamma, k) -> np.ndarray:
        """dx^r = (gamma / sigma) (dy^r - (dbeta + x_hat dgamma) / (M w_r)), the sums over every
        rank (module docstring)."""
        c, w = self.num_features, self.sync.weight
        m = self.sync.examples * self.length
        sums = self.sync.allreduce(np.concatenate([dbeta, dgamma]) * w)
        dbeta_all, dgamma_all = sums[:c], sums[c:]
        dx = self.xc * self._spread(dgamma_all * (-self.inv_sigma / (m * w)))
        dx += dy2
        dx -= self._spread(dbeta_all * (1.0 / (m * w)))
        dx *= self._spread(k)
        return dx

    def backward_params(self, dy: np.ndarray) -> None:
        """dgamma and dbeta only (the layer is first in a network: no dx needed)."""
        if not self.affine:
            return
        if not self.batch_stats:
            self._eval_param_grads(self._rows(dy))
            return
        dy2 = self._rows(dy)
        self.weight.grad += self._dot(dy2, self.xc) * self.inv_sigma
        self.bias.grad += self._sum(dy2)

    def _eval_param_grads(self, dy2: np.ndarray) -> None:
        if not self.affine:
            return
        x_hat = self.x2 - self._spread(self.mu)
        x_hat *= self._spread(self.inv_sigma)
        self.weight.grad += self._dot(dy2, x_hat)
        self.bias.grad += self._sum(dy2)

    def config(self) -> dict:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
        }

    @classmethod
    def state_shapes(
        cls, num_features, affine=True, track_running_stats=True, **_
    ) -> dict[str, tuple[int, ...]]:
        c = size(cls.__name__, "num_features", num_features)
        stats = {"running_mean": (c,), "running_var": (c,), "num_batches_tracked": ()}
        stats = stats if track_running_stats else {}
        return {"weight": (c,), "bias": (c,), **stats} if affine else stats


class BatchNorm1d(_BatchNorm):
    """Batch normalization of (N, C) features or (N, C, L) sequences (PyTorch's ``BatchNorm1d``).

    Shapes: x (N, C) or (N, C, L) -> y of the same shape; statistics over N (and L) per channel.
    Backward: dbeta = sum dy, dgamma = sum dy x_hat,
              dx = (gamma / (m sigma)) (m dy - dbeta - x_hat dgamma)  (training; see the module
              docstring for the derivation), dx = dy gamma / sigma_running (eval).
    """

    ndims = (2, 3)
    layout = "(N, {0}) or (N, {0}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of (N, C, H, W) feature maps (PyTorch's ``BatchNorm2d``).

    Shapes: x (N, C, H, W) -> y (N, C, H, W); statistics over N, H and W per channel.
    Backward: dbeta = sum dy, dgamma = sum dy x_hat,
              dx = (gamma / (m sigma)) (m dy - dbeta - x_hat dgamma)  (training; see the module
              docstring for the derivation), dx = dy gamma / sigma_running (eval).
    """

    ndims = (4,)
    layout = "(N, {}, H, W)"


class LayerNorm(Module):
    """Layer normalization (Ba et al. 2016) over the last axes of each example (PyTorch's
    ``nn.LayerNorm``): each example (each token of a sequence) is normalised by its own mean
    and variance over ``normalized_shape``, so training and eval compute the same thing and no
    running statistics exist.

    ``weight`` (gamma, ones) and ``bias`` (beta, zeros) have shape ``normalized_shape``, one per
    feature (not per channel as in batch norm); ``elementwise_affine=False`` drops both,
    ``bias=False`` only beta (PyTorch >= 2.1). Both are ``decay=False``.

    Shapes: x (*, *normalized_shape) -> y of the same shape.

    Backward: batch norm's derivation with the roles of the axes swapped. For one example with
    the m = prod(normalized_shape) values x_j, mu = (1/m) sum_j x_j,
    sigma = sqrt((1/m) sum_j (x_j - mu)^2 + eps), x_hat_j = (x_j - mu) / sigma,
    y_j = gamma_j x_hat_j + beta_j. The parameters collect over every example b (BP3, BP4):
        dbeta_j  = sum_b dy_bj,    dgamma_j = sum_b dy_bj x_hat_bj.
    x_j reaches the loss through x_hat_j and, through mu and sigma, every x_hat_k; with
    dmu/dx_j = 1/m and dsigma/dx_j = x_hat_j / m, as in batch norm,
        dx_hat_k/dx_j = (1/sigma) (delta_jk - 1/m - x_hat_j x_hat_k / m),
    so with g = dx_hat = dy gamma (gamma varies along the row here, so the sums below are not
    dbeta and dgamma as they are in batch norm):
        dx_j = (1/(m sigma)) (m g_j - sum_k g_k - x_hat_j sum_k g_k x_hat_k).
    """

    def __init__(
        self,
        normalized_shape: int | tuple[int, ...],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        self.normalized_shape = _feature_shape(normalized_shape)
        self.eps = float(check_arg("LayerNorm", "eps", eps, lambda v: 0 < v < math.inf, "a number > 0"))
        self.elementwise_affine, self.bias_on = bool(elementwise_affine), bool(bias)
        dtype = float_dtype(dtype, "LayerNorm")
        self.weight = self.bias = None
        if self.elementwise_affine:
            self.weight = Param(np.ones(self.normalized_shape, dtype), "weight", decay=False)
            self.params = [self.weight]
            if self.bias_on:
                self.bias = Param(np.zeros(self.normalized_shape, dtype), "bias", decay=False)
                self.params.append(self.bias)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> LayerNorm:
        """gamma = 1, beta = 0, as PyTorch (``rng`` is unused)."""
        if self.weight is not None:
            self.weight.data[...] = 1.0
        if self.bias is not None:
            self.bias.data[...] = 0.0
        return self

    def forward(self, x: np.ndarray) -> np.ndarray:
        k = len(self.normalized_shape)
        if x.ndim < k or x.shape[x.ndim - k :] != self.normalized_shape:
            raise ShapeError(
                f"LayerNorm expects input (*, {_dims(self.normalized_shape)}), got shape {x.shape}"
            )
        m = math.prod(self.normalized_shape)
        x2 = x.reshape(-1, m)  # one row per example (per token)
        x_hat = x2 - row_sums(x2)[:, None] * (1.0 / m)  # centred first: no cancellation in var
        var = row_sums(np.square(x_hat)) * (1.0 / m)
        self.inv_sigma = (1.0 / np.sqrt(var + self.eps))[:, None]
        x_hat *= self.inv_sigma
        self.x_hat = x_hat
        if self.weight is None:
            return x_hat.reshape(x.shape)
        y = by_row_vector(np.multiply, x_hat, self.weight.data.reshape(-1))  # gamma x_hat
        if self.bias is not None:
            by_row_vector(np.add, y, self.bias.data.reshape(-1), out=y)  # + beta
        return y.reshape(x.shape)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_hat, m = self.x_hat, self.x_hat.shape[1]
        dy2 = dy.reshape(x_hat.shape)
        dy_x_hat = dy2 * x_hat  # the terms of dgamma's sums and, times gamma, of sum g x_hat
        self._param_grads(dy2, dy_x_hat)
        # g = dx_hat = dy gamma; its row sums are products with gamma (ones without it)
        gamma = self.weight.data.reshape(-1) if self.weight is not None else np.ones(m, x_hat.dtype)
        sum_g = (dy2 @ gamma)[:, None]
        sum_g_x_hat = (dy_x_hat @ gamma)[:, None]
        # dx = (1/(m sigma)) (m g - sum g - x_hat sum g x_hat)
        dx = by_row_vector(np.multiply, dy2, m * gamma)
        dx -= np.multiply(x_hat, sum_g_x_hat, out=dy_x_hat)
        dx -= sum_g
        dx *= self.inv_sigma * (1.0 / m)
        return dx.reshape(dy.shape)

    def backward_params(self, dy: np.ndarray) -> None:
        dy2 = dy.reshape(self.x_hat.shape)
        self._param_grads(dy2, dy2 * self.x_hat)

    def _param_grads(self, dy2: np.ndarray, dy_x_hat: np.ndarray) -> None:
        if self.weight is not None:  # dgamma_j = sum_b dy_bj x_hat_bj
            self.weight.grad += column_sums(dy_x_hat).reshape(self.normalized_shape)
        if self.bias is not None:  # dbeta_j = sum_b dy_bj
            self.bias.grad += column_sums(dy2).reshape(self.normalized_shape)

    def config(self) -> dict:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias_on,
        }

    @classmethod
    def state_shapes(
        cls, normalized_shape, elementwise_affine=True, bias=True, **_
    ) -> dict[str, tuple[int, ...]]:
        shape = _feature_shape(normalized_shape)
        if math.prod(shape) > MAX_SIZE:
            raise ValueError(f"LayerNorm: normalized_shape must hold at most {MAX_SIZE} values, got {shape}")
        if not elementwise_affine:
            return {}
        return {"weight": shape, "bias": shape} if bias else {"weight": shape}


def _feature_shape(normalized_shape) -> tuple[int, ...]:
    """``normalized_shape`` (an int, or a tuple or list of ints, as PyTorch) as a tuple of ints."""
    values = (normalized_shape,) if is_int(normalized_shape) else normalized_shape
    if not isinstance(values, (tuple, list)) or not values:
        raise ValueError(
            f"LayerNorm: normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}"
        )
    return tuple(size("LayerNorm", "normalized_shape", v) for v in values)


def _dims(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape)
