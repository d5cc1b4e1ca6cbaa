"""The layer protocol: ``Param``, ``Module`` and ``Sequential``.

A ``Module`` owns an explicit ``forward(x) -> y`` and ``backward(dy) -> dx``. ``backward``
*adds* dLoss/dp into ``p.grad`` for each of its parameters (BP3, BP4) and returns dLoss/dx
(the ``W^T delta`` part of BP2); the Hadamard product with sigma'(z) is the activation layer's
own backward. Composition is a ``for`` loop: there is no registration magic, every module
lists its parameters and children explicitly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np


class ShapeError(ValueError):
    """An input of the wrong shape or dtype for a layer or loss; the message names which."""


def is_int(value) -> bool:
    """An integer, Python's or NumPy's, but not a bool (True is an int to Python, not to us)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A real number, an integer or a float (Python's or NumPy's), but not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_arg(owner: str, name: str, value, ok, expected: str, kind: type | None = float):
    """Return ``value`` if it is a ``kind`` (int: an integer; float: any real number; None:
    anything) and ``ok(value)`` holds; else raise ``ValueError("<owner>: <name> must be
    <expected>, got <value>")``. Write ``ok`` as what is valid (``lambda v: v >= 0``), so
    that NaN, for which every comparison is false, is refused too."""
    integer, real = is_int(value), is_number(value)
    valid = integer if kind is int else real if kind is float else True
    if valid:
        try:
            valid = bool(ok(value))
        except (TypeError, ValueError):
            valid = False
    if not valid:
        raise ValueError(f"{owner}: {name} must be {expected}, got {value!r}")
    return value


def as_rng(rng, owner: str) -> np.random.Generator:
    """``rng`` as a ``numpy.random.Generator``, for every function and layer that takes one.

    A Generator is used as it is (shared: draws continue its stream); None gives a fresh,
    unseeded one; an integer seeds a new one, as ``np.random.default_rng(seed)`` does (Keras and
    scikit-learn accept seeds too; two objects given the same integer draw the same numbers).
    Anything else raises ``TypeError("<owner>: rng must be ...")``, naming what it got."""
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, np.random.Generator):
        return rng
    if is_int(rng):
        if rng < 0:
            raise ValueError(f"{owner}: rng must be a numpy.random.Generator or a seed >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        f"{owner}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), an integer "
        f"seed or None, got {type(rng).__name__}"
    )


def float_dtype(dtype, owner: str) -> np.dtype:
    """``dtype`` as a NumPy dtype, if it is float32 or float64 (the two glassnet computes in:
    float16 lacks the range and precision for training, and NumPy computes it slowly)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{owner}: dtype must be float32 or float64, got {dtype!r}")
    return dt


def column_sums(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=0)``; for a 2-D ``a`` of 64 rows or more as the product ones @ a: NumPy's sum
    down the columns of a few thousand rows takes several times BLAS's matrix-vector product
    (which adds in another order: the same sums to rounding); for a few rows (the book's batch
    of 10) NumPy's sum costs less than the call."""
    if a.ndim != 2 or a.shape[0] < 64:
        return a.sum(axis=0)
    return np.ones(a.shape[0], a.dtype) @ a


def row_sums(x: np.ndarray) -> np.ndarray:
    """``x.sum(axis=1)`` for x (rows, m), as the product x @ ones: NumPy's sum restarts its loop
    for every row, which costs more than a short row's (layer norm's m = 64) additions; BLAS's
    matrix-vector product does not (it adds in another order: the same sums to rounding)."""
    return x @ np.ones(x.shape[1], x.dtype)


ROW_GROUP = 8192  # numbers per row when a row vector is applied to groups of short rows
SHORT_ROW = 256  # rows of at least this many numbers take NumPy's broadcast as they are


