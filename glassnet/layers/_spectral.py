"""A convolution through the discrete Fourier transform: three matrix products and a product
per frequency instead of im2col's windows.

Correlation is multiplication in frequency. Take the zero-padded input on its P x Q grid
(P = H + 2 p_h, Q = W + 2 p_w) and the kernel's taps at (a d_h, b d_w) on the same grid. With
the 2-D DFT, hat(z)[u, v] = sum_{h, q} z[h, q] exp(-2 pi i (u h / P + v q / Q)),

    y[i, j] = sum_{a, b} x[i s_h + a d_h, j s_w + b d_w] w[a, b]            (the layer's definition)
            = IDFT( hat(x) conj(hat(w)) )[i s_h, j s_w]

exactly, with no wrap-around: every window lies inside the grid. Over channels, for each
frequency f the products add up as one complex matrix product, Y^[f] = X^[f] conj(W^[f]) with
X^[f] (N, C) and W^[f] (C, out). Real inputs have Hermitian spectra, so only the frequencies
v = 0 .. Q // 2 are kept: F = P (Q // 2 + 1) of them. Every transform is a real matrix (``_matrices``,
cached per geometry) holding the cosines and sines, real part rows first:

    X^ = D_in x        (2F, N C)    x as (pixels, N C): the input's pixels only (the padding is zero)
    W^ = D_w w         (2F, C out)  w as (taps, C out)
    Y^[f] = X^[f] conj(W^[f]) + [f = 0] P Q b     (the bias: a constant image is all zero frequency)
    y = D_out Y^       (Ho Wo, N out)  the inverse DFT at the output pixels only

Backward is the same chain transposed (the adjoint of each linear step), with G = dY^r + i dY^i:

    dY^ = D_out^T delta        db = P Q sum_n dY^[0]                              (BP3)
    dW^[f] = X^[f]^T conj(G[f]) (as dW^r + i dW^i),  dW = D_w^T dW^               (BP4)
    dX^[f] = G[f] W^[f]^T,                            dx = D_in^T dX^             (BP2)

It costs 2F multiply-adds per pixel per transform and 4 per channel pair per frequency, against
kh kw per channel pair per output pixel for the windows: cheaper where channels are many and
images small (``cost``; the layer compares the two, ``conv.SPECTRAL_MAX_COST``). The numbers agree
with the windows' to rounding (float32: about 1e-6 of the largest output), not bit for bit.
"""

from __future__ import annotations

import functools

import numpy as np


