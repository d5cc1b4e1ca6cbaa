"""Recurrent layers: ``RNN``, ``GRU`` and ``LSTM`` with backprop through time, and ``LastStep``.

The equations are PyTorch's (``torch.nn.RNN/GRU/LSTM``), batch-first. Each layer and direction
has four parameters in glassnet's ``x @ W`` layout, the gate blocks side by side in PyTorch's
order (GRU: r, z, n; LSTM: i, f, g, o):

    W_x_l{k}{_reverse}  (in, G H)   = weight_ih_l{k}{_reverse}.T
    W_h_l{k}{_reverse}  (H, G H)    = weight_hh_l{k}{_reverse}.T
    b_x_l{k}{_reverse}  (G H,)      = bias_ih_l{k}{_reverse}
    b_h_l{k}{_reverse}  (G H,)      = bias_hh_l{k}{_reverse}

Backprop through time (BPTT) is BP1-BP4 on the network unrolled over the sequence. The same
weights act at every step, so their gradients are sums over steps and examples (BP3/BP4 summed
over t). The error of a hidden state h_t has two sources: the layer's output at step t (dy_t)
and the step after it, through the cell (BP2 along time): dh_t = dy_t + dh_t^{from t+1}. The
backward walks the steps in reverse, carrying that second term, and writes each step's gate
deltas delta_t (dLoss/d pre-activation) into one (T, N, G H) array, so that

    dW_x = X^T delta        dW_h = H_prev^T delta_h       dX = delta W_x^T

are one matrix product each over all T N rows; per step there is only h_{t-1} W_h (forward),
delta_h,t W_h^T (backward) and element-wise work. Inside, sequences are time-major (T, N, F):
the rows of one step are contiguous; the output is a (N, T, F) view of that memory.
"""

from __future__ import annotations

import numpy as np

from ..functional import axis_order, empty_in_order
from ..module import Module, Param, ShapeError


