"""Containers beyond a chain: ``Residual`` (y = block(x) + x) and ``Graph`` (named nodes, each
a module applied to earlier nodes).

Backward through a graph is the chain rule with one more rule: where a value feeds several
consumers (a fan-out: x goes into the block *and* around it), dC/dvalue is the sum of what comes
back along each path. That is the sum the notes derive by hand, "index i is no longer fixed, we
have to run a sum": BP2 sums delta^{l+1} over every neuron that a^l feeds; here the sum runs over
every node a value feeds.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Sequence

import numpy as np

from ..module import Module, ShapeError, check_modules_once

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _check_module(owner: str, what: str, m) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{owner}: {what} must be a glassnet Module, got {type(m).__name__}")
    return m


class Residual(Module):
    """y = block(x) + shortcut(x), the shortcut the identity by default (He et al. 2015): a
    residual connection, the cure for the vanishing gradients of the book's chapter 5.

    ``shortcut`` is a module where the block changes the shape (a 1x1 ``Conv2d`` with a stride,
    a ``Linear``); ``None`` is the identity. Children: ``block`` and, if given, ``shortcut``
    (parameters ``block.0.W``, ``shortcut.W``).

    Shapes: x -> y, block(x) and shortcut(x) of the same shape.
    Backward: x feeds two paths, so its delta is the sum over both, the sum the notes derive
    by hand ("index i is no longer fixed, we have to run a sum"):
        dx = block.backward(dy) + shortcut.backward(dy)       (shortcut None: + dy)
    The identity path hands dy back unchanged, so however small the block's gradient, dx keeps
    dy: the gradient of an early layer no longer has to pass through every later one.
    """

    sums_paths = "y = block(x) + shortcut(x), and dC/dx = the block's dx + the shortcut's dx"

    def __init__(self, block: Module, shortcut: Module | None = None) -> None:
        super().__init__()
        self.block = _check_module("Residual", "block", block)
        self.shortcut = None if shortcut is None else _check_module("Residual", "shortcut", shortcut)
        if shortcut is block:
            raise ValueError("Residual: shortcut must be another module than block (one forward cache each)")
        self.children = [block] if shortcut is None else [block, shortcut]
        check_modules_once("Residual", self)

    def child_names(self) -> list[str]:
        return ["block", "shortcut"][: len(self.children)]

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = self.block.forward(x)
        s = x if self.shortcut is None else self.shortcut.forward(x)
        if np.shape(h) != np.shape(s):
            what = "x" if self.shortcut is None else "shortcut(x)"
            raise ShapeError(
                f"Residual: block(x) has shape {np.shape(h)} and {what} {np.shape(s)}; they are added, "
                "so they must be equal (give a shortcut that maps x to the block's shape)"
            )
        return h + s

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx = self.block.backward(dy)
        return dx + (dy if self.shortcut is None else self.shortcut.backward(dy))

    def backward_params(self, dy: np.ndarray) -> None:
        self.block.backward_params(dy)
        if self.shortcut is not None:
            self.shortcut.backward_params(dy)

    @classmethod
    def from_config(cls, config: dict, children: list[Module]) -> Residual:
        if config or not 1 <= len(children) <= 2:
            raise ValueError(f"Residual takes no config and 1 or 2 children, got {config!r}, {len(children)}")
        return cls(*children)

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({n}): {m!r}".replace("\n", "\n  ") for n, m in self.named_children())
        return f"Residual(\n{inner}\n)"


Sources = str | Sequence[str]


class Graph(Module):
    """Named nodes, each a module applied to named earlier nodes or graph inputs: what a chain
    cannot say (two inputs, a branch that merges, a skip over several blocks, a U-Net)::

        gn.Graph(inputs=["x", "x2"],
                 nodes=[("h", gn.Linear(4, 8), "x"),
                        ("a", gn.ReLU(), "h"),
                        ("s", gn.Add(), ["a", "x2"])],
                 outputs="s")

    ``inputs``: a name or a list of names; ``forward(*xs)`` takes one array per name, in order.
    As the whole model, a graph of several inputs trains on ``x`` given as a tuple of arrays
    (``fit(graph, ..., train_data=((xa, xb), y))``, ``predict(graph, (xa, xb))``).
    ``nodes``: ``(name, module, sources)`` in an order where every source comes earlier (a
    topological order: there are no cycles), ``sources`` one name or a list, passed to
    ``module.forward`` positionally. ``outputs``: the node (or input) returned, or a list of
    them, returned as a tuple in that order (a multi-task or auxiliary head: ``backward`` then
    takes one gradient per output, ``None`` for an output no loss reads; ``fit`` trains one
    output with one loss, so such a graph trains with a step written out, see
    docs/howto/graphs.md). Names are Python identifiers; a node's name
    names its parameters (``"h.W"``) and its place in a walk (``trace``, NaN provenance). A
    module is one node: a module keeps one forward's cache for its backward, so it cannot run
    twice.

    Shapes: as the nodes make them.
    Backward: the nodes in reverse order. Node k's output a_k feeds the nodes that name it, so
        delta_k = sum over consumers c of (c.backward(delta_c)) for the a_k entry
    (the fan-out sum; an output that other nodes also read gets its own dy added to the sum);
    each node's backward runs once, on that sum, after all its consumers.
    A node whose output reaches no output gets no gradient; a None from a node's backward (token
    ids into an ``Embedding`` get no gradient) adds nothing to the sum. Returns dC/dx for each
    input (a tuple for several inputs; zeros for a float input nothing uses, None for integer ids).
    """

    sums_paths = "a node read by several nodes gets the sum of their gradients (fan-out)"

    def __init__(self, inputs: Sources, nodes: Sequence[tuple[str, Module, Sources]], outputs: Sources):
        super().__init__()
        self.inputs = _names("inputs", inputs)
        if not isinstance(nodes, (list, tuple)):
            raise TypeError(
                f"Graph: nodes must be a list of (name, module, sources), got {type(nodes).__name__}"
            )
        known: set[str] = set(self.inputs)
        later = {
            n[0] for n in nodes if isinstance(n, (list, tuple)) and len(n) == 3 and isinstance(n[0], str)
        }
        self.nodes: list[tuple[str, Module, list[str]]] = []
        for i, node in enumerate(nodes):
            if not isinstance(node, (list, tuple)) or len(node) != 3:
                raise TypeError(f"Graph: nodes[{i}] must be a (name, module, sources) tuple, got {node!r}")
            name, module, sources = node
            _check_name(f"nodes[{i}]", name)
            if name in known:
                raise ValueError(
                    f"Graph: node {name!r} is named twice (inputs and nodes share one namespace)"
                )
            _check_module("Graph", f"node {name!r}'s module", module)
            sources = _names(f"node {name!r}'s sources", sources)
            _check_arity(name, module, sources)
            for s in sources:
                if s not in known:
                    why = (
                        "which comes later: nodes must be listed so that every source comes first "
                        "(a cycle cannot be)"
                        if s in later
                        else f"which is no input or node (known: {_listed(known)})"
                    )
                    raise ValueError(f"Graph: node {name!r} takes {s!r}, {why}")
            known.add(name)
            self.nodes.append((name, module, sources))
        if not isinstance(outputs, str) and not (isinstance(outputs, (list, tuple)) and outputs):
            raise TypeError(
                f"Graph: outputs must be a node's name or a non-empty list of names, got {outputs!r}"
            )
        # the given form: one name (forward returns an array) or a list (forward returns a tuple)
        self.outputs = outputs if isinstance(outputs, str) else list(outputs)
        self.output_names = _names("outputs", outputs)
        for name in self.output_names:
            if name not in known:
                raise ValueError(f"Graph: outputs {name!r} is no input or node (known: {_listed(known)})")
        if len(set(self.output_names)) != len(self.output_names):
            raise ValueError(f"Graph: outputs names a node twice: {self.output_names!r}")
        self.children = [m for _, m, _ in self.nodes]
        check_modules_once("Graph", self)  # a module inside one node and also elsewhere
        # the given form of each node's sources, for config(): "x" stays a string
        self._given = [s if isinstance(s, str) else list(s) for _, _, s in nodes]

    def child_names(self) -> list[str]:
        return [name for name, _, _ in self.nodes]

    def input_count(self) -> int:
        return len(self.inputs)

    def input_readers(self, position: int) -> list[tuple[Module, int]]:
        """Every node that names input ``position``, with that input's place among its sources."""
        if not 0 <= position < len(self.inputs):
            return []
        name = self.inputs[position]
        return [(m, i) for _, m, sources in self.nodes for i, s in enumerate(sources) if s == name]

    def __getitem__(self, name: str) -> Module:
        for node, module, _ in self.nodes:
            if node == name:
                return module
        raise KeyError(f"Graph: no node {name!r}")

    def forward(self, *xs: np.ndarray):
        if len(xs) != len(self.inputs):
            raise ShapeError(
                f"Graph takes {len(self.inputs)} input(s) ({', '.join(self.inputs)}), got {len(xs)}"
            )
        values = dict(zip(self.inputs, xs))
        self.input_like = [(np.shape(x), np.asarray(x).dtype) for x in xs]
        for name, module, sources in self.nodes:
            try:
                values[name] = module.forward(*(values[s] for s in sources))
            except (ShapeError, ValueError, TypeError) as e:
                from ..walk import LayerShapeError

                if isinstance(e, LayerShapeError) or type(e) not in (ShapeError, ValueError, TypeError):
                    raise  # named by a walk where it happened (a dotted path), or not ours to reword
                named = type(e)(f"Graph node {name!r} ({type(module).__name__}): {e}")
                # a ShapeError is the message alone; a ValueError or TypeError may be a bug in a
                # user's layer, whose traceback is kept (chained) for the one who debugs it
                raise named from (None if isinstance(e, ShapeError) else e)
        if isinstance(self.outputs, str):
            return values[self.outputs]
        return tuple(values[name] for name in self.output_names)

    def backward(self, dy):
        """dC/dinputs from ``dy``: one array, or with several outputs a tuple of one gradient per
        output (``None`` where no loss reads that output)."""
        if isinstance(self.outputs, str):
            grads: dict[str, np.ndarray] = {self.outputs: dy}
        else:
            if not isinstance(dy, (tuple, list)) or len(dy) != len(self.output_names):
                got = f"{len(dy)} gradients" if isinstance(dy, (tuple, list)) else type(dy).__name__
                raise ShapeError(
                    f"Graph.backward: the graph has {len(self.output_names)} outputs "
                    f"({', '.join(self.output_names)}), so it takes a tuple of as many gradients "
                    f"(None for an output no loss reads); got {got}"
                )
            grads = {name: d for name, d in zip(self.output_names, dy) if d is not None}
        for name, module, sources in reversed(self.nodes):
            delta = grads.pop(name, None)
            if delta is None:  # reaches no output
                continue
            d = module.backward(delta)
            d = d if isinstance(d, tuple) else (d,)
            if len(d) != len(sources):
                raise ValueError(
                    f"Graph node {name!r} ({type(module).__name__}): its backward returned {len(d)} "
                    f"gradient(s) for {len(sources)} source(s) ({', '.join(sources)}); a module taking "
                    "several inputs returns a tuple with one gradient per input"
                )
            for s, ds in zip(sources, d):
                if ds is None:  # no gradient for this input (token ids into an Embedding)
                    continue
                # the fan-out sum; a new array, never written into one a module handed back
                grads[s] = ds if s not in grads else grads[s] + ds
        out = [
            grads[n] if n in grads else None if dtype.kind in "iub" else np.zeros(shape, dtype)
            for n, (shape, dtype) in zip(self.inputs, self.input_like)
        ]
        return out[0] if len(out) == 1 else tuple(out)

    def config(self) -> dict:
        nodes = [[name, given] for (name, _, _), given in zip(self.nodes, self._given)]
        outputs = self.outputs if isinstance(self.outputs, str) else list(self.outputs)
        return {"inputs": list(self.inputs), "nodes": nodes, "outputs": outputs}

    @classmethod
    def from_config(cls, config: dict, children: list[Module]) -> Graph:
        """The graph of ``config()``; ``children`` are the node modules in node order."""
        if set(config) != {"inputs", "nodes", "outputs"}:
            raise ValueError(f"Graph config must have the keys inputs, nodes, outputs, got {sorted(config)}")
        nodes = config["nodes"]
        if not isinstance(nodes, list) or len(nodes) != len(children):
            raise ValueError(f"Graph config lists {_count(nodes)} nodes for {len(children)} modules")
        pairs = [n for n in nodes if isinstance(n, list) and len(n) == 2]
        if len(pairs) != len(nodes):
            raise ValueError("Graph config: each node must be [name, sources]")
        return cls(config["inputs"], [(n, m, s) for (n, s), m in zip(pairs, children)], config["outputs"])

    def __repr__(self) -> str:
        lines = [f"  inputs: {', '.join(self.inputs)}"]
        for name, module, sources in self.nodes:
            lines.append(f"  {name} = {module!r}({', '.join(sources)})".replace("\n", "\n  "))
        lines.append(f"  outputs: {', '.join(self.output_names)}")
        return "Graph(\n" + "\n".join(lines) + "\n)"