def cost(c: int, out: int, hw: int, out_hw: int, grid: tuple[int, int], taps: int) -> float:
    """Multiply-adds of a training step (forward and backward) this way, over the windows' way's,
    per example: the transforms in and out (x and dx, y and delta) and three complex products per
    frequency (forward, dW, dx; 4 real multiply-adds each), against the windows' three products
    of (Ho Wo, kh kw C) by (kh kw C, out). The weights' transforms are left out (no example in
    them), so the batch cancels out."""
    f = grid[0] * (grid[1] // 2 + 1)
    spectral = 2 * f * 2 * (hw * c + out_hw * out) + 3 * 4 * f * c * out
    return spectral / (3 * out_hw * c * out * taps)


@functools.lru_cache(maxsize=32)
def _matrices(grid, in_hw, pad, out_hw, stride, kernel, dilation, dtype_char):
    """(D_in (2F, H W), D_out (Ho Wo, 2F), D_w (2F, kh kw)) for one geometry, in the layer's dtype.

    Row or column (r, f) of the spectrum: r = 0 the real part, 1 the imaginary; f = (u, v),
    v = 0 .. Q // 2. D_in and D_w hold cos(theta) and -sin(theta) at the input's pixels
    (h + p_h, q + p_w) and the taps (a d_h, b d_w); D_out the inverse at the output pixels
    (i s_h, j s_w): (cos(theta), -sin(theta)) c_v / (P Q), where c_v = 1 for the columns v = 0 and
    v = Q / 2 that are their own mirror image, 2 for the others, which stand for their mirror too.
    Angles from integers mod P and Q, so they are exact before the cosine."""
    (P, Q), V = grid, grid[1] // 2 + 1

    def rows(positions_h, positions_w):  # (2F, len h * len w): cos and -sin at these pixels
        u, v = np.arange(P)[:, None, None, None], np.arange(V)[None, :, None, None]
        h, q = np.asarray(positions_h)[None, None, :, None], np.asarray(positions_w)[None, None, None, :]
        theta = 2 * np.pi * ((u * h % P) / P + (v * q % Q) / Q)
        theta = theta.reshape(P * V, -1)
        return np.concatenate([np.cos(theta), -np.sin(theta)])

    (h, w), (ph, pw), (ho, wo) = in_hw, pad, out_hw
    (sh, sw), (kh, kw), (dil_h, dil_w) = stride, kernel, dilation
    d_in = rows(np.arange(h) + ph, np.arange(w) + pw)
    d_w = rows(np.arange(kh) * dil_h, np.arange(kw) * dil_w)
    mirror = np.where((np.arange(V) == 0) | (2 * np.arange(V) == Q), 1.0, 2.0)
    weight = np.broadcast_to(mirror, (P, V)).reshape(P * V, 1) / (P * Q)
    d_out = rows(np.arange(ho) * sh, np.arange(wo) * sw) * np.concatenate([weight, weight])
    matrices = tuple(np.array(m, np.dtype(dtype_char), order="C") for m in (d_in, d_out.T, d_w))
    for m in matrices:
        m.flags.writeable = False  # shared by every layer of this geometry (the cache)
    return matrices


class Spectral:
    """One convolution's geometry and the spectra its backward needs (``forward`` keeps them).

    Arrays come and go as matrices whose rows are pixels and columns (example, channel):
    ``x_rows`` (H W, N C) and the returned y (Ho Wo, N out), delta (Ho Wo, N out) and dx
    (H W, N C); each may be a transposed view of an NCHW-contiguous array (BLAS reads either).
    Spectra are kept as two real planes, real part then imaginary, (2, F, N, C) for X^: the layout
    the transforms' products write and read, so every complex product is written out as the four
    real products it is made of."""

    def __init__(self, in_hw, pad, out_hw, stride, kernel, dilation, dtype) -> None:
        self.grid = (in_hw[0] + 2 * pad[0], in_hw[1] + 2 * pad[1])
        self.d_in, self.d_out, self.d_w = _matrices(
            self.grid, in_hw, pad, out_hw, stride, kernel, dilation, np.dtype(dtype).char
        )
        self.f = self.d_in.shape[0] // 2
        self.x_hat = self.w_hat = None

    def forward(self, x_rows: np.ndarray, W: np.ndarray, b: np.ndarray | None, n: int, keep: bool):
        """y (Ho Wo, N out) for x_rows (H W, N C) and W (out, C, kh, kw), b (out,) or None.

        Y^ = X^ conj(W^) per frequency: Y^r = X^r W^r + X^i W^i, Y^i = X^i W^r - X^r W^i."""
        out, c = W.shape[:2]
        f = self.f
        x_hat = (self.d_in @ x_rows).reshape(2, f, n, c)  # X^ = D_in x
        taps = W.reshape(out, c, -1).transpose(2, 1, 0).reshape(-1, c * out)  # w as (taps, C out)
        w_hat = (self.d_w @ taps).reshape(2, f, c, out)  # W^ = D_w w
        y_hat = np.empty((2, f, n, out), w_hat.dtype)
        np.matmul(x_hat[0], w_hat[0], out=y_hat[0])
        y_hat[0] += np.matmul(x_hat[1], w_hat[1])  # Y^r
        np.matmul(x_hat[1], w_hat[0], out=y_hat[1])
        y_hat[1] -= np.matmul(x_hat[0], w_hat[1])  # Y^i
        if b is not None:
            y_hat[0, 0] += (self.grid[0] * self.grid[1]) * b  # a constant image: zero frequency only
        if keep:
            self.x_hat, self.w_hat = x_hat, w_hat
        return self.d_out @ y_hat.reshape(2 * f, n * out)  # y = D_out Y^

    def backward(self, delta_rows: np.ndarray, n: int, need_dx: bool, has_bias: bool):
        """(dW (out, C, kh kw), db (out,) or None, dx (H W, N C) or None) for delta (Ho Wo, N out).

        With G^r and G^i the planes of dY^: dW^ = X^T conj(G) is
        dW^r = X^r^T G^r + X^i^T G^i, dW^i = X^i^T G^r - X^r^T G^i, and dX^ = G W^T is
        dX^r = G^r W^r^T - G^i W^i^T, dX^i = G^r W^i^T + G^i W^r^T."""
        x_hat, w_hat, f = self.x_hat, self.w_hat, self.f
        c, out = w_hat.shape[2:]
        dy_hat = (self.d_out.T @ delta_rows).reshape(2, f, n, out)  # dY^ = D_out^T delta
        db = (self.grid[0] * self.grid[1]) * dy_hat[0, 0].sum(axis=0) if has_bias else None  # BP3
        x_re_t, x_im_t = x_hat[0].transpose(0, 2, 1), x_hat[1].transpose(0, 2, 1)  # (F, C, N)
        dw_hat = np.empty((2, f, c, out), w_hat.dtype)
        np.matmul(x_re_t, dy_hat[0], out=dw_hat[0])
        dw_hat[0] += np.matmul(x_im_t, dy_hat[1])  # dW^r                                        BP4
        np.matmul(x_im_t, dy_hat[0], out=dw_hat[1])
        dw_hat[1] -= np.matmul(x_re_t, dy_hat[1])  # dW^i
        dw = (self.d_w.T @ dw_hat.reshape(2 * f, c * out)).reshape(-1, c, out).transpose(2, 1, 0)
        if not need_dx:
            return dw, db, None
        w_re_t, w_im_t = w_hat[0].transpose(0, 2, 1), w_hat[1].transpose(0, 2, 1)  # (F, out, C)
        dx_hat = np.empty((2, f, n, c), w_hat.dtype)
        np.matmul(dy_hat[0], w_re_t, out=dx_hat[0])
        dx_hat[0] -= np.matmul(dy_hat[1], w_im_t)  # dX^r
        np.matmul(dy_hat[0], w_im_t, out=dx_hat[1])
        dx_hat[1] += np.matmul(dy_hat[1], w_re_t)  # dX^i
        return dw, db, self.d_in.T @ dx_hat.reshape(2 * f, n * c)  # dx = D_in^T dX^               BP2
