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


@pytest.mark.parametrize(
    ("shape", "labels", "options"),
    [
        ((2, 3), [-100, -100], {}),
        ((2, 3), [-100, -100], {"label_smoothing": 0.1}),
        ((2, 3), [-100, -100], {"weight": [0.0, 1.0, 1.0]}),
        ((2, 3, 4), [[-100] * 4] * 2, {}),
        ((2, 3, 4), [[-100] * 4] * 2, {"label_smoothing": 0.2, "weight": [1.0, 2.0, 3.0]}),
    ],
    ids=["rows", "smoothing", "weights", "positions", "positions smoothing weights"],
)
def test_cross_entropy_every_target_ignored_is_nan_with_zero_gradient_as_torch(shape, labels, options, torch):
    # the mean over no target is 0/0 = NaN, but the ignored positions take no part in it: their
    # gradient is 0 (an optimizer step must not write NaN into every weight)
    z, labels = np.random.default_rng(0).standard_normal(shape), np.array(labels)
    loss = gn.CrossEntropyLoss(**options)
    value, dpred = loss.forward(z, labels), loss.backward()
    pt = torch.tensor(z, requires_grad=True)
    weight = options.get("weight")
    vt = torch.nn.functional.cross_entropy(
        pt,
        torch.tensor(labels),
        weight=None if weight is None else torch.tensor(weight, dtype=torch.float64),
        label_smoothing=options.get("label_smoothing", 0.0),
    )
    vt.backward()
    assert np.isnan(value) and np.isnan(vt.item())
    np.testing.assert_array_equal(pt.grad.numpy(), np.zeros(shape))
    np.testing.assert_array_equal(dpred, np.zeros(shape))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize(
    ("labels", "weight"),
    [([0, 0, 0], [0.0, 1.0, 1.0]), ([0, -100, 0], [0.0, 1.0, 1.0]), ([1, 2, 0], [0.0, 0.0, 0.0])],
    ids=["kept of weight 0", "kept of weight 0 beside ignored", "every weight 0"],
)
def test_cross_entropy_kept_targets_of_weight_zero_give_nan_as_torch(labels, weight, smoothing, torch):
    # the divisor sum_n w_{y_n} is 0 with targets kept: PyTorch's gradient is NaN (0/0) at the
    # kept rows and 0 at the ignored ones; glassnet matches it, NaN for NaN
    z, labels = np.random.default_rng(1).standard_normal((3, 3)), np.array(labels)
    loss = gn.CrossEntropyLoss(smoothing, weight=weight)
    value, dpred = loss.forward(z, labels), loss.backward()
    pt = torch.tensor(z, requires_grad=True)
    vt = torch.nn.functional.cross_entropy(
        pt, torch.tensor(labels), weight=torch.tensor(weight, dtype=torch.float64), label_smoothing=smoothing
    )
    vt.backward()
    assert np.isnan(value) and np.isnan(vt.item())
    np.testing.assert_array_equal(dpred, pt.grad.numpy())  # NaN where torch has NaN, 0 where 0
    assert np.isnan(dpred[labels != -100]).all() and not np.isnan(dpred[labels == -100]).any()


@pytest.mark.parametrize("cls", [gn.MSELoss, gn.HuberLoss, gn.QuadraticCost])
def test_integer_targets_for_one_output_are_refused_not_one_hot_encoded(cls):
    # one output (N, 1): integer (N,) targets are regression targets of the wrong shape, not
    # classes (one-hot over C = 1 compared every 0 against 1.0 and called 1 out of range)
    name = cls.__name__
    for y in (np.array([0, 0, 0]), np.array([0, 1, 2])):
        with pytest.raises(
            gn.ShapeError, match=f"^{name}: integer targets of shape \\(3,\\).*reshape\\(-1, 1\\)"
        ):
            cls().forward(np.zeros((3, 1)), y)
    # the same targets as floats (N, 1) are what the message asks for, and work
    assert cls().forward(np.zeros((3, 1)), np.array([0, 0, 0]).reshape(-1, 1)) == 0.0


@pytest.mark.parametrize("cls", [gn.MSELoss, gn.HuberLoss, gn.QuadraticCost])
def test_integer_labels_for_several_outputs_are_still_one_hot_encoded(cls):
    pred = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    labels = np.array([1, 0, 1])
    assert cls().forward(pred, labels) == pytest.approx(cls().forward(pred, np.eye(2)[labels]))


@pytest.mark.parametrize(
    "labels", [[0.5, 1.9], [0.0, 1.0], [True, False]], ids=["fractions", "whole", "bool"]
)
def test_hinge_refuses_non_integer_class_labels_as_cross_entropy(labels):
    # 0.5 used to be truncated to class 0 and 1.9 to class 1; CrossEntropyLoss refuses them too
    z = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])
    with pytest.raises(gn.ShapeError, match="^HingeLoss: class labels must be integers, got target of dtype"):
        gn.HingeLoss().forward(z, np.array(labels))
    with pytest.raises(gn.ShapeError, match="^CrossEntropyLoss"):
        gn.CrossEntropyLoss().forward(z, np.array(labels))


@pytest.mark.parametrize(
    ("pred_shape", "target", "message"),
    [
        ((3,), np.array([1, -1]), "HingeLoss: binary scores of shape \\(3,\\) need one target per score"),
        ((3, 1), np.ones((3, 2)), "HingeLoss: binary scores of shape \\(3, 1\\) need one target per score"),
        (
            (2, 3, 4),
            np.zeros((2, 4), int),
            "HingeLoss expects logits \\(N, C\\).*got scores of shape \\(2, 3, 4\\)",
        ),
        (
            (2, 1, 1),
            np.ones((2, 1, 1)),
            "HingeLoss expects logits \\(N, C\\).*got scores of shape \\(2, 1, 1\\)",
        ),
        ((), np.array(1.0), "HingeLoss expects logits \\(N, C\\).*got scores of shape \\(\\)"),
        ((2, 3), np.zeros(3, int), "HingeLoss: expected 2 integer labels, got target of shape \\(3,\\)"),
    ],
    ids=[
        "binary length",
        "binary (N, 1) vs (N, 2)",
        "K-dimensional",
        "3-D binary",
        "scalar",
        "labels length",
    ],
)
def test_hinge_shapes_that_do_not_fit_are_shape_errors_naming_them(pred_shape, target, message):
    with pytest.raises(gn.ShapeError, match=f"^{message}"):
        gn.HingeLoss().forward(np.ones(pred_shape), target)


def test_hinge_binary_targets_of_either_shape_agree():
    z = np.array([[0.5], [-2.0], [0.1]])
    t = np.array([1, -1, -1])
    assert gn.HingeLoss().forward(z, t) == gn.HingeLoss().forward(z, t.reshape(-1, 1))
    assert gn.HingeLoss().forward(z[:, 0], t) == gn.HingeLoss().forward(z, t)


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
