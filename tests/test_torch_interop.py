"""glassnet <-> PyTorch: to_torch and from_torch agree with the model they came from (outputs
within 1e-5 both ways, and one SGD step gives the same weights), weight files under PyTorch's
names round-trip without torch, and what cannot be converted is named."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import glassnet as gn
from glassnet import layers as L
from glassnet.cases import CASES
from glassnet.torch_interop import SUPPORTED, name_pairs, torch_state_dict
from glassnet.torch_reference import torch_layout

torch = pytest.importorskip("torch")
nn = torch.nn
safetensors_torch = pytest.importorskip("safetensors.torch")

TOL = {"rtol": 1e-5, "atol": 1e-5}


def convertible(module: gn.Module) -> bool:
    return all(type(m).__name__ in SUPPORTED and type(m) is getattr(L, type(m).__name__, gn.Sequential)
               for m in module.modules())  # fmt: skip


def batched(sample) -> bool:
    xs = sample if isinstance(sample, tuple) else (sample,)
    return all(x.ndim == xs[0].ndim and x.shape[0] == xs[0].shape[0] for x in xs)


def randomize(model: gn.Module, rng: np.random.Generator) -> gn.Module:
    """Every parameter and batch-norm statistic drawn at random: a conversion that dropped,
    swapped or mis-transposed one cannot pass."""
    for p in model.parameters():
        p.data[...] = rng.uniform(-1, 1, p.shape)
    for m in model.modules():
        if isinstance(m, (L.BatchNorm1d, L.BatchNorm2d)) and m.track_running_stats:
            m.running_mean[...] = rng.normal(size=m.num_features)
            m.running_var[...] = rng.uniform(0.5, 2.0, m.num_features)
    return model


def draws_noise(model: gn.Module) -> bool:
    """Dropout somewhere: in training mode each library would draw its own masks."""
    return any(getattr(m, name, 0) for m in model.modules() for name in ("p", "rate", "dropout"))


def torch_out(tmodel, xs):
    with torch.no_grad():
        return tmodel(*(torch.from_numpy(np.asarray(x)) for x in xs)).numpy()


ROWS = [
    pytest.param(case, id=case.name)
    for case in CASES
    if case.kind == "layer" and convertible(case.build()[0]) and batched(case.build()[1])
]


def test_the_rows_cover_every_supported_layer():
    covered = {type(m).__name__ for p in ROWS for m in p.values[0].build()[0].modules()}
    assert set(SUPPORTED) - covered <= {"Embedding", "TransformerEncoderLayer"}  # tested below


@pytest.mark.parametrize("case", ROWS)
def test_layer_rows_agree_both_ways(case):
    """Each row's layer: to_torch's output equals glassnet's (eval: no dropout draws; for rows
    without noise, training mode too, where batch norm uses the batch's statistics), and
    from_torch(to_torch(layer)) computes the same again."""
    rng = np.random.default_rng(0)
    layer = randomize(case.make(rng), rng).to(np.float64)
    sample = case.sample(rng)
    xs = sample if isinstance(sample, tuple) else (sample,)
    for training in (False, True) if case.mode == "same" and not draws_noise(layer) else (False,):
        layer.train(training)
        tmodel = gn.to_torch(layer)
        assert tmodel.training == training
        np.testing.assert_allclose(torch_out(tmodel, xs), layer.forward(*xs), **TOL)
        back = gn.from_torch(tmodel)
        assert type(back) is type(layer) and back.training == training
        np.testing.assert_allclose(back.forward(*xs), layer.forward(*xs), **TOL)
        assert back.state_dict().keys() == layer.state_dict().keys()


def test_torch_layer_options_convert_from_torch():
    """The options glassnet shares with PyTorch, starting from torch modules built with them
    (not from to_torch's): from_torch keeps each one, and the model computes what torch's does,
    in eval mode and in training mode (batch norm without running statistics has no buffers)."""
    torch.manual_seed(0)
    tmodel = nn.Sequential(
        nn.Conv2d(4, 6, 3, padding="same", groups=2, padding_mode="circular"),
        nn.BatchNorm2d(6, track_running_stats=False),
        nn.MaxPool2d(3, stride=2, dilation=2, ceil_mode=True),
        nn.Conv2d(6, 6, (2, 3), padding="same", groups=6, padding_mode="reflect"),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        nn.Flatten(),
    ).double()
    seq = nn.Sequential(
        nn.Conv1d(2, 4, 4, padding="same", padding_mode="replicate"),
        nn.BatchNorm1d(4, affine=False, track_running_stats=False),
        nn.AvgPool1d(2, stride=3, ceil_mode=True),
        nn.Conv1d(4, 4, 2, padding="valid", groups=4),
        nn.MaxPool1d(2, padding=1, ceil_mode=True),
    ).double()
    for tm, x in ((tmodel, np.random.default_rng(3).standard_normal((3, 4, 11, 10))),
                  (seq, np.random.default_rng(4).standard_normal((3, 2, 13)))):  # fmt: skip
        model = gn.from_torch(tm)
        config = {k: v for layer in model.children for k, v in layer.config().items()}
        assert not any(m.buffers() for m in model.modules() if isinstance(m, (L.BatchNorm1d, L.BatchNorm2d)))
        assert config["track_running_stats"] is False and config["ceil_mode"] is True
        for training in (False, True):
            tm.train(training)
            model.train(training)
            np.testing.assert_allclose(model.forward(x), torch_out(tm, [x]), **TOL)
    layers = list(gn.from_torch(tmodel).children)
    assert (layers[0].groups, layers[0].padding, layers[0].padding_mode) == (2, "same", "circular")
    assert (layers[2].dilation, layers[4].count_include_pad) == ((2, 2), False)
    assert not layers[1].track_running_stats and gn.to_torch(layers[1]).running_mean is None


@pytest.mark.parametrize("name", sorted(gn.models.PRESETS))
def test_every_preset_converts_both_ways(name):
    rng = np.random.default_rng(1)
    preset = gn.models.PRESETS[name]
    model = randomize(gn.models.build(name, rng, preset.input_shape, 10), rng).eval().to(np.float64)
    x = rng.random((2, *preset.input_shape))  # float64: weights of U(-1, 1) make large activations
    tmodel = gn.to_torch(model)
    np.testing.assert_allclose(torch_out(tmodel, [x]), model.forward(x), **TOL)
    np.testing.assert_allclose(gn.from_torch(tmodel).forward(x), model.forward(x), **TOL)


def test_sequence_models_convert_both_ways():
    rng = np.random.default_rng(2)
    model = gn.Sequential(
        gn.Embedding(12, 8, padding_idx=0, rng=rng),
        gn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, causal=True, rng=rng),
        gn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, norm_first=True, activation="gelu", rng=rng),
        gn.GRU(8, 5, num_layers=2, bidirectional=True, rng=rng),
        gn.LastStep(),
        gn.Linear(10, 3, rng=rng),
    ).to(np.float64)
    ids = rng.integers(0, 12, size=(4, 6))
    for training in (False, True):  # dropout 0: training mode computes the same in both
        model.train(training)
        tmodel = gn.to_torch(model)
        np.testing.assert_allclose(torch_out(tmodel, [ids]), model.forward(ids), **TOL)
        np.testing.assert_allclose(gn.from_torch(tmodel).forward(ids), model.forward(ids), **TOL)


def native_cnn(seed: int = 0) -> nn.Module:
    """A small CNN written in PyTorch only, with PyTorch's own initialisation."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.25), nn.Linear(8 * 2 * 2, 3),
    )  # fmt: skip


