"""draw_tf.instructed_mnist: episodes of instructions on one canvas."""

import numpy as np
import pytest

from draw_tf import instructed_mnist as im
from draw_tf import mnist_sample


def _digits():
    sample = mnist_sample.load()
    return sample.images[..., 0], sample.labels


def test_every_turn_adds_its_digit_of_its_class_in_its_quadrant():
    digits, labels = _digits()
    episodes = im.episodes(digits, labels, count=20, turns=3, seed=[0, 1])
    assert episodes.targets.shape == (20, 3, 60, 60, 1)
    assert episodes.targets.dtype == np.uint8
    for e in range(20):
        assert len(set(episodes.places[e].tolist())) == 3  # distinct places
        canvas = np.zeros((60, 60), np.int64)
        for turn in range(3):
            source = episodes.sources[e, turn]
            assert labels[source] == episodes.classes[e, turn]
            top, left = episodes.positions[e, turn]
            corner = im.quadrant_corner(int(episodes.places[e, turn]))
            # Inside its quadrant, shifted by 0-2 pixels.
            assert 0 <= top - corner[0] <= 2 and 0 <= left - corner[1] <= 2
            canvas[top : top + 28, left : left + 28] += digits[source]
            np.testing.assert_array_equal(
                episodes.targets[e, turn, :, :, 0], np.minimum(canvas, 255)
            )


def test_episodes_are_a_function_of_the_seed():
    digits, labels = _digits()
    first = im.episodes(digits, labels, count=5, seed=[3, 4])
    again = im.episodes(digits, labels, count=5, seed=[3, 4])
    other = im.episodes(digits, labels, count=5, seed=[3, 5])
    np.testing.assert_array_equal(first.targets, again.targets)
    assert not np.array_equal(first.targets, other.targets)


def test_the_classes_and_places_cover_every_choice():
    digits, labels = _digits()
    episodes = im.episodes(digits, labels, count=400, turns=4, seed=0)
    assert set(np.unique(episodes.classes)) == set(range(10))
    # Four turns, four distinct places: every episode uses all four.
    assert (np.sort(episodes.places, axis=1) == np.arange(4)).all()


def test_given_instructions_are_drawn_as_given():
    digits, labels = _digits()
    episodes = im.instructed(digits, labels, [[7, 3]], [[0, 3]], seed=1)
    assert episodes.classes.tolist() == [[7, 3]]
    assert episodes.places.tolist() == [[0, 3]]
    first = episodes.targets[0, 0, :, :, 0]
    assert first[:30, :30].any() and not first[30:, :].any()
    assert not first[:, 30:].any()
    second = episodes.targets[0, 1, :, :, 0]
    np.testing.assert_array_equal(second[:30, :30], first[:30, :30])
    assert second[30:, 30:].any()


@pytest.mark.parametrize(
    "classes, places, message",
    [
        ([[10]], [[0]], "0-9"),
        ([[1]], [[4]], "0-3"),
        ([[1, 2]], [[1, 1]], "distinct"),
        ([[1, 2]], [[1]], r"\[count, turns\]"),
    ],
)
def test_bad_instructions_are_one_line(classes, places, message):
    digits, labels = _digits()
    with pytest.raises(ValueError, match=message) as error:
        im.instructed(digits, labels, classes, places)
    assert "\n" not in str(error.value)


def test_turns_are_one_to_four():
    digits, labels = _digits()
    for turns in (0, 5):
        with pytest.raises(ValueError, match="turns must be 1-4"):
            im.episodes(digits, labels, count=1, turns=turns)


def test_text_instructions_parse():
    assert im.parse("7 top-left; 3 bottom-right") == [
        im.Instruction(7, 0),
        im.Instruction(3, 3),
    ]
    assert im.parse("  0 TOP-RIGHT ") == [im.Instruction(0, 1)]
    assert im.parse("7 top-left; 3 bottom-right;") == im.parse(
        "7 top-left; 3 bottom-right"
    )
    assert str(im.Instruction(7, 2)) == "7 bottom-left"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no instructions"),
        ("seven top-left", "is not an instruction"),
        ("7 middle", "is not an instruction"),
        ("7 top-left;; 3 top-right", "has an empty turn between two ';'"),
        (";", "has an empty turn"),
        ("12 top-left", "is not an instruction"),
        ("7 top-left; 3 top-left", "names a place twice"),
        ("1 top-left; 2 top-right; 3 bottom-left", "at most 2"),
    ],
)
def test_bad_text_is_one_line(text, message):
    with pytest.raises(im.InstructionError, match=message) as error:
        im.parse(text, max_turns=2)
    assert "\n" not in str(error.value)
