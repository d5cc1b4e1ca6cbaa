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


# --- 7. PyTorch's options: reduction="none", sample weights, weights' errors ----------------------


def with_args(case, **changes):
    """The row's loss, rebuilt with some constructor arguments changed."""
    return case.cls(**{**case.args, **changes})


@pytest.mark.parametrize("case", LOSSES)
def test_reduction_none_matches_torch_and_backward_takes_the_upstream_gradient(case, torch):
    _, (pred, target) = case.build()
    loss = with_args(case, reduction="none")
    terms = loss.forward(pred, target)
    g = np.random.default_rng(1).standard_normal(terms.shape)
    dpred = loss.backward(g)

    pt = torch.tensor(pred, requires_grad=True)
    vt = case.torch(loss, pt, target)
    vt.backward(torch.from_numpy(g))
    assert isinstance(terms, np.ndarray) and terms.shape == tuple(vt.shape)
    np.testing.assert_allclose(terms, vt.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg="terms")
    np.testing.assert_allclose(dpred, pt.grad.numpy(), rtol=1e-10, atol=1e-12, err_msg="dpred")
    # and by finite differences of sum(g * terms)
    from glassnet.gradcheck import numeric_grad

    numeric = numeric_grad(lambda: float(np.vdot(g, loss.forward(pred, target))), pred)
    np.testing.assert_allclose(dpred, numeric, atol=1e-6)


@pytest.mark.parametrize("case", LOSSES)
def test_sample_weight_scales_each_examples_terms_and_keeps_the_divisor(case):
    """sum: sum_n w_n l_n (the terms of reduction="none", by hand); mean: that over the same
    divisor D as without weights (Keras's weighted mean); backward by finite differences."""
    _, (pred, target) = case.build()
    w = np.random.default_rng(2).uniform(0.0, 3.0, pred.shape[0])
    terms = with_args(case, reduction="none").forward(pred, target)
    by_hand = float((terms * w.reshape((-1,) + (1,) * (terms.ndim - 1))).sum())
    summed = with_args(case, reduction="sum")
    assert summed.forward(pred, target, sample_weight=w) == pytest.approx(by_hand, rel=1e-12, abs=1e-12)
    mean = with_args(case, reduction="mean")
    divisor = summed.forward(pred, target) / mean.forward(pred, target)
    value = mean.forward(pred, target, sample_weight=w)
    assert value == pytest.approx(by_hand / divisor, rel=1e-10)
    from glassnet.gradcheck import numeric_grad

    dpred = mean.backward()
    numeric = numeric_grad(lambda: mean.forward(pred, target, sample_weight=w), pred)
    np.testing.assert_allclose(dpred, numeric, atol=1e-6)


def test_sample_weight_by_hand_for_mse():
    pred, target = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 1.0]]), np.zeros((3, 2))
    w = np.array([2.0, 5.0, 0.5])
    # sum_n w_n sum_j (a - y)^2 / (N C) = (2*5 + 0 + 0.5*10) / 6
    assert gn.MSELoss().forward(pred, target, sample_weight=w) == pytest.approx(15.0 / 6)


def test_cross_entropy_weighted_mean_divides_by_the_kept_targets_weights_by_hand():
    z = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])  # every -log p = log 2
    loss = gn.CrossEntropyLoss(weight=[1.0, 3.0], ignore_index=7)
    # labels 0, 1, ignored: (1 + 3) log 2 / (1 + 3)
    assert loss.forward(z, np.array([0, 1, 7])) == pytest.approx(np.log(2))
    np.testing.assert_allclose(loss.backward()[2], 0.0)
    assert gn.CrossEntropyLoss(weight=[1.0, 3.0], reduction="sum").forward(z, np.array([0, 1, 1])) == (
        pytest.approx(7 * np.log(2))
    )


def test_cross_entropy_every_target_ignored_is_nan_as_torch(torch):
    z = np.zeros((2, 3))
    loss = gn.CrossEntropyLoss()
    value = loss.forward(z, np.array([-100, -100]))
    expected = torch.nn.CrossEntropyLoss()(torch.zeros(2, 3), torch.tensor([-100, -100])).item()
    assert np.isnan(value) and np.isnan(expected)


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: gn.MSELoss(reduction="avg"), ValueError, "MSELoss: reduction must be one of"),
        (lambda: gn.HuberLoss(reduction=None), ValueError, "HuberLoss: reduction must be one of"),
        (
            lambda: gn.CrossEntropyLoss(weight=[1.0, -1.0]),
            ValueError,
            "CrossEntropyLoss: weight must hold finite",
        ),
        (
            lambda: gn.CrossEntropyLoss(weight=[[1.0]]),
            ValueError,
            "CrossEntropyLoss: weight must be one number",
        ),
        (lambda: gn.CrossEntropyLoss(ignore_index=1.5), ValueError, "CrossEntropyLoss: ignore_index must be"),
        (
            lambda: gn.BCEWithLogitsLoss(pos_weight=[np.nan]),
            ValueError,
            "BCEWithLogitsLoss: pos_weight must hold",
        ),
        (lambda: gn.BCEWithLogitsLoss(weight="x"), TypeError, "BCEWithLogitsLoss: weight must be an array"),
    ],
)
def test_bad_option_values_are_refused_naming_them(make, error, message):
    with pytest.raises(error, match=f"^{message}"):
        make()


def test_weights_that_do_not_fit_the_logits_are_shape_errors():
    with pytest.raises(gn.ShapeError, match="weight has 2 entries, but the logits have 3 classes"):
        gn.CrossEntropyLoss(weight=[1.0, 2.0]).forward(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(gn.ShapeError, match="pos_weight of shape \\(2,\\) does not broadcast"):
        gn.BCEWithLogitsLoss(pos_weight=[1.0, 2.0]).forward(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(gn.ShapeError, match="sample_weight must have shape \\(2,\\)"):
        gn.MSELoss().forward(np.zeros((2, 3)), np.zeros((2, 3)), sample_weight=np.ones(3))


def test_reduction_none_backward_needs_the_upstream_gradient():
    loss = gn.MSELoss(reduction="none")
    loss.forward(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="pass backward\\(grad\\)"):
        loss.backward()
    with pytest.raises(gn.ShapeError, match="grad of the terms' shape \\(2, 3\\)"):
        loss.backward(np.ones(2))
    mean = gn.MSELoss()
    mean.forward(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="backward\\(grad\\) is for reduction='none'"):
        mean.backward(np.ones((2, 3)))


def test_cross_entropy_label_out_of_range_still_refused_beside_ignored_ones():
    with pytest.raises(ValueError, match="label 5 out of range for 5 classes"):
        gn.CrossEntropyLoss().forward(np.zeros((3, 5)), np.array([-100, 5, 1]))
