"""The residual and transformer presets (``resnet``, ``vit``): they build for Fashion-MNIST's
28x28 images, summarize, train a step with finite gradients, learn a small batch, survive a
save/load round trip, match their PyTorch twins' parameter counts, and run from the command
line; the ViT recipe's warm-up reaches the learning rate as the schedule says."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

import glassnet as gn
from glassnet.cli import main
from glassnet.runs import TrainOptions, make_scheduler, train_run

PRESETS = ["resnet", "vit"]
SHAPE = (1, 28, 28)


def build(name: str, seed: int = 0):
    return gn.models.build(name, np.random.default_rng(seed), SHAPE, 10)


def batch(n: int = 8, seed: int = 1):
    rng = np.random.default_rng(seed)
    return rng.random((n, *SHAPE), dtype=np.float32), rng.integers(0, 10, n)


def n_params(model) -> int:
    return sum(p.data.size for p in model.parameters())


@pytest.mark.parametrize("name", PRESETS)
def test_builds_for_fashion_mnist_and_summarizes(name):
    model = build(name)
    assert gn.models.PRESETS[name].input_shape == SHAPE
    assert gn.predict(model, batch()[0]).shape == (8, 10)
    table = gn.summary(model, SHAPE)
    assert f"{n_params(model):,}" in table
    assert "(10,)" in table or "10)" in table  # the classifier's output shape is listed


def test_the_architectures_are_what_the_docstrings_say():
    resnet = build("resnet")
    blocks = [m for m in resnet if isinstance(m, gn.Residual)]
    assert len(blocks) == 6  # two basic blocks in each of three stages
    # a projection shortcut exactly where the shape changes: entering stages 2 and 3
    assert [b.shortcut is not None for b in blocks] == [False, False, True, False, True, False]
    assert isinstance(resnet[-2], gn.GlobalAvgPool2d) and resnet[-1].W.shape == (64, 10)
    vit = build("vit")
    layers = [m for m in vit if isinstance(m, gn.TransformerEncoderLayer)]
    assert len(layers) >= 4 and all(layer.norm_first for layer in layers)
    assert any(isinstance(m, gn.ClassToken) for m in vit)
    assert next(m for m in vit if isinstance(m, gn.PositionalEmbedding)).num_positions == 7 * 7 + 1


@pytest.mark.parametrize("name", PRESETS)
def test_a_train_step_has_finite_loss_and_gradients_and_a_few_steps_learn_a_batch(name):
    model = build(name)
    preset = gn.models.PRESETS[name]
    opt = gn.choices.make_optimizer(preset.optimizer, model.parameters(), preset.lr)
    loss_fn = gn.CrossEntropyLoss()
    x, y = batch(16)
    before = gn.evaluate(model, loss_fn, (x, y))["loss"]
    loss = gn.train_step(model, loss_fn, opt, x, y)
    assert math.isfinite(loss)
    for name_, p in model.named_parameters():
        assert np.isfinite(p.grad).all(), name_
    assert any(np.abs(p.grad).max() > 0 for p in model.parameters())
    for _ in range(9):
        gn.train_step(model, loss_fn, opt, x, y)
    assert gn.evaluate(model, loss_fn, (x, y))["loss"] < before


@pytest.mark.parametrize("name", PRESETS)
def test_save_load_round_trip_gives_equal_outputs(name, tmp_path):
    model = build(name)
    x, y = batch()
    opt = gn.optim.Adam(model.parameters(), lr=1e-3)
    gn.train_step(model, gn.CrossEntropyLoss(), opt, x, y)  # batch-norm statistics away from their start
    path = tmp_path / f"{name}.safetensors"
    gn.save(model, path)
    loaded = gn.load(path)
    np.testing.assert_array_equal(gn.predict(loaded, x), gn.predict(model, x))
    assert n_params(loaded) == n_params(model)


def load_twins():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "twins.py"
    spec = importlib.util.spec_from_file_location("twins", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports without torch: each twin takes it as an argument
    return module


def test_the_twins_module_imports_without_torch_and_names_both_presets():
    assert sorted(load_twins().TWINS) == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_the_pytorch_twin_has_the_same_parameter_count_and_output(name):
    torch = pytest.importorskip("torch")
    twin = load_twins().TWINS[name](torch)
    assert sum(p.numel() for p in twin.parameters()) == n_params(build(name))
    assert tuple(twin(torch.zeros(2, *SHAPE)).shape) == (2, 10)


def test_the_twin_trains_and_reports_each_epoch_on_stderr(capsys, monkeypatch):
    """twins.train_twin's loop, end to end on a slice of Fashion-MNIST: one progress line per epoch
    on stderr (a long run shows where it is, as glassnet train does); stdout stays free for the
    script's JSON lines."""
    pytest.importorskip("torch")
    full = gn.datasets.load_fashion_mnist
    monkeypatch.setattr(gn.datasets, "load_fashion_mnist", lambda: tuple(part[:128] for part in full()))
    result = load_twins().train_twin("vit", seed=0, epochs=2, threads=1)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("twin vit seed 0: epoch 2/2 loss=") and "time=" in lines[1]
    assert out == "" and result["epochs"] == 2 and 0.0 <= result["accuracy"] <= 1.0


