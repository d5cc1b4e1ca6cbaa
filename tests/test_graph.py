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
    with pytest.raises(ValueError, match="Graph: one ReLU object is used twice, as a and as b"):
        gn.Graph("x", [("a", relu, "x"), ("b", relu, "a")], "b")
    with pytest.raises(TypeError, match="node 'a''s module must be a glassnet Module, got ufunc"):
        gn.Graph("x", [("a", np.tanh, "x")], "a")
    with pytest.raises(TypeError, match="Residual: block must be a glassnet Module"):
        gn.Residual("relu")
    with pytest.raises(ValueError, match="Residual: shortcut must be another module"):
        gn.Residual(relu, relu)


def test_a_module_nested_in_two_places_is_refused_in_every_container():
    """A module keeps one forward's cache for its backward: run twice, the first run's backward
    would read the second's cache (the gradient was silently wrong), and its parameters would be
    stepped twice. Refused however deep the second place is."""
    lin = gn.Linear(3, 3)
    with pytest.raises(ValueError, match="Graph: one Linear object is used twice, as a and as b.0"):
        gn.Graph("x", [("a", lin, "x"), ("b", gn.Sequential(lin, gn.Tanh()), "a")], "b")
    with pytest.raises(ValueError, match="Sequential: one Linear object is used twice, as 0 and as 2"):
        gn.Sequential(lin, gn.Tanh(), lin)
    with pytest.raises(
        ValueError, match="Residual: one Linear object is used twice, as block.0 and as shortcut"
    ):
        gn.Residual(gn.Sequential(lin, gn.Tanh()), lin)
    gn.Sequential(gn.Linear(3, 3), gn.Tanh(), gn.Linear(3, 3))  # distinct modules of one kind: fine

    class Twice(gn.Module):  # a user's own container, which no constructor of ours checks
        def __init__(self, act):
            super().__init__()
            self.children = [gn.Linear(3, 3), act, act]  # parameter-free: no optimizer sees it twice

    model = Twice(gn.Tanh())
    with pytest.raises(ValueError, match="fit: one Tanh object is used twice, as 1 and as 2"):
        gn.fit(model, gn.MSELoss(), gn.optim.SGD(model.parameters(), lr=0.1), (np.ones((4, 3)),) * 2)


def test_a_node_given_more_sources_than_its_forward_takes_is_refused_at_construction():
    with pytest.raises(
        ValueError, match=r"node 'h' gives 2 source\(s\) \(a, y\) to Linear.forward, which takes \(x\)"
    ):
        gn.Graph(["a", "y"], [("h", gn.Linear(3, 3), ["a", "y"])], "h")
    gn.Graph(["a", "y"], [("s", gn.Add(), ["a", "y", "a"])], "s")  # *xs: any number


def test_errors_inside_a_node_name_the_node_even_from_a_nested_container():
    g = gn.Graph("x", [("enc_a", gn.Sequential(gn.Linear(3, 4), gn.Linear(4, 2)), "x"),
                       ("enc_b", gn.Sequential(gn.Linear(3, 4), gn.Linear(5, 2)), "x"),
                       ("s", gn.Add(), ["enc_a", "enc_b"])], "s")  # fmt: skip
    with pytest.raises(gn.ShapeError, match=r"^Graph node 'enc_b' \(Sequential\): layer #1 \(Linear\)"):
        g.forward(np.ones((2, 3)))
    attn = gn.Graph(["q", "k"], [("a", gn.MultiheadAttention(4, 2), ["q", "k"])], "a")
    with pytest.raises(ValueError, match=r"^Graph node 'a' \(MultiheadAttention\): "):
        attn.forward(np.ones((2, 3, 4)), np.ones((2, 5, 4)))  # a key without its value


class _WeightedSum(gn.Module):
    """A user's two-input layer whose backward forgets the second input's gradient."""

    def forward(self, a, b):
        return a + 2 * b

    def backward(self, dy):
        return dy  # should be (dy, 2 dy)


def test_a_backward_returning_too_few_gradients_is_an_error_naming_the_node():
    g = gn.Graph(["a", "b"], [("s", _WeightedSum(), ["a", "b"])], "s")
    g.forward(np.ones((2, 3)), np.ones((2, 3)))
    with pytest.raises(
        ValueError, match=r"Graph node 's' \(_WeightedSum\): its backward returned 1 gradient"
    ):
        g.backward(np.ones((2, 3)))


