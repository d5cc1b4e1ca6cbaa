"""The containers beyond a chain (Residual, Graph) and the merges (Add, Concat, Multiply):
their errors, save/load round trips, users' own layers through custom_layers, and hostile graph
files. Gradients and PyTorch parity are the case table's (test_layers)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.numpy

import glassnet as gn
from glassnet.errors import FileFormatError


def two_input_graph(rng=0) -> gn.Graph:
    rng = np.random.default_rng(rng)
    return gn.Graph(
        inputs=["x", "x2"],
        nodes=[
            ("h", gn.Linear(4, 8, rng=rng), "x"),
            ("a", gn.ReLU(), "h"),
            ("s", gn.Add(), ["a", "x2"]),
            ("c", gn.Concat(), ["s", "h"]),
            ("out", gn.Linear(16, 3, rng=rng), "c"),
        ],
        outputs="out",
    )


# --- construction errors name the node ----------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "outputs", "message"),
    [
        ([("h", gn.ReLU(), "y")], "h", "node 'h' takes 'y', which is no input or node"),
        ([("h", gn.ReLU(), "a"), ("a", gn.ReLU(), "h")], "a", "node 'h' takes 'a', which comes later"),
        ([("h", gn.ReLU(), "h")], "h", "node 'h' takes 'h', which comes later"),
        ([("h", gn.ReLU(), "x"), ("h", gn.Tanh(), "x")], "h", "node 'h' is named twice"),
        ([("x", gn.ReLU(), "x")], "x", "node 'x' is named twice"),
        ([("h", gn.ReLU(), "x")], "z", "outputs 'z' is no input or node"),
        ([("a.b", gn.ReLU(), "x")], "x", "a name must be a Python identifier"),
    ],
)
def test_graph_refuses_unknown_names_cycles_and_duplicates(nodes, outputs, message):
    with pytest.raises(ValueError, match=f"^Graph: .*{message}"):
        gn.Graph("x", nodes, outputs)


def test_graph_refuses_a_module_used_twice_and_non_modules():
    relu = gn.ReLU()
    with pytest.raises(ValueError, match="node 'b' reuses the module of node 'a'"):
        gn.Graph("x", [("a", relu, "x"), ("b", relu, "a")], "b")
    with pytest.raises(TypeError, match="node 'a''s module must be a glassnet Module, got ufunc"):
        gn.Graph("x", [("a", np.tanh, "x")], "a")
    with pytest.raises(TypeError, match="Residual: block must be a glassnet Module"):
        gn.Residual("relu")
    with pytest.raises(ValueError, match="Residual: shortcut must be another module"):
        gn.Residual(relu, relu)


def test_shape_errors_name_the_node():
    g = gn.Graph("x", [("h", gn.Linear(4, 3), "x"), ("s", gn.Add(), ["h", "x"])], "s")
    with pytest.raises(gn.ShapeError, match=r"Graph node 's' \(Add\): .*\(2, 3\), \(2, 4\)"):
        g.forward(np.zeros((2, 4)))
    with pytest.raises(gn.ShapeError, match="Graph node 'h' .Linear."):
        g.forward(np.zeros((2, 5)))
    with pytest.raises(gn.ShapeError, match=r"Graph takes 1 input\(s\) \(x\), got 2"):
        g.forward(np.zeros((2, 4)), np.zeros((2, 4)))
    with pytest.raises(gn.ShapeError, match=r"Residual: block\(x\) has shape \(2, 3\) and x \(2, 4\)"):
        gn.Residual(gn.Linear(4, 3)).forward(np.zeros((2, 4)))
    with pytest.raises(gn.ShapeError, match=r"Concat\(axis=1\) expects inputs equal but along axis 1"):
        gn.Concat().forward(np.zeros((2, 3)), np.zeros((3, 3)))
    with pytest.raises(TypeError, match="Concat: axis must be an integer"):
        gn.Concat(1.0)


# --- behaviour -------------------------------------------------------------------------------


def test_fan_out_sums_the_gradients_of_every_consumer():
    """x feeds three paths (y = x + x * x + relu(x)): dx = dy (1 + 2 x + [x > 0])."""
    g = gn.Graph(
        "x",
        [("sq", gn.Multiply(), ["x", "x"]), ("r", gn.ReLU(), "x"), ("s", gn.Add(), ["x", "sq", "r"])],
        "s",
    )
    x = np.array([[-1.5, 0.5, 2.0]])
    dy = np.array([[1.0, -2.0, 3.0]])
    np.testing.assert_allclose(g.forward(x), x + x * x + np.maximum(x, 0))
    np.testing.assert_allclose(g.backward(dy), dy * (1 + 2 * x + (x > 0)))


def test_unused_inputs_get_zeros_and_dead_nodes_no_gradient():
    dead = gn.Linear(2, 2)
    g = gn.Graph(["x", "unused"], [("d", dead, "x"), ("t", gn.Tanh(), "x")], "t")
    x = np.ones((3, 2))
    g.forward(x, np.ones((3, 5), np.float32))
    dx, dunused = g.backward(np.ones((3, 2)))
    assert dunused.shape == (3, 5) and dunused.dtype == np.float32 and not dunused.any()
    assert not dead.W.grad.any()


def test_broadcasting_add_and_multiply_sum_over_the_broadcast_axes():
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    gate = np.random.default_rng(1).standard_normal((2, 3, 1, 1))
    m = gn.Multiply()
    y = m.forward(x, gate)
    dy = np.ones_like(y)
    dx, dgate = m.backward(dy)
    np.testing.assert_allclose(dx, np.broadcast_to(gate, x.shape))
    np.testing.assert_allclose(dgate, x.sum(axis=(2, 3), keepdims=True))
    a = gn.Add()
    a.forward(x, np.ones(4))
    dx, db = a.backward(dy)
    assert db.shape == (4,) and np.all(db == 2 * 3 * 4)


def test_residual_in_sequential_trains_and_backward_params_skips_input():
    rng = np.random.default_rng(0)
    # no bias before batch norm: its gradient is 0 exactly (the mean is subtracted)
    block = gn.Sequential(gn.Linear(4, 4, bias=False, rng=rng), gn.BatchNorm1d(4), gn.ReLU())
    model = gn.Sequential(gn.Residual(block), gn.Linear(4, 2, rng=rng))
    x, y = rng.standard_normal((8, 4)), rng.integers(0, 2, 8)
    errors = gn.check_gradients(model, gn.CrossEntropyLoss(), x, y)
    assert max(errors.values()) < 1e-6, errors
    assert set(errors) == {
        "input",
        "0.block.0.W",
        "0.block.1.weight",
        "0.block.1.bias",
        "1.W",
        "1.b",
    }
    model.zero_grad()
    model.forward(x.astype(np.float32))
    assert model.backward(np.ones((8, 2), np.float32), input_grad=False) is None
    assert np.abs(block[0].W.grad).max() > 0


# --- save and load ---------------------------------------------------------------------------


def round_trip(model, tmp_path, xs, **load_kwargs):
    model.eval()
    before = model.forward(*xs)
    gn.save(model, tmp_path / "m.safetensors")
    loaded = gn.load(tmp_path / "m.safetensors", **load_kwargs).eval()
    np.testing.assert_array_equal(loaded.forward(*xs), before)
    assert [n for n, _ in loaded.named_parameters()] == [n for n, _ in model.named_parameters()]
    return loaded


def test_graph_and_residual_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    g = two_input_graph()
    loaded = round_trip(g, tmp_path, (rng.standard_normal((5, 4)), rng.standard_normal((5, 8))))
    assert loaded.config() == g.config() and isinstance(loaded["h"], gn.Linear)
    assert "h.W" in loaded.state_dict()
    res = gn.Sequential(
        gn.Residual(gn.Sequential(gn.Linear(3, 3), gn.BatchNorm1d(3), gn.ReLU())),
        gn.Residual(gn.Linear(3, 2), shortcut=gn.Linear(3, 2, bias=False)),
    )
    res.forward(rng.standard_normal((6, 3)))  # running statistics away from their start
    loaded = round_trip(res, tmp_path, (rng.standard_normal((4, 3)),))
    assert "1.shortcut.W" in loaded.state_dict() and "0.block.1.running_mean" in loaded.state_dict()


class MyBlock(gn.Module):
    """A user's layer: y = x * scale + shift, with its own parameter and config."""

    def __init__(self, features: int, shift: float = 0.0) -> None:
        super().__init__()
        self.features, self.shift = features, shift
        self.scale = gn.Param(np.linspace(0.5, 1.5, features).astype(np.float32), "scale")
        self.params = [self.scale]

    def forward(self, x):
        self.x = x
        return x * self.scale.data + self.shift

    def backward(self, dy):
        self.scale.grad += (dy * self.x).reshape(-1, self.features).sum(axis=0)
        return dy * self.scale.data

    def config(self):
        return {"features": self.features, "shift": self.shift}


