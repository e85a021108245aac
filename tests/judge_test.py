"""draw_tf.judge: reading instructed canvases place by place.

Backend-portable: tests/jax_backend_test.py runs this file again on JAX.
"""

import keras
import numpy as np
import pytest

from draw_tf import instructed_mnist, judge, mnist_sample


def test_judge_crops_hold_each_digit_shifted_by_at_most_two_pixels():
    digits = mnist_sample.load().images[:20, ..., 0]
    crops = judge.judge_crops(digits, seed=0)
    assert crops.shape == (20, 30, 30, 1) and crops.dtype == np.float32
    for crop, digit in zip(crops[..., 0], digits, strict=True):
        found = [
            (top, left)
            for top in range(3)
            for left in range(3)
            if np.array_equal(
                crop[top : top + 28, left : left + 28] * 255, digit
            )
        ]
        assert found, "the digit is not in its crop"


def test_place_crops_are_the_quadrants():
    images = np.zeros((4, 60, 60, 1), np.float32)
    for place in range(4):
        top, left = instructed_mnist.quadrant_corner(place)
        images[place, top : top + 30, left : left + 30] = place + 1
    crops = judge.place_crops(images, np.arange(4))
    for place in range(4):
        assert (crops[place] == place + 1).all()


@pytest.mark.slow
def test_a_trained_judge_scores_true_episodes_high_and_wrong_ones_low():
    sample = mnist_sample.load()
    digits, labels = sample.images[..., 0], sample.labels
    keras.utils.set_random_seed(0)
    model = judge.DigitJudge(filters=8, units=32)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    crops = np.concatenate(
        [judge.judge_crops(digits, seed=s) for s in range(4)]
    )
    model.fit(crops, np.tile(labels, 4), epochs=6, batch_size=50, verbose=0)
    episodes = instructed_mnist.episodes(digits, labels, 100, turns=3, seed=1)
    images = episodes.targets.astype(np.float32) / 255.0
    scores = judge.judge_episodes(
        model, images, episodes.classes, episodes.places
    )
    assert scores["instruction_accuracy"].shape == (3,)
    assert (scores["instruction_accuracy"] > 0.85).all(), scores
    assert scores["preservation"][0] == 1.0
    # Every earlier digit of an episode read right: about the product of
    # the turns' accuracies of this quickly trained judge.
    assert (scores["preservation"] > 0.75).all(), scores
    # Told other classes, the same canvases fail.
    wrong = judge.judge_episodes(
        model, images, (episodes.classes + 1) % 10, episodes.places
    )
    assert (wrong["instruction_accuracy"] < 0.2).all(), wrong
    # A blank later canvas keeps nothing of the earlier turns.
    blank = images.copy()
    blank[:, 2] = 0
    erased = judge.judge_episodes(
        model, blank, episodes.classes, episodes.places
    )
    assert erased["preservation"][2] < 0.3, erased


def _class_of_brightness(crops):
    """A fake judge: a crop of value c / 10 everywhere is read as class c."""
    value = np.round(np.asarray(crops)[:, 0, 0, 0] * 10).astype(int)
    return np.eye(10)[value]


def _drawn_right(count):
    """Episodes of classes 1, 2, 3 in places 0, 1, 2, all drawn right.

    Returns (classes, places, images [count, 3, 60, 60, 1]); a quadrant
    holds c / 10 where class c is drawn.
    """
    classes = np.array([[1, 2, 3]] * count)
    places = np.array([[0, 1, 2]] * count)
    images = np.zeros((count, 3, 60, 60, 1), np.float32)
    for turn in range(3):
        for earlier in range(turn + 1):
            top, left = instructed_mnist.quadrant_corner(earlier)
            images[:, turn, top : top + 30, left : left + 30] = (
                classes[0, earlier] / 10
            )
    return classes, places, images


def test_preservation_counts_episodes_that_keep_every_earlier_digit():
    # Two episodes of three turns, classes 1, 2, 3 in places 0, 1, 2; a
    # quadrant holds c / 10 when class c is drawn there.
    classes, places, images = _drawn_right(2)
    # After turn 3, episode 0 has lost its first digit (read as a 0).
    images[0, 2, :30, :30] = 0.0
    scores = judge.judge_episodes(_class_of_brightness, images, classes, places)
    np.testing.assert_array_equal(scores["instruction_accuracy"], [1, 1, 1])
    # Per episode, every earlier digit: 1 of 2 episodes keeps both (per
    # digit it would be 3 of 4).
    np.testing.assert_array_equal(scores["preservation"], [1.0, 1.0, 0.5])
    np.testing.assert_array_equal(scores["kept"], [1.0, 1.0, 0.5])


def test_kept_leaves_out_digits_misdrawn_at_their_own_turn():
    # Three episodes; a quadrant holds c / 10 when class c is drawn there.
    classes, places, images = _drawn_right(3)
    # Episode 0 misdraws its first digit from the start (read as a 0):
    # not preserved, but no later turn spoiled it. Episode 1 loses its
    # second digit at turn 3.
    images[0, :, :30, :30] = 0.0
    images[1, 2, :30, 30:] = 0.0
    scores = judge.judge_episodes(_class_of_brightness, images, classes, places)
    np.testing.assert_allclose(scores["instruction_accuracy"], [2 / 3, 1, 1])
    np.testing.assert_allclose(scores["preservation"], [1, 2 / 3, 1 / 3])
    # Of the episodes whose earlier digits were drawn right: turn 2, both
    # of 2 keep them; turn 3, 1 of 2.
    np.testing.assert_allclose(scores["kept"], [1, 1, 1 / 2])


def test_the_shipped_judge_reads_its_recorded_test_crops():
    from draw_tf import pretrained

    record = pretrained.record("digit_judge")
    assert record["test"]["accuracy"] >= 0.99
    assert record["test"]["num_examples"] == 10000
    model = pretrained.load("digit_judge")
    assert isinstance(model, judge.DigitJudge)
    # The record's first 200 test crops are those of the package's sample
    # (the first test digits), with the same shifts.
    sample = mnist_sample.load()
    size = record["sample_subset"]["size"]
    crops = judge.judge_crops(
        sample.images[:size], seed=record["test"]["crop_seed"]
    )
    predictions = judge.predict(model, crops)
    assert predictions.tolist() == record["sample_subset"]["predictions"]
    assert np.mean(predictions == sample.labels[:size]) >= 0.98
