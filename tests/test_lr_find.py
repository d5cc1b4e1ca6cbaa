"""lr_find puts the model back as it was: weights, optimizer, modes and each layer's generator."""

from __future__ import annotations

import numpy as np
import pytest

import glassnet as gn
from glassnet.lr_find import lr_find

RNG = np.random.default_rng(0)
X, Y = RNG.standard_normal((64, 4)).astype(np.float32), RNG.integers(0, 3, 64)


def make_model():
    rng = np.random.default_rng(0)
    return gn.Sequential(
        gn.Linear(4, 8, rng=rng), gn.ReLU(), gn.Dropout(0.5, rng=1), gn.Linear(8, 3, rng=rng)
    )


def train_after(find: bool):
    """The weights after three train_steps, with or without an lr_find before them."""
    model = make_model()
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    if find:
        lr_find(model, gn.CrossEntropyLoss(), opt, (X, Y), steps=20, batch_size=16)
    for _ in range(3):
        gn.train_step(model, gn.CrossEntropyLoss(), opt, X[:16], Y[:16])
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_training_after_lr_find_draws_the_same_dropout_masks_as_without_it():
    without, after = train_after(False), train_after(True)
    assert without.keys() == after.keys()
    for name in without:
        np.testing.assert_array_equal(after[name], without[name], err_msg=name)


def test_lr_find_gives_each_layer_its_own_generator_back_also_on_an_error():
    class FailsLate(gn.CrossEntropyLoss):
        calls = 0

        def forward(self, pred, target, sample_weight=None):
            FailsLate.calls += 1
            if FailsLate.calls == 5:
                raise RuntimeError("boom")
            return super().forward(pred, target, sample_weight)

    model = make_model()
    own = [m.rng for m in model.modules() if hasattr(m, "rng")]
    assert own

    def unchanged():
        return all(a is b for a, b in zip([m.rng for m in model.modules() if hasattr(m, "rng")], own))

    lr_find(model, gn.CrossEntropyLoss(), gn.optim.SGD(model.parameters()), (X, Y), steps=20, rng=3)
    assert unchanged()
    with pytest.raises(RuntimeError, match="boom"):
        lr_find(model, FailsLate(), gn.optim.SGD(model.parameters()), (X, Y), steps=20, rng=3)
    assert FailsLate.calls == 5 and unchanged()
