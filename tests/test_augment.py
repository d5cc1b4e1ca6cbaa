"""Data augmentation: random shifts and flips, reproducible, applied in fit's training batches only."""

import numpy as np
import pytest

import glassnet as gn
from glassnet.data import Augment


def images(n=6, h=5, w=7):
    return np.arange(n * 2 * h * w, dtype=np.float32).reshape(n, 2, h, w)


def test_shift_moves_each_image_by_an_offset_within_k_and_fills_zeros():
    x = images()
    y = Augment(shift=2)(x, np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == np.float32
    for xi, yi in zip(x, y):
        matches = []
        for oy in range(-2, 3):
            for ox in range(-2, 3):
                expected = np.zeros_like(xi)
                h, w = xi.shape[1:]
                expected[:, max(oy, 0) : h + min(oy, 0), max(ox, 0) : w + min(ox, 0)] = xi[
                    :, max(-oy, 0) : h + min(-oy, 0), max(-ox, 0) : w + min(-ox, 0)
                ]
                if np.array_equal(yi, expected):
                    matches.append((oy, ox))
        assert len(matches) == 1  # exactly one offset explains each output


def test_shift_of_at_least_the_side_moves_the_picture_out_of_frame():
    # shift 9 on 5x7 images: offsets of 5..9 rows or 7..9 columns leave all zeros (these crashed
    # with mismatched slices), the others are ordinary shifts; checked against pad-and-crop
    k, n, h, w = 9, 60, 5, 7
    x = images(n=n, h=h, w=w) + 1  # no zero pixels, so an all-zero output means out of frame
    y = Augment(shift=k)(x, np.random.default_rng(3))
    dy, dx = np.random.default_rng(3).integers(-k, k + 1, size=(2, n))  # the draws Augment made
    padded = np.pad(x, ((0, 0), (0, 0), (k, k), (k, k)))
    out_of_frame = (np.abs(dy) >= h) | (np.abs(dx) >= w)
    assert out_of_frame.any() and (~out_of_frame).any()
    for i in range(n):
        expected = padded[i, :, k - dy[i] : k - dy[i] + h, k - dx[i] : k - dx[i] + w]
        np.testing.assert_array_equal(y[i], expected)
        assert (not y[i].any()) == out_of_frame[i]


def test_flip_mirrors_about_half_the_images():
    x = images(n=400, h=3, w=4)
    y = Augment(flip=True)(x, np.random.default_rng(1))
    flipped = np.array([np.array_equal(a, b[:, :, ::-1]) for a, b in zip(y, x)])
    kept = np.array([np.array_equal(a, b) for a, b in zip(y, x)])
    assert (flipped | kept).all() and 150 < flipped.sum() < 250


def test_reproducible_from_the_generator_and_input_untouched():
    x = images()
    before = x.copy()
    a = Augment(shift=1, flip=True)
    np.testing.assert_array_equal(a(x, np.random.default_rng(5)), a(x, np.random.default_rng(5)))
    np.testing.assert_array_equal(x, before)
    assert not np.array_equal(a(x, np.random.default_rng(5)), a(x, np.random.default_rng(6)))


def test_identity_when_nothing_asked():
    x = images()
    np.testing.assert_array_equal(Augment()(x, np.random.default_rng(0)), x)


def test_errors():
    with pytest.raises(ValueError, match="shift must be >= 0"):
        Augment(shift=-1)
    with pytest.raises(ValueError, match=r"Augment expects image batches \(N, C, H, W\)"):
        Augment(shift=1)(np.zeros((3, 4), np.float32), np.random.default_rng(0))


def test_fit_augments_training_batches_only():
    seen = []

    def spy(x, rng):
        seen.append(x.shape[0])
        return x

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=40)
    model = gn.Sequential(gn.Flatten(), gn.Linear(16, 3, rng=rng))
    opt = gn.optim.SGD(model.parameters(), lr=0.1)
    gn.fit(model, gn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=16, val_data=(x, y),
           augment=spy, rng=rng, verbose=False)  # fmt: skip
    assert seen == [16, 16, 8] * 2  # validation batches are never augmented