class TwoPaths(gn.Module):
    """A user's container that builds its children from its config: y = a(x) + b(x)."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.features = features
        self.a, self.b = gn.Linear(features, features), MyBlock(features, 1.0)
        self.children = [self.a, self.b]

    def forward(self, x):
        return self.a.forward(x) + self.b.forward(x)

    def backward(self, dy):
        return self.a.backward(dy) + self.b.backward(dy)

    def config(self):
        return {"features": self.features}


def test_users_layers_round_trip_through_custom_layers(tmp_path):
    rng = np.random.default_rng(0)
    model = gn.Sequential(MyBlock(3, shift=0.5), TwoPaths(3), gn.Residual(MyBlock(3)))
    model[0].scale.data[...] = rng.standard_normal(3)
    loaded = round_trip(
        model,
        tmp_path,
        (rng.standard_normal((4, 3)),),
        custom_layers={"MyBlock": MyBlock, "TwoPaths": TwoPaths},
    )
    assert loaded[0].shift == 0.5 and isinstance(loaded[1].b, MyBlock)
    with pytest.raises(FileFormatError, match=r"unknown layer type 'MyBlock'.*custom_layers=\{'MyBlock'"):
        gn.load(tmp_path / "m.safetensors")
    with pytest.raises(FileFormatError, match="unknown layer type 'TwoPaths'"):
        gn.load(tmp_path / "m.safetensors", custom_layers={"MyBlock": MyBlock})


def test_custom_layers_must_be_module_classes_by_their_own_name():
    with pytest.raises(TypeError, match="custom_layers.'MyBlock'. must be a glassnet Module subclass"):
        gn.load("nowhere", custom_layers={"MyBlock": "MyBlock"})
    with pytest.raises(ValueError, match="custom_layers: 'Block' names the class MyBlock"):
        gn.load("nowhere", custom_layers={"Block": MyBlock})
    with pytest.raises(TypeError, match="custom_layers must be a dict"):
        gn.load("nowhere", custom_layers=[MyBlock])


# --- hostile graph files ---------------------------------------------------------------------


def write_arch(path, arch, tensors=None):
    tensors = tensors or {"_": np.zeros(1, np.float32)}
    safetensors.numpy.save_file(
        tensors, str(path), metadata={"glassnet_format": "1", "glassnet_architecture": json.dumps(arch)}
    )
    return path


def leaf(kind, config=None):
    return {"type": kind, "config": config or {}, "children": []}


def graph(nodes, children, inputs="x", outputs="a"):
    return {
        "type": "Graph",
        "config": {"inputs": inputs, "nodes": nodes, "outputs": outputs},
        "children": children,
    }


@pytest.mark.parametrize(
    ("arch", "message"),
    [
        (graph([["a", "zz"]], [leaf("ReLU")]), "node 'a' takes 'zz', which is no input or node"),
        (
            graph([["a", "b"], ["b", "a"]], [leaf("ReLU"), leaf("ReLU")]),
            "node 'a' takes 'b', which comes later",
        ),
        (graph([["a", "x"]], [leaf("ReLU"), leaf("ReLU")]), "lists 1 nodes for 2 modules"),
        (graph([["a", "x"]], [leaf("ReLU")], outputs="q"), "outputs 'q' is no input or node"),
        (graph([["__import__('os')", "x"]], [leaf("ReLU")]), "a name must be a Python identifier"),
        (graph([[1, "x"]], [leaf("ReLU")]), "'nodes' must be a list of"),
        (graph([["a", "x"]], [leaf("os.system")]), "unknown layer type 'os.system'"),
        (graph([["a", ["x", 3]]], [leaf("Add")]), "a name must be a Python identifier"),
        (graph([["a", []]], [leaf("Add")]), "non-empty list of names"),
        ({**graph([["a", "x"]], [leaf("ReLU")]), "config": {"inputs": "x", "nodes": [["a", "x"]]}}, "keys"),
        (
            graph([[f"n{i}", "x"] for i in range(20_000)], [leaf("ReLU")] * 20_000),
            "20000 children, more than",
        ),
        ({"type": "Residual", "config": {}, "children": [leaf("ReLU")] * 3}, "1 or 2 children"),
        ({"type": "Residual", "config": {"block": "os"}, "children": [leaf("ReLU")]}, "takes no config"),
    ],
)
def test_hostile_graph_files_are_refused(tmp_path, arch, message):
    path = write_arch(tmp_path / "g.safetensors", arch)
    with pytest.raises(FileFormatError, match=f"g.safetensors: .*{message}"):
        gn.load(path)


def test_a_graph_node_must_find_its_tensors_under_its_name(tmp_path):
    g = gn.Graph("x", [("h", gn.Linear(2, 2), "x")], "h")
    gn.save(g, tmp_path / "g.safetensors")
    state = {k.replace("h.", "q."): v for k, v in g.state_dict().items()}
    arch = json.loads(gn.io.read_file(str(tmp_path / "g.safetensors"), False)[0]["glassnet_architecture"])
    path = write_arch(
        tmp_path / "bad.safetensors", arch, {k: np.ascontiguousarray(v) for k, v in state.items()}
    )
    with pytest.raises(FileFormatError, match="needs tensor 'h.W'"):
        gn.load(path)
