"""Imports run one way: core < training < tools < entry points, and no two modules import each
other (directly or around a circle).

Every module's imports are read with ``ast``, at the top and inside functions, relative and
absolute. ``LAYERS`` is the table of where each module belongs (docs/design.md shows it
too); a module missing from it fails the test, so a new file has to be placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import glassnet

PACKAGE = Path(glassnet.__file__).parent

CORE, TRAINING, TOOLS, ENTRY = 0, 1, 2, 3
NAMES = {CORE: "core", TRAINING: "training", TOOLS: "tools", ENTRY: "entry"}

# module (dotted, below glassnet) -> layer. A package (layers) covers its submodules.
LAYERS = {
    # core: the layer protocol, the layers, what training is made of, and saving a model
    "errors": CORE,
    "_malloc": CORE,
    "tuning": CORE,  # the choice between equivalent ways that a layer times on its own calls
    "module": CORE,
    "functional": CORE,
    "init": CORE,
    "layers": CORE,
    "losses": CORE,
    "metrics": CORE,  # top-k, macro precision/recall/F1, MAE/RMSE: NumPy only
    "regularizers": CORE,
    "optim": CORE,
    "schedules": CORE,
    "data": CORE,
    "io": CORE,  # save/load of a model is part of the model's contract, as state_dict is
    "walk": CORE,  # the one tree walk over a model, shared by anomaly detection and the tools
    # training: the loop and what plugs into it
    "callbacks": TRAINING,
    "checkpoint": TRAINING,
    "anomaly": TRAINING,
    "train": TRAINING,
    "distributed": TRAINING,  # data-parallel fit over MPI (mpi4py imported when used)
    "shards": TRAINING,  # fit(shards=k): a step's parts in threads
    # tools: built on training, used by people (and the CLI), never by the layers below
    "diagnostics": TOOLS,
    "tracing": TOOLS,
    "plots": TOOLS,
    "tensorboard": TOOLS,
    "lr_find": TOOLS,
    "datasets": TOOLS,
    "models": TOOLS,
    "experiment_config": TOOLS,
    "experiments": TOOLS,
    "report": TOOLS,
    "torch_reference": TOOLS,
    "cases": TOOLS,
    "gradcheck": TOOLS,
    "choices": TOOLS,  # the data sets and optimizers the CLI and the experiment files name
    "runs": TOOLS,  # glassnet train as a library call: presets, run directories, results
    "torch_interop": TOOLS,  # to_torch/from_torch and weight files under PyTorch's names
    "torch_modules": TOOLS,  # torch twins of glassnet-only layers (imports torch: only when called)
    "onnx_export": TOOLS,  # export_onnx (onnx imported when called)
    # entry points: the package's namespace and the command line
    "": ENTRY,  # glassnet/__init__.py: ``import glassnet as gn`` sees every layer
    "cli": ENTRY,
    "__main__": ENTRY,
}


def module_name(path: Path) -> str:
    """``glassnet/layers/conv.py`` -> ``layers.conv``; a package's ``__init__`` -> the package."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(name: str, known: dict[str, Path]) -> str:
    """The known module a dotted name below glassnet refers to: itself, or its longest known
    prefix (``layers.conv.Conv2d`` -> ``layers.conv``; a name imported from the package
    ``__init__`` -> ``""``)."""
    parts = name.split(".") if name else []
    while parts and ".".join(parts) not in known:
        parts.pop()
    return ".".join(parts)


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The glassnet modules that ``name`` imports, anywhere in its file (TYPE_CHECKING
    blocks included: a cycle of annotations is a cycle of meaning)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, *([node.module] if node.module else [])])
                prefix = "glassnet" + ("." + stem if stem else "")
            else:
                prefix = node.module or ""
            # ``from . import walk`` imports a module; ``from .io import save`` a name in one
            targets = [f"{prefix}.{a.name}" for a in node.names]
        for target in targets:
            if target == "glassnet" or target.startswith("glassnet."):
                dotted = target.removeprefix("glassnet").removeprefix(".")
                found = resolve(dotted, known)
                if found != name:
                    out.add(found)
    return out


def layer_of(name: str) -> int:
    found = resolve(name, LAYERS)
    return LAYERS[found] if found in LAYERS else -1


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), as a sorted list."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    missing = [name or "__init__" for name in modules() if layer_of(name) < 0]
    assert not missing, f"add these modules to LAYERS in tests/test_layering.py and docs/design.md: {missing}"


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{a or '__init__'} ({NAMES[layer_of(a)]}) imports {b or '__init__'} ({NAMES[layer_of(b)]})"
        for a, targets in sorted(graph().items())
        for b in sorted(targets)
        if layer_of(b) > layer_of(a)
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    edges = graph()
    found = cycles(edges)
    lines = [
        " <-> ".join(c) + ": " + ", ".join(f"{a}->{b}" for a in c for b in sorted(edges[a]) if b in c)
        for c in found
    ]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_the_reader_sees_function_level_and_relative_imports(tmp_path):
    """The checker itself: a planted upward import inside a function, in a subpackage, is seen."""
    src = "def f():\n    from ..diagnostics import summary\n    import glassnet.train\n"
    path = PACKAGE / "layers" / "conv.py"
    tree_imports = imports("layers.conv", path, modules())
    assert "module" in tree_imports and "init" in tree_imports
    fake = tmp_path / "glassnet" / "layers" / "fake.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(src)
    known = {**modules(), "layers.fake": fake}
    assert imports("layers.fake", fake, known) == {"diagnostics", "train"}
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