def by_row_vector(op, x: np.ndarray, v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``op(x, v, out=out)`` for a ufunc ``op`` (``np.add``, ``np.multiply``), x (rows, n) and v
    (n,) broadcast down the rows: a bias added, a per-feature scale. NumPy's loop over a
    broadcast operand restarts for every row, and for short rows (n = 64) the restarts cost
    about as much as the arithmetic (docs/speed.md). So k whole rows at a time
    are taken as one row of k n (about ``ROW_GROUP``) numbers against v repeated k times, and
    the rows left over as they are: every number meets the same v_j, the same results bit for
    bit (``tests/test_layers.py::test_row_vector_passes_are_numpys``). Arrays under 8
    ``ROW_GROUP``s (an MLP's batch of 128 x 256) take NumPy's broadcast: there the repeat costs
    what it saves; so do rows of ``SHORT_ROW`` numbers or more (an MLP's (500, 256) at inference:
    right after the product that wrote x, the grouped pass took longer than the broadcast).
    ``out=None``: a new array; ``out=x``: in place."""
    if x.size < 8 * ROW_GROUP:  # decided first: the book's batch of 10 calls this twice a step
        return op(x, v, out=out)
    rows, n = x.shape
    k = ROW_GROUP // n if n else 0
    c_order = x.flags.c_contiguous and (out is None or out.flags.c_contiguous)
    if n >= SHORT_ROW or k < 2 or rows < 2 * k or not c_order:
        return op(x, v, out=out)
    out = np.empty(x.shape, np.result_type(x, v)) if out is None else out
    whole = rows - rows % k
    op(x[:whole].reshape(-1, k * n), np.tile(v, k), out=out[:whole].reshape(-1, k * n))
    if whole < rows:
        op(x[whole:], v, out=out[whole:])
    return out


class Param:
    """A trainable array and its gradient, of the same shape and dtype.

    ``decay`` says whether weight decay and L1/L2 penalties apply (weights: yes, biases and
    normalisation scales: no). ``grad`` is a plain array: a backward adds into it (in place,
    ``p.grad += ...``, or through ``add_product``/``add_sum``), ``zero_grad()`` fills it with
    zeros, and reading it changes nothing. An optimizer may re-point ``data`` and ``grad`` at
    slices of its flat vectors (see ``gn.optim``); write into them in place, as layers do.
    """

    def __init__(self, data: np.ndarray, name: str, decay: bool = True) -> None:
        self.data = data
        self.grad = np.zeros_like(data)  # dLoss/d(data), accumulated since the last zero_grad()
        self.name = name
        self.decay = decay

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def add_product(self, a: np.ndarray, b: np.ndarray) -> None:
        """``grad += a @ b``, written in ``grad``'s memory order (a column-major ``W`` takes
        ``(b^T a^T)^T``, so the product needs no transposing copy)."""
        g = self.grad
        if g.flags.f_contiguous and not g.flags.c_contiguous:
            g, a, b = g.T, b.T, a.T
        g += a @ b

    def add_sum(self, a: np.ndarray) -> None:
        """``grad += a.sum(axis=0)`` (BP3's sum over the batch)."""
        self.grad += column_sums(a)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Param({self.name}, shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer and container.

    Subclasses implement ``forward`` and ``backward``, list their ``Param``s in ``params``
    (a plain list set in ``__init__``) and, if they contain other modules, in ``children``.
    ``config()`` returns the constructor arguments, used by ``repr`` and by ``gn.save``.
    """

    training: bool = True
    # True for a layer whose input is integer ids (Embedding): a model starting with one takes
    # integer inputs in fit/evaluate/predict (see ``takes_integers``)
    integer_input: bool = False
    # where the module sums paths, for ``trace`` (a residual, a graph's fan-out, Add); "" for none
    sums_paths: str = ""
    # True for a layer whose output for one example depends on the batch's other examples in
    # training (batch norm): ``fit(shards=k)`` refuses a model holding one (``glassnet.shards``)
    mixes_examples: bool = False

    def __init__(self) -> None:
        self.training = True
        self.params: list[Param] = []
        self.children: Sequence[Module] = []  # Sequential keeps a tuple

    # --- the two passes -------------------------------------------------------------------
    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dy: np.ndarray) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def backward_params(self, dy: np.ndarray) -> None:
        """Accumulate parameter gradients only, when the caller needs no dx.

        ``Sequential`` calls this on its first layer with parameters (the input needs no
        gradient), which saves that layer's ``dy @ W^T`` product. Layers override it where
        that saves work; the default runs the full backward and drops dx.
        """
        self.backward(dy)

    def joined_step(self, before: Module):
        """A step that runs ``before`` and then this module as one, with their results bit for
        bit, or None (the default): ``Sequential`` asks each layer about the layer before it.
        A max-pool takes the ``ReLU`` before it (``glassnet.layers.pooling.PoolThenReLU``), a
        ``ReLU`` the ``Linear`` before it (``glassnet.layers.activations.LinearThenReLU``). The
        step's ``reports`` (0 or 1) says which of the two layers Sequential names for it."""
        return None

    def followed_by(self, steps: list) -> None:
        """``Sequential`` tells each layer the steps that run after it in its chain (layers, or
        joined steps). A layer may choose the memory layout of its output for them (a one-channel
        convolution before a max-pool and another convolution: ``Conv2d.followed_by``); the default
        does nothing."""

    def __call__(self, *inputs: np.ndarray, **kwargs) -> np.ndarray:
        return self.forward(*inputs, **kwargs)

    def __getattr__(self, name: str):
        """Reached only when an attribute is missing. The usual one is what a forward keeps for
        its backward (``x``, ``y``, ``caches``, ...): a ``backward`` before any ``forward`` then
        said only "'Linear' object has no attribute 'x'"; the message now says that too."""
        if name.startswith("__"):  # protocols probed by copy, NumPy and friends: plain refusal
            raise AttributeError(name)
        raise AttributeError(
            f"{type(self).__name__} has no attribute {name!r}: if it is what its forward keeps for "
            "backward, backward was called before any forward (call forward first)",
            name=name,
            obj=self,
        )

    # --- parameters, buffers, modes ---------------------------------------------------------
    def parameters(self) -> list[Param]:
        out = list(self.params)
        for child in self.children:
            out.extend(child.parameters())
        return out

    def child_names(self) -> list[str]:
        """The name of each child in parameter names and in a walk: its index (``"0.W"``)
        unless the container names them (a ``Graph`` names each node: ``"h.W"``)."""
        return [str(i) for i in range(len(self.children))]

    def input_count(self) -> int:
        """How many arrays ``forward`` takes as a whole model (a ``Graph``: one per input)."""
        return 1

    def input_readers(self, position: int) -> list[tuple[Module, int]]:
        """The children that read input ``position`` of this container's ``forward`` first, each
        with the position it has among that child's inputs: the first child by default (a
        ``Sequential``'s first layer, a ``Residual``'s block); a ``Graph``: every node that names
        that input. ``takes_integers`` follows them."""
        return [(self.children[0], position)] if self.children else []

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return zip(self.child_names(), self.children)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Param]]:
        for p in self.params:
            yield prefix + p.name, p
        for name, child in self.named_children():
            yield from child.named_parameters(f"{prefix}{name}.")

    def buffers(self) -> dict[str, np.ndarray]:
        """Non-trainable state saved with the weights (BatchNorm running statistics)."""
        return {}

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for name, b in self.buffers().items():
            yield prefix + name, b
        for name, child in self.named_children():
            yield from child.named_buffers(f"{prefix}{name}.")

    def modules(self) -> Iterator[Module]:
        yield self
        for child in self.children:
            yield from child.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            m.training = mode
        return self

    def eval(self) -> Module:
        return self.train(False)

    def to(self, dtype) -> Module:
        """Convert every parameter (and buffer) to ``dtype`` in place, e.g. float64 for checks.

        Gradients are reset to zero. Create optimizers after converting: their state arrays
        keep the dtype they were made with.
        """
        dtype = float_dtype(dtype, f"{type(self).__name__}.to")
        for p in self.params:
            p.data = p.data.astype(dtype)
            p.grad = np.zeros_like(p.data)
        for child in self.children:
            child.to(dtype)
        return self

    def set_rng(self, rng: np.random.Generator | int | None) -> Module:
        """Give every stochastic layer (dropout) this generator for its masks."""
        rng = as_rng(rng, f"{type(self).__name__}.set_rng")
        for m in self.modules():
            if hasattr(m, "rng"):
                m.rng = rng
        return self

    def reset_parameters(self, rng: np.random.Generator) -> Module:
        """Re-draw every parameter from its initializer with ``rng`` (reproducible init)."""
        for child in self.children:
            child.reset_parameters(rng)
        return self

    def state_dict(self) -> dict[str, np.ndarray]:
        state = {name: p.data for name, p in self.named_parameters()}
        state.update(dict(self.named_buffers()))
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters and buffers, in place, checking every name and shape."""
        own = dict(self.named_parameters())
        bufs = dict(self.named_buffers())
        expected = set(own) | set(bufs)
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise KeyError(
                f"state dict does not match the model: missing {sorted(missing)}, "
                f"unexpected {sorted(unexpected)}"
            )
        for name, value in state.items():
            target = own[name].data if name in own else bufs[name]
            value = np.asarray(value)
            if value.shape != target.shape:
                raise ValueError(
                    f"state dict entry {name!r} has shape {value.shape}, the model expects {target.shape}"
                )
            target[...] = value

    # --- description ----------------------------------------------------------------------
    def config(self) -> dict:
        """Constructor arguments (JSON-serialisable), enough to rebuild this module."""
        return {}

    @classmethod
    def from_config(cls, config: dict, children: list[Module]) -> Module:
        """Rebuild a module from its ``config()`` and its children, already rebuilt (``gn.load``).

        The default is ``cls(**config)``: a module that builds its own children from its
        arguments (most layers, and most users' blocks) builds them again, and ``load`` checks
        that they are the ones the file describes. A container *given* its children as
        arguments (``Sequential``, ``Residual``, ``Graph``) overrides this to pass them in.
        """
        return cls(**config)

    @classmethod
    def state_shapes(cls, **config) -> dict[str, tuple[int, ...]]:
        """The shape of each parameter and buffer that ``cls(**config)`` would own (not its
        children's), by ``state_dict`` name, computed from the arguments alone.

        ``gn.load`` checks a file's tensors against these shapes before it calls the
        constructor, so a file cannot make it allocate more than the file holds. A layer with
        parameters or buffers overrides this; ``{}`` is right for the rest.
        """
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def model_dtype(model: Module) -> np.dtype:
    """The dtype the model computes in: its parameters' (float32 for a model without any)."""
    params = model.parameters()
    return params[0].data.dtype if params else np.dtype(np.float32)


def takes_integers(model: Module, position: int = 0) -> bool:
    """Whether input ``position`` of ``model.forward`` is read as integer ids (``integer_input``,
    as ``Embedding``) by a first layer: the leaves found by following ``input_readers`` (a
    ``Sequential``'s first layer; in a ``Graph``, whichever nodes read that input, in any node
    order). ``fit``, ``evaluate`` and ``predict`` then keep integer arrays for that input as
    they are instead of refusing them."""
    if not model.children:
        return position == 0 and model.integer_input
    return any(takes_integers(m, p) for m, p in model.input_readers(position))


def integer_inputs(model: Module) -> tuple[bool, ...]:
    """``takes_integers`` for each input of ``model.forward`` (one flag per ``Graph`` input)."""
    return tuple(takes_integers(model, i) for i in range(model.input_count()))


def cast_inputs(model: Module, x):
    """``x`` (one array, or a tuple for a model with several inputs) cast to the model's dtype;
    integer arrays stay integers for an input that a first layer reads as ids (an Embedding)."""

    def cast(a, position: int) -> np.ndarray:
        a = np.asarray(a)
        if not (a.dtype.kind in "iu" and takes_integers(model, position)):
            a = a.astype(model_dtype(model), copy=False)
        return a

    return tuple(cast(a, i) for i, a in enumerate(x)) if isinstance(x, tuple) else cast(x, 0)


def one_output(out, owner: str) -> np.ndarray:
    """``out``, refused by name when it is a tuple (a ``Graph`` with several outputs): one loss
    reads one output."""
    if isinstance(out, tuple):
        raise TypeError(
            f"{owner}: the model returns {len(out)} outputs (a Graph with several outputs), and {owner} "
            "reads one output with one loss: train with a loss per output written out, or look at one "
            "head through a Graph of the same nodes with one output (docs/howto/graphs.md)"
        )
    return out


def check_modules_once(owner: str, model: Module) -> None:
    """Refuse a tree in which one module object sits in two places (``Sequential(lin, act, lin)``,
    a layer that is a graph node and also inside another node): a module keeps one forward's
    cache for its backward, so its second run would overwrite what the first one's backward
    needs, and its parameters would be listed (and stepped) twice."""
    seen: dict[int, str] = {}
    for name, m in named_modules(model):
        if id(m) in seen:
            raise ValueError(
                f"{owner}: one {type(m).__name__} object is used twice, as {seen[id(m)] or 'the model'} and "
                f"as {name}: a module keeps one forward's cache for its backward, so each place needs "
                "its own (build another)"
            )
        seen[id(m)] = name


def named_modules(model: Module, prefix: str = "") -> Iterator[tuple[str, Module]]:
    """``(name, module)`` for every module of the tree, parents before children, depth first;
    the model itself is ``""`` (or ``"0"`` when it has no children: a lone layer)."""
    yield prefix.rstrip(".") or ("0" if not model.children else ""), model
    for child_name, child in model.named_children():
        yield from named_modules(child, f"{prefix}{child_name}.")


@contextmanager
def keep_modes(model: Module) -> Iterator[Module]:
    """Run a block that may switch modules between training and eval (``model.eval()``, or
    dropout off for a probe), then put every module back in the mode it had, also on error."""
    modes = [m.training for m in model.modules()]
    try:
        yield model
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode


_grad_state = threading.local()


def grad_enabled() -> bool:
    """Whether a forward pass should keep what its backward pass needs (True unless inside
    ``no_grad()``, in this thread)."""
    return getattr(_grad_state, "enabled", True)


def ran_under_no_grad(layer: str, kept: str = "nothing for backward") -> RuntimeError:
    """The error of a backward whose forward ran under ``no_grad()`` and so kept ``kept`` (what
    that layer's backward would have read): raise it where the layer finds its cache empty."""
    return RuntimeError(
        f"{layer}.backward: the forward pass ran under no_grad() (predict, evaluate) and kept "
        f"{kept}; run forward again outside no_grad()"
    )


@contextmanager
def no_grad() -> Iterator[None]:
    """Run forward passes that no backward pass will follow (``predict``, ``evaluate``): layers
    may then skip what they keep only for backward (a max-pool's argmax, a convolution's
    input windows). A backward after such a forward raises ``RuntimeError``. Per thread; nests."""
    before = grad_enabled()
    _grad_state.enabled = False
    try:
        yield
    finally:
        _grad_state.enabled = before


@contextmanager
def evaluating(model: Module) -> Iterator[Module]:
    """Run a block in eval mode, then put every module back in the mode it had."""
    with keep_modes(model):
        model.eval()
        yield model


JOIN_STEPS = True  # False: Sequential runs every layer on its own (bench_paths.py times both)


class Sequential(Module):
    """Layers applied in order; forward is a loop, backward the same loop reversed.

    ``backward(dy, input_grad=False)`` skips the gradient with respect to the network's input
    (``fit`` does this: data needs no gradient), saving the first layer's largest product.
    The layers are a tuple, fixed at construction: build a new ``Sequential`` to change them.

    One step of the loop may take two layers (``steps``, ``Module.joined_step``): a ``ReLU``
    directly followed by a max-pool runs as the pool, then the ReLU on the pooled map
    (``glassnet.layers.pooling.PoolThenReLU``): max and ReLU commute, so y and every gradient
    are the layer-by-layer ones, bit for bit, and the ReLU does a quarter of the work. A
    ``Linear`` directly followed by a ``ReLU`` runs the ReLU in place on the Linear's new
    product (``glassnet.layers.activations.LinearThenReLU``), again bit for bit.
    """

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(
                    f"Sequential: item #{i} is a {type(layer).__name__}, expected a glassnet Module"
                )
        self.children = tuple(layers)
        check_modules_once("Sequential", self)
        # the first layer that owns parameters (or may: a container); below it nothing needs
        # a gradient, so backward(input_grad=False) stops there
        self.first_trainable = next((i for i, m in enumerate(layers) if m.params or m.children), len(layers))
        self._plan: tuple = ()  # (children, switch, steps): the steps, made again if either changes
        self._ran: list | None = None  # the steps of the last forward, which backward retraces

    @property
    def layers(self) -> tuple[Module, ...]:
        return self.children

    def steps(self) -> list[tuple[int, object]]:
        """``(index, step)`` for each step of the loop, in order: a layer, or two neighbours run
        as one where the second one's ``joined_step`` offers it (a ReLU and the max-pool after
        it, a Linear and the ReLU after it); the index is the layer's, for a pair the one its
        ``reports`` names (the layer that checks shapes and may hold parameters: the pool, the
        Linear), which shape errors name and which ``backward(input_grad=False)`` stops at."""
        if not self._plan or self._plan[0] is not self.children or self._plan[1] != JOIN_STEPS:
            layers, steps, i = self.children, [], 0
            while i < len(layers):
                pair = layers[i + 1].joined_step(layers[i]) if JOIN_STEPS and i + 1 < len(layers) else None
                steps.append((i, layers[i]) if pair is None else (i + pair.reports, pair))
                i += 1 if pair is None else 2
            self._plan = (self.children, JOIN_STEPS, steps)
            for k, (_, step) in enumerate(steps):
                if isinstance(step, Module):
                    step.followed_by([s for _, s in steps[k + 1 :]])
        return self._plan[2]

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._ran = steps = self.steps()
        for i, step in steps:
            try:
                x = step.forward(x)
            except ShapeError as e:
                raise ShapeError(f"layer #{i} ({type(self.children[i]).__name__}): {e}") from None
        return x

    def backward(self, dy: np.ndarray, input_grad: bool = True) -> np.ndarray | None:
        first = self.first_trainable
        for i, step in reversed(self._ran if self._ran is not None else self.steps()):
            if not input_grad and i == first:
                step.backward_params(dy)
                return None
            dy = step.backward(dy)
        return dy

    def backward_params(self, dy: np.ndarray) -> None:
        self.backward(dy, input_grad=False)

    @classmethod
    def from_config(cls, config: dict, children: list[Module]) -> Sequential:
        if config:
            raise ValueError(f"Sequential takes no config, got {config!r}")
        return cls(*children)

    def __getitem__(self, i: int) -> Module:
        return self.children[i]

    def __len__(self) -> int:
        return len(self.children)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.children)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {m!r}" for i, m in enumerate(self.children))
        return f"Sequential(\n{inner}\n)"