def test_a_native_torch_model_comes_in():
    tmodel = native_cnn()
    tmodel(torch.randn(16, 1, 8, 8))  # training mode: moves the running statistics off 0 and 1
    tmodel.eval()
    model = gn.from_torch(tmodel)
    assert isinstance(model[0], gn.Conv2d) and isinstance(model[-1], gn.Linear) and not model.training
    x = np.random.default_rng(3).standard_normal((5, 1, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x), torch_out(tmodel, [x]), **TOL)
    np.testing.assert_allclose(model[1].running_mean, tmodel[1].running_mean.numpy())
    # glassnet's Linear holds W = weight.T, in (in, out)
    np.testing.assert_array_equal(model[-1].W.data, tmodel[-1].weight.detach().numpy().T)


def test_a_sequential_with_named_children_comes_in_by_position():
    import collections

    inner = nn.Sequential(collections.OrderedDict([("proj", nn.Linear(4, 4)), ("norm", nn.BatchNorm1d(4))]))
    tmodel = nn.Sequential(
        collections.OrderedDict(
            [("fc1", nn.Linear(3, 4)), ("act", nn.ReLU()), ("block", inner), ("fc2", nn.Linear(4, 2))]
        )
    )
    tmodel(torch.randn(8, 3))  # moves the running statistics
    tmodel.eval()
    model = gn.from_torch(tmodel)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Sequential", "Linear"]
    np.testing.assert_array_equal(model[2][1].running_mean, tmodel.block.norm.running_mean.numpy())
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose(model.forward(x), torch_out(tmodel, [x]), **TOL)