def token_and_feature_graph(feature_branch_first: bool) -> gn.Graph:
    rng = np.random.default_rng(0)
    tokens = [("e", gn.Embedding(10, 4, rng=rng), "ids"), ("m", gn.TokenMean(), "e")]
    features = [("f", gn.Linear(4, 4, rng=rng), "feat")]
    head = [("s", gn.Add(), ["m", "f"]), ("o", gn.Linear(4, 2, rng=rng), "s")]
    nodes = features + tokens + head if feature_branch_first else tokens + features + head
    return gn.Graph(["ids", "feat"], nodes, "o")


@pytest.mark.parametrize("feature_branch_first", [False, True])
def test_token_ids_are_taken_for_the_input_an_embedding_reads_in_any_node_order(feature_branch_first):
    rng = np.random.default_rng(1)
    ids, feat, y = rng.integers(0, 10, (20, 5)), rng.standard_normal((20, 4)), rng.integers(0, 2, 20)
    g = token_and_feature_graph(feature_branch_first)
    assert gn.module.integer_inputs(g) == (True, False)
    assert gn.predict(g, (ids, feat)).shape == (20, 2)
    gn.fit(g, gn.CrossEntropyLoss(), gn.optim.SGD(g.parameters(), lr=0.1), ((ids, feat), y), epochs=1,
           batch_size=5, verbose=False, rng=0)  # fmt: skip
    with pytest.raises(ValueError, match=r"predict: x\[1\]: x must be a float array .* image bytes"):
        gn.predict(g, (ids, ids[:, :4]))  # the features' input still refuses integers


def test_two_embeddings_reading_one_input_each_get_their_gradient():
    """The fan-out sum over an input that gets no gradient (token ids): each Embedding's
    backward returns None for the ids, and the graph's backward returns None for them too."""
    rng = np.random.default_rng(0)
    e1, e2 = gn.Embedding(10, 4, rng=rng), gn.Embedding(10, 4, rng=rng)
    g = gn.Graph("ids", [("e1", e1, "ids"), ("e2", e2, "ids"), ("s", gn.Add(), ["e1", "e2"]),
                         ("m", gn.TokenMean(), "s"), ("o", gn.Linear(4, 3, rng=rng), "m")], "o")  # fmt: skip
    ids, y = rng.integers(0, 10, (6, 5)), rng.integers(0, 3, 6)
    g.forward(ids)
    assert g.backward(np.ones((6, 3))) is None
    errors = gn.check_gradients(g, gn.CrossEntropyLoss(), ids, y)
    assert max(errors.values()) < 1e-6 and {"e1.weight", "e2.weight"} <= set(errors)


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


class GivenChildren(gn.Module):
    """A user's container that is *given* its children, without from_config."""

    def __init__(self, a: gn.Module, b: gn.Module) -> None:
        super().__init__()
        self.a, self.b = a, b
        self.children = [a, b]

    def forward(self, x):
        return self.b.forward(self.a.forward(x))

    def backward(self, dy):
        return self.a.backward(self.b.backward(dy))


class GivenChildrenRebuilt(GivenChildren):
    @classmethod
    def from_config(cls, config, children):
        return cls(*children)


def test_a_container_given_its_children_is_told_to_define_from_config(tmp_path):
    """save refused it with "missing a required argument: 'a'" only; it now says what to write,
    and with that classmethod the container round-trips."""
    model = gn.Sequential(GivenChildren(gn.Linear(3, 3), gn.ReLU()))
    with pytest.raises(ValueError, match=r"missing a required argument: 'a'; .*give GivenChildren a "
                                         r"classmethod from_config\(cls, config, children\)"):  # fmt: skip
        gn.save(model, tmp_path / "m.safetensors")
    rebuilt = gn.Sequential(GivenChildrenRebuilt(gn.Linear(3, 3), gn.ReLU()))
    loaded = round_trip(
        rebuilt, tmp_path, (np.ones((2, 3)),), custom_layers={"GivenChildrenRebuilt": GivenChildrenRebuilt}
    )
    assert isinstance(loaded[0].a, gn.Linear)


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


def test_nested_graphs_of_many_nodes_are_refused_before_any_is_built(tmp_path, monkeypatch):
    """Each container under the child limit, together over the module limit: 200 graphs of 600
    nodes (a few megabytes of JSON) would build 120,000 modules."""
    built = []
    monkeypatch.setattr(gn.ReLU, "__init__", lambda self: built.append(1) or gn.Module.__init__(self))
    inner = graph([[f"n{i}", "x"] for i in range(600)], [leaf("ReLU")] * 600)
    arch = graph([[f"g{i}", "x"] for i in range(200)], [inner] * 200)
    path = write_arch(tmp_path / "g.safetensors", arch)
    with pytest.raises(
        FileFormatError, match="g.safetensors: the architecture has more than 100,000 modules"
    ):
        gn.load(path)
    assert built == []


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


