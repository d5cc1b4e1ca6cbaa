"""Multi-head scaled dot-product attention (Vaswani et al. 2017) with PyTorch's parameters, and
``causal_mask``. ``TransformerEncoderLayer`` (in ``transformer.py``) is built from it.

Notation, per example and head (the code runs every example and head at once: arrays are
(N, H, T, D) and the products are batched matmuls): queries come from T positions, keys and
values from S positions, D = E / H features per head,

    Q = q W_q^T + b_q,   K = k W_k^T + b_k,   V = v W_v^T + b_v      (T, D), (S, D), (S, D)
    Z = Q K^T / sqrt(D) + mask                                     (T, S): the scores
    A = softmax(Z) row by row                                      (T, S): the weights
    O = A V,    y = concat_heads(O) W_o^T + b_o                     (T, E)

Backward, delta = dy. The output projection is a ``Linear`` (BP3, BP4, BP2):
    dW_o += delta^T O,   db_o += sum delta,   dO = delta W_o (split into heads).
O = A V is a product of two variables, so each gets the other's transpose:
    dA = dO V^T,   dV = A^T dO.
The softmax of a row z has the Jacobian ds_i/dz_j = s_i (1[i=j] - s_j), so for each row
    dz = s * (ds - sum(ds * s)),    i.e. dZ = A * (dA - rowsum(dA * A)),
(a masked entry has s = 0 and gets no gradient; the mask is a constant). The scores are a
product again, scaled:
    dQ = dZ K / sqrt(D),   dK = dZ^T Q / sqrt(D).
Finally the three input projections are ``Linear`` layers (BP4, BP2):
    dW_q += dQ^T q,  db_q += sum dQ,  dq = dQ W_q   (and the same for k and v).
In self-attention q = k = v = x, one product with the stacked (3E, E) weight makes Q, K and V,
and x's gradient is the sum over the three paths: dx = dq + dk + dv = [dQ dK dV] W_in.
"""

from __future__ import annotations

import math

import numpy as np

from ..module import (
    Module,
    Param,
    ShapeError,
    as_rng,
    by_row_vector,
    check_arg,
    column_sums,
    float_dtype,
    grad_enabled,
    ran_under_no_grad,
    row_sums,
)
from ._shapes import size


def causal_mask(size: int) -> np.ndarray:
    """The (size, size) boolean mask that lets position t attend to positions <= t only: True
    above the diagonal, where attention is *not* allowed (PyTorch's boolean convention).

    PyTorch's ``nn.Transformer.generate_square_subsequent_mask(T)`` returns the additive form,
    a float matrix with -inf above the diagonal and 0 elsewhere; glassnet returns the boolean
    form, which works in any dtype. ``MultiheadAttention`` takes either.
    """
    check_arg("causal_mask", "size", size, lambda v: v >= 1, "an integer >= 1", int)
    return np.triu(np.ones((int(size), int(size)), dtype=bool), k=1)


