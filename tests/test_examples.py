"""The example scripts' functions, on tiny data: examples/chapter5_cure.py's claim that residual
connections let the first of 20 sigmoid layers learn (docs/chapter5.md, "The cure")."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load_example(name: str):
    """The script as a module, with examples/ on sys.path as when it runs (``_common``)."""
    if str(EXAMPLES) not in sys.path:
        sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cure():
    return load_example("chapter5_cure")


def tiny_data(seed: int, n: int = 60, features: int = 12, classes: int = 3):
    rng = np.random.default_rng(seed)
    x = rng.random((n, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1)).astype(np.int64)
    return x, y


def first_over_last(run: dict, when: int) -> float:
    s = run["speeds"][when]
    return s[0] / s[-1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_residual_first_layer_learns_relative_to_last_unlike_plain(cure, seed):
    """At depth 20 the plain net's first layer learns many orders of magnitude slower than its
    last (the chapter's ~5x per layer, compounded); the residual net's identity paths carry
    delta back unshrunk, so its first layer keeps pace. The gap is ~10 orders of magnitude on
    these seeds; the test asks for 4 (and for each net on its own side of 1/100), not flaky."""
    data = tiny_data(seed)
    runs = {
        k: cure.train(k, data, data, data, depth=20, width=8, epochs=1, seed=seed)
        for k in ("plain", "residual")
    }
    for when in (0, -1):  # before training and after it
        plain, residual = first_over_last(runs["plain"], when), first_over_last(runs["residual"], when)
        assert plain < 1e-2 < residual, (when, plain, residual)
        assert residual > 1e4 * plain, (when, plain, residual)


def test_cure_functions_run(cure, tmp_path):
    data = tiny_data(0)
    runs = {k: cure.train(k, data, data, data, depth=3, width=4, epochs=2) for k in cure.KINDS}
    for kind, run in runs.items():
        assert run["speeds"].shape == (3, 3), kind  # before training + 2 epochs, 3 hidden layers
        assert np.all(np.isfinite(run["speeds"])) and 0 <= run["accuracy"] <= 1
    assert any(v.startswith("vanishing") for v in cure.train("plain", data, data, data, epochs=0)["verdicts"])
    model = cure.build("batchnorm", np.random.default_rng(0), depth=3, n_in=12, width=4, n_out=3)
    assert sum(type(m).__name__ == "BatchNorm1d" for m in model.layers) == 3
    z = cure.spread(
        cure.build("plain", np.random.default_rng(0), depth=3, n_in=12, width=4, n_out=3), data[0]
    )
    assert z.shape == (4, 2) and np.all(z >= 0)
    with pytest.raises(ValueError, match="kind"):
        cure.build("dropout", np.random.default_rng(0))
    path = cure.plot(runs, str(tmp_path / "figures" / "cure.png"))
    assert pathlib.Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", ["chapter4_universality", "chapter5_vanishing", "chapter5_cure"])
def test_examples_write_to_their_out_argument_not_into_tracked_files(name, tmp_path):
    """Run, an example used to overwrite docs/figures/*.png (tracked); now its figure goes to
    ``--out DIR``, by default a new temporary directory outside the repository."""
    module = load_example(name)
    root = EXAMPLES.parent
    default = pathlib.Path(module.output_dir([])).resolve()
    assert default.is_dir() and root not in default.parents, default
    default.rmdir()
    assert module.output_dir(["--out", str(tmp_path / "figs")]) == str(tmp_path / "figs")
    assert (tmp_path / "figs").is_dir()
    source = (EXAMPLES / f"{name}.py").read_text()
    assert '"docs/figures' not in source, "an example names a tracked path as its output"