def test_a_torch_module_in_two_places_is_refused_by_name():
    lin = nn.Linear(3, 3)
    with pytest.raises(ValueError, match=r"from_torch: the same Linear is at '0' and at '2'.*one place only"):
        gn.from_torch(nn.Sequential(lin, nn.ReLU(), lin))
    with pytest.raises(ValueError, match=r"the same Linear is at '0' and at '1\.1'"):
        gn.from_torch(nn.Sequential(lin, nn.Sequential(nn.ReLU(), lin)))


def sgd_step_glassnet(model, x, y, lr):
    opt = gn.optim.SGD(model.parameters(), lr=lr)
    gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)


def sgd_step_torch(tmodel, x, y, lr):
    opt = torch.optim.SGD(tmodel.parameters(), lr=lr)
    opt.zero_grad()
    loss = nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
    loss.backward()
    opt.step()


def assert_same_weights(model, tmodel):
    ours = torch_state_dict(model)
    theirs = {k: v.detach().numpy() for k, v in tmodel.state_dict().items()}
    assert ours.keys() == theirs.keys()
    for k in ours:
        np.testing.assert_allclose(ours[k], theirs[k], **TOL, err_msg=k)


def test_one_sgd_step_gives_the_same_weights_from_glassnet():
    rng = np.random.default_rng(4)
    model = gn.Sequential(
        gn.Conv2d(1, 3, 3, padding=1, rng=rng), gn.BatchNorm2d(3), gn.ReLU(), gn.MaxPool2d(2),
        gn.Flatten(), gn.Linear(12, 6, rng=rng), gn.Tanh(), gn.Linear(6, 3, rng=rng),
    ).to(np.float64)  # fmt: skip
    tmodel = gn.to_torch(model)
    x, y = rng.standard_normal((8, 1, 4, 4)), rng.integers(0, 3, 8)
    sgd_step_glassnet(model, x, y, lr=0.5)
    sgd_step_torch(tmodel, x, y, lr=0.5)
    assert_same_weights(model, tmodel)  # the running statistics too: both in training mode


def test_one_sgd_step_gives_the_same_weights_from_torch():
    torch.manual_seed(5)
    tmodel = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6), nn.GELU(), nn.Linear(6, 3)).double()
    model = gn.from_torch(tmodel)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    sgd_step_glassnet(model, x, y, lr=0.3)
    sgd_step_torch(tmodel, x, y, lr=0.3)
    assert_same_weights(model, tmodel)


def test_recurrent_sgd_step_agrees():
    torch.manual_seed(6)
    rnn = nn.GRU(3, 4, num_layers=2, batch_first=True, bidirectional=True).double()
    model = gn.Sequential(gn.from_torch(nn.Sequential(rnn)), gn.LastStep(), gn.Linear(8, 2)).to(np.float64)
    tmodel = gn.to_torch(model)
    rng = np.random.default_rng(6)
    x, y = rng.standard_normal((5, 6, 3)), rng.integers(0, 2, 5)
    sgd_step_glassnet(model, x, y, lr=0.2)
    sgd_step_torch(tmodel, x, y, lr=0.2)
    assert_same_weights(model, tmodel)


# --- weight files under PyTorch's names -----------------------------------------------------------


def small_model(rng) -> gn.Sequential:
    return gn.Sequential(
        gn.Conv1d(2, 3, 3, rng=rng), gn.BatchNorm1d(3), gn.ReLU(), gn.Permute((0, 2, 1)),
        gn.LSTM(3, 4, rng=rng), gn.LastStep(), gn.Linear(4, 2, rng=rng),
    )  # fmt: skip


def test_torch_names_round_trip_through_safetensors(tmp_path):
    rng = np.random.default_rng(7)
    model = randomize(small_model(rng), rng).eval()
    path = tmp_path / "w.safetensors"
    gn.save_torch_weights(model, path)
    state = safetensors_torch.load_file(str(path))
    assert set(state) == set(gn.to_torch(model).state_dict())
    assert "4.weight_ih_l0" in state and "6.weight" in state and "1.num_batches_tracked" in state
    # torch reads it into its own twin, built independently of the weights
    tmodel = gn.to_torch(small_model(np.random.default_rng(99))).eval()
    tmodel.load_state_dict(state, strict=True)
    x = rng.standard_normal((3, 2, 9)).astype(np.float32)
    np.testing.assert_allclose(torch_out(tmodel, [x]), model.forward(x), **TOL)
    # and glassnet reads torch's file into a fresh model
    tmodel[6].weight.data.mul_(2.0)
    safetensors_torch.save_file(tmodel.state_dict(), str(tmp_path / "t.safetensors"))
    fresh = gn.load_torch_weights(small_model(np.random.default_rng(5)).eval(), tmp_path / "t.safetensors")
    np.testing.assert_allclose(fresh.forward(x), torch_out(tmodel, [x]), **TOL)