# --- the tools over graphs: walk, report, GradientFlow, trace, NaN provenance, summary ---------


def graph_model(seed=0) -> gn.Sequential:
    """Flatten, then a graph: h feeds a Tanh and, around a residual block, the sum (a fan-out
    of two, a fan-in of two)."""
    rng = np.random.default_rng(seed)
    g = gn.Graph(
        "x",
        [
            ("h", gn.Linear(10, 8, rng=rng), "x"),
            ("a", gn.Tanh(), "h"),
            ("res", gn.Residual(gn.Sequential(gn.Linear(8, 8, rng=rng), gn.ReLU())), "a"),
            ("s", gn.Add(), ["res", "h"]),
            ("out", gn.Linear(8, 3, rng=rng), "s"),
        ],
        "out",
    )
    return gn.Sequential(gn.Flatten(), g).to(np.float64)


def xy(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 10)), rng.integers(0, 3, n)


def plain_grads(model, x, y):
    loss = gn.CrossEntropyLoss()
    model.zero_grad()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    return {name: p.grad.copy() for name, p in model.named_parameters()}


def test_a_walk_names_every_node_and_sees_the_merges_inputs():
    from glassnet import walk

    model, (x, y) = graph_model(), xy()
    w = walk.walk(model, gn.CrossEntropyLoss(), x, y)
    assert w.names == ["0", "1.h", "1.a", "1.res.block.0", "1.res.block.1", "1.s", "1.out"]
    add = w.names.index("1.s")
    assert isinstance(w.inputs[add], tuple) and len(w.inputs[add]) == 2  # res and h
    np.testing.assert_allclose(w.outputs[add], w.inputs[add][0] + w.inputs[add][1])
    # h's output gradient is the fan-out sum: through the Tanh and straight from the Add
    grads = plain_grads(model, x, y)
    np.testing.assert_allclose(x.T @ w.grads[1], grads["1.h.W"], rtol=1e-12)


def test_report_gradient_flow_and_summary_over_a_graph():
    from glassnet import diagnostics as D

    model, (x, y) = graph_model(), xy()
    rep = D.report(model, gn.CrossEntropyLoss(), x, y)
    assert [r["index"] for r in rep.layers] == ["1.h", "1.res.block.0", "1.out"]
    grads = plain_grads(model, x, y)
    for index in ("1.h", "1.res.block.0", "1.out"):
        row = next(r for r in rep.layers if r["index"] == index)
        assert row["dW"] == pytest.approx(np.linalg.norm(grads[index + ".W"]), rel=1e-9)
    flow = gn.GradientFlow(probe_size=16)
    gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
           batch_size=8, callbacks=[flow], verbose=False, rng=np.random.default_rng(0))  # fmt: skip
    assert set(flow.speeds()) == {"layer 1", "layer 2", "layer 3"}
    text = gn.summary(model, (10,))
    for needle in ("1.h            Linear(in_features=10", "1.s            Add()", "1.res.block.1  ReLU()"):
        assert needle in text, text
    assert f"trainable: {88 + 72 + 27:,}" in text


def test_trace_per_node_of_a_graph():
    model, (x, y) = graph_model(), xy(n=4)
    traces = [gn.trace(model, gn.CrossEntropyLoss(), x[i], y[i]) for i in range(len(x))]
    assert [t.names for t in traces[0].layers] == [
        ["1.h", "1.a"],
        ["1.res.block.0", "1.res.block.1", "1.s"],
        ["1.out"],
    ]
    grads = plain_grads(model.eval(), x, y)
    for l, name in enumerate(["1.h", "1.res.block.0", "1.out"]):
        dW = np.mean([t.layers[l].dW for t in traces], axis=0)
        np.testing.assert_allclose(dW, grads[name + ".W"], rtol=1e-10, atol=1e-14)
    # BP4 with the input the block really received: a = tanh(z^1), not the sum after it
    np.testing.assert_allclose(traces[0].layers[1].a_in, np.tanh(traces[0].layers[0].z), rtol=1e-12)
    assert "layer 2: #1.res.block.0 Linear, #1.res.block.1 ReLU, #1.s Add" in str(traces[0])