class MultiheadAttention(Module):
    """Multi-head attention, batch-first (PyTorch's ``nn.MultiheadAttention(...,
    batch_first=True)``), with PyTorch's parameters under PyTorch's names and layouts, so that
    weights copy across unchanged:

        in_proj_weight (3E, E)  [W_q; W_k; W_v] stacked,   in_proj_bias (3E,)  (bias=True)
        out_proj_weight (E, E)  = torch's out_proj.weight,  out_proj_bias (E,)  = out_proj.bias

    and, where keys or values have other widths than the queries (``kdim``, ``vdim`` != E, as
    PyTorch), three weights instead of the stacked one: ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim), each Xavier-uniform.

    Initialised as PyTorch: Xavier-uniform ``in_proj_weight``, U(+-1/sqrt(E)) ``out_proj_weight``,
    zero biases.

    ``forward(q)`` is self-attention (k = v = q) and ``backward(dy)`` returns one gradient,
    dq + dk + dv, so the layer works inside ``Sequential``. ``forward(q, k, v)`` (k and v both
    given, even if they are the same array) returns ``(dq, dk, dv)`` from ``backward``.
    Masks follow PyTorch: ``attn_mask`` (T, S) or (N * num_heads, T, S) and
    ``key_padding_mask`` (N, S), boolean (True = this key may not be attended to) or float
    (added to the scores, -inf to forbid); see ``causal_mask``. A query whose every key is
    masked attends to nothing (weights 0, output the projection's bias), as in PyTorch's
    training path (``need_weights=False``, scaled_dot_product_attention); PyTorch's
    ``need_weights=True`` path gives NaN there instead. ``causal=True`` (not in PyTorch's constructor: its
    ``forward`` takes ``is_causal`` with a mask) applies ``causal_mask`` at every forward, on top
    of any mask given, so a causal model can be a ``Sequential``, which passes one input only.

    Differences from PyTorch: ``forward`` returns the output only (PyTorch returns
    ``(output, weights)``); the weights of the last forward are kept as ``attn_weights``, per
    head, (N, num_heads, T, S), before dropout (``attn_weights.mean(axis=1)`` is what PyTorch
    returns by default). ``dropout`` drops attention weights in training, as PyTorch, with
    masks drawn from ``rng`` (see ``gn.Dropout``). add_bias_kv and add_zero_attn are not
    implemented.

    Shapes: q (N, T, E), k (N, S, kdim), v (N, S, vdim) -> y (N, T, E); kdim = vdim = E by default.
    Backward: see the module docstring; with A the weights and M the dropout mask (A M is what
    multiplies V): dA = (dO V^T) M, dV = (A M)^T dO, dZ = A * (dA - rowsum(dA * A)),
    dQ = dZ K / sqrt(D), dK = dZ^T Q / sqrt(D), then the projections as ``Linear``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        causal: bool = False,
        rng: np.random.Generator | int | None = None,
        dtype=np.float32,
        kdim: int | None = None,
        vdim: int | None = None,
    ) -> None:
        super().__init__()
        self.causal = bool(causal)
        self.embed_dim = size("MultiheadAttention", "embed_dim", embed_dim)
        self.kdim = self.embed_dim if kdim is None else size("MultiheadAttention", "kdim", kdim)
        self.vdim = self.embed_dim if vdim is None else size("MultiheadAttention", "vdim", vdim)
        # PyTorch's _qkv_same_embed_dim: one stacked weight, else one weight per projection
        self.same_dims = self.kdim == self.vdim == self.embed_dim
        self.num_heads = size("MultiheadAttention", "num_heads", num_heads)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                "MultiheadAttention: embed_dim must be divisible by num_heads, "
                f"got {embed_dim} and {num_heads}"
            )
        self.dropout = float(
            check_arg(
                "MultiheadAttention", "dropout", dropout, lambda v: 0.0 <= v < 1.0, "a probability in [0, 1)"
            )
        )
        self.bias = bool(bias)
        self.head_dim = self.embed_dim // self.num_heads
        dtype = float_dtype(dtype, "MultiheadAttention")
        e = self.embed_dim
        self.in_proj_weight = self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        if self.same_dims:
            self.in_proj_weight = Param(np.empty((3 * e, e), dtype), "in_proj_weight")
            inputs = [self.in_proj_weight]
        else:
            self.q_proj_weight = Param(np.empty((e, e), dtype), "q_proj_weight")
            self.k_proj_weight = Param(np.empty((e, self.kdim), dtype), "k_proj_weight")
            self.v_proj_weight = Param(np.empty((e, self.vdim), dtype), "v_proj_weight")
            inputs = [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        self.out_proj_weight = Param(np.empty((e, e), dtype), "out_proj_weight")
        self.params = [*inputs, self.out_proj_weight]
        self.in_proj_bias = self.out_proj_bias = None
        if self.bias:
            self.in_proj_bias = Param(np.empty(3 * e, dtype), "in_proj_bias", decay=False)
            self.out_proj_bias = Param(np.empty(e, dtype), "out_proj_bias", decay=False)
            self.params = [*inputs, self.in_proj_bias, self.out_proj_weight, self.out_proj_bias]
        self.rng = as_rng(rng, "MultiheadAttention")
        self.attn_weights = None
        self.reset_parameters(self.rng)

    def reset_parameters(self, rng: np.random.Generator) -> MultiheadAttention:
        e, dtype = self.embed_dim, self.out_proj_weight.data.dtype
        if self.same_dims:
            bound = math.sqrt(6.0 / (e + 3 * e))  # Xavier-uniform over the stacked (3E, E) weight
            self.in_proj_weight.data[...] = rng.uniform(-bound, bound, (3 * e, e)).astype(dtype)
        else:  # Xavier-uniform over each projection's own (E, width) weight
            for p in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                bound = math.sqrt(6.0 / sum(p.shape))
                p.data[...] = rng.uniform(-bound, bound, p.shape).astype(dtype)
        self.out_proj_weight.data[...] = rng.uniform(-1 / math.sqrt(e), 1 / math.sqrt(e), (e, e)).astype(
            dtype
        )
        if self.bias:
            self.in_proj_bias.data[...] = 0.0
            self.out_proj_bias.data[...] = 0.0
        return self

    # --- forward ---------------------------------------------------------------------------
    def forward(self, q, k=None, v=None, key_padding_mask=None, attn_mask=None) -> np.ndarray:
        self.self_attention = k is None and v is None
        if self.self_attention and not self.same_dims:
            raise ValueError(
                f"MultiheadAttention: with kdim={self.kdim}, vdim={self.vdim} and embed_dim={self.embed_dim} "
                "the keys and values are not the queries: give k and v (cross-attention)"
            )
        if self.self_attention:
            k = v = q
        elif k is None or v is None:
            raise ValueError(
                "MultiheadAttention: give k and v both (cross-attention) or neither (self-attention)"
            )
        self._check_inputs(q, k, v)
        n, t, e = q.shape
        s = k.shape[1]
        if self.self_attention:  # one product makes Q, K and V
            W, b = self.in_proj_weight.data, self.in_proj_bias.data if self.bias else None
            qkv = _by_rows(q, W.T)
            if b is not None:
                by_row_vector(np.add, qkv.reshape(-1, 3 * e), b, out=qkv.reshape(-1, 3 * e))  # += b
            Q, K, V = self._heads(qkv, parts=3)  # each (N, H, T, D)
        else:
            Q, K, V = (self._heads(self._project(x, i))[0] for i, x in enumerate((q, k, v)))
        scale = 1.0 / math.sqrt(self.head_dim)
        Z = Q @ K.transpose(0, 1, 3, 2)
        Z *= scale
        Z = self._apply_masks(Z, n, t, s, key_padding_mask, attn_mask)
        A = _softmax_rows(Z)
        self.attn_weights = A
        self.drop = None
        A_used = A
        if self.training and self.dropout > 0.0:
            keep = self.rng.random(A.shape, dtype=A.dtype if A.dtype == np.float32 else np.float64)
            self.drop = (keep >= self.dropout).astype(A.dtype)
            self.drop *= 1.0 / (1.0 - self.dropout)
            A_used = A * self.drop
        O = np.empty((n, t, e), np.result_type(A_used, V))  # concat_heads(A V): each head
        np.matmul(A_used, V, out=self._heads(O)[0])  # writes its own columns of O
        # under no_grad() nothing is kept: the batch's arrays are freed before the next one's
        self.saved = (q, k, v, Q, K, V, A, A_used, O, scale) if grad_enabled() else None
        y = _by_rows(O, self.out_proj_weight.data.T)
        if self.bias:
            by_row_vector(np.add, y.reshape(-1, e), self.out_proj_bias.data, out=y.reshape(-1, e))  # += b_o
        return y

    def _check_inputs(self, q, k, v) -> None:
        for name, x, width in (("q", q, self.embed_dim), ("k", k, self.kdim), ("v", v, self.vdim)):
            if not isinstance(x, np.ndarray) or x.ndim != 3 or x.shape[2] != width:
                shape = getattr(x, "shape", type(x).__name__)
                raise ShapeError(f"MultiheadAttention expects {name} of shape (N, L, {width}), got {shape}")
        if k.shape[:2] != v.shape[:2] or k.shape[0] != q.shape[0]:
            raise ShapeError(
                f"MultiheadAttention: q (N, T, E), k and v (N, S, E) must share N (and S), got "
                f"{q.shape}, {k.shape}, {v.shape}"
            )

    def _projection(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """W_i and its gradient for i = 0, 1, 2 (q, k, v): a row block of the stacked weight, or
        the projection's own weight (kdim, vdim != E)."""
        if self.same_dims:
            rows = slice(i * self.embed_dim, (i + 1) * self.embed_dim)
            return self.in_proj_weight.data[rows], self.in_proj_weight.grad[rows]
        p = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[i]
        return p.data, p.grad

    def _project(self, x: np.ndarray, i: int) -> np.ndarray:
        """x W_i^T + b_i for i = 0, 1, 2 (q, k, v)."""
        e = self.embed_dim
        y = _by_rows(x, self._projection(i)[0].T)
        if self.bias:
            y += self.in_proj_bias.data[i * e : (i + 1) * e]
        return y

    def _heads(self, x: np.ndarray, parts: int = 1) -> np.ndarray:
        """(N, L, parts E) -> (parts, N, H, L, D): head h owns features h D .. (h + 1) D - 1 of
        each part, as PyTorch. A view, not a copy: BLAS reads (and, as a product's ``out``,
        writes) each head's (L, D) block in place, rows parts E apart."""
        n, length, _ = x.shape
        return x.reshape(n, length, parts, self.num_heads, self.head_dim).transpose(2, 0, 3, 1, 4)

    def _apply_masks(self, Z, n, t, s, key_padding_mask, attn_mask) -> np.ndarray:
        """Z with the masks applied: boolean True -> -inf, float masks added (PyTorch)."""
        h = self.num_heads
        if self.causal:  # query t sees keys s <= t (top-left aligned when T != S, as PyTorch)
            Z = _masked(Z, np.triu(np.ones((t, s), dtype=bool), k=1), "causal")
        if attn_mask is not None:
            attn_mask = np.asarray(attn_mask)
            if attn_mask.shape == (n * h, t, s):
                attn_mask = attn_mask.reshape(n, h, t, s)  # example-major, as PyTorch
            elif attn_mask.shape != (t, s):
                raise ShapeError(
                    f"MultiheadAttention: attn_mask must be ({t}, {s}) or ({n * h}, {t}, {s}), "
                    f"got {attn_mask.shape}"
                )
            Z = _masked(Z, attn_mask, "attn_mask")
        if key_padding_mask is not None:
            key_padding_mask = np.asarray(key_padding_mask)
            if key_padding_mask.shape != (n, s):
                raise ShapeError(
                    f"MultiheadAttention: key_padding_mask must be ({n}, {s}), got {key_padding_mask.shape}"
                )
            Z = _masked(Z, key_padding_mask[:, None, None, :], "key_padding_mask")
        return Z

    # --- backward --------------------------------------------------------------------------
    def backward(self, dy: np.ndarray):
        if self.saved is None:
            raise ran_under_no_grad("MultiheadAttention")
        q, k, v, Q, K, V, A, A_used, O, scale = self.saved
        n, t, e = dy.shape
        s = k.shape[1]
        dy2 = dy.reshape(-1, e)
        self.out_proj_weight.grad += dy2.T @ O.reshape(-1, e)  # BP4: dW_o += delta^T O
        if self.bias:
            self.out_proj_bias.grad += column_sums(dy2)  # BP3
        dO = self._heads(_by_rows(dy, self.out_proj_weight.data))[0]  # BP2: dO = delta W_o, by head
        dA = dO @ V.transpose(0, 1, 3, 2)  # O = (A M) V
        if self.drop is not None:
            dA *= self.drop
        # the softmax Jacobian, row by row: dZ = A * (dA - rowsum(dA * A))
        #                                      = dA * A - A * rowsum(dA * A)
        dZ = dA
        dZ *= A
        A_rowsum = A * row_sums(dZ.reshape(-1, s)).reshape(n, self.num_heads, t, 1)
        dZ -= A_rowsum
        dZ *= scale
        # dQ, dK, dV are written by head straight into the (N, L, E) layout of the projections'
        # products: [dQ dK dV] side by side per position in self-attention, else one array each
        dtype = np.result_type(dZ, Q, dO)
        if self.self_attention:
            dQKV = np.empty((n, t, 3 * e), dtype)
            out_q, out_k, out_v = self._heads(dQKV, parts=3)
        else:
            dQ, dK, dV = (np.empty((n, length, e), dtype) for length in (t, s, s))
            out_q, out_k, out_v = (self._heads(d)[0] for d in (dQ, dK, dV))
        np.matmul(A_used.transpose(0, 1, 3, 2), dO, out=out_v)  # dV = (A M)^T dO
        np.matmul(dZ, K, out=out_q)  # Z = Q K^T scale: dQ = dZ K (dZ holds the scale)
        np.matmul(dZ.transpose(0, 1, 3, 2), Q, out=out_k)  # dK = dZ^T Q
        if self.self_attention:  # q = k = v = x: the three paths sum, dx = [dQ dK dV] W_in
            W, Wg = self.in_proj_weight.data, self.in_proj_weight.grad
            dQKV = dQKV.reshape(-1, 3 * e)  # per position, dQ's heads, dK's, dV's side by side
            Wg += dQKV.T @ q.reshape(-1, e)  # BP4
            if self.bias:
                self.in_proj_bias.grad += column_sums(dQKV)  # BP3
            return (dQKV @ W).reshape(q.shape)  # BP2
        grads = []
        for i, (x, dP) in enumerate(((q, dQ), (k, dK), (v, dV))):
            W_i, grad_i = self._projection(i)
            dP2 = dP.reshape(-1, e)
            grad_i += dP2.T @ x.reshape(-1, x.shape[-1])  # BP4
            if self.bias:
                self.in_proj_bias.grad[i * e : (i + 1) * e] += column_sums(dP2)  # BP3
            grads.append(_by_rows(dP, W_i))  # BP2
        return tuple(grads)

    def config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "bias": self.bias,
            "causal": self.causal,
            # None where equal to embed_dim, as PyTorch's default (files from before them load)
            "kdim": None if self.kdim == self.embed_dim else self.kdim,
            "vdim": None if self.vdim == self.embed_dim else self.vdim,
        }

    @classmethod
    def state_shapes(cls, embed_dim, bias=True, kdim=None, vdim=None, **_) -> dict[str, tuple[int, ...]]:
        e = size("MultiheadAttention", "embed_dim", embed_dim, high=2**20)
        kdim = e if kdim is None else size("MultiheadAttention", "kdim", kdim, high=2**20)
        vdim = e if vdim is None else size("MultiheadAttention", "vdim", vdim, high=2**20)
        if kdim == vdim == e:
            shapes = {"in_proj_weight": (3 * e, e)}
        else:
            shapes = {"q_proj_weight": (e, e), "k_proj_weight": (e, kdim), "v_proj_weight": (e, vdim)}
        if bias:
            shapes["in_proj_bias"] = (3 * e,)
        shapes["out_proj_weight"] = (e, e)
        if bias:
            shapes["out_proj_bias"] = (e,)
        return shapes


