"""Tests for glassnet.data: validation, batching, shuffling, splits."""

import numpy as np
import pytest

from glassnet.data import (
    Dataset,
    as_dataset,
    batch_slices,
    check_dataset,
    shuffled,
    train_val_split,
)


def make(n=10, features=3, seed=0):
    rng = np.random.default_rng(seed)
    return Dataset(rng.standard_normal((n, features)).astype(np.float32), np.arange(n) % 3)


def test_dataset_unpacks_and_counts_examples():
    ds = make(7)
    x, y = ds
    assert x is ds.x and y is ds.y
    assert ds.n == 7 and len(ds) == 7  # len counts examples, as ds[...] indexes them
    assert [a is b for a, b in zip(ds, (ds.x, ds.y), strict=True)] == [True, True]
    assert "n=7" in repr(ds) and "float32 (7, 3)" in repr(ds)


@pytest.mark.parametrize(
    "index",
    [
        slice(None, 4),
        slice(4, None),
        slice(None, None, -3),
        slice(20, 30),  # past the end: empty, as for an array
        np.array([5, 0, 5, 9]),
        [2, 3],
        [],
        np.arange(10) % 3 == 0,
        np.zeros(10, dtype=bool),
        np.array([7], dtype=np.uint8),
    ],
    ids=[
        "head",
        "tail",
        "step",
        "past end",
        "int array",
        "list",
        "empty list",
        "mask",
        "empty mask",
        "uint8",
    ],
)
def test_dataset_index_selects_rows_of_both(index):
    # issue 11 item 5: as a tuple, ds[:4] was (x, y) whole and ds[4:] was ()
    ds = make(10)
    part = ds[index]
    assert isinstance(part, Dataset)
    np.testing.assert_array_equal(part.x, ds.x[index])
    np.testing.assert_array_equal(part.y, ds.y[index])
    assert part.n == len(part) == len(ds.x[index])
    assert part.x.shape[1:] == ds.x.shape[1:] and part.x.dtype == ds.x.dtype and part.y.dtype == ds.y.dtype


def test_dataset_slices_of_a_loaded_set_feed_fit():
    ds = make(50)
    head, tail = ds[:30], ds[30:]
    assert (head.n, tail.n) == (30, 20)
    np.testing.assert_array_equal(np.concatenate([head.y, tail.y]), ds.y)
    assert np.shares_memory(head.x, ds.x)  # a slice is a view, as in NumPy
    again = as_dataset(head, "train_data")
    assert again.n == 30
    x, y = head[::2]
    assert x.shape == (15, 3) and y.shape == (15,)


@pytest.mark.parametrize(
    ("index", "error", "message"),
    [
        (0, TypeError, r"Dataset\[0\]: a single integer is not an index .*ds\.x"),
        (-1, TypeError, r"Dataset\[-1\]: a single integer"),
        (np.int64(3), TypeError, r"Dataset\[3\]: a single integer"),
        (np.array(3), TypeError, r"Dataset\[3\]: a single integer"),
        (True, TypeError, r"Dataset\[True\]: a single integer"),
        ("x", TypeError, r"Dataset\['x'\]: expected a slice, an integer array or a boolean mask"),
        ((slice(None), 0), TypeError, "expected a slice, an integer array or a boolean mask"),
        (np.array([0.0, 1.0]), TypeError, "got an array of float64"),
        (np.zeros((2, 2), dtype=int), TypeError, "got a 2-D array"),
        (np.array([0, 10]), IndexError, "out of bounds"),
        (np.ones(9, dtype=bool), IndexError, "boolean"),
    ],
)
def test_dataset_index_refuses_what_is_not_a_row_selection(index, error, message):
    # a single integer: ds[0] was x when Dataset was a tuple; silently giving row 0 instead
    # would hide the change from code written for the tuple
    with pytest.raises(error, match=message):
        make(10)[index]


