"""Gated recurrent layers, ``GRU`` and ``LSTM``: the cell of each and its step of backprop
through time. Layers, directions, parameters and the large products over all steps are
``_Recurrent``'s, in ``recurrent.py``, whose docstring describes the scheme.
"""

from __future__ import annotations

import numpy as np

from .recurrent import _Recurrent, _steps


def _sigmoid_(a: np.ndarray) -> None:
    """sigmoid(a) in place, as (1 + tanh(a / 2)) / 2 (an identity): never overflows, and NumPy's
    tanh is vectorised (SIMD) for float32 where scipy's expit is a scalar loop."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


class GRU(_Recurrent):
    """Gated recurrent unit (PyTorch's ``nn.GRU``), gates in PyTorch's order r, z, n:

        r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)       reset gate
        z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)       update gate
        n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))  candidate
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    The reset gate multiplies (h_{t-1} W_hn + b_hn), bias included, as in PyTorch (the
    original paper applies it to h_{t-1} before the product).

    Shapes: x (N, T, input_size) -> y (N, T, D hidden_size); h_n (num_layers D, N, hidden_size).

    Backward, step t from T-1 down to 0, with u_t = h_{t-1} W_hn + b_hn and the gate deltas
    delta^g = dLoss/d(pre-activation of gate g):
        dh_t      = dy_t + (dh_t from step t + 1)
        delta^n_t = dh_t (1 - z_t) (1 - n_t^2)
        delta^z_t = dh_t (h_{t-1} - n_t) z_t (1 - z_t)
        delta^r_t = delta^n_t u_t r_t (1 - r_t)
        dh_{t-1}  = dh_t z_t + [delta^r, delta^z, r_t delta^n]_t W_h^T
    The input side sees delta_x = [delta^r, delta^z, delta^n], the hidden side
    delta_h = [delta^r, delta^z, r delta^n]: dW_x += X^T delta_x, db_x += sum delta_x,
    dW_h += H_prev^T delta_h, db_h += sum delta_h, dx = delta_x W_x^T, dh0 = dh_{-1}.
    """

    gates = 3

    def _input_bias(self, b_x: np.ndarray, b_h: np.ndarray) -> np.ndarray:
        H = self.hidden_size
        bias = b_x.copy()
        bias[: 2 * H] += b_h[: 2 * H]  # r and z: b_x + b_h act as one bias; b_hn stays apart
        return bias

    def _scan(self, gx, W_h, b_h, state0, reverse):
        T, n, H3 = gx.shape
        H = H3 // 3
        b_hn = 0.0 if b_h is None else b_h.data[2 * H :]  # b_hr and b_hz are in gx already
        hs = np.empty((T + 1, n, H), gx.dtype)
        hs[T if reverse else 0] = state0[0]
        # what backward needs, one contiguous (N, .) block per step, so its element-wise work
        # runs over contiguous memory, not strided column slices: [r, z], n, u = h W_hn + b_hn, h - n
        rz, nn, u, h_minus_n = (np.empty((T, n, w), gx.dtype) for w in (2 * H, H, H, H))
        gh = np.empty((n, H3), gx.dtype)
        for t, cur, prev in _steps(T, reverse):
            np.matmul(hs[prev], W_h, out=gh)
            np.add(gx[t, :, : 2 * H], gh[:, : 2 * H], out=rz[t])
            _sigmoid_(rz[t])
            np.add(gh[:, 2 * H :], b_hn, out=u[t])
            np.multiply(rz[t, :, :H], u[t], out=nn[t])
            nn[t] += gx[t, :, 2 * H :]
            np.tanh(nn[t], out=nn[t])
            np.subtract(hs[prev], nn[t], out=h_minus_n[t])  # h_t = n + z (h_{t-1} - n)
            np.multiply(rz[t, :, H:], h_minus_n[t], out=hs[cur])
            hs[cur] += nn[t]
        return hs, rz, nn, u, h_minus_n

    def _scan_back(self, dY, cache, W_h, reverse):
        hs, rz, nn, u, h_minus_n = cache
        T, n, H = dY.shape
        # delta_h = [delta^r, delta^z, r delta^n] in one array, for one product per step;
        # the input side's delta^n has its own
        delta_h, delta_n = np.empty((T, n, 3 * H), hs.dtype), np.empty((T, n, H), hs.dtype)
        dh, carry = np.empty((n, H), hs.dtype), np.zeros((n, H), hs.dtype)
        tmp, tmp2 = np.empty((n, H), hs.dtype), np.empty((n, 2 * H), hs.dtype)
        for t, _, _ in reversed(_steps(T, reverse)):
            r, z, d_rz, dn = rz[t, :, :H], rz[t, :, H:], delta_h[t, :, : 2 * H], delta_n[t]
            np.add(dY[t], carry, out=dh)
            np.multiply(dh, z, out=carry)  # dh_{t-1} = dh z + delta_h W_h^T
            np.subtract(dh, carry, out=dn)
            np.multiply(nn[t], nn[t], out=tmp)
            np.subtract(1, tmp, out=tmp)
            dn *= tmp  # delta^n = dh (1 - z) (1 - n^2)
            np.multiply(dn, u[t], out=d_rz[:, :H])  # dLoss/dr = delta^n u
            np.multiply(dh, h_minus_n[t], out=d_rz[:, H:])  # dLoss/dz = dh (h_{t-1} - n)
            np.subtract(1, rz[t], out=tmp2)
            tmp2 *= rz[t]
            d_rz *= tmp2  # sigmoid' = s (1 - s), for r and z at once
            np.multiply(dn, r, out=delta_h[t, :, 2 * H :])
            np.matmul(delta_h[t], W_h.T, out=tmp)
            carry += tmp
        d_rz = delta_h[..., : 2 * H]  # the input side and the hidden side share delta^r, delta^z
        rz_cols, n_cols = slice(0, 2 * H), slice(2 * H, 3 * H)
        return [(rz_cols, d_rz, d_rz), (n_cols, delta_n, delta_h[..., 2 * H :])], (carry,)


class LSTM(_Recurrent):
    """Long short-term memory (PyTorch's ``nn.LSTM``), gates in PyTorch's order i, f, g, o:

        [i, f, g, o]_t = [sigmoid, sigmoid, tanh, sigmoid](x_t W_x + b_x + h_{t-1} W_h + b_h)
        c_t = f_t * c_{t-1} + i_t * g_t,      h_t = o_t * tanh(c_t)

    ``forward(x, (h0, c0))`` takes the initial state as PyTorch does; after forward the final
    state is ``h_n`` and ``c_n``, after backward dLoss/d(h0, c0) is ``dh0`` and ``dc0``.

    Shapes: x (N, T, input_size) -> y (N, T, D hidden_size); h_n, c_n (num_layers D, N, hidden_size).

    Backward, step t from T-1 down to 0:
        dh_t  = dy_t + delta_{t+1} W_h^T
        dc_t  = dc_t (from step t + 1: dc_{t+1} f_{t+1}) + dh_t o_t (1 - tanh^2 c_t)
        delta^o = dh_t tanh(c_t) o (1 - o),    delta^g = dc_t i (1 - g^2),
        delta^i = dc_t g i (1 - i),            delta^f = dc_t c_{t-1} f (1 - f)
        dc_{t-1} = dc_t f_t; dW_x += X^T delta, dW_h += H_prev^T delta, db_x = db_h += sum delta
    """

    gates = 4
    states = 2

    def _gate_scale(self, dtype) -> np.ndarray:
        """Per gate column (i, f, g, o): 1/2 for the sigmoid gates, 1 for g. sigmoid(a) =
        (1 + tanh(a / 2)) / 2, so with those columns of the pre-activation halved (exact, a
        power of two) one tanh serves all four gates."""
        return np.repeat(np.array([0.5, 0.5, 1.0, 0.5], dtype), self.hidden_size)

    def _input_weight(self, W_x: np.ndarray) -> np.ndarray:
        return W_x * self._gate_scale(W_x.dtype)  # the scan's gx comes scaled

    def _input_bias(self, b_x: np.ndarray, b_h: np.ndarray) -> np.ndarray:
        return (b_x + b_h) * self._gate_scale(b_x.dtype)

    def _layer(self, inp, T, n, cell, state0, reverse):
        """Forward over all steps. The scan's matrix Z holds per step the row block
        Z_t = [h_{t-1}, x_t, 1], so that a step's whole pre-activation is one product

            a_t = x_t W_x + b_x + h_{t-1} W_h + b_h = Z_t [W_h; W_x; b_x + b_h]

        and h_t is written into the h block of the rows the next step reads; backward then gets
        dW_h, dW_x and db as one product Z^T delta (``_layer_grads``). That holds for an input
        of at most ``bias_row_max_features`` features; a wider input's x_t W_x + bias of every
        step is one product before the scan (``_project``), and Z_t = h_{t-1}.

        The product's weight W = [W_h; W_x; b_x + b_h] has each gate's columns scaled by
        ``_gate_scale`` (1/2 for the sigmoid gates, 1 for g), so that Z_t W is the scaled a_t and
        its tanh, tau, serves all four gates: g_t = tau^g and i, f, o = (1 + tau) / 2."""
        W_x, W_h, b_x, b_h = cell
        F, H, dtype = inp.shape[1], self.hidden_size, inp.dtype
        fold = F <= self.bias_row_max_features
        if fold:
            bias = [] if b_x is None else [(b_x.data + b_h.data)[None]]
            W = np.concatenate([W_h.data, W_x.data, *bias]) * self._gate_scale(dtype)
            tau = np.empty((T, n, 4 * H), dtype)
        else:
            W = W_h.data * self._gate_scale(dtype)
            tau = self._project(inp, W_x.data, b_x, b_h).reshape(T, n, 4 * H)
        Z = np.empty((T + 1, n, W.shape[0]), dtype)
        if fold:  # step t reads row block Z[prev]: t forward, t + 1 in reverse (``_steps``)
            steps = Z[1:] if reverse else Z[:-1]
            steps[:, :, H : H + F] = inp.reshape(T, n, F)
            steps[:, :, H + F :] = 1  # the bias's column (none without a bias)
            Z[0 if reverse else T, :, H:] = 0  # the last state's row block: no step reads its x, 1
        hs, cs = Z[:, :, :H], np.empty((T + 1, n, H), dtype)
        hs[T if reverse else 0], cs[T if reverse else 0] = state0
        tanh_c = np.empty((T, n, H), dtype)
        # tau keeps the tanh of every step for backward; s = (1 + tau) / 2 holds i_t, f_t, o_t
        # (its g block unused) and is one step's scratch that backward makes again from tau. A
        # scalar multiply-add over whole rows is faster than a per-column scale and offset
        s, ig = np.empty((n, 4 * H), dtype), np.empty((n, H), dtype)
        gh = None if fold else np.empty((n, 4 * H), dtype)
        i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
        for t, cur, prev in _steps(T, reverse):
            a = tau[t]
            if fold:
                np.matmul(Z[prev], W, out=a)  # the scaled a_t = Z_t W
            else:
                np.matmul(Z[prev], W, out=gh)  # h_{t-1} W_h, scaled, added to x_t W_x + b, scaled
                a += gh
            np.tanh(a, out=a)
            np.multiply(a, 0.5, out=s)
            s += 0.5
            c = cs[cur]
            np.multiply(f, cs[prev], out=c)  # c_t = f c_{t-1} + i g
            np.multiply(i, a[:, 2 * H : 3 * H], out=ig)
            c += ig
            np.tanh(c, out=tanh_c[t])
            np.multiply(o, tanh_c[t], out=hs[cur])  # h_t = o tanh(c_t)
        return hs, cs, tau, tanh_c, Z

    def _scan_back(self, dY, cache, W_h, reverse, dc_n=None):
        hs, cs, tau, tanh_c = cache[:4]
        T, n, H = dY.shape
        # every gate's derivative is a column constant times 1 - tau^2: s (1 - s) = (1 - tau^2) / 4
        # for a sigmoid gate, 1 - g^2 for g. The scan keeps delta~ = dLoss/dgate (1 - tau^2);
        # the gate deltas are delta = delta~ k with k = [1/4, 1/4, 1, 1/4] per column, so the
        # carry uses (k W_h)^T and the products over all steps scale their columns by k
        k = self._gate_scale(hs.dtype) ** 2
        W_hkT = np.ascontiguousarray((W_h * k).T)
        delta = np.empty((T, n, 4 * H), hs.dtype)
        dh, dc = np.empty((n, H), hs.dtype), np.empty((n, H), hs.dtype)
        carry_h = np.zeros((n, H), hs.dtype)
        carry_c = np.zeros((n, H), hs.dtype) if dc_n is None else np.array(dc_n, hs.dtype)  # dLoss/dc_n
        tmp = np.empty((n, H), hs.dtype)
        # one step's scratch, reused: s = (1 + tau) / 2 (i, f, o), dLoss/dgate d, 1 - tau^2 act;
        # the step's delta~ = d act is written once, whole, into delta[t]
        s, d, act = (np.empty((n, 4 * H), hs.dtype) for _ in range(3))
        i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
        di, df, dg, do = d[:, :H], d[:, H : 2 * H], d[:, 2 * H : 3 * H], d[:, 3 * H :]
        for t, cur, prev in reversed(_steps(T, reverse)):
            a, tc = tau[t], tanh_c[t]
            np.multiply(a, 0.5, out=s)
            s += 0.5
            np.add(dY[t], carry_h, out=dh)
            np.multiply(dh, tc, out=do)  # dLoss/do
            np.multiply(hs[cur], tc, out=tmp)  # o (1 - tanh^2 c) = o - h tanh(c)
            np.subtract(o, tmp, out=tmp)
            tmp *= dh
            np.add(carry_c, tmp, out=dc)  # dc_t = dc from t + 1 + dh o (1 - tanh^2 c)
            np.multiply(dc, a[:, 2 * H : 3 * H], out=di)  # dLoss/di = dc g
            np.multiply(dc, cs[prev], out=df)  # dLoss/df
            np.multiply(dc, i, out=dg)  # dLoss/dg
            np.multiply(a, a, out=act)
            np.subtract(1, act, out=act)
            np.multiply(d, act, out=delta[t])  # delta~ = dLoss/dgate (1 - tau^2), all four gates at once
            np.multiply(dc, f, out=carry_c)
            np.matmul(delta[t], W_hkT, out=carry_h)  # dh_{t-1} = delta W_h^T = delta~ (k W_h)^T
        return [(slice(None), delta, delta, k)], (carry_h, carry_c)

    def _layer_grads(self, cell, cache, blocks, inp, reverse, need_dinp):
        """[dW_h; dW_x; db] = Z^T delta, summed over all steps and examples in one product (BP4;
        the ones column of Z makes BP3's sum over rows); the columns scaled by k as the deltas
        come (``_scan_back``). With a wide input, Z_t = h_{t-1}: the shared products."""
        W_x, W_h, b_x, b_h = cell
        Z, H = cache[4], self.hidden_size
        if Z.shape[2] == H:  # the input was not folded into Z
            return super()._layer_grads(cell, cache, blocks, inp, reverse, need_dinp)
        ((_, delta, _, k),) = blocks
        T, n = delta.shape[:2]
        delta = delta.reshape(T * n, delta.shape[2])
        rows = (Z[1:] if reverse else Z[:-1]).reshape(T * n, Z.shape[2])  # Z_t = [h_{t-1}, x_t (, 1)]
        grad = (delta.T @ rows).T * k  # Z^T delta, as the transpose of delta^T Z
        W_h.grad += grad[:H]
        W_x.grad += grad[H : H + inp.shape[1]]
        if b_x is not None:
            b_x.grad += grad[-1]
            b_h.grad += grad[-1]
        return delta @ (W_x.data * k).T if need_dinp else None
