"""Tests of the two-digit and cluttered MNIST generators."""

import numpy as np
import pytest

from draw_tf import composite_mnist


def _digits(count=12, seed=0):
    rng = np.random.default_rng(seed)
    digits = np.zeros((count, 28, 28), np.uint8)
    for index, digit in enumerate(digits):
        # A distinct, recognisable block per digit, away from the border.
        top, left = rng.integers(4, 16, size=2)
        digit[top : top + 8, left : left + 8] = 10 + 20 * index
    return digits, np.arange(count) % 10


def test_two_digit_mnist_is_deterministic_with_documented_shapes():
    digits, _ = _digits()
    images, info = composite_mnist.two_digit_mnist(digits, 20, seed=3)
    again, _ = composite_mnist.two_digit_mnist(digits, 20, seed=3)
    other, _ = composite_mnist.two_digit_mnist(digits, 20, seed=4)
    assert images.shape == (20, 60, 60, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, again)
    assert not np.array_equal(images, other)
    assert info["sources"].shape == (20, 2)
    assert np.all(info["sources"][:, 0] != info["sources"][:, 1])
    # Fully inside: a 28 x 28 digit at (top, left) in 0..32.
    assert info["positions"].min() >= 0 and info["positions"].max() <= 32


def test_two_digits_are_added_and_clipped_where_they_overlap():
    digits, _ = _digits()
    images, info = composite_mnist.two_digit_mnist(digits, 30, seed=0)
    for index in range(30):
        expected = np.zeros((60, 60), np.int64)
        for which in range(2):
            top, left = info["positions"][index, which]
            expected[top : top + 28, left : left + 28] += digits[
                info["sources"][index, which]
            ]
        np.testing.assert_array_equal(
            images[index, ..., 0], np.minimum(expected, 255)
        )
    saturated = np.full((2, 28, 28), 200, np.uint8)
    images, info = composite_mnist.two_digit_mnist(saturated, 5, seed=1)
    assert images.max() == 255  # overlaps of 200 + 200 clip to 255


def test_cluttered_mnist_places_the_digit_over_clutter_of_other_digits():
    digits, labels = _digits()
    images, image_labels, info = composite_mnist.cluttered_mnist(
        digits, labels, 25, seed=5, num_clutter=6
    )
    again = composite_mnist.cluttered_mnist(
        digits, labels, 25, seed=5, num_clutter=6
    )
    np.testing.assert_array_equal(images, again[0])
    assert images.shape == (25, 100, 100, 1) and images.dtype == np.uint8
    np.testing.assert_array_equal(image_labels, labels[info["sources"]])
    assert info["clutter_sources"].shape == (25, 6)
    # Clutter comes from other digits than the target.
    assert np.all(info["clutter_sources"] != info["sources"][:, np.newaxis])
    assert info["positions"].min() >= 0 and info["positions"].max() <= 72
    for index in range(25):
        top, left = info["positions"][index]
        window = images[index, top : top + 28, left : left + 28, 0]
        # The digit is there in full (clutter can only add, by maximum).
        assert np.all(window >= digits[info["sources"][index]])
        # Nothing is drawn that isn't the digit or a crop of a digit.
        assert set(np.unique(images[index])) <= set(np.unique(digits))


def test_cluttered_mnist_without_clutter_is_the_translated_digit():
    digits, labels = _digits()
    images, _, info = composite_mnist.cluttered_mnist(
        digits, labels, 4, seed=0, num_clutter=0
    )
    for index in range(4):
        expected = np.zeros((100, 100), np.uint8)
        top, left = info["positions"][index]
        expected[top : top + 28, left : left + 28] = digits[
            info["sources"][index]
        ]
        np.testing.assert_array_equal(images[index, ..., 0], expected)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda d: composite_mnist.two_digit_mnist(d[:1], 2, 0), "two"),
        (lambda d: composite_mnist.two_digit_mnist(d, 2, 0, size=20), ">= 28"),
        (lambda d: composite_mnist.two_digit_mnist(d[:, :5], 2, 0), "28, 28"),
        (
            lambda d: composite_mnist.cluttered_mnist(
                d, np.zeros(len(d)), 2, 0, clutter_size=30
            ),
            "clutter_size",
        ),
    ],
)
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(_digits()[0])


def test_compose_around_builds_cluttered_images_around_the_given_digits():
    digits, _ = _digits()
    # The last digit is the brightest: over clutter (pixel-wise maximum)
    # it shows in full, and no crop of another digit has its grey level.
    sources = np.full(6, len(digits) - 1)
    images = composite_mnist.compose_around(
        "cluttered_mnist", digits, sources, seed=[3, 4]
    )
    assert images.shape == (6, 100, 100, 1) and images.dtype == np.uint8
    brightest = digits[-1].max()
    for image in images[..., 0]:
        rows, columns = np.nonzero(image == brightest)
        assert len(rows) == np.sum(digits[-1] == brightest)
        assert (
            rows.max() - rows.min() < 28 and columns.max() - columns.min() < 28
        )
        # Clutter: 8 crops of other digits' blocks somewhere else.
        assert set(np.unique(image)) - {0, brightest}
    np.testing.assert_array_equal(
        images,
        composite_mnist.compose_around(
            "cluttered_mnist", digits, sources, seed=[3, 4]
        ),
    )
    other = composite_mnist.compose_around(
        "cluttered_mnist", digits, sources, seed=[3, 5]
    )
    assert not np.array_equal(images, other)


def test_compose_around_pairs_each_digit_with_another():
    digits, _ = _digits()
    sources = np.arange(len(digits))
    images = composite_mnist.compose_around(
        "two_digit_mnist", digits, sources, seed=7
    )
    assert images.shape == (len(digits), 60, 60, 1)
    levels = [int(digit.max()) for digit in digits]  # one grey per digit
    for source, image in zip(sources, images[..., 0], strict=True):
        # Two 8 x 8 blocks, added (the greys are <= 230 and distinct; an
        # overlap adds, then clips at 255): the total gives the partner.
        total = int(image.astype(np.int64).sum())
        if image.max() < 255:
            partner_level = (total - 64 * levels[source]) / 64
            assert partner_level in levels
            assert partner_level != levels[source]


def test_compose_around_rejects_other_datasets():
    digits, _ = _digits()
    with pytest.raises(ValueError, match="two_digit_mnist or cluttered_mnist"):
        composite_mnist.compose_around("mnist", digits, [0], seed=0)
