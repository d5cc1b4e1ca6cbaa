"""glassnet.tuning: a choice between equivalent ways is made by timing them, and every way a
layer can take gives the same numbers bit for bit (so a run's results, and a resumed run's,
do not depend on which way ran)."""

import numpy as np
import pytest

import glassnet as gn
from glassnet import tuning
from glassnet.layers import conv as conv_module
from glassnet.tuning import FastestOf


def drive(fastest: FastestOf, seconds: dict, calls: int) -> list[str]:
    """``calls`` picks, each way taking ``seconds[way]`` (a number, or a function of the call)."""
    ways = []
    for i in range(calls):
        way = fastest.pick()
        cost = seconds[way]
        fastest.record(way, cost(i) if callable(cost) else cost)
        ways.append(way)
    return ways


def test_each_way_is_timed_in_turn_then_the_fastest_is_kept():
    fastest = FastestOf("x", ("a", "b"))
    assert fastest.best() == "a"  # nothing timed yet: the first way
    ways = drive(fastest, {"a": 2.0, "b": 1.0}, 24)
    assert ways[:4] == ["a", "b", "a", "b"]
    assert set(ways[4:]) == {"b"}
    assert fastest.best() == "b"
    assert "b: 1e+03 ms" in repr(fastest)


def test_the_slower_way_is_tried_again_and_a_change_is_followed():
    """Every RETRY_EVERY-th call runs the way timed longest ago, so that when the machine
    changes (a VM's cores moved) the choice follows within a few retries."""
    fastest = FastestOf("x", ("a", "b"))
    ways = drive(fastest, {"a": 2.0, "b": 1.0}, 3 * FastestOf.RETRY_EVERY)
    retries = [i + 1 for i, w in enumerate(ways) if w == "a" and i >= 4]
    assert retries == [FastestOf.RETRY_EVERY, 2 * FastestOf.RETRY_EVERY, 3 * FastestOf.RETRY_EVERY]
    # now b becomes the slow one: b's median rises within a few calls, and a is kept
    ways = drive(fastest, {"a": 2.0, "b": 5.0}, 10)
    assert ways[-5:] == ["a"] * 5


def test_one_slow_call_does_not_switch():
    fastest = FastestOf("x", ("a", "b"))
    drive(fastest, {"a": 2.0, "b": 1.0}, 10)
    ways = drive(fastest, {"a": 2.0, "b": lambda i: 50.0 if i == 0 else 1.0}, 10)
    assert set(ways) == {"b"}


def test_a_pinned_way_is_taken_and_not_timed(monkeypatch):
    fastest = FastestOf("x", ("a", "b"))
    monkeypatch.setitem(tuning.FIXED, "x", "a")
    assert drive(fastest, {"a": 2.0, "b": 1.0}, 6) == ["a"] * 6
    assert fastest.times == {"a": [], "b": []} and fastest.calls == 0
    monkeypatch.setitem(tuning.FIXED, "x", "c")
    with pytest.raises(ValueError, match=r"tuning.FIXED\['x'\] = 'c': expected one of \('a', 'b'\)"):
        fastest.pick()


def test_fixed_restores_the_earlier_pins():
    with tuning.fixed(conv_windows="whole"):
        with tuning.fixed(conv_windows="blocks", conv_no_grad_windows="two"):
            assert tuning.FIXED == {"conv_windows": "blocks", "conv_no_grad_windows": "two"}
        assert tuning.FIXED == {"conv_windows": "whole"}
    assert tuning.FIXED == {}


def test_ways_must_be_distinct():
    with pytest.raises(ValueError, match="expected distinct ways"):
        FastestOf("x", ("a", "a"))
    with pytest.raises(ValueError, match="expected distinct ways"):
        FastestOf("x", ())


def test_one_chooser_per_kind_of_work_and_only_the_latest_kept(monkeypatch):
    class Owner:
        pass

    owner = Owner()
    first = tuning.for_work(owner, "x", ("a", "b"), (1,))
    assert tuning.for_work(owner, "x", ("a", "b"), (1,)) is first
    assert tuning.for_work(owner, "x", ("a", "b"), (2,)) is not first
    monkeypatch.setattr(tuning, "MAX_KEYS", 3)
    for work in range(3, 6):
        tuning.for_work(owner, "x", ("a", "b"), (work,))
    assert [key[1] for key in owner._fastest] == [(3,), (4,), (5,)]


