"""ONNX export: every layer family and every CLI preset, run in onnxruntime, equals glassnet's
eval-mode forward within 1e-5 (float32); the file passes onnx.checker; what cannot be exported
is an error naming it; the command line's ``glassnet export``."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet import layers as L
from glassnet.cases import CASES
from glassnet.cli import main
from glassnet.onnx_export import ONE_INPUT, SEVERAL_INPUTS

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

TOL = {"rtol": 1e-5, "atol": 1e-5}
CONTAINERS = (gn.Sequential, L.Residual, L.Graph)


def randomize_statistics(model: gn.Module, rng: np.random.Generator) -> gn.Module:
    """Batch-norm running statistics and affine parameters away from their 0/1 start, so that
    an export that ignored them (or swapped mean and variance) would fail."""
    for m in model.modules():
        if isinstance(m, (L.BatchNorm1d, L.BatchNorm2d)):
            if m.track_running_stats:  # else there are none: batch statistics in eval too
                m.running_mean[...] = rng.normal(size=m.num_features)
                m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
            if m.affine:
                m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
                m.bias.data[...] = rng.normal(size=m.num_features)
        if isinstance(m, L.LayerNorm) and m.weight is not None:
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.weight.shape)
            if m.bias is not None:
                m.bias.data[...] = rng.normal(size=m.bias.shape)
        if isinstance(m, L.ClassToken):
            m.weight.data[...] = rng.normal(size=m.weight.shape)
    return model


def run_onnx(path, *xs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return session.run(["output"], dict(zip(names, xs)))[0]


def check_export(model: gn.Module, xs: tuple[np.ndarray, ...], tmp_path, opset: int = 17):
    """Export, check with onnx.checker, run in onnxruntime, compare with glassnet in eval mode."""
    xs = tuple(x if x.dtype.kind in "iu" else x.astype(np.float32) for x in xs)
    path = tmp_path / "model.onnx"
    shapes = [x.shape[1:] for x in xs]
    gn.export_onnx(model, path, shapes[0] if len(xs) == 1 else shapes, opset=opset)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    with gn.evaluating(model):
        expected = model.forward(*xs)
    got = run_onnx(path, *xs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **TOL)
    # a second batch size: the batch axis is symbolic
    more = tuple(np.concatenate([x, x[:1]]) for x in xs)
    with gn.evaluating(model):
        np.testing.assert_allclose(run_onnx(path, *more), model.forward(*more), **TOL)
    return got


def exportable(module: gn.Module) -> bool:
    return all(isinstance(m, CONTAINERS) or type(m) in ONE_INPUT or type(m) in SEVERAL_INPUTS
               for m in module.modules())  # fmt: skip


def batched(sample) -> bool:
    xs = sample if isinstance(sample, tuple) else (sample,)
    return all(x.ndim == xs[0].ndim and x.shape[0] == xs[0].shape[0] for x in xs)


# every layer row of the case table whose layer is a plain (unwrapped) glassnet layer taking
# batched inputs: the test-only wrappers (a recurrent layer from a given state, masks, token ids)
# are no layers a model holds, and have their own tests below where the layer is exportable
EXPORT_ROWS = [
    pytest.param(case, id=case.name)
    for case in CASES
    if case.kind == "layer" and exportable(case.build()[0]) and batched(case.build()[1])
]


def test_the_table_covers_every_exportable_class():
    covered = {type(m) for p in EXPORT_ROWS for m in p.values[0].build()[0].modules()}
    explicit = {L.Embedding, L.TransformerEncoderLayer}  # their rows are wrapped: tested below
    assert set(ONE_INPUT) | set(SEVERAL_INPUTS) <= covered | explicit


@pytest.mark.parametrize("case", EXPORT_ROWS)
def test_layer_rows_match_onnxruntime(case, tmp_path):
    rng = np.random.default_rng(1)
    layer = randomize_statistics(case.make(rng), rng)
    sample = case.sample(rng)
    check_export(layer, sample if isinstance(sample, tuple) else (sample,), tmp_path)


@pytest.mark.parametrize(
    "layer",
    [
        gn.Sequential(gn.Embedding(11, 6, padding_idx=0, rng=0), gn.LSTM(6, 5, bidirectional=True, rng=1),
                      gn.LastStep(), gn.Linear(10, 3, rng=2)),
        gn.Sequential(gn.Embedding(11, 4, rng=0), gn.TransformerEncoderLayer(4, 2, 8, causal=True, rng=1),
                      gn.TokenMean()),
        gn.TransformerEncoderLayer(8, 2, 16, norm_first=True, activation="gelu", rng=3),
        gn.TransformerEncoderLayer(8, 4, 16, bias=False, rng=4),
        gn.MultiheadAttention(8, 2, causal=True, rng=5),
        gn.GRU(3, 4, num_layers=3, bidirectional=True, rng=6),
        gn.RNN(3, 4, num_layers=2, nonlinearity="relu", rng=7),
    ],
    ids=["embedding-lstm", "embedding-causal-encoder", "encoder-prenorm-gelu", "encoder-nobias",
         "attention-causal", "gru-3-layers", "rnn-relu-2-layers"],
)  # fmt: skip
def test_sequence_models_match_onnxruntime(layer, tmp_path):
    rng = np.random.default_rng(2)
    randomize_statistics(layer, rng)
    if gn.module.takes_integers(layer):
        x = rng.integers(0, 11, size=(3, 7))
        x[0, :2] = 0  # the padding id
    else:
        n_in = next(m for m in layer.modules() if m.params).params[0].shape
        x = rng.standard_normal((3, 7, n_in[-1] if isinstance(layer, L.MultiheadAttention) else n_in[0]))
        if isinstance(layer, L.TransformerEncoderLayer):
            x = rng.standard_normal((3, 7, layer.d_model))
    check_export(layer, (x,), tmp_path)


# each branch of the option exports, on inputs that reach it, and the operator that shows it was
# taken: the case table's rows reach most, these the rest
@pytest.mark.parametrize(
    "layer, shape, op",
    [
        (gn.Conv1d(2, 3, 2, padding="same", padding_mode="circular"), (2, 6), "Slice"),  # after only
        (gn.Conv1d(2, 3, 3, padding=3, padding_mode="circular"), (2, 3), "Slice"),  # the whole length
        (gn.Conv1d(2, 4, 3, padding=2, padding_mode="replicate", groups=2), (2, 7), "Pad"),
        (gn.Conv2d(2, 2, (2, 3), padding="same", padding_mode="reflect"), (2, 5, 6), "Pad"),
        (gn.Conv2d(2, 2, (2, 3), padding="same"), (2, 5, 6), "Conv"),  # zeros: Conv's own (0, 1) pads
        (gn.MaxPool2d(2, dilation=3, padding=2), (2, 7, 6), "Pad"),  # pads >= kernel: onnxruntime refuses
        (gn.MaxPool1d(2, stride=2, padding=1, ceil_mode=True), (3, 5), "MaxPool"),  # PyTorch drops a window
        (gn.MaxPool2d(3, stride=2, dilation=2, ceil_mode=True), (2, 9, 10), "MaxPool"),
        (gn.AvgPool1d(3, stride=2, padding=1, ceil_mode=True), (3, 6), "Pad"),  # reach past the padding
        (gn.AvgPool1d(3, 2, 1, ceil_mode=True, count_include_pad=False), (3, 6), "AveragePool"),
        (gn.BatchNorm1d(3, track_running_stats=False), (3, 5), "ReduceMean"),  # (N, C, L)
        (gn.BatchNorm1d(3, track_running_stats=False, affine=False), (3,), "ReduceMean"),  # (N, C)
    ],
    ids=["conv1d-circular-after", "conv1d-circular-whole", "conv1d-replicate-groups", "conv2d-reflect-same",
         "conv2d-zeros-same", "maxpool-dilated-pad", "maxpool-ceil-dropped", "maxpool-ceil-dilated",
         "avgpool-ceil-counted", "avgpool-ceil-uncounted", "batchnorm1d-nlc-batch-stats",
         "batchnorm1d-nc-batch-stats"],
)  # fmt: skip
@pytest.mark.parametrize("opset", [17, 18])
def test_option_branches_match_onnxruntime(layer, shape, op, opset, tmp_path):
    rng = np.random.default_rng(7)
    randomize_statistics(layer, rng)
    x = rng.standard_normal((4, *shape))
    x[..., -1] += 3.0  # the last row (column) largest: a max window there that was dropped would show
    check_export(layer, (x,), tmp_path, opset=opset)
    assert op in {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}


def test_ceil_mode_pads_follow_the_input_size(tmp_path):
    """ceil mode's pads are computed from the size each pool saw in the forward run before export:
    a pool after several inputs (walked as a graph's) is exported."""
    rng = np.random.default_rng(8)
    graph = gn.Graph(
        ["a", "b"], [("s", gn.Add(), ["a", "b"]), ("p", gn.MaxPool1d(2, ceil_mode=True), "s")], "p"
    )
    check_export(graph, (rng.standard_normal((2, 3, 7)), rng.standard_normal((2, 3, 7))), tmp_path)
    pool = gn.AvgPool1d(2, ceil_mode=True)  # one pool at two sizes cannot be built any more
    with pytest.raises(ValueError, match="Sequential: one AvgPool1d object is used twice"):
        gn.Sequential(pool, pool)


NAME_CLASHES = {
    "input named output": lambda: gn.Graph("output", [("h", gn.Linear(4, 2, rng=0), "output")], "h"),
    "an output is an input": lambda: gn.Graph("x", [("h", gn.Linear(4, 2, rng=0), "x")], ["h", "x"]),
    "node h_2 beside node h": lambda: gn.Graph(
        "x", [("h", gn.Linear(4, 2, rng=0), "x"), ("h_2", gn.Tanh(), "h")], ["h", "h_2"]
    ),
    "input named c_1": lambda: gn.Graph("c_1", [("sp", gn.Softplus(beta=2.0), "c_1")], "sp"),
    "input named h_2": lambda: gn.Graph("h_2", [("h", gn.Linear(4, 2, rng=0), "h_2")], "h"),
}


@pytest.mark.parametrize("make", NAME_CLASHES.values(), ids=NAME_CLASHES)
def test_graph_names_never_clash_with_the_exporters_own(make, tmp_path):
    """Input and output names are the user's; the exporter's names (hint_N, "output") avoid them.
    Each was an onnx ValidationError or InferenceError (a name assigned twice)."""
    graph = make()
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    path = tmp_path / "model.onnx"
    gn.export_onnx(graph, path, (4,))
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(graph.inputs)
    got = session.run(None, {graph.inputs[0]: x})
    with gn.evaluating(graph):
        expected = graph.forward(x)
    expected = expected if isinstance(expected, tuple) else (expected,)
    if not isinstance(graph.outputs, str):
        assert [o.name for o in session.get_outputs()] == list(graph.output_names)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, **TOL)


