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


def _complex(re: np.ndarray, im: np.ndarray, negate_im: bool = False) -> np.ndarray:
    """re + i im (or re - i im) as one complex array: the parts interleaved, one copy."""
    z = np.empty((*re.shape, 2), re.dtype)
    z[..., 0] = re
    if negate_im:
        np.negative(im, out=z[..., 1])
    else:
        z[..., 1] = im
    return z.view(np.result_type(re.dtype, np.complex64))[..., 0]


def _planes(z: np.ndarray, negate_im: bool = False) -> np.ndarray:
    """(2, ...) real: z's real part, then its imaginary part (or minus it)."""
    out = np.empty((2, *z.shape), z.real.dtype)
    out[0] = z.real
    if negate_im:
        np.negative(z.imag, out=out[1])
    else:
        out[1] = z.imag
    return out


class Spectral:
    """One convolution's geometry and the spectra its backward needs (``forward`` keeps them).

    Arrays come and go as matrices whose rows are pixels and columns (example, channel):
    ``x_rows`` (H W, N C) and the returned y (Ho Wo, N out), delta (Ho Wo, N out) and dx
    (H W, N C); each may be a transposed view of an NCHW-contiguous array (BLAS reads either)."""

    def __init__(self, in_hw, pad, out_hw, stride, kernel, dilation, dtype) -> None:
        self.grid = (in_hw[0] + 2 * pad[0], in_hw[1] + 2 * pad[1])
        self.d_in, self.d_out, self.d_w = _matrices(
            self.grid, in_hw, pad, out_hw, stride, kernel, dilation, np.dtype(dtype).char
        )
        self.f = self.d_in.shape[0] // 2
        self.x_hat = self.w_hat = None

    def forward(self, x_rows: np.ndarray, W: np.ndarray, b: np.ndarray | None, n: int, keep: bool):
        """y (Ho Wo, N out) for x_rows (H W, N C) and W (out, C, kh, kw), b (out,) or None."""
        out, c = W.shape[:2]
        f = self.f
        x_hat = (self.d_in @ x_rows).reshape(2, f, n, c)  # X^ = D_in x
        x_hat = _complex(x_hat[0], x_hat[1])  # (F, N, C)
        taps = W.reshape(out, c, -1).transpose(2, 1, 0).reshape(-1, c * out)  # w as (taps, C out)
        w_hat = (self.d_w @ taps).reshape(2, f, c, out)  # W^ = D_w w
        # Y^ = X^ conj(W^) per frequency, in real arithmetic on X^'s interleaved parts, whose
        # columns are (channel, re/im): Y^r = X^r W^r + X^i W^i, Y^i = X^i W^r - X^r W^i. Each
        # part lands in its own plane of y_hat, the layout D_out's product reads
        x_parts = x_hat.view(x_hat.real.dtype).reshape(f, n, 2 * c)
        to_re, to_im = np.empty((2, f, c, 2, out), w_hat.dtype)
        to_re[:, :, 0], to_re[:, :, 1] = w_hat[0], w_hat[1]
        to_im[:, :, 0], to_im[:, :, 1] = -w_hat[1], w_hat[0]
        y_hat = np.empty((2, f, n, out), w_hat.dtype)
        np.matmul(x_parts, to_re.reshape(f, 2 * c, out), out=y_hat[0])
        np.matmul(x_parts, to_im.reshape(f, 2 * c, out), out=y_hat[1])
        if b is not None:
            y_hat[0, 0] += (self.grid[0] * self.grid[1]) * b  # a constant image: zero frequency only
        if keep:
            self.x_hat, self.w_hat = x_hat, w_hat
        return self.d_out @ y_hat.reshape(2 * f, n * out)  # y = D_out Y^

    def backward(self, delta_rows: np.ndarray, n: int, need_dx: bool, has_bias: bool):
        """(dW (out, C, kh kw), db (out,) or None, dx (H W, N C) or None) for delta (Ho Wo, N out)."""
        x_hat, w_hat, f = self.x_hat, self.w_hat, self.f
        c, out = w_hat.shape[2:]
        dy_hat = (self.d_out.T @ delta_rows).reshape(2, f, n, out)  # dY^ = D_out^T delta
        db = (self.grid[0] * self.grid[1]) * dy_hat[0, 0].sum(axis=0) if has_bias else None  # BP3
        g_conj = _complex(dy_hat[0], dy_hat[1], negate_im=True)  # conj(G), (F, N, out)
        dw_hat = np.matmul(x_hat.transpose(0, 2, 1), g_conj)  # dW^ = X^T conj(G): (F, C, out)  BP4
        dw = (self.d_w.T @ _planes(dw_hat).reshape(2 * f, c * out)).reshape(-1, c, out)
        dw = dw.transpose(2, 1, 0)  # (out, C, kh kw)
        if not need_dx:
            return dw, db, None
        # conj(dX^) = conj(G) conj(W^)^T, so that the product needs no conjugate of X^ or G
        w_conj_t = _complex(w_hat[0].transpose(0, 2, 1), w_hat[1].transpose(0, 2, 1), negate_im=True)
        dx_hat = _planes(np.matmul(g_conj, w_conj_t), negate_im=True)  # dX^ = G W^T: (2, F, N, C)
        return dw, db, self.d_in.T @ dx_hat.reshape(2 * f, n * c)  # dx = D_in^T dX^  BP2
