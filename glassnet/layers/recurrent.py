"""Recurrent layers with backprop through time: what ``RNN``, ``GRU`` and ``LSTM`` share, ``RNN``,
and ``LastStep`` (``GRU`` and ``LSTM`` are in ``gated.py``).

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

The LSTM goes further (``gated.py``): it folds x_t and the bias into its step's product, with
the block Z_t = [h_{t-1}; x_t; 1], a_t^T = [W_h; W_x; b]^T Z_t per step and
[dW_h; dW_x; db] = sum_t Z_t delta_t^T, and it runs feature-major, each step's arrays
(features, N), so that its gates are contiguous blocks; its output is a view of that memory.
That memory is also what backward reads (the states h_t), so the output is returned read-only:
``y *= 2`` raises instead of changing the gradients; ``y = y * 2`` (or ``y.copy()``) is fine.

The final state's gradient (sequence-to-sequence: a decoder starts from the encoder's h_n):
``backward(dy, dh_n, dc_n)``. Layer k's h_n is its output at the last step (at step 0 in
reverse), so dh_n joins dh_t there; an LSTM's c_n is no output, so dc_n starts the scan's
cell-state carry. ``dropout`` (PyTorch's): layer k + 1 reads layer k's output times a mask
m = [u >= p] / (1 - p) in training, and its dx is multiplied by the same m (BP2 through it).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..functional import axis_order, empty_in_order
from ..module import Module, Param, ShapeError, as_rng, check_arg, float_dtype
from ._shapes import MAX_LAYERS, size


class _Recurrent(Module):
    """What RNN, GRU and LSTM share: parameters, layers, directions, the big products.

    A subclass gives ``gates`` (weight blocks per cell), ``states`` (1, or 2 for LSTM's (h, c)),
    and the two scans over time of one layer and direction: ``_scan`` returns what backward
    needs, h states first (``_layer`` runs it after the input product of all steps; the LSTM
    overrides ``_layer`` and ``_layer_grads``, folding its input into each step's product);
    ``_scan_back`` returns the gate deltas as blocks of columns
    ``(cols, delta_x, delta_h)``, each (T, N, width), and dLoss/d(initial state). The input side
    and the hidden side see different deltas only in the GRU (the reset gate sits between). The
    LSTM's scans are feature-major, and its ``_scan_back`` hands its deltas in that layout to its
    own ``_layer_grads``.
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
        dropout: float = 0.0,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        sizes = {"input_size": input_size, "hidden_size": hidden_size, "num_layers": num_layers}
        for arg, value in sizes.items():
            check_arg(name, arg, value, lambda v: v >= 1, "an integer >= 1", int)
        input_size, hidden_size, num_layers = int(input_size), int(hidden_size), int(num_layers)
        dtype = float_dtype(dtype, name)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bidirectional, self.bias = bool(bidirectional), bool(bias)
        self.directions = 2 if bidirectional else 1
        # PyTorch's dropout: on the outputs of every layer but the last, in training only
        ok = lambda v: 0.0 <= v < 1.0  # noqa: E731
        self.dropout = float(check_arg(name, "dropout", dropout, ok, "a probability in [0, 1)"))
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(
                f"{name}: dropout={self.dropout} acts between stacked layers only (as in PyTorch), and "
                "num_layers=1 has none: it changes nothing",
                UserWarning,
                stacklevel=2,
            )
        self.masks: list[np.ndarray | None] = []
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
        self.rng = as_rng(rng, name)  # the weights' init, then the dropout masks
        self.reset_parameters(self.rng)

    def reset_parameters(self, rng: np.random.Generator) -> _Recurrent:
        # PyTorch's init: every weight and bias uniform in +-1/sqrt(hidden_size)
        k = 1.0 / np.sqrt(self.hidden_size)
        for p in self.params:
            p.data[...] = rng.uniform(-k, k, p.shape)
        return self

    # --- the layer protocol -----------------------------------------------------------------
    def forward(self, x: np.ndarray, h0=None) -> np.ndarray:
        """The output sequence (N, T, D H), read-only (module docstring); the final state is left
        in ``self.h_n``, and ``backward`` leaves dLoss/d(initial state) in ``self.dh0`` (None
        until then)."""
        name, H, D = type(self).__name__, self.hidden_size, self.directions
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[1] < 1:
            raise ShapeError(
                f"{name} expects input (N, T, {self.input_size}) with T >= 1, got shape {x.shape}"
            )
        n, T = x.shape[:2]
        dtype = np.result_type(x.dtype, self.params[0].data.dtype)
        state0 = self._initial_state(h0, n, dtype)
        # time-major, one contiguous (T N, features) matrix: the input product of all steps is one GEMM
        inp = np.ascontiguousarray(x.transpose(1, 0, 2), dtype=dtype).reshape(T * n, x.shape[2])
        self.inputs, self.caches, finals, self.masks = [], [], [], []
        # the initial-state gradient of the previous batch must not pass for this one's
        self.dh0 = self.dc0 = None
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                cache = self._layer(inp, T, n, self.cells[k * D + d], state0[k * D + d], reverse=d == 1)
                hs = cache[0]  # (T + 1, N, H): h_t at hs[t + 1] forward, at hs[t] in reverse
                outs.append(hs[1:] if d == 0 else hs[:-1])
                finals.append(tuple(s[T if d == 0 else 0] for s in cache[: self.states]))
                self.caches.append(cache)
            self.inputs.append(inp)
            out = outs[0] if D == 1 else np.concatenate(outs, axis=2)  # (T, N, D H)
            if k == self.num_layers - 1:
                self.masks.append(None)  # no dropout after the last layer
            else:  # the next layer's input: one (T N, D H) matrix
                inp = self._drop(out.reshape(T * n, D * H))
        self.h_n = np.stack([f[0] for f in finals])  # (num_layers D, N, H), PyTorch's h_n
        if self.states == 2:
            self.c_n = np.stack([f[1] for f in finals])
        y = out.transpose(1, 0, 2)
        y.flags.writeable = False  # a view of the states backward reads (module docstring)
        return y

    def _drop(self, out: np.ndarray) -> np.ndarray:
        """Dropout between stacked layers: the next layer's input is out * m, with the mask
        m = [u >= p] / (1 - p) kept in ``masks`` for backward (None: no dropout here)."""
        if not self.training or self.dropout == 0.0:
            self.masks.append(None)
            return out
        keep = self.rng.random(out.shape, dtype=out.dtype if out.dtype == np.float32 else np.float64)
        mask = (keep >= self.dropout).astype(out.dtype)
        mask *= 1.0 / (1.0 - self.dropout)
        self.masks.append(mask)
        return out * mask

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

    def _backward(self, dy, need_dx: bool, dh_n=None, dc_n=None) -> np.ndarray | None:
        H, D = self.hidden_size, self.directions
        T, n = self.caches[0][0].shape[0] - 1, self.caches[0][0].shape[1]
        dy, dh_n, dc_n = self._final_deltas(dy, dh_n, dc_n, T, n)
        dY = dy.transpose(1, 0, 2)  # (T, N, D H) view: one step's rows at dY[t]
        dstate0 = [None] * len(self.caches)
        for k in range(self.num_layers - 1, -1, -1):
            inp, dinp = self.inputs[k], None
            if dh_n is not None:
                # h_n of layer k is its output at the last step (forward direction) and at step
                # 0 (reverse): dLoss/dh_n joins the output's error there (dY is ours: a copy)
                dY = dY.astype(self.caches[0][0].dtype) if k == self.num_layers - 1 else dY
                for d in range(D):
                    dY[T - 1 if d == 0 else 0, :, d * H : (d + 1) * H] += dh_n[k * D + d]
            for d in range(D):
                i = k * D + d
                W_h, cache = self.cells[i][1], self.caches[i]
                # the LSTM's c_n is no output: dLoss/dc_n starts its scan's cell-state carry
                final = {} if dc_n is None else {"dc_n": dc_n[i]}
                blocks, dstate0[i] = self._scan_back(
                    dY[:, :, d * H : (d + 1) * H], cache, W_h.data, d == 1, **final
                )
                part = self._layer_grads(self.cells[i], cache, blocks, inp, d == 1, k > 0 or need_dx)
                if dinp is None:  # BP2 into the layer's input: the directions' parts add up
                    dinp = part
                elif part is not None:
                    dinp += part
            if dinp is not None:
                if k > 0 and self.masks[k - 1] is not None:
                    dinp *= self.masks[k - 1]  # BP2 through the dropout between layers k-1 and k
                dY = dinp.reshape(T, n, dinp.shape[1])
        self.dh0 = np.stack([s[0] for s in dstate0])  # dLoss/dh0, shaped as h0
        if self.states == 2:
            self.dc0 = np.stack([s[1] for s in dstate0])
        return dY.transpose(1, 0, 2) if need_dx else None

    def backward(self, dy: np.ndarray | None, dh_n=None, dc_n=None) -> np.ndarray:
        """dLoss/dx from the output's error ``dy`` (N, T, D H) and, for sequence-to-sequence
        models whose loss also reaches the final state, dLoss/dh_n ``dh_n`` (and the LSTM's
        dLoss/dc_n ``dc_n``), each (num_layers D, N, H) as ``h_n``; ``dy=None`` when the outputs
        go unused (an encoder read through its h_n alone)."""
        return self._backward(dy, True, dh_n, dc_n)

    def backward_params(self, dy: np.ndarray | None, dh_n=None, dc_n=None) -> None:
        self._backward(dy, False, dh_n, dc_n)

    def _final_deltas(self, dy, dh_n, dc_n, T: int, n: int):
        """dy (zeros for None), dh_n and dc_n, checked against the shapes forward produced."""
        name, width = type(self).__name__, self.directions * self.hidden_size
        if dc_n is not None and self.states == 1:
            raise ValueError(f"{name}: has no cell state, so no dc_n (that is an LSTM's)")
        if dy is None:
            if dh_n is None and dc_n is None:
                raise ValueError(f"{name}.backward: dy is None and no dh_n or dc_n is given")
            dy = np.zeros((n, T, width), self.caches[0][0].dtype)
        elif np.shape(dy) != (n, T, width):
            raise ShapeError(
                f"{name}.backward: dy must have the output's shape {(n, T, width)}, got {np.shape(dy)}"
            )
        state = (self.num_layers * self.directions, n, self.hidden_size)
        for what, value in (("dh_n", dh_n), ("dc_n", dc_n)):
            if value is not None and np.shape(value) != state:
                raise ShapeError(
                    f"{name}.backward: {what} must have the final state's shape {state} (num_layers * "
                    f"directions, N, hidden_size), got {np.shape(value)}"
                )
        return dy, dh_n, dc_n

    def config(self) -> dict:
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bidirectional": self.bidirectional,
            "bias": self.bias,
            "dropout": self.dropout,
        }

    @classmethod
    def state_shapes(
        cls, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True, **_
    ) -> dict[str, tuple[int, ...]]:
        """The four parameters per layer and direction of the module docstring; at most
        ``MAX_LAYERS`` layers, so that the table stays small whatever a file asks for."""
        name = cls.__name__
        n_in, H = size(name, "input_size", input_size), size(name, "hidden_size", hidden_size)
        layers, D, gh = (
            size(name, "num_layers", num_layers, MAX_LAYERS),
            2 if bidirectional else 1,
            cls.gates * H,
        )
        shapes = {}
        for k in range(layers):
            fan_in = n_in if k == 0 else D * H
            for d in range(D):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                shapes.update({"W_x" + sfx: (fan_in, gh), "W_h" + sfx: (H, gh)})
                if bias:
                    shapes.update({"b_x" + sfx: (gh,), "b_h" + sfx: (gh,)})
        return shapes

    # --- one layer and direction over time (per subclass) ---------------------------------------
    def _layer(self, inp: np.ndarray, T: int, n: int, cell, state0, reverse: bool) -> tuple:
        """One layer and direction forward over all steps: x_t W_x + bias of every step as one
        product (``_project``), then the scan. Returns the scan's cache, whose first item is
        the (T + 1, N, H) buffer of the states h_t (``_steps`` says which row holds which)."""
        W_x, W_h, b_x, b_h = cell
        gx = self._project(inp, W_x.data, b_x, b_h).reshape(T, n, W_x.data.shape[1])
        return self._scan(gx, W_h.data, b_h, state0, reverse)

    def _layer_grads(self, cell, cache, blocks, inp, reverse: bool, need_dinp: bool):
        """BP3 and BP4 of one layer and direction, each summed over all steps in one product,
        from the deltas ``_scan_back`` wrote (``blocks``); returns BP2 into the layer's input,
        delta W_x^T for all steps at once, or None where it is not needed."""
        W_x, W_h, b_x, b_h = cell
        hs = cache[0]
        T, n, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
        h_prev = (hs[1:] if reverse else hs[:-1]).reshape(T * n, H)  # h_{t-1} of step t
        dinp = None
        # per block of gate columns, the deltas of the input side and of the hidden side
        for cols, delta_x, delta_h in blocks:
            same = delta_h is delta_x
            delta_x, delta_h = (
                delta_x.reshape(T * n, delta_x.shape[2]),
                delta_h.reshape(T * n, delta_h.shape[2]),
            )
            W_x.grad[:, cols] += inp.T @ delta_x  # BP4, summed over all steps in one product
            W_h.grad[:, cols] += h_prev.T @ delta_h
            if b_x is not None:
                db = delta_x.sum(axis=0)  # BP3
                b_x.grad[cols] += db
                b_h.grad[cols] += db if same else delta_h.sum(axis=0)
            if need_dinp:  # BP2 into the layer's input, all steps at once
                part = delta_x @ W_x.data[:, cols].T
                if dinp is None:
                    dinp = part
                else:
                    dinp += part
        return dinp

    # up to this many input features, the bias is one more row of the input product (one pass
    # over the (T N, G H) result instead of two); the straightforward product-then-add beyond
    bias_row_max_features = 8

    def _project(self, inp: np.ndarray, W_x: np.ndarray, b_x, b_h) -> np.ndarray:
        """x_t W_x + bias of all steps as one (T N, G H) product (the bias: ``_input_bias``)."""
        if b_x is not None and inp.shape[1] <= self.bias_row_max_features:  # [x_t, 1] [W_x; bias]
            ones = np.ones((inp.shape[0], 1), inp.dtype)
            bias = self._input_bias(b_x.data, b_h.data)
            return np.dot(np.concatenate([inp, ones], axis=1), np.concatenate([W_x, bias[None]]))
        # NumPy's matmul skips BLAS when the inner dimension is 1; np.dot still calls it
        gx = (np.dot if inp.shape[1] == 1 else np.matmul)(inp, W_x)
        if b_x is not None:
            gx += self._input_bias(b_x.data, b_h.data)
        return gx

    def _input_bias(self, b_x: np.ndarray, b_h: np.ndarray) -> np.ndarray:
        """The bias added to the input projection of every step: b_x + b_h, where the two act
        as one (the RNN); the GRU keeps b_hn apart, inside the reset gate's product."""
        return b_x + b_h

    def _scan(self, gx, W_h, b_h, state0, reverse: bool) -> tuple:
        raise NotImplementedError

    def _scan_back(self, dY, cache, W_h, reverse: bool, dc_n=None) -> tuple:
        raise NotImplementedError


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
        dx_t  = delta_t W_x^T, dh0 = delta_0 W_h^T  (the reverse direction runs t from 0 up: delta_{T-1})
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bidirectional: bool = False,
        bias: bool = True,
        dropout: float = 0.0,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
    ) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, bias, dropout, rng, dtype)

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
