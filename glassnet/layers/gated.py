"""Gated recurrent layers, ``GRU`` and ``LSTM``: the cell of each and its step of backprop
through time. Layers, directions, parameters and the large products over all steps are
``_Recurrent``'s, in ``recurrent.py``, whose docstring describes the scheme.
"""

from __future__ import annotations

import numpy as np

from ..module import grad_enabled, ran_under_no_grad
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

    Forward keeps the cell's local derivatives of every step (those factors of the deltas that
    do not depend on dh and dc: ``_layer``), so that backward is a few products per step
    (``_scan_back``). Inside, the scan is feature-major: each step's arrays are (features, N)
    blocks, so every gate is one contiguous (H, N) block (docs/speed.md).
    """

    gates = 4
    states = 2

    def _gate_scale(self, dtype) -> np.ndarray:
        """Per gate column (i, f, g, o): 1/2 for the sigmoid gates, 1 for g. sigmoid(a) =
        (1 + tanh(a / 2)) / 2, so with those columns of the pre-activation halved (exact, a
        power of two) one tanh serves all four gates."""
        return np.repeat(np.array([0.5, 0.5, 1.0, 0.5], dtype), self.hidden_size)

    def _layer(self, inp, T, n, cell, state0, reverse):
        """Forward over all steps. Every array of the scan is feature-major: per step a
        (features, N) block, so that each gate is one contiguous (H, N) block and every
        element-wise pass runs over contiguous memory in one go. The input and the bias join
        each step's product: the block Z_t = Z[step] (F_Z, N) holds [h_{t-1}; x_t; 1]
        (F_Z = H + F + 1 rows), so that

            a_t^T = (x_t W_x + b_x + h_{t-1} W_h + b_h)^T = [W_h; W_x; b_x + b_h]^T Z_t

        is one product per step, h_t is written into the h rows of the block the next step
        reads, and backward gets dW_h, dW_x and db from Z and the deltas alone
        (``_layer_grads``). The weight has each gate's columns scaled by ``_gate_scale`` (1/2 for
        the sigmoid gates, 1 for g), so that the product is the scaled a_t and its tanh, tau,
        serves all four gates: g_t = tau^g and i, f, o = (1 + tau) / 2.

        For backward each step keeps the factors of its deltas that forward already knows
        (a sigmoid gate's derivative s (1 - s) is (1 - tau^2) / 4, g's is 1 - g^2):

            p_t = [g, c_{t-1}, i, tanh c_t] (1 - tau_t^2)    (gates i, f, g, o)
            q_t = o_t (1 - tanh^2 c_t) = o_t - h_t tanh c_t,  and f_t

        p overwrites tau, which nothing needs after the step; under ``no_grad()`` none is made.
        Returns (h, c, p, q, f, Z): h and c as the (T + 1, N, H) views ``_Recurrent`` reads."""
        W_x, W_h, b_x, b_h = cell
        F, H, dtype = inp.shape[1], self.hidden_size, inp.dtype
        bias = [] if b_x is None else [(b_x.data + b_h.data)[None]]
        W_T = (np.concatenate([W_h.data, W_x.data, *bias]) * self._gate_scale(dtype)).T.copy()
        Z = np.empty((T + 1, W_T.shape[1], n), dtype)
        steps = Z[1:] if reverse else Z[:-1]  # step t reads block prev (``_steps``)
        steps[:, H : H + F] = inp.reshape(T, n, F).transpose(0, 2, 1)
        steps[:, H + F :] = 1  # the bias's row (none without a bias)
        Z[0 if reverse else T, H:] = 0  # the last state's block: no step reads its x, 1
        hs, cs = Z[:, :H], np.empty((T + 1, H, n), dtype)
        hs[T if reverse else 0], cs[T if reverse else 0] = state0[0].T, state0[1].T
        tau = np.empty((T, 4 * H, n), dtype)
        # one step's scratch: s = (1 + tau) / 2 holds i_t, f_t, o_t (its g block unused); a
        # scalar multiply-add over a whole block is faster than a per-row scale and offset
        s, act = np.empty((4 * H, n), dtype), np.empty((4 * H, n), dtype)
        ig, tanh_c = np.empty((H, n), dtype), np.empty((H, n), dtype)
        i, f, g, o = s[:H], s[H : 2 * H], tau[:, 2 * H : 3 * H], s[3 * H :]
        keep = grad_enabled()  # p (over tau), q and f for backward
        q, fs = (np.empty((T, H, n), dtype) for _ in range(2)) if keep else (None, None)
        for t, cur, prev in _steps(T, reverse):
            a = tau[t]
            np.matmul(W_T, Z[prev], out=a)  # the scaled a_t^T
            np.tanh(a, out=a)
            np.multiply(a, 0.5, out=s)
            s += 0.5
            c = cs[cur]
            np.multiply(f, cs[prev], out=c)  # c_t = f c_{t-1} + i g
            np.multiply(i, g[t], out=ig)
            c += ig
            np.tanh(c, out=tanh_c)
            h = hs[cur]
            np.multiply(o, tanh_c, out=h)  # h_t = o tanh(c_t)
            if not keep:
                continue
            np.multiply(h, tanh_c, out=q[t])
            np.subtract(o, q[t], out=q[t])  # q = o (1 - tanh^2 c) = o - h tanh(c)
            fs[t] = f
            np.multiply(a, a, out=act)
            np.subtract(1, act, out=act)  # 1 - tau^2
            p = a  # p = [g, c_{t-1}, i, tanh c] (1 - tau^2) over tau: g, read into the i block first
            np.multiply(g[t], act[:H], out=p[:H])
            np.multiply(cs[prev], act[H : 2 * H], out=p[H : 2 * H])
            np.multiply(i, act[2 * H : 3 * H], out=p[2 * H : 3 * H])
            np.multiply(tanh_c, act[3 * H :], out=p[3 * H :])
        return hs.transpose(0, 2, 1), cs.transpose(0, 2, 1), tau, q, fs, Z

    def _scan_back(self, dY, cache, W_h, reverse, dc_n=None):
        """Backward over all steps, feature-major as forward (``_layer``), from the local
        derivatives forward kept per step: p = [g, c_{t-1}, i, tanh c] (1 - tau^2),
        q = o (1 - tanh^2 c) and f. With delta~ = delta / k (below), the class docstring's
        equations read:

            dh_t = dy_t + dh_t from step t + 1        dc_t = dc_t from step t + 1 + dh_t q_t
            delta~_t = [dc_t, dc_t, dc_t, dh_t] p_t   (the gates i, f, g, o)
            dc_{t-1} from step t = dc_t f_t           dh_{t-1} from step t = delta~_t (k W_h)^T

        dY (T, N, H) and the returned dLoss/d(h0, c0) are (N, H) views; the deltas come as one
        (T, 4H, N) array, delta~_t^T per step, with k."""
        _, _, p, q, fs, _ = cache
        if q is None:
            raise ran_under_no_grad(type(self).__name__)
        T, n, H = dY.shape
        dYt = dY.transpose(0, 2, 1)  # dy_t^T, (H, N) per step
        if not dYt[0].flags.c_contiguous:  # dy came batch-major (N, T, H), e.g. from a Linear
            dYt = _feature_major(dY, p.dtype)  # on every step: one blocked copy, not T strided reads
        # a sigmoid gate's derivative is s (1 - s) = (1 - tau^2) / 4, g's is 1 - g^2: p holds
        # the gate deltas divided by k = [1/4, 1/4, 1, 1/4] per gate, so the carry uses k W_h
        # and the product over all steps scales its columns by k
        k = self._gate_scale(p.dtype) ** 2
        W_hk = W_h * k  # (H, 4H)
        delta = np.empty((T, 4 * H, n), p.dtype)
        dh, dc = np.empty((H, n), p.dtype), np.empty((H, n), p.dtype)
        carry_h = np.zeros((H, n), p.dtype)
        carry_c = np.zeros((H, n), p.dtype) if dc_n is None else np.array(dc_n.T, p.dtype, order="C")
        for t, _, _ in reversed(_steps(T, reverse)):  # every array below is (features, N)
            np.add(dYt[t], carry_h, out=dh)  # dh_t = dy_t + dh_t from step t + 1
            np.multiply(dh, q[t], out=dc)
            dc += carry_c  # dc_t = dc_t from step t + 1 + dh_t q_t
            delta_t = delta[t]
            gates_ifg = delta_t[: 3 * H].reshape(3, H, n)  # a view: the three gates that take dc
            np.multiply(p[t, : 3 * H].reshape(3, H, n), dc, out=gates_ifg)
            np.multiply(p[t, 3 * H :], dh, out=delta_t[3 * H :])  # o takes dh
            np.multiply(dc, fs[t], out=carry_c)  # dc_{t-1} from step t: dc_t f_t
            np.matmul(W_hk, delta_t, out=carry_h)  # dh_{t-1} from step t: (k W_h) delta~_t
        return (delta, k), (carry_h.T, carry_c.T)

    def _layer_grads(self, cell, cache, blocks, inp, reverse, need_dinp):
        """[dW_h; dW_x; db] = sum over steps of Z_t delta_t^T (BP4, summed over steps and
        examples; the ones row of Z makes BP3's sum), the gate columns scaled by k as the deltas
        come (``_scan_back``); BP2 into the input of every step, delta_t^T (k W_x)^T."""
        W_x, W_h, b_x, b_h = cell
        Z, H, F = cache[-1], self.hidden_size, inp.shape[1]
        delta, k = blocks
        T, n = delta.shape[0], delta.shape[2]
        steps = Z[1:] if reverse else Z[:-1]  # Z_t, (T, F_Z, N)
        # T products of one step's size in one call: about as fast as one product over all steps
        # would be, which would need the deltas in a (4H, T N) layout, written per step in
        # strided blocks (slower)
        grad = np.matmul(delta, steps.transpose(0, 2, 1)).sum(axis=0).T * k  # (F_Z, 4H)
        W_h.grad += grad[:H]
        W_x.grad += grad[H : H + F]
        if b_x is not None:
            b_x.grad += grad[-1]
            b_h.grad += grad[-1]
        if not need_dinp:
            return None
        return np.matmul(delta.transpose(0, 2, 1), (W_x.data * k).T).reshape(T * n, F)


def _feature_major(a: np.ndarray, dtype) -> np.ndarray:
    """(T, N, F) -> a contiguous (T, F, N) copy in ``dtype``. Where ``a`` is a view of (N, T, F)
    memory, NumPy's copy reads one number from each example's row in turn, across the whole
    array; copied 16 examples at a time, the rows being read stay in cache."""
    T, n, F = a.shape
    out = np.empty((T, F, n), dtype)
    for i in range(0, n, 16):
        out[:, :, i : i + 16] = a[:, i : i + 16].transpose(0, 2, 1)
    return out
