"""Plots and the TensorBoard callback write real files: valid PNGs, readable event records."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import glassnet as gn
from glassnet import plots

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=2000):
    data = open(path, "rb").read()
    assert data[:8] == PNG and len(data) > min_bytes
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk
    assert width > 100 and height > 100


def blobs(n=90, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.standard_normal((n, 16)).astype(np.float32) + np.eye(3, 16, dtype=np.float32)[y] * 3
    return x, y


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(16, 9, rng=rng), gn.ReLU(), gn.Linear(9, 3, rng=rng))
    flow = gn.GradientFlow(probe_size=40)
    history = gn.fit(model, gn.CrossEntropyLoss(), gn.optim.Adam(model.parameters(), lr=1e-2), blobs(),
                     epochs=3, batch_size=16, val_data=blobs(30, 1), callbacks=[flow], rng=rng,
                     verbose=False)  # fmt: skip
    return model, history, flow


def test_each_plot_writes_a_png(trained, tmp_path):
    model, history, flow = trained
    assert_png(plots.learning_curves(history, tmp_path / "curves.png"))
    assert_png(plots.learning_curves(history.to_dict(), tmp_path / "curves2.png"))
    assert_png(plots.gradient_flow(flow, tmp_path / "flow.png"))
    assert_png(plots.gradient_flow(flow.to_dict(), tmp_path / "flow2.png"))
    x, y = blobs(30, 1)
    m = plots.confusion_counts(y, gn.predict(model, x).argmax(axis=1), 3)
    assert m.sum() == 30 and m.shape == (3, 3)
    assert_png(plots.confusion_matrix(m, tmp_path / "confusion.png"))
    assert_png(plots.first_layer_weights(model, tmp_path / "weights.png", image_shape=(4, 4)), 1000)
    conv = gn.Sequential(gn.Conv2d(1, 6, 5), gn.ReLU())
    assert_png(plots.first_layer_weights(conv, tmp_path / "filters.png"), 1000)
    with pytest.raises(ValueError, match="image_shape"):
        plots.first_layer_weights(model, tmp_path / "x.png", image_shape=(3, 3))
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no leftovers


def test_a_missing_matplotlib_says_how_to_install_it_a_broken_one_says_why(monkeypatch):
    import sys

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [])  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'glassnet\[plot\]'"):
        plots.figure(1, 1)
    monkeypatch.setitem(sys.modules, "matplotlib", sys.modules["numpy"])  # installed, but broken
    with pytest.raises(ModuleNotFoundError, match="matplotlib.figure"):
        plots.figure(1, 1)


def test_confusion_counts_known_answer():
    m = plots.confusion_counts([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2])
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def read_events(directory):
    """Every TensorBoard event in ``directory``, from the TFRecord framing: u64 length,
    u32 masked CRC, the serialized Event, u32 masked CRC."""
    from tensorboardX.proto.event_pb2 import Event

    events = []
    for path in directory.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            events.append(Event.FromString(data[pos + 12 : pos + 12 + length]))
            pos += 12 + length + 4
    return events


def test_tensorboard_callback_writes_scalars_and_histograms(tmp_path):
    pytest.importorskip("tensorboardX")
    rng = np.random.default_rng(0)
    model = gn.Sequential(gn.Linear(16, 9, rng=rng), gn.Tanh(), gn.Linear(9, 3, rng=rng))
    flow = gn.GradientFlow(probe_size=40)
    cbs = [flow, gn.TensorBoard(tmp_path, gradient_flow=flow)]
    history = gn.fit(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters(), lr=0.1), blobs(),
                     epochs=2, batch_size=16, val_data=blobs(30, 1), callbacks=cbs, rng=rng,
                     verbose=False)  # fmt: skip
    scalars, histos = {}, {}
    for e in read_events(tmp_path):
        for v in e.summary.value:
            if v.HasField("histo"):
                histos.setdefault(v.tag, []).append((e.step, v.histo.num))
            else:
                scalars.setdefault(v.tag, []).append((e.step, v.simple_value))
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert scalars[k] == [(i + 1, pytest.approx(v)) for i, v in enumerate(history.history[k])]
    assert [s for s, _ in scalars["speed/layer_1"]] == [1, 2]
    assert scalars["saturated/layer_1"][-1][1] == pytest.approx(flow.history[-1]["layers"][0]["saturated"])
    assert histos["weights/0.W"] == [(1, 16 * 9), (2, 16 * 9)] and "gradients/2.b" in histos