def test_dataset_checks_lengths_and_is_read_only():
    with pytest.raises(ValueError, match="Dataset: x has 3 rows but y has 2"):
        Dataset(np.zeros((3, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="Dataset: x must have one row per example, got a scalar"):
        Dataset(np.float32(1), np.zeros(1))
    ds = make(4)
    with pytest.raises(AttributeError):
        ds.x = np.zeros((4, 3))


def test_dataset_survives_copy_and_transfer_to_a_process():
    # multiprocessing and Dask send arguments to workers by pickling them in memory;
    # a Dataset must arrive whole (no file is ever written here)
    import copy
    import pickle

    ds = make(6)
    for other in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds))):
        assert isinstance(other, Dataset) and other.n == 6
        np.testing.assert_array_equal(other.x, ds.x)
        np.testing.assert_array_equal(other.y, ds.y)


def test_check_dataset_converts_dtypes():
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    ds = check_dataset(x, np.array([0, 1, 2, 1], dtype=np.int32), "train_data")
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.int64
    assert check_dataset(x, [0, 1, 2, 1], "d", dtype=np.float64).x.dtype == np.float64
    ds = check_dataset(np.arange(4, dtype=np.float16).reshape(4, 1), np.linspace(0, 1, 4), "d")
    assert ds.x.dtype == np.float32 and ds.y.dtype == np.float32  # float targets follow dtype


def test_check_dataset_length_mismatch_names_argument():
    with pytest.raises(ValueError, match="train_data: x has 100 rows but y has 99"):
        check_dataset(np.zeros((100, 2)), np.zeros(99, dtype=int), "train_data")


def test_check_dataset_nan_counts_and_first_row():
    x = np.zeros((30, 4))
    x[17, 1] = np.nan
    x[17, 2] = np.inf
    x[20, 0] = -np.inf
    with pytest.raises(ValueError, match=r"train_data: x contains 3 NaN/inf values \(first at row 17\)"):
        check_dataset(x, np.zeros(30, dtype=int), "train_data")


def test_finiteness_check_finds_each_bad_value_and_passes_huge_finite_data():
    """The fast check proves finiteness by a sum (of squares, for contiguous arrays); a bad
    value anywhere, in either memory layout and either float type, is still found, and finite
    data whose sum overflows goes to the element-wise search and passes."""
    from glassnet.data import check_inputs

    for dtype in (np.float32, np.float64):
        for bad in (np.nan, np.inf, -np.inf):
            for row in (0, 517, 999):
                x = np.ones((1000, 12), dtype)
                x[row, 5] = bad
                want = rf"x contains 1 NaN/inf values \(first at row {row}\)"
                for arr in (x, np.asfortranarray(x), x[:, 1::2]):
                    with pytest.raises(ValueError, match=want):
                        check_inputs(arr, "p", dtype)
        huge = np.full((1000, 12), 1e19 if dtype == np.float32 else 1e160, dtype)  # squares overflow
        huge[3, 3] = -huge[3, 3]
        assert check_inputs(huge, "p", dtype) is not None
    with pytest.raises(ValueError, match="x contains 1 NaN/inf"):  # -inf among huge finite values
        check_inputs(np.array([[3e38], [-np.inf]], np.float32), "p")


def test_check_dataset_overflow_to_float32_is_caught():
    with pytest.raises(ValueError, match="val_data: x contains 1 NaN/inf"):
        check_dataset(np.array([[1e300], [0.0]]), [0, 1], "val_data")


def test_check_dataset_nan_in_float_targets():
    with pytest.raises(ValueError, match="d: y contains 1 NaN/inf values"):
        check_dataset(np.zeros((3, 1)), [0.0, np.nan, 1.0], "d")