def _conv_run(conv, x, dy):
    """y, dx, dW, db in training, and y under no_grad."""
    conv.zero_grad()
    y = conv.forward(x)
    out = [y.copy(), conv.backward(dy), conv.W.grad.copy(), conv.b.grad.copy()]
    with gn.no_grad():
        out.append(conv.forward(x))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(9, 3, 8, 8), (13, 5, 6, 7)])
def test_every_way_of_a_convolution_gives_the_same_numbers_bit_for_bit(monkeypatch, dtype, shape):
    """Training's windows in blocks or the whole batch at once, no_grad's ring or two blocks:
    the same products on the same rows, equal bit for bit (blocks that do not divide the batch)."""
    rng = np.random.default_rng(4)
    conv = gn.Conv2d(shape[1], 6, 3, padding=1, rng=rng, dtype=dtype)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal((shape[0], 6, shape[2], shape[3])).astype(dtype)
    monkeypatch.setattr(conv_module, "COLS_BLOCK_BYTES", 2 * shape[2] * shape[3] * (9 * shape[1] + 1) * 8)
    monkeypatch.setattr(conv_module, "NO_GRAD_RING_BYTES", 1 << 30)
    runs = {}
    for train_way in conv_module.WINDOW_WAYS:
        for no_grad_way in conv_module.NO_GRAD_WAYS:
            with tuning.fixed(conv_windows=train_way, conv_no_grad_windows=no_grad_way):
                runs[train_way, no_grad_way] = _conv_run(conv, x, dy)
    first = runs["blocks", "two"]
    for ways, got in runs.items():
        for a, b in zip(got, first):
            assert a.dtype == b.dtype and np.array_equal(a, b), ways


def test_a_convolution_times_both_ways_on_its_own_calls(monkeypatch):
    """Unpinned, a convolution whose batch is more than one block times each way (two tries
    each) and keeps one chooser per kind of work: training's and no_grad's, per input shape."""
    monkeypatch.setattr(conv_module, "COLS_BLOCK_BYTES", 1)  # one example per block
    rng = np.random.default_rng(0)
    conv = gn.Conv2d(2, 3, 3, rng=rng)
    x = rng.standard_normal((4, 2, 5, 5)).astype(np.float32)
    for _ in range(6):
        conv.forward(x)
        with gn.no_grad():
            conv.forward(x)
    conv.forward(x[:3])
    choosers = {key: f for key, f in conv._fastest.items()}
    assert set(choosers) == {
        ("conv_windows", (4, 5, 5, "f")),
        ("conv_no_grad_windows", (4, 5, 5, "f")),
        ("conv_windows", (3, 5, 5, "f")),
    }
    for key in [("conv_windows", (4, 5, 5, "f")), ("conv_no_grad_windows", (4, 5, 5, "f"))]:
        times = choosers[key].times
        assert times.keys() == set(
            dict(conv_windows=("blocks", "whole"), conv_no_grad_windows=("two", "one", "ring"))[key[0]]
        )
        assert all(len(t) >= FastestOf.TRIES for t in times.values())
    # one block holds the whole batch: nothing to choose, no chooser
    monkeypatch.setattr(conv_module, "COLS_BLOCK_BYTES", 1 << 30)
    fresh = gn.Conv2d(2, 3, 3, rng=rng)
    fresh.forward(x)
    assert not hasattr(fresh, "_fastest")


def test_a_grouped_convolution_keeps_its_timings_across_calls(monkeypatch):
    """groups > 1 runs each group through a copy of the layer made per call: the copies time
    their ways into the layer's own choosers, which outlive the call."""
    monkeypatch.setattr(conv_module, "COLS_BLOCK_BYTES", 1)
    rng = np.random.default_rng(0)
    conv = gn.Conv2d(4, 6, 3, groups=2, rng=rng)
    x = rng.standard_normal((3, 4, 5, 5)).astype(np.float32)
    for _ in range(3):
        conv.forward(x)
    (chooser,) = conv._fastest.values()
    assert sum(len(t) for t in chooser.times.values()) == 6  # two groups a call, three calls
