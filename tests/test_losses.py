"""Every loss row of the table through one harness: finite differences, PyTorch in float64 (value
and dpred), and the contracts; then bad-input messages and stability on huge logits."""

from __future__ import annotations

import numpy as np
import pytest
from harness import rows

import glassnet as gn
from glassnet.gradcheck import check_loss_gradients

TOL = 1e-6
LOSSES = rows("loss")


def as_dtype(target, dtype):
    """Float targets follow the prediction's dtype; integer labels stay integers."""
    target = np.asarray(target)
    return target.astype(dtype) if target.dtype.kind == "f" else target


# --- 1. finite differences ----------------------------------------------------------------------


@pytest.mark.parametrize("case", LOSSES)
def test_gradients_match_finite_differences(case):
    loss, (pred, target) = case.build()
    errors = check_loss_gradients(loss, pred, target)
    assert errors["pred"] < TOL, errors


# --- 3. PyTorch, float64 -----------------------------------------------------------------------


@pytest.mark.parametrize("case", LOSSES)
def test_matches_torch(case, torch):
    loss, (pred, target) = case.build()
    value = loss.forward(pred, target)
    dpred = loss.backward()

    pt = torch.tensor(pred, requires_grad=True)
    vt = case.torch(loss, pt, target)
    vt.backward()

    assert isinstance(value, float)
    assert vt.dtype == torch.float64 and vt.ndim == 0
    np.testing.assert_allclose(value, vt.item(), rtol=1e-10, atol=1e-12, err_msg="value")
    np.testing.assert_allclose(dpred, pt.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg="dpred")


# --- 4. contracts --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", LOSSES)
def test_dtype_kept_and_inputs_untouched(case, dtype):
    loss, (pred, target) = case.build()
    pred, target = pred.astype(dtype), as_dtype(target, dtype)
    pred_before, target_before = pred.copy(), target.copy()
    value = loss.forward(pred, target)
    dpred = loss.backward()
    assert isinstance(value, float) and np.isfinite(value)
    assert dpred.dtype == dtype and dpred.shape == pred.shape
    np.testing.assert_array_equal(pred, pred_before)
    np.testing.assert_array_equal(target, target_before)


# --- 5. bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [7, -1])
def test_cross_entropy_label_out_of_range_names_label_and_classes(bad):
    pred = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError) as info:
        gn.CrossEntropyLoss().forward(pred, np.array([0, bad, 1]))
    message = str(info.value)
    assert f"label {bad}" in message and "5 classes" in message


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: gn.HuberLoss(NAN), "HuberLoss: delta must be a finite number > 0"),
        (lambda: gn.HuberLoss(INF), "HuberLoss: delta must be a finite number > 0"),
        (lambda: gn.HuberLoss(0.0), "HuberLoss: delta must be a finite number > 0"),
        (lambda: gn.HingeLoss(NAN), "HingeLoss: margin must be a finite number >= 0"),
        (lambda: gn.HingeLoss(INF), "HingeLoss: margin must be a finite number >= 0"),
        (lambda: gn.HingeLoss(-0.5), "HingeLoss: margin must be a finite number >= 0"),
        (lambda: gn.CrossEntropyLoss(NAN), "CrossEntropyLoss: label_smoothing must be in"),
        (lambda: gn.CrossEntropyLoss("0.1"), "CrossEntropyLoss: label_smoothing must be in"),
    ],
    ids=["delta nan", "delta inf", "delta 0", "margin nan", "margin inf", "margin < 0", "smoothing nan",
         "smoothing str"],
)  # fmt: skip
def test_bad_loss_arguments_are_refused_naming_them(make, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        make()


def test_mse_shape_mismatch_names_both_shapes():
    with pytest.raises(gn.ShapeError) as info:
        gn.MSELoss().forward(np.zeros((4, 3)), np.zeros((4, 2)))
    message = str(info.value)
    assert "(4, 3)" in message and "(4, 2)" in message


# --- 6. stability on huge logits ------------------------------------------------------------------

HUGE = np.array([[1e4, -1e4, 0.0, 1.0], [-1e4, -1e4, 1e4, 3.0], [-1e4, 2.0, -1e4, -1e4]])
STABLE = {
    "CrossEntropyLoss": (
        gn.CrossEntropyLoss,
        np.array([1, 2, 0]),  # one wrong at 2e4, one right, one wrong at 1e4 + 2
        lambda torch: torch.nn.CrossEntropyLoss(),
    ),
    "BCEWithLogitsLoss": (
        gn.BCEWithLogitsLoss,
        np.array([[1.0, 1.0, 0.0, 1.0], [0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.5]]),
        lambda torch: torch.nn.BCEWithLogitsLoss(),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", STABLE)
def test_stable_on_huge_logits(name, dtype, torch):
    # RuntimeWarnings are errors (pyproject), so an overflowing exp or a log(0) fails here
    make_loss, target, make_torch = STABLE[name]
    pred, target = HUGE.astype(dtype), as_dtype(target, dtype)
    loss = make_loss()
    value = loss.forward(pred, target)
    dpred = loss.backward()
    assert np.isfinite(value) and value > 1e3  # the wrong confident predictions cost ~1e4
    assert dpred.dtype == dtype and np.isfinite(dpred).all()
    pt = torch.tensor(pred, requires_grad=True)
    tt = torch.from_numpy(target if target.dtype.kind == "f" else target.astype(np.int64))
    vt = make_torch(torch)(pt, tt)
    vt.backward()
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(value, vt.item(), rtol=rtol)
    np.testing.assert_allclose(dpred, pt.grad.numpy(), rtol=rtol, atol=1e-9)