def test_a_graph_input_read_as_ids_is_declared_int64(tmp_path):
    """Each input by itself: the ids an Embedding reads are int64, the other input float (the
    ids were declared float when the graph had two inputs)."""
    graph = gn.Graph(
        ["f", "ids"], [("e", gn.Embedding(10, 4, rng=0), "ids"), ("s", gn.Add(), ["e", "f"])], "s"
    )
    rng = np.random.default_rng(1)
    f, ids = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.integers(0, 10, (2, 3))
    check_export(graph, (f, ids), tmp_path)
    inputs = {
        i.name: i.type.tensor_type.elem_type for i in onnx.load(str(tmp_path / "model.onnx")).graph.input
    }
    assert inputs == {"f": onnx.TensorProto.FLOAT, "ids": onnx.TensorProto.INT64}


def test_cross_attention_in_a_graph(tmp_path):
    rng = np.random.default_rng(3)
    graph = gn.Graph(["q", "kv"], [("a", gn.MultiheadAttention(4, 2, rng=rng), ["q", "kv", "kv"]),
                                   ("y", gn.LayerNorm(4), "a")], "y")  # fmt: skip
    check_export(graph, (rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))), tmp_path)


@pytest.mark.parametrize("name", sorted(gn.models.PRESETS))
def test_every_preset_matches_onnxruntime(name, tmp_path):
    rng = np.random.default_rng(0)
    preset = gn.models.PRESETS[name]
    model = randomize_statistics(gn.models.build(name, rng, preset.input_shape, 10), rng)
    x = rng.random((2, *preset.input_shape), dtype=np.float32)
    got = check_export(model, (x,), tmp_path)
    assert got.shape == (2, 10)