class _Recurrent(Module):
    """What RNN, GRU and LSTM share: parameters, layers, directions, the big products.

    A subclass gives ``gates`` (weight blocks per cell), ``states`` (1, or 2 for LSTM's (h, c)),
    and the two scans over time of one layer and direction: ``_scan`` returns what backward
    needs, h states first; ``_scan_back`` returns the gate deltas as blocks of columns
    ``(cols, delta_x, delta_h)``, each (T, N, width), and dLoss/d(initial state). The input side
    and the hidden side see different deltas only in the GRU (the reset gate sits between).
    """

    gates = 1
    states = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        bias: bool = True,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if min(input_size, hidden_size, num_layers) < 1:
            raise ValueError(
                f"{name}: input_size, hidden_size and num_layers must be >= 1, "
                f"got {input_size}, {hidden_size}, {num_layers}"
            )
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.bias = bool(bidirectional), bool(bias)
        self.directions = 2 if bidirectional else 1
        gh = self.gates * hidden_size
        # one (W_x, W_h, b_x, b_h) per layer and direction, in PyTorch's parameter order
        self.cells: list[tuple[Param, Param, Param | None, Param | None]] = []
        for k in range(num_layers):
            fan_in = input_size if k == 0 else self.directions * hidden_size
            for d in range(self.directions):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                W_x = Param(np.empty((fan_in, gh), dtype), "W_x" + sfx)
                W_h = Param(np.empty((hidden_size, gh), dtype), "W_h" + sfx)
                b_x = Param(np.empty(gh, dtype), "b_x" + sfx, decay=False) if bias else None
                b_h = Param(np.empty(gh, dtype), "b_h" + sfx, decay=False) if bias else None
                self.cells.append((W_x, W_h, b_x, b_h))
                self.params += [p for p in (W_x, W_h, b_x, b_h) if p is not None]
        self.reset_parameters(rng if rng is not None else np.random.default_rng())

    def reset_parameters(self, rng: np.random.Generator) -> _Recurrent:
        # PyTorch's init: every weight and bias uniform in +-1/sqrt(hidden_size)
        k = 1.0 / np.sqrt(self.hidden_size)
        for p in self.params:
            p.data[...] = rng.uniform(-k, k, p.shape)
        return self

    # --- the layer protocol -----------------------------------------------------------------
    def forward(self, x: np.ndarray, h0=None) -> np.ndarray:
        """The output sequence (N, T, D H); the final state is left in ``self.h_n``."""
        name, H, D = type(self).__name__, self.hidden_size, self.directions
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ShapeError(
                f"{name} expects input (N, T, {self.input_size}) with T >= 1, got shape {x.shape}"
            )
        n, T = x.shape[:2]
        dtype = np.result_type(x.dtype, self.params[0].data.dtype)
        state0 = self._initial_state(h0, n, dtype)
        # time-major, one contiguous (T N, features) matrix: the input product of all steps is one GEMM
        inp = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype).reshape(T * n, -1)
        self.inputs, self.caches, finals = [], [], []
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                W_x, W_h, b_x, b_h = self.cells[k * D + d]
                # NumPy's matmul skips BLAS when the inner dimension is 1 (8x slower here, measured)
                gx = (np.dot if inp.shape[1] == 1 else np.matmul)(inp, W_x.data).reshape(T, n, -1)
                if b_x is not None:
                    gx += self._input_bias(b_x.data, b_h.data)
                cache = self._scan(gx, W_h.data, b_h, state0[k * D + d], reverse=d == 1)
                hs = cache[0]  # (T + 1, N, H): h_t at hs[t + 1] forward, at hs[t] in reverse
                outs.append(hs[1:] if d == 0 else hs[:-1])
                finals.append(tuple(s[T if d == 0 else 0] for s in cache[: self.states]))
                self.caches.append(cache)
            self.inputs.append(inp)
            out = outs[0] if D == 1 else np.concatenate(outs, axis=2)  # (T, N, D H)
            inp = out.reshape(T * n, D * H)
        self.h_n = np.stack([f[0] for f in finals])  # (num_layers D, N, H), PyTorch's h_n
        if self.states == 2:
            self.c_n = np.stack([f[1] for f in finals])
        return out.transpose(1, 0, 2)

    def _initial_state(self, h0, n: int, dtype) -> list[tuple[np.ndarray, ...]]:
        """Per layer and direction, the initial (h,) or (h, c), each (N, H)."""
        shape = (self.num_layers * self.directions, n, self.hidden_size)
        if h0 is None:
            parts = [np.zeros(shape, dtype)] * self.states
        else:
            parts = list(h0) if self.states == 2 else [h0]
            what = "(h0, c0)" if self.states == 2 else "h0"
            if len(parts) != self.states or any(np.shape(p) != shape for p in parts):
                raise ShapeError(
                    f"{type(self).__name__}: initial state {what} must be {self.states} array(s) of shape "
                    f"{shape} (num_layers * directions, N, hidden_size), got {[np.shape(p) for p in parts]}"
                )
            parts = [np.asarray(p, dtype) for p in parts]
        return [tuple(p[i] for p in parts) for i in range(shape[0])]

    def _backward(self, dy: np.ndarray, need_dx: bool) -> np.ndarray | None:
        H, D = self.hidden_size, self.directions
        T, n = self.caches[0][0].shape[0] - 1, dy.shape[0]
        dY = dy.transpose(1, 0, 2)  # (T, N, D H) view: one step's rows at dY[t]
        dstate0 = [None] * len(self.caches)
        for k in range(self.num_layers - 1, -1, -1):
            inp, dinp = self.inputs[k], None
            for d in range(D):
                i = k * D + d
                W_x, W_h, b_x, b_h = self.cells[i]
                cache = self.caches[i]
                blocks, dstate0[i] = self._scan_back(dY[:, :, d * H : (d + 1) * H], cache, W_h.data, d == 1)
                hs = cache[0]
                h_prev = (hs[:-1] if d == 0 else hs[1:]).reshape(T * n, H)  # h_{t-1} of step t
                # per block of gate columns, the deltas of the input side and of the hidden side
                for cols, delta_x, delta_h in blocks:
                    same = delta_h is delta_x
                    delta_x, delta_h = delta_x.reshape(T * n, -1), delta_h.reshape(T * n, -1)
                    W_x.grad[:, cols] += inp.T @ delta_x  # BP4, summed over all steps in one product
                    W_h.grad[:, cols] += h_prev.T @ delta_h
                    if b_x is not None:
                        db = delta_x.sum(axis=0)  # BP3
                        b_x.grad[cols] += db
                        b_h.grad[cols] += db if same else delta_h.sum(axis=0)
                    if k > 0 or need_dx:  # BP2 into the layer's input, all steps at once
                        part = delta_x @ W_x.data[:, cols].T
                        if dinp is None:
                            dinp = part
                        else:
                            dinp += part
            if dinp is not None:
                dY = dinp.reshape(T, n, -1)
        self.dh0 = np.stack([s[0] for s in dstate0])  # dLoss/dh0, shaped as h0
        if self.states == 2:
            self.dc0 = np.stack([s[1] for s in dstate0])
        return dY.transpose(1, 0, 2) if need_dx else None

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return self._backward(dy, need_dx=True)

    def backward_params(self, dy: np.ndarray) -> None:
        self._backward(dy, need_dx=False)

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "bias": self.bias,
        }

    # --- one layer and direction over time (per subclass) ---------------------------------------
    def _input_bias(self, b_x: np.ndarray, b_h: np.ndarray) -> np.ndarray:
        """The bias added to the input projection of every step: b_x + b_h, where the two act
        as one (RNN, LSTM); the GRU keeps b_hn apart, inside the reset gate's product."""
        return b_x + b_h

    def _scan(self, gx, W_h, b_h, state0, reverse: bool) -> tuple:
        raise NotImplementedError

    def _scan_back(self, dY, cache, W_h, reverse: bool) -> tuple:
        raise NotImplementedError