def test_batch_norm_weights_round_trip_glassnet_to_glassnet_and_torch(tmp_path):
    """num_batches_tracked is 0-d in torch's state_dict: written 0-d, read back by glassnet
    (it was written (1,) and load_torch_weights refused its own file) and by torch."""
    rng = np.random.default_rng(3)
    model = randomize(small_model(rng), rng).eval()
    model[1].num_batches_tracked[...] = 17
    path = tmp_path / "bn.safetensors"
    gn.save_torch_weights(model, path)
    assert torch_state_dict(model)["1.num_batches_tracked"].shape == ()
    state = safetensors_torch.load_file(str(path))
    assert state["1.num_batches_tracked"].shape == () and int(state["1.num_batches_tracked"]) == 17
    fresh = gn.load_torch_weights(small_model(np.random.default_rng(4)).eval(), path)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert a.shape == b.shape and np.array_equal(a, b), name
    tmodel = gn.to_torch(small_model(np.random.default_rng(5))).eval()
    tmodel.load_state_dict(state, strict=True)
    assert tmodel[1].num_batches_tracked.shape == () and int(tmodel[1].num_batches_tracked) == 17
    x = rng.standard_normal((3, 2, 9)).astype(np.float32)
    np.testing.assert_allclose(torch_out(tmodel, [x]), model.forward(x), **TOL)


