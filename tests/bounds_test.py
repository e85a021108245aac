"""draw_tf.bounds: the bounds both engines report, on every backend.

Backend-portable: tests/jax_backend_test.py runs this file again on JAX.
"""

import keras
import numpy as np
import pytest

import draw_tf
from draw_tf import backend, bounds, mnist_sample, pretrained
from draw_tf.classifier import DrawClassifier


def _zero_model(image_shape):
    model = draw_tf.DrawModel(
        image_shape,
        num_steps=3,
        encoder_units=5,
        decoder_units=5,
        latent_size=4,
        read_glimpse_size=2,
        write_patch_size=2,
    )
    for variable in model.trainable_weights:
        variable.assign(np.zeros(variable.shape, "float32"))
    return model


def _small_model():
    return draw_tf.DrawModel(
        (6, 6, 1),
        num_steps=3,
        encoder_units=8,
        decoder_units=8,
        latent_size=3,
        read_glimpse_size=2,
        write_patch_size=3,
        seed=0,
    )


def _binary_images(seed, count, shape=(6, 6, 1)):
    images = np.random.default_rng(seed).uniform(size=(count, *shape)) > 0.5
    return images.astype(np.uint8) * 255


def test_zero_model_bounds_are_h_w_log_2():
    # All weights zero: h = 0, mu = 0, sigma = 1 (KL = 0), c_T = 0, so the
    # ELBO and the importance-weighted bound are exactly H W log 2.
    images = _binary_images(0, 13, (5, 6, 1))
    evaluator = bounds.Evaluator(_zero_model((5, 6, 1)), 4, seed=0)
    results = evaluator(images, importance_samples=3)
    assert results["num_examples"] == 13
    np.testing.assert_allclose(results["negative_elbo"], 30 * np.log(2), 1e-5)
    np.testing.assert_allclose(results["latent_loss"], 0.0, atol=1e-5)
    np.testing.assert_allclose(
        results["importance_weighted_bound"], 30 * np.log(2), rtol=1e-5
    )


def test_the_elbo_is_the_mean_over_every_image_with_its_own_noise():
    model = _small_model()
    images = _binary_images(1, 11)
    results = bounds.Evaluator(model, batch_size=4, seed=3)(images)
    expected = []
    for index in range(11):  # one image at a time, its noise from (3, 0, i)
        image = images[index : index + 1].astype(np.float32) / 255
        noise = np.random.default_rng([3, 0, index]).standard_normal(
            (1, 3, 3), np.float32
        )
        terms = draw_tf.negative_elbo(image, model(image, noise=noise))
        expected.append(float(np.asarray(terms["negative_elbo"])[0]))
    np.testing.assert_allclose(
        results["negative_elbo"], np.mean(expected), rtol=1e-5
    )


def test_bounds_do_not_depend_on_the_batch_size_or_what_follows():
    model = _small_model()
    images = _binary_images(2, 11)
    by_batch = [
        bounds.Evaluator(model, batch_size=size, seed=7)(
            images, importance_samples=3
        )
        for size in (3, 5, 64)
    ]
    for other in by_batch[1:]:
        for key in ("negative_elbo", "importance_weighted_bound"):
            np.testing.assert_allclose(other[key], by_batch[0][key], rtol=1e-5)
    evaluator = bounds.Evaluator(model, batch_size=4, seed=7)
    first_five = evaluator(images[:5])["negative_elbo"]
    assert evaluator(images, max_examples=5)["negative_elbo"] == first_five
    assert evaluator(images)["negative_elbo"] != first_five
    # Another seed, other noise.
    other_seed = bounds.Evaluator(model, batch_size=4, seed=8)(images)
    assert other_seed["negative_elbo"] != by_batch[0]["negative_elbo"]


@pytest.mark.skipif(
    not backend.is_tensorflow(), reason="jit_compile is TensorFlow's choice"
)
def test_compiled_evaluator_gives_the_op_by_op_bounds():
    model = _small_model()
    images = _binary_images(4, 11)
    results = {
        jit: bounds.Evaluator(model, 8, seed=5, jit_compile=jit)(
            images, importance_samples=3
        )
        for jit in (False, True)
    }
    for key in (
        "negative_elbo",
        "reconstruction_loss",
        "latent_loss",
        "importance_weighted_bound",
    ):
        np.testing.assert_allclose(
            results[True][key], results[False][key], rtol=1e-5, err_msg=key
        )


def test_classifier_evaluator_against_numpy():
    model = DrawClassifier((12, 12, 1), num_glimpses=2, glimpse_size=3, units=6)
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, size=(9, 12, 12, 1)).astype(np.uint8)
    labels = rng.integers(0, 10, size=9)
    results = bounds.ClassifierEvaluator(model, 4)(images, labels)
    logits = np.asarray(model(images.astype(np.float32) / 255)["logits"])
    logits = logits.astype(np.float64)
    log_softmax = logits - np.log(np.sum(np.exp(logits), axis=1))[:, None]
    cross_entropy = -np.mean(log_softmax[np.arange(9), labels])
    accuracy = np.mean(np.argmax(logits, axis=1) == labels)
    np.testing.assert_allclose(results["cross_entropy"], cross_entropy, 1e-5)
    assert results["accuracy"] == accuracy
    assert results["error_rate"] == 1 - accuracy
    assert results["num_examples"] == 9


def test_importance_weighted_bound_is_below_the_elbo():
    keras.utils.set_random_seed(0)  # the same weights in every process
    model = _small_model()
    # A wide posterior makes the gap between the bounds visible.
    model.cell.posterior.bias.assign(
        np.concatenate([np.zeros(3), np.ones(3)]).astype("float32")
    )
    images = _binary_images(2, 64)
    evaluator = bounds.Evaluator(model, batch_size=256, seed=0)
    results = evaluator(images, importance_samples=32)
    one_sample = evaluator.importance_weighted_bound(images, 1)
    assert results["importance_weighted_bound"] < results["negative_elbo"]
    # With k = 1 the estimate is the ELBO's (up to sampling noise).
    assert abs(one_sample - results["negative_elbo"]) < 0.05 * abs(one_sample)


# The shipped mnist_attention on the first 100 sample digits, evaluated by
# the run loop's evaluator (seed 1, batch 50, k = 8). Measured on
# TensorFlow 2.21 (79.121818, 78.292922) and on JAX 0.10 (79.121844,
# 78.292910) on an AMD EPYC (AVX2): within 3e-5 nats of each other.
# tests/jax_backend_test.py runs this file on JAX too, so the same
# weights must give the same bounds within 1e-3 nats on both backends.
SHIPPED_ON_100_DIGITS = {
    "negative_elbo": 79.12183,
    "importance_weighted_bound": 78.29292,
}


@pytest.mark.slow
def test_shipped_model_bounds_are_the_same_on_every_backend():
    model = pretrained.load("mnist_attention")
    images = mnist_sample.load().binarized[:100]
    results = bounds.Evaluator(model, batch_size=50, seed=1)(
        images, importance_samples=8
    )
    for key, expected in SHIPPED_ON_100_DIGITS.items():
        np.testing.assert_allclose(results[key], expected, atol=1e-3, rtol=0)