def _sigmoid_(a: np.ndarray) -> None:
    """sigmoid(a) in place, as (1 + tanh(a / 2)) / 2: exact, never overflows, and about 3x
    faster than scipy's expit on float32 (NumPy's tanh is vectorised; measured)."""
    a *= 0.5
    np.tanh(a, out=a)
    a *= 0.5
    a += 0.5


def _steps(T: int, reverse: bool):
    """(t, index of h_t, index of h_{t-1}) in a (T + 1)-row state buffer, in processing order.

    Forward, h0 sits in row 0 and h_t in row t + 1; in reverse, h0 sits in row T and h_t in
    row t, so both directions keep their states in time order.
    """
    if reverse:
        return [(t, t, t + 1) for t in range(T - 1, -1, -1)]
    return [(t, t + 1, t) for t in range(T)]


class RNN(_Recurrent):
    """Elman RNN (PyTorch's ``nn.RNN``): h_t = act(x_t W_x + b_x + h_{t-1} W_h + b_h).

    ``nonlinearity`` is ``"tanh"`` or ``"relu"``. Parameters, layers, directions and the initial
    state as in the module docstring; ``forward(x, h0=None)`` with h0 (num_layers D, N, H).

    Shapes: x (N, T, input_size) -> y (N, T, D hidden_size); h_n (num_layers D, N, hidden_size).

    Backward, step t from T-1 down to 0 (a_t the pre-activation):
        dh_t    = dy_t + delta_{t+1} W_h^T          (dy_t: the output's error at step t)
        delta_t = dh_t * act'(a_t)                  (BP1/BP2: 1 - h_t^2, or [h_t > 0])
        dW_x += sum_t x_t^T delta_t, dW_h += sum_t h_{t-1}^T delta_t, db_x = db_h += sum delta_t
        dx_t  = delta_t W_x^T, dh0 = delta_0 W_h^T
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        bias: bool = True,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, rng, dtype)

    def _scan(self, gx, W_h, b_h, state0, reverse):
        T, n, H = gx.shape
        hs = np.empty((T + 1, n, H), gx.dtype)
        hs[T if reverse else 0] = state0[0]
        for t, cur, prev in _steps(T, reverse):
            h = hs[cur]
            np.matmul(hs[prev], W_h, out=h)
            h += gx[t]
            if self.nonlinearity == "tanh":
                np.tanh(h, out=h)
            else:
                np.maximum(h, 0, out=h)
        return (hs,)

    def _scan_back(self, dY, cache, W_h, reverse):
        (hs,) = cache
        T, n, H = dY.shape
        delta = np.empty((T, n, H), hs.dtype)
        carry = np.zeros((n, H), hs.dtype)  # dLoss/dh_t through step t + 1
        tmp = np.empty((n, H), hs.dtype)
        for t, cur, _ in reversed(_steps(T, reverse)):
            h, d = hs[cur], delta[t]
            np.add(dY[t], carry, out=d)  # dh_t
            if self.nonlinearity == "tanh":
                np.multiply(h, h, out=tmp)
                np.subtract(1, tmp, out=tmp)  # tanh' = 1 - h^2
                d *= tmp
            else:
                d *= h > 0  # ReLU'(0) = 0, as PyTorch
            np.matmul(d, W_h.T, out=carry)
        return [(slice(None), delta, delta)], (carry,)

    def config(self) -> dict:
        return {**super().config(), "nonlinearity": self.nonlinearity}


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
        # what backward needs, one contiguous (N, .) block per step (element-wise work on
        # strided column slices ran 2x slower, measured): [r, z], n, u = h W_hn + b_hn, h - n
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

    def _gate_constants(self, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per gate column (i, f, g, o): the scale and offset taking tanh to the gate's
        activation s, and the beta of its derivative (1 - s)(beta + s), which is s (1 - s) for
        a sigmoid (beta 0) and 1 - g^2 for tanh (beta 1)."""
        scale = np.repeat(np.array([0.5, 0.5, 1.0, 0.5], dtype), self.hidden_size)
        return scale, 1 - scale, 2 * scale - 1

    def _scan(self, gx, W_h, b_h, state0, reverse):
        T, n, H4 = gx.shape
        H = H4 // 4
        # sigmoid(a) = (1 + tanh(a / 2)) / 2: with the sigmoid gates' columns of gx and W_h
        # halved (exact, a power of two), one tanh activates all four gates and one
        # multiply-add maps i, f, o to (1 + tanh) / 2 (offset 1/2) and leaves g = tanh
        scale, offset, _ = self._gate_constants(gx.dtype)
        gx *= scale
        W_h = W_h * scale
        hs, cs = np.empty((T + 1, n, H), gx.dtype), np.empty((T + 1, n, H), gx.dtype)
        hs[T if reverse else 0], cs[T if reverse else 0] = state0
        tanh_c = np.empty((T, n, H), gx.dtype)
        gh, ig = np.empty((n, H4), gx.dtype), np.empty((n, H), gx.dtype)
        # gx becomes the gates: after step t, gx[t] holds [i_t, f_t, g_t, o_t]
        for t, cur, prev in _steps(T, reverse):
            a = gx[t]
            np.matmul(hs[prev], W_h, out=gh)
            a += gh
            np.tanh(a, out=a)
            a *= scale
            a += offset
            c = cs[cur]
            np.multiply(a[:, H : 2 * H], cs[prev], out=c)  # c_t = f c_{t-1} + i g
            np.multiply(a[:, :H], a[:, 2 * H : 3 * H], out=ig)
            c += ig
            np.tanh(c, out=tanh_c[t])
            np.multiply(a[:, 3 * H :], tanh_c[t], out=hs[cur])
        return hs, cs, gx, tanh_c

    def _scan_back(self, dY, cache, W_h, reverse):
        hs, cs, gates, tanh_c = cache
        T, n, H = dY.shape
        beta = self._gate_constants(hs.dtype)[2]
        delta = np.empty((T, n, 4 * H), hs.dtype)
        dh, dc = np.empty((n, H), hs.dtype), np.empty((n, H), hs.dtype)
        carry_h, carry_c = np.zeros((n, H), hs.dtype), np.zeros((n, H), hs.dtype)
        tmp = np.empty((n, H), hs.dtype)
        act, act2 = np.empty((n, 4 * H), hs.dtype), np.empty((n, 4 * H), hs.dtype)
        for t, _, prev in reversed(_steps(T, reverse)):
            a, d, tc = gates[t], delta[t], tanh_c[t]
            i, f, g, o = a[:, :H], a[:, H : 2 * H], a[:, 2 * H : 3 * H], a[:, 3 * H :]
            di, df, dg, do = d[:, :H], d[:, H : 2 * H], d[:, 2 * H : 3 * H], d[:, 3 * H :]
            np.add(dY[t], carry_h, out=dh)
            np.multiply(dh, tc, out=do)  # dLoss/do
            np.multiply(tc, tc, out=tmp)
            np.subtract(1, tmp, out=tmp)
            tmp *= o
            tmp *= dh
            np.add(carry_c, tmp, out=dc)  # dc_t = dc from t + 1 + dh o (1 - tanh^2 c)
            np.multiply(dc, g, out=di)  # dLoss/di
            np.multiply(dc, cs[prev], out=df)  # dLoss/df
            np.multiply(dc, i, out=dg)  # dLoss/dg
            # every gate's derivative from its activation, all four at once: (1 - s)(beta + s)
            np.subtract(1, a, out=act)
            np.add(a, beta, out=act2)
            act *= act2
            d *= act
            np.multiply(dc, f, out=carry_c)
            np.matmul(d, W_h.T, out=carry_h)
        return [(slice(None), delta, delta)], (carry_h, carry_c)


class LastStep(Module):
    """The last time step of a sequence, ``y = x[:, -1]``: feeds a recurrent layer's final
    output into a ``Linear`` head (PyTorch users write ``output[:, -1]``).

    For a bidirectional layer, ``x[:, -1]`` holds the forward direction's final state and the
    reverse direction's state after its first step (it has seen only x_{T-1}); to use both
    directions' final states, flatten the whole sequence or use the layer's ``h_n``.

    Shapes: x (N, T, F) -> y (N, F).
    Backward: dx = 0 everywhere except dx[:, -1] = dy.
    """

    def forward(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3 or x.shape[1] < 1:
            raise ShapeError(f"LastStep expects a sequence (N, T, F) with T >= 1, got shape {x.shape}")
        self.x_shape, self.x_order = x.shape, axis_order(x)
        return x[:, -1]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        # in the input's memory order: a recurrent layer's time-major output gets a time-major dx
        dx = empty_in_order(self.x_shape, dy.dtype, self.x_order, fill=0)
        dx[:, -1] = dy
        return dx