@pytest.mark.parametrize("name", PRESETS)
def test_the_pytorch_twin_drops_out_where_and_as_much_as_the_preset(name):
    """An accuracy record's recipe stamp fingerprints glassnet's model (accuracy.recipe_stamp),
    dropout rates included, and stands for the twin's run too: the twin must match them."""
    torch = pytest.importorskip("torch")
    twin = load_twins().TWINS[name](torch)
    theirs = [m.p for m in twin.modules() if isinstance(m, torch.nn.Dropout)]
    theirs += [m.dropout for m in twin.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    modules = list(build(name).modules())
    ours = [m.p for m in modules if isinstance(m, gn.Dropout)]
    ours += [m.dropout for m in modules if isinstance(m, gn.MultiheadAttention)]
    assert sorted(theirs) == sorted(ours)


@pytest.mark.parametrize("name", PRESETS)
def test_summary_preset_runs_from_the_command_line(name, capsys):
    assert main(["summary", "--preset", name]) == 0
    assert f"{n_params(build(name)):,}" in capsys.readouterr().out


def test_warmup_ramps_from_a_tenth_then_follows_the_cosine():
    opt = gn.optim.AdamW([gn.Param(np.zeros(1, np.float32), "w")], lr=1e-3)
    scheduler = make_scheduler(opt, "cosine", epochs=10, warmup=3)
    lrs = [opt.lr]
    for _ in range(10):
        scheduler.step()
        lrs.append(opt.lr)
    expected = [1e-3 * (0.1 + 0.9 * e / 3) for e in range(3)]
    expected += [1e-3 * (1 + math.cos(math.pi * e / 7)) / 2 for e in range(8)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12, atol=1e-15)


def test_no_warmup_is_the_plain_schedule_and_a_one_epoch_run_skips_it():
    opt = gn.optim.Adam([gn.Param(np.zeros(1, np.float32), "w")], lr=1e-3)
    assert make_scheduler(opt, "none", 5) is None
    assert isinstance(make_scheduler(opt, "cosine", 5), gn.schedules.CosineAnnealingLR)
    assert make_scheduler(opt, "none", 1, warmup=3) is None
    assert opt.lr == 1e-3


def test_a_vit_run_warms_up_as_its_preset_says(tmp_path):
    pytest.importorskip("sklearn")  # the digits data set: 8x8 images, 2x2 patches of 4x4
    options = TrainOptions(dataset="digits", model="vit", epochs=4, seed=0, gradient_flow=False, patience=0)
    result = train_run(options, str(tmp_path / "run"))
    assert math.isfinite(result.test["loss"])
    lrs = json.loads((tmp_path / "run" / "history.json").read_text())["history"]["lr"]
    # 3 epochs of warm-up from lr / 10 (AdamW's 1e-3), then the cosine over the one epoch left
    np.testing.assert_allclose(lrs, [1e-4, 4e-4, 7e-4, 1e-3], rtol=1e-9)


@pytest.mark.parametrize(
    ("optimizer", "momentum", "expected"), [(None, None, 0.9), ("sgd", 0.5, 0.5), ("adam", None, None)]
)
def test_a_presets_momentum_goes_with_its_sgd_recipe_only(optimizer, momentum, expected):
    """resnet trains with SGD momentum 0.9; --optimizer adam on it takes no momentum (it was
    refused as if the user had typed --momentum), and lr-find and diagnose use what train uses."""
    pytest.importorskip("sklearn")
    from glassnet.choices import momentum_for
    from glassnet.runs import prepare

    t = prepare(TrainOptions(dataset="digits", model="resnet", optimizer=optimizer, momentum=momentum))
    assert type(t.opt).__name__ == ("Adam" if optimizer == "adam" else "SGD")
    assert getattr(t.opt, "momentum", None) == expected
    preset = gn.models.PRESETS["resnet"]
    assert momentum_for(optimizer or preset.optimizer, momentum, preset) == (expected or 0.0)
    with pytest.raises(ValueError, match="only --optimizer sgd takes a momentum, not adam"):
        prepare(TrainOptions(dataset="digits", model="resnet", optimizer="adam", momentum=0.5))


def test_vit_refuses_an_image_that_is_not_whole_patches():
    with pytest.raises(ValueError, match=r"^vit: the image's 10x10 is not a whole number of 4x4 patches"):
        gn.models.build("vit", np.random.default_rng(0), (1, 10, 10), 10)


@pytest.mark.parametrize("name", PRESETS)
def test_the_twins_learning_rates_are_the_glassnet_runs(name):
    """The twin sets its rate per epoch by formula; glassnet's run by its schedule objects."""
    preset = gn.models.PRESETS[name]
    opt = gn.optim.Adam([gn.Param(np.zeros(1, np.float32), "w")], lr=preset.lr)
    scheduler = make_scheduler(opt, preset.schedule, preset.epochs, preset.warmup)
    glassnet_lrs = []
    for _ in range(preset.epochs):
        glassnet_lrs.append(opt.lr)
        scheduler.step()
    twin_lrs = [load_twins().epoch_lr(preset, e) for e in range(preset.epochs)]
    np.testing.assert_allclose(twin_lrs, glassnet_lrs, rtol=1e-12, atol=1e-15)


def test_vit_on_examples_that_are_not_images_names_what_it_expects():
    # mnist1d's (40,) signals gave "not enough values to unpack (expected 3, got 1)"
    with pytest.raises(ValueError, match=r"vit: expects images \(C, H, W\), got examples of shape \(40,\)"):
        gn.models.build("vit", np.random.default_rng(0), (40,), 10)


@pytest.mark.parametrize("recipe", [
    {"optimizer": "adam", "lr": 1e-3},
    {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "l2": 5e-4},
    {"optimizer": "adam", "lr": 2e-3, "l2": 1e-2},
    {"optimizer": "adamw", "lr": 1e-3},
])  # fmt: skip
def test_the_twins_optimizer_steps_as_glassnet_train_does(recipe):
    """torch_optimizer mirrors make_optimizer and glassnet train's L2 (on the parameters that
    decay: weights, not biases or batch norm's): three steps of both from the same weights and
    gradients give the same weights (float64)."""
    import dataclasses

    from glassnet.choices import make_optimizer

    torch = pytest.importorskip("torch")
    preset = dataclasses.replace(gn.models.PRESETS["resnet"], **{"momentum": 0.0, "l2": 0.0, **recipe})
    rng = np.random.default_rng(0)
    ours = gn.Sequential(gn.Linear(3, 4, rng=rng), gn.BatchNorm1d(4), gn.Linear(4, 2, rng=rng)).to(np.float64)
    nn = torch.nn
    theirs = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)).double()
    with torch.no_grad():  # glassnet's W is (in, out), PyTorch's weight (out, in)
        for p, q in zip(ours.parameters(), theirs.parameters()):
            q.copy_(torch.from_numpy(p.data.T.copy() if p.data.ndim == 2 else p.data))
    opt = make_optimizer(preset.optimizer, ours.parameters(), preset.lr, preset.momentum)
    l2 = gn.regularizers.L2(preset.l2) if preset.l2 else None
    topt = load_twins().torch_optimizer(torch, preset, theirs)
    for _ in range(3):
        grads = [rng.standard_normal(p.data.shape) for p in ours.parameters()]
        for p, q, g in zip(ours.parameters(), theirs.parameters(), grads):
            p.grad[...] = g
            q.grad = torch.from_numpy(g.T.copy() if g.ndim == 2 else g)
        if l2 is not None:
            l2.backward(ours.parameters())
        opt.step()
        topt.step()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        want = q.detach().numpy()
        np.testing.assert_allclose(p.data.T if p.data.ndim == 2 else p.data, want, rtol=1e-12, atol=1e-14)