@pytest.mark.parametrize(("where", "name"), [("out", "1.out"), ("res", "1.res.block.0")])
def test_nan_provenance_names_the_node(where, name):
    from glassnet.anomaly import AnomalyError

    model, (x, y) = graph_model(), xy()
    graph = model[1]
    layer = graph["out"] if where == "out" else graph["res"].block[0]
    layer.W.data[1, 2] = np.nan
    with pytest.raises(AnomalyError) as info:
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), (x, y), epochs=1,
               batch_size=8, verbose=False, detect_anomaly=True, rng=np.random.default_rng(0))  # fmt: skip
    e = info.value
    assert (e.phase, e.layer, e.layer_type) == ("forward z", name, "Linear")
    assert f"layer #{name} (Linear)" in str(e) and "its input was finite" in str(e)


def test_nan_provenance_at_a_merge_checks_each_of_its_inputs():
    from glassnet.anomaly import AnomalyError, checked_forward_backward

    g = gn.Graph("x", [("big", gn.Linear(2, 2), "x"), ("m", gn.Multiply(), ["big", "big"])], "m")
    g.to(np.float64)
    g["big"].W.data[...] = 1e200  # finite, but its square overflows
    with pytest.raises(AnomalyError) as info, np.errstate(over="ignore"):
        checked_forward_backward(g, gn.MSELoss(), np.ones((3, 2)), np.zeros((3, 2)))
    e = info.value
    assert (e.layer, e.layer_type) == ("m", "Multiply") and "its input was finite" in str(e)


def test_shape_errors_in_a_walk_name_the_node():
    model = gn.Sequential(gn.Graph("x", [("h", gn.Linear(10, 4), "x"), ("s", gn.Add(), ["h", "x"])], "s"))
    with pytest.raises(gn.ShapeError, match=r"summary: layer #0.s \(Add\) cannot take input"):
        gn.summary(model, (10,))


def test_checkpoint_and_resume_of_a_model_with_a_residual(tmp_path):
    """A run stopped after its 5th batch and resumed from its checkpoint ends with the weights,
    bit for bit, of the run that never stopped. The resumed run starts from other initial
    weights: only the checkpoint's can make it end the same."""

    class Stop(gn.Callback):
        def __init__(self):
            self.seen = 0

        def on_batch_end(self, batch, logs):
            self.seen += 1
            if self.seen == 5:
                raise KeyboardInterrupt

    def run(init, **kwargs):
        rng = np.random.default_rng(init)
        model = gn.Sequential(
            gn.Linear(10, 6, rng=rng),
            gn.Residual(gn.Sequential(gn.Linear(6, 6, rng=rng), gn.BatchNorm1d(6), gn.ReLU())),
            gn.Residual(gn.Linear(6, 3, rng=rng), shortcut=gn.Linear(6, 3, bias=False, rng=rng)),
        )
        x, y = xy(48)
        gn.fit(model, gn.CrossEntropyLoss(), gn.optim.Adam(model.parameters(), lr=0.01),
               (x.astype(np.float32), y), epochs=3, batch_size=8, verbose=False,
               rng=np.random.default_rng(1), **kwargs)  # fmt: skip
        return model.state_dict()

    from glassnet.checkpoint import read_checkpoint

    reference = run(0)
    with pytest.raises(KeyboardInterrupt):
        run(0, checkpoint=tmp_path, checkpoint_every=2, callbacks=[Stop()])
    assert read_checkpoint(tmp_path).meta["position"]["step"] == 4
    resumed = run(99, checkpoint=tmp_path, checkpoint_every=2, resume_from=tmp_path)
    assert resumed.keys() == reference.keys() and "1.block.1.running_var" in resumed
    for name in reference:
        np.testing.assert_array_equal(resumed[name], reference[name], err_msg=name)