@pytest.mark.parametrize(
    ("x", "y", "message"),
    [
        (np.array([["a", "b"]]), [0], "train_data: x must be a float array"),
        (np.zeros((2, 2), dtype=bool), [0, 1], "train_data: x must be a float array"),
        (np.zeros((0, 3)), np.zeros(0, dtype=int), "train_data: x must have at least one row"),
        (np.zeros((2, 2)), np.array(["a", "b"]), "train_data: y must be integer class labels"),
        (np.zeros((2, 2)), 3, "train_data: y must be an array"),
        ([[1, 2], [3]], [0, 1], "train_data: could not convert"),
    ],
)
def test_check_dataset_rejects_wrong_types(x, y, message):
    with pytest.raises(ValueError, match=message):
        check_dataset(x, y, "train_data")


def test_as_dataset_accepts_pairs():
    x, y = np.zeros((3, 2)), np.array([0, 1, 0])
    for data in (Dataset(x, y), (x, y), [x, y]):
        ds = as_dataset(data, "val_data")
        assert isinstance(ds, Dataset) and ds.x.dtype == np.float32 and ds.n == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [(3, "got int"), ((np.zeros(3),), "got a tuple of length 1"), (None, "got NoneType")],
)
def test_as_dataset_rejects_non_pairs(data, message):
    with pytest.raises(ValueError, match=f"val_data: expected a \\(x, y\\) pair, {message}"):
        as_dataset(data, "val_data")


@pytest.mark.parametrize(("n", "batch_size"), [(0, 4), (1, 4), (10, 3), (12, 4), (5, 100)])
def test_batch_slices_cover_range_once(n, batch_size):
    slices = batch_slices(n, batch_size)
    covered = np.concatenate([np.arange(n)[s] for s in slices]) if slices else np.array([])
    np.testing.assert_array_equal(covered, np.arange(n))
    assert all(s.stop - s.start == batch_size for s in slices[:-1])
    assert len(slices) == -(-n // batch_size)


def test_batch_slices_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        batch_slices(10, 0)


def test_shuffled_is_reproducible_permutation():
    ds = make(50)
    a = shuffled(ds, np.random.default_rng(1))
    b = shuffled(ds, np.random.default_rng(1))
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.y, b.y)
    # rows keep their labels and every row appears once
    order = [int(np.flatnonzero((ds.x == row).all(axis=1))[0]) for row in a.x]
    assert sorted(order) == list(range(50)) and order != list(range(50))
    np.testing.assert_array_equal(a.y, ds.y[order])
    c = shuffled(ds, np.random.default_rng(2))
    assert not np.array_equal(a.x, c.x)


def test_shuffled_batches_are_views():
    ds = shuffled(make(20), np.random.default_rng(0))
    batch = ds.x[batch_slices(ds.n, 8)[1]]
    assert np.shares_memory(batch, ds.x)


def test_train_val_split_sizes_and_disjoint():
    ds = Dataset(np.arange(100, dtype=np.float32).reshape(100, 1), np.arange(100))
    train, val = train_val_split(ds, 0.2, np.random.default_rng(0))
    assert (train.n, val.n) == (80, 20)
    assert set(train.y) | set(val.y) == set(range(100))
    assert not set(train.y) & set(val.y)
    np.testing.assert_array_equal(train.x[:, 0], train.y)  # pairs stay together
    again, _ = train_val_split(ds, 0.2, np.random.default_rng(0))
    np.testing.assert_array_equal(again.y, train.y)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_train_val_split_rejects_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction must be in"):
        train_val_split(make(10), fraction, np.random.default_rng(0))


def test_train_val_split_rejects_empty_part():
    with pytest.raises(ValueError, match="empty validation set"):
        train_val_split(make(10), 0.01, np.random.default_rng(0))


def test_check_dataset_keeps_integer_ids_when_asked_and_takes_labels_per_position():
    ids = np.arange(12).reshape(3, 4)
    ds = check_dataset(ids, ids % 5, "train_data", integers=True)
    assert ds.x.dtype == ids.dtype and ds.x is not None and np.array_equal(ds.x, ids)
    assert ds.y.dtype == np.int64 and ds.y.shape == (3, 4)
    with pytest.raises(ValueError, match="train_data: x must be a float array"):
        check_dataset(ids, ids % 5, "train_data")  # a model without an Embedding: refused as before