@pytest.mark.parametrize("opset", [18, 20])
def test_later_opsets(opset, tmp_path):
    """A later opset than the default (ReduceMean's axes became an input in 18): the ViT preset
    holds every sequence layer, and TokenMean the one operator that changed."""
    rng = np.random.default_rng(6)
    model = gn.models.build("vit", rng, (1, 28, 28), 10)
    check_export(model, (rng.random((2, 1, 28, 28), dtype=np.float32),), tmp_path, opset=opset)
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset
    check_export(gn.Sequential(gn.TokenMean()), (rng.standard_normal((2, 3, 4)),), tmp_path, opset=opset)
    with pytest.raises(ValueError, match="opset must be >= 17"):
        gn.export_onnx(model, tmp_path / "m.onnx", (1, 28, 28), opset=16)


def test_exported_file_runs_in_eval_mode_whatever_the_models_mode(tmp_path):
    rng = np.random.default_rng(4)
    model = gn.Sequential(gn.Linear(4, 8, rng=rng), gn.Dropout(0.5, rng=rng), gn.BatchNorm1d(8))
    randomize_statistics(model, rng).train()
    x = rng.standard_normal((5, 4)).astype(np.float32)
    check_export(model, (x,), tmp_path)
    assert model.training  # put back


def test_an_unknown_layer_is_named(tmp_path):
    class Cube(gn.Module):
        def forward(self, x):
            return x**3

    model = gn.Sequential(gn.Linear(3, 3), gn.Residual(gn.Sequential(gn.ReLU(), Cube())))
    with pytest.raises(ValueError, match=r"layer 1\.block\.1 \(Cube\) has no ONNX export"):
        gn.export_onnx(model, tmp_path / "m.onnx", (3,))
    assert not (tmp_path / "m.onnx").exists()