def _check_arity(name: str, module: Module, sources: list[str]) -> None:
    """Refuse a node whose module's ``forward`` cannot take its sources positionally."""
    try:
        signature = inspect.signature(module.forward)
    except (TypeError, ValueError):  # no signature to read: forward says so itself
        return
    try:
        signature.bind(*sources)
    except TypeError:
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        takes = [p.name for p in signature.parameters.values() if p.kind in positional]
        raise ValueError(
            f"Graph: node {name!r} gives {len(sources)} source(s) ({', '.join(sources)}) to "
            f"{type(module).__name__}.forward, which takes ({', '.join(takes)})"
        ) from None


def _listed(names: set[str], limit: int = 20) -> str:
    names = sorted(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _count(x) -> str:
    return str(len(x)) if isinstance(x, list) else "no list of"


def _check_name(what: str, name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"Graph: {what}: a name must be a Python identifier (letters, digits, _), got {name!r}"
        )
    return name


def _names(what: str, names) -> list[str]:
    """One name or a non-empty list of names, as a list."""
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not names:
        raise TypeError(f"Graph: {what} must be a name or a non-empty list of names, got {names!r}")
    for n in names:
        _check_name(what, n)
    if what == "inputs" and len(set(names)) != len(names):
        raise ValueError(f"Graph: inputs are named twice: {names!r}")
    return list(names)
