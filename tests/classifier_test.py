"""Tests of the read-attention classifier (paper Section 4.1)."""

import numpy as np
import pytest
import tensorflow as tf

from draw_tf import attention
from draw_tf.classifier import DrawClassifier, classification_terms


def test_accuracy_and_cross_entropy_on_a_hand_built_case():
    logits = tf.constant(
        [[2.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 5.0]]
    )
    labels = tf.constant([0, 2, 1, 2])
    terms = classification_terms(labels, logits)
    # argmax: 0, 1, 0 (first of ties), 2 -> right, wrong, wrong, right.
    np.testing.assert_array_equal(terms["correct"], [1, 0, 0, 1])
    expected = [
        -np.log(np.exp(2) / (np.exp(2) + 2)),
        -np.log(np.exp(1) / (1 + np.exp(3) + np.exp(1))),
        np.log(3),
        -np.log(np.exp(5) / (np.exp(1) + 1 + np.exp(5))),
    ]
    np.testing.assert_allclose(terms["cross_entropy"], expected, rtol=1e-5)


def test_glimpses_are_the_read_of_eq_27_without_error_image():
    model = DrawClassifier(
        (10, 9, 1), num_glimpses=2, glimpse_size=3, units=4, num_classes=3
    )
    rng = np.random.default_rng(0)
    for variable in model.weights:
        variable.assign(0.3 * rng.normal(size=variable.shape))
    images = rng.uniform(size=(2, 10, 9, 1)).astype(np.float32)
    outputs = model(images)
    assert outputs["logits"].shape == (2, 3)
    assert outputs["read_windows"].shape == (2, 2, 5)
    # Replay the two steps by hand with the model's layers.
    hidden = cell = tf.zeros([2, 4])
    for step in range(2):
        window = model.window_head(hidden)
        np.testing.assert_allclose(
            window, outputs["read_windows"][:, step], rtol=1e-5
        )
        filterbank_x, filterbank_y = attention.filterbanks(window, 3, 10, 9)
        glimpse = attention.apply_read_filters(
            images, filterbank_x, filterbank_y
        )
        glimpse = window[:, 4:5] * tf.reshape(glimpse, [2, 9])
        hidden, (_, cell) = model.lstm(glimpse, [hidden, cell])
    np.testing.assert_allclose(
        outputs["logits"], model.classifier(hidden), rtol=1e-5
    )


def test_classifier_learns_a_tiny_task():
    # Label = which half of the image holds the bright square.
    rng = np.random.default_rng(1)
    images = np.zeros((32, 12, 12, 1), np.float32)
    labels = rng.integers(0, 2, size=32)
    for image, label in zip(images, labels, strict=True):
        row = rng.integers(0, 8)
        column = rng.integers(0, 3) + 6 * label
        image[row : row + 4, column : column + 3] = 1.0
    tf.keras.utils.set_random_seed(0)
    model = DrawClassifier(
        (12, 12, 1), num_glimpses=2, glimpse_size=4, units=16, num_classes=2
    )
    optimizer = tf.keras.optimizers.Adam(1e-2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            terms = classification_terms(labels, model(images)["logits"])
            loss = tf.reduce_mean(terms["cross_entropy"])
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(
            zip(gradients, model.trainable_variables, strict=True)
        )
        return loss, tf.reduce_mean(terms["correct"])

    history = [step() for _ in range(150)]
    assert float(history[-1][0]) < 0.5 * float(history[0][0])
    assert float(history[-1][1]) >= 0.9


def test_bad_arguments_and_config_round_trip():
    with pytest.raises(ValueError, match="glimpse_size"):
        DrawClassifier((10, 10, 1), glimpse_size=11)
    with pytest.raises(ValueError, match="num_classes"):
        DrawClassifier((10, 10, 1), glimpse_size=3, num_classes=1)
    model = DrawClassifier((10, 8, 3), 3, 4, 5, 7, name="c")
    assert DrawClassifier.from_config(model.get_config()).get_config() == (
        model.get_config()
    )


def test_first_glimpse_blurs_the_image_at_the_grid_spacing():
    # h_0 = 0: the window spans the image (delta = 99 / 11 = 9 on a
    # 100 x 100 image) with sigma = delta / 2.
    model = DrawClassifier((100, 100, 1), 2, 12, 8, 10)
    windows = model(np.zeros((1, 100, 100, 1), np.float32))["read_windows"]
    center_x, center_y, variance, stride, intensity = windows[0, 0].numpy()
    np.testing.assert_allclose([center_x, center_y], [50.5, 50.5], rtol=1e-6)
    np.testing.assert_allclose(stride, 9.0, rtol=1e-6)
    np.testing.assert_allclose(variance, (9.0 / 2) ** 2, rtol=1e-5)
    np.testing.assert_allclose(intensity, 1.0, rtol=1e-6)