def test_weight_files_need_no_torch(tmp_path):
    code = f"""
import sys, numpy as np, glassnet as gn
m = gn.Sequential(gn.Linear(3, 2, rng=0))
gn.save_torch_weights(m, {str(tmp_path / "w.safetensors")!r})
m2 = gn.load_torch_weights(gn.Sequential(gn.Linear(3, 2, rng=1)), {str(tmp_path / "w.safetensors")!r})
assert np.array_equal(m2[0].W.data, m[0].W.data)
assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'imported'
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_mismatched_weight_file_is_named(tmp_path):
    model = gn.Sequential(gn.Linear(3, 2))
    safetensors_torch.save_file(
        {"0.weight": torch.zeros(2, 4), "0.bias": torch.zeros(2)}, str(tmp_path / "a")
    )
    with pytest.raises(ValueError, match=r"'0\.weight' has shape \(2, 4\), the model expects \(2, 3\)"):
        gn.load_torch_weights(model, tmp_path / "a")
    safetensors_torch.save_file({"0.weight": torch.zeros(2, 3)}, str(tmp_path / "b"))
    with pytest.raises(ValueError, match=r"missing \['0\.bias'\]"):
        gn.load_torch_weights(model, tmp_path / "b")


def test_name_pairs_cover_the_state_dict():
    model = gn.Sequential(gn.TransformerEncoderLayer(4, 2, 8), gn.Residual(gn.Linear(4, 4)))
    pairs = name_pairs(model)
    assert [g for g, *_ in pairs] == list(model.state_dict())
    torch_names = dict((g, t) for g, t, *_ in pairs)
    assert torch_names["0.0.out_proj_weight"] == "0.self_attn.out_proj.weight"
    assert torch_names["0.1.W"] == "0.linear1.weight"
    assert torch_names["1.block.b"] == "1.block.bias"


# --- what cannot be converted is named ------------------------------------------------------------


class Custom(nn.Module):
    def forward(self, x):
        return x


@pytest.mark.parametrize(
    "module, match",
    [
        (nn.Sequential(nn.Linear(3, 3), nn.Hardswish()), r"Hardswish \(torch\.nn.*\) has no glassnet"),
        (nn.Sequential(Custom()), r"Custom \(.*\) has no glassnet equivalent.*nn\.Sequential"),
        (nn.Sequential(nn.Embedding(5, 2, max_norm=1.0)), r"Embedding\(max_norm=1\.0\)"),
        (nn.Sequential(nn.LSTM(3, 4)), r"LSTM\(batch_first=False\)"),
        (nn.Sequential(nn.LSTM(3, 4, batch_first=True, proj_size=2)), r"LSTM\(proj_size=2\)"),
        (nn.Sequential(nn.Flatten(0)), r"Flatten\(start_dim=0"),
        (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), r"MaxPool2d\(return_indices=True\)"),
        (nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), r"AvgPool2d\(divisor_override=3\)"),
        (nn.Sequential(nn.Softmax()), r"Softmax\(dim=None\)"),
        (nn.Sequential(nn.Linear(2, 2).half()), r"float16"),
    ],
    ids=["outside-the-set", "own-forward", "embedding-max-norm", "not-batch-first", "proj-size",
         "flatten-batch", "return-indices", "divisor-override", "softmax-no-dim", "half"],
)  # fmt: skip
def test_unsupported_torch_modules_are_named(module, match):
    with pytest.raises(ValueError, match=match):
        gn.from_torch(module)


def test_to_torch_names_an_unknown_layer():
    class Mine(gn.Module):
        pass

    with pytest.raises(ValueError, match="to_torch: no PyTorch module for Mine"):
        gn.to_torch(gn.Sequential(gn.Linear(2, 2), Mine()))
    with pytest.raises(ValueError, match="node 'forward' has the name of an nn.Module attribute"):
        gn.to_torch(gn.Graph("x", [("forward", gn.ReLU(), "x")], "forward"))
    with pytest.raises(TypeError, match="expected a torch.nn.Module"):
        gn.from_torch(gn.Linear(2, 2))


# --- the documented use case: a CNN trained in PyTorch, looked at with glassnet's tools -----------


def test_a_torch_trained_cnn_under_glassnets_diagnostics():
    torch.manual_seed(0)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((64, 1, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4].mean(axis=(1, 2)) > 0).astype(np.int64)  # a learnable rule: top half's sign
    tmodel = native_cnn()
    opt = torch.optim.Adam(tmodel.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    tmodel.eval()
    model = gn.from_torch(tmodel)
    np.testing.assert_allclose(gn.predict(model, x), torch_out(tmodel, [x]), **TOL)
    # what glassnet's tools show is torch's model: the same gradients on the same batch (eval)
    model.eval().zero_grad()
    tmodel.zero_grad()
    loss = gn.CrossEntropyLoss()
    loss.forward(model.forward(x), y)
    model.backward(loss.backward())
    nn.functional.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y)).backward()
    torch_grads = {name: p.grad.numpy() for name, p in tmodel.named_parameters()}
    state = dict(model.named_parameters())
    for gname, tname, leaf, own in name_pairs(model):
        if gname in state:
            got = torch_layout(leaf, own, state[gname].grad)
            np.testing.assert_allclose(got, torch_grads[tname], rtol=1e-4, atol=1e-6, err_msg=tname)
    model.train()
    report = gn.diagnostics.report(model, loss, x, y)
    assert [row["type"] for row in report.layers] == ["Conv2d", "BatchNorm2d", "Conv2d", "Linear"]
    traced = str(gn.trace(model, loss, x[0], y[0]))
    assert "layer 3: #8 Linear" in traced and "dC/dW^3" in traced
    flow = gn.GradientFlow(probe_size=32)
    gn.fit(model, loss, gn.optim.SGD(model.parameters(), lr=0.01), gn.data.Dataset(x, y), epochs=2,
           batch_size=16, callbacks=[flow], rng=0)  # fmt: skip
    assert len(flow.history) == 3 and list(flow.speeds()) == ["layer 1", "layer 2", "layer 3", "layer 4"]


def test_the_interop_page_runs(tmp_path, monkeypatch, capsys):
    """docs/interop.md's Python blocks, in order, as one script (the walk-through included)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    page = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "interop.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(blocks) >= 8
    monkeypatch.chdir(tmp_path)  # the page writes its files where it runs
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: threads only contend on a shared machine
    try:
        exec(compile("\n".join(blocks), "docs/interop.md", "exec"), {})
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "accuracy" in out and "delta^1" in out and "layer 1" in out
    assert (tmp_path / "cnn.onnx").exists() and (tmp_path / "cnn_torch.safetensors").exists()


def test_a_graph_with_several_outputs_converts_to_a_module_returning_a_tuple():
    rng = np.random.default_rng(5)
    graph = gn.Graph("x", [("h", gn.Linear(4, 6, rng=rng), "x"), ("a", gn.Tanh(), "h"),
                           ("cls", gn.Linear(6, 3, rng=rng), "a"), ("reg", gn.Linear(6, 1, rng=rng), "a")],
                     ["cls", "reg"])  # fmt: skip
    x = rng.standard_normal((5, 4)).astype(np.float32)
    outs = gn.to_torch(graph)(torch.from_numpy(x))
    assert isinstance(outs, tuple) and len(outs) == 2
    for got, expected in zip(outs, graph.forward(x)):
        np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-6)