def test_an_option_the_export_does_not_handle_is_named(tmp_path, monkeypatch):
    # an option a layer gains later (here a fake one in the config) is refused until exported
    conv = gn.Conv2d(1, 2, 3)
    monkeypatch.setattr(conv, "config", lambda: {**L.Conv2d.config(conv), "padding_order": "spiral"})
    with pytest.raises(ValueError, match=r"0 \(Conv2d\) has padding_order='spiral'"):
        gn.export_onnx(gn.Sequential(conv), tmp_path / "m.onnx", (1, 5, 5))
    # a padding that is not ints per side (PyTorch's "same") is refused until exported
    pool = gn.MaxPool2d(3, padding=1)
    pool.padding = "same"
    with pytest.raises(ValueError, match=r"1 \(MaxPool2d\) has padding='same'"):
        gn.export_onnx(gn.Sequential(gn.Identity(), pool), tmp_path / "m.onnx", (1, 5, 5))


def test_bad_input_shapes(tmp_path):
    model = gn.Sequential(gn.Linear(3, 2))
    with pytest.raises(gn.ShapeError, match="Linear"):
        gn.export_onnx(model, tmp_path / "m.onnx", (4,))
    with pytest.raises(ValueError, match="input_shape must be"):
        gn.export_onnx(model, tmp_path / "m.onnx", (0,))
    graph = gn.Graph(["a", "b"], [("s", gn.Add(), ["a", "b"])], "s")
    with pytest.raises(ValueError, match="the graph takes 2 inputs"):
        gn.export_onnx(graph, tmp_path / "m.onnx", (3,))


def test_cli_export_reads_the_input_shape_from_the_file(tmp_path, capsys):
    rng = np.random.default_rng(5)
    model = gn.models.build("cnn", rng, (1, 28, 28), 10)
    gn.save(model, tmp_path / "m.safetensors", metadata={"input_shape": [1, 28, 28]})
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert "m.onnx" in capsys.readouterr().out
    x = rng.random((3, 1, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), gn.predict(model, x), **TOL)


def test_cli_export_needs_an_input_shape_where_the_file_has_none(tmp_path, capsys):
    gn.save(gn.Sequential(gn.Linear(3, 2)), tmp_path / "m.safetensors")
    out = str(tmp_path / "m.onnx")
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", out]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--input-shape" in err
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", out, "--input-shape", "3"]) == 0
    assert main(["export", str(tmp_path / "m.safetensors"), "--onnx", out, "--input-shape", "4"]) == 2
    assert "expects input" in capsys.readouterr().err


def test_a_graph_with_several_outputs_exports_one_onnx_output_per_node(tmp_path):
    rng = np.random.default_rng(4)
    graph = gn.Graph("x", [("h", gn.Linear(4, 6, rng=rng), "x"), ("a", gn.Tanh(), "h"),
                           ("cls", gn.Linear(6, 3, rng=rng), "a"), ("reg", gn.Linear(6, 1, rng=rng), "a")],
                     ["cls", "reg"])  # fmt: skip
    x = rng.standard_normal((5, 4)).astype(np.float32)
    path = tmp_path / "heads.onnx"
    gn.export_onnx(graph, path, (4,))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["cls", "reg"]
    for got, expected in zip(session.run(None, {"x": x}), graph.forward(x)):
        np.testing.assert_allclose(got, expected, **TOL)
    heads = gn.Graph("x", [("t", gn.Tanh(), "x"), ("u", gn.ReLU(), "x")], ["t", "u"])
    inner = gn.Sequential(gn.Linear(4, 4), heads)
    with pytest.raises(ValueError, match=r"export_onnx: 1 \(Graph\) has several outputs"):
        gn.export_onnx(inner, tmp_path / "inner.onnx", (4,))