def _softmax_rows(Z: np.ndarray) -> np.ndarray:
    """softmax over the last axis: A = exp(Z) / rowsum(exp(Z)), a new array (Z is left as it
    was; the caller drops it).

    A shift of a row leaves its softmax unchanged, and the textbook shifts each row by its max
    before exp, so that exp cannot overflow. That max costs two passes over short rows (the max
    and the subtraction), more than the exp. Here exp is taken of the scores as they are, and
    only the rows where that left float's range are done again, shifted by their own max: a row
    whose sum of exponentials overflowed (a score above about 88 in float32) or fell below
    sqrt(tiny) (every score of the row below about -43: its smallest weights would lose digits
    as subnormal numbers). Every row's result depends on that row alone (a causal model's
    earlier outputs do not move when a later token does), and it equals the shifted formula's
    to rounding (``test_softmax_rows_is_the_softmax`` checks both kinds of row).

    A row whose every score is -inf (every key masked) gets weights 0, as PyTorch's
    scaled_dot_product_attention gives them (the path its MultiheadAttention trains on): the
    query then attends to nothing, its output is the output projection's bias, and no gradient
    flows through it. The formula would give 0 / 0 = NaN there."""
    rows = Z.reshape(-1, Z.shape[-1])
    with np.errstate(over="ignore"):  # such rows are done again below
        A = np.exp(rows)
    total = row_sums(A)
    lowest = math.sqrt(np.finfo(A.dtype).tiny)
    redo = ~((total >= lowest) & (total < np.inf))  # out of range (or NaN: it stays NaN)
    if redo.any():
        shifted = rows[redo]
        m = shifted.max(axis=1)
        dead = m == -np.inf  # rows with no key to attend to
        m[dead] = 0.0  # exp(-inf - 0) = 0 in every entry of the row
        shifted -= m[:, None]
        np.exp(shifted, out=shifted)
        sums = shifted.sum(axis=1)
        sums[dead] = 1.0  # 0 / 1: weights 0
        A[redo], total[redo] = shifted, sums
    A /= total[:, None]
    return A.reshape(Z.shape)


def _by_rows(x: np.ndarray, M: np.ndarray) -> np.ndarray:
    """x @ M for x (N, L, a) as one (N L, a) product: NumPy runs a 3-D @ 2-D product as one
    small product per example, flattened it is a single BLAS call."""
    return (x.reshape(-1, x.shape[-1]) @ M).reshape(*x.shape[:-1], M.shape[-1])


def _masked(Z: np.ndarray, mask: np.ndarray, name: str) -> np.ndarray:
    """Scores with a mask applied: a boolean mask sets -inf where True; a float one is added."""
    if mask.dtype == bool:
        return np.where(mask, -np.inf, Z).astype(Z.dtype, copy=False)
    if mask.dtype.kind != "f":
        raise TypeError(f"MultiheadAttention: {name} must be boolean or float, got {mask.dtype}")
    return Z + mask.astype(Z.dtype, copy=False)