def test_the_documented_example_of_writing_your_own_layer_runs(tmp_path, monkeypatch):
    """docs/howto/own-layer.md, "Writing your own layer": a user's layer, its gradient check, save
    and load through custom_layers. The code is read from the page and run as it stands."""
    from pathlib import Path

    page = Path(__file__).resolve().parent.parent / "docs" / "howto" / "own-layer.md"
    section = page.read_text().split("## Writing your own layer\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, str(page), "exec"), namespace)  # noqa: S102 (our own documentation)
    assert (tmp_path / "scaled.safetensors").exists()
    assert set(namespace["errors"]) == {"x", "scale"}


# --- several outputs ---------------------------------------------------------------------------


def two_headed(rng=0) -> gn.Graph:
    """A trunk read by two heads, and the trunk itself an output too (its dy joins the heads')."""
    rng = np.random.default_rng(rng)
    return gn.Graph(
        "x",
        [("h", gn.Linear(4, 6, rng=rng, dtype=np.float64), "x"), ("a", gn.Tanh(), "h"),
         ("cls", gn.Linear(6, 3, rng=rng, dtype=np.float64), "a"),
         ("reg", gn.Linear(6, 1, rng=rng, dtype=np.float64), "a")],
        ["cls", "reg", "a"],
    )  # fmt: skip


def test_several_outputs_backward_is_the_gradient_of_the_weighted_sum_of_losses():
    """C = CE(cls) + 0.5 MSE(reg) + sum(a * r): backward((dC/dcls, dC/dreg, dC/da)) gives the
    parameter and input gradients of C, checked by central differences in float64."""
    rng = np.random.default_rng(1)
    g = two_headed()
    x, labels, amount = rng.standard_normal((5, 4)), rng.integers(0, 3, 5), rng.standard_normal((5, 1))
    r = rng.standard_normal((5, 6))
    ce, mse = gn.CrossEntropyLoss(), gn.MSELoss()

    def cost() -> float:
        cls, reg, a = g.forward(x)
        return ce.forward(cls, labels) + 0.5 * mse.forward(reg, amount) + float((a * r).sum())

    cost()
    for p in g.parameters():
        p.grad[...] = 0
    dx = g.backward((ce.backward(), 0.5 * mse.backward(), r))
    for p in [*g.parameters(), None]:
        target = x if p is None else p.data
        analytic = dx if p is None else p.grad
        numeric = np.zeros_like(target)
        for idx in np.ndindex(*target.shape):
            keep = target[idx]
            target[idx] = keep + 1e-6
            up = cost()
            target[idx] = keep - 1e-6
            down = cost()
            target[idx] = keep
            numeric[idx] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)


def test_several_outputs_none_skips_a_head_and_bad_gradients_are_refused():
    g = two_headed()
    x = np.random.default_rng(2).standard_normal((3, 4))
    cls, reg, a = g.forward(x)
    assert cls.shape == (3, 3) and reg.shape == (3, 1) and a.shape == (3, 6)
    only_cls = g.backward((np.ones_like(cls), None, None))
    g.forward(x)
    fresh = gn.Graph("x", [("h", g["h"], "x"), ("a", g["a"], "h"), ("cls", g["cls"], "a")], "cls")
    fresh.forward(x)
    np.testing.assert_allclose(only_cls, fresh.backward(np.ones_like(cls)))
    with pytest.raises(gn.ShapeError, match=r"the graph has 3 outputs \(cls, reg, a\), so it takes a tuple"):
        g.backward(np.ones_like(cls))
    with pytest.raises(gn.ShapeError, match="got 2 gradients"):
        g.backward((np.ones_like(cls), None))
    with pytest.raises(ValueError, match="outputs names a node twice"):
        gn.Graph("x", [("t", gn.Tanh(), "x")], ["t", "t"])
    with pytest.raises(TypeError, match="outputs must be a node's name or a non-empty list"):
        gn.Graph("x", [("t", gn.Tanh(), "x")], [])


def test_several_outputs_round_trip_predict_and_fit_refuses_by_name(tmp_path):
    g = two_headed()
    x = np.random.default_rng(3).standard_normal((7, 4))
    path = tmp_path / "heads.safetensors"
    gn.save(g, path)
    back = gn.load(path)
    assert back.outputs == ["cls", "reg", "a"]
    for mine, theirs in zip(gn.predict(g, x, batch_size=3), gn.predict(back, x, batch_size=2)):
        np.testing.assert_array_equal(mine, theirs)
    assert [o.shape for o in gn.predict(g, x)] == [(7, 3), (7, 1), (7, 6)]
    opt = gn.optim.SGD(g.parameters(), lr=0.1)
    y = np.zeros(7, np.int64)
    for call in (lambda: gn.fit(g, gn.CrossEntropyLoss(), opt, (x, y), epochs=1, verbose=False),
                 lambda: gn.evaluate(g, gn.CrossEntropyLoss(), (x, y)),
                 lambda: gn.train_step(g, gn.CrossEntropyLoss(), opt, x, y)):  # fmt: skip
        with pytest.raises(TypeError, match=r"the model returns 3 outputs \(a Graph with several outputs\)"):
            call()
    assert "outputs: cls, reg, a" in repr(g)
    assert "cls" in gn.summary(g, (4,))
