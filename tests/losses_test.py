"""Tests of draw_tf.losses against closed forms (eqs. 9-12)."""

import keras
import numpy as np
import pytest
from keras import ops

from draw_tf import losses
from tests import numpy_reference as ref
from tests.backends import numpy, tensor


def _outputs(canvas_logits, mu, log_sigma):
    return {
        "canvas_logits": tensor(canvas_logits),
        "posterior_mean": tensor(mu),
        "posterior_log_stddev": tensor(log_sigma),
    }


def test_kl_equals_closed_form_of_eq_11():
    rng = np.random.default_rng(0)
    batch, steps, latent = 4, 6, 5
    mu = rng.normal(size=(batch, steps, latent))
    log_sigma = rng.normal(scale=0.5, size=(batch, steps, latent))
    terms = losses.negative_elbo(
        np.zeros((batch, 2, 2, 1)),
        _outputs(np.zeros((batch, 2, 2, 1)), mu, log_sigma),
    )
    for k in range(batch):
        np.testing.assert_allclose(
            terms["latent_loss"][k],
            ref.kl_closed_form(mu[k], log_sigma[k]),
            rtol=1e-5,
        )
    np.testing.assert_allclose(
        numpy(ops.sum(terms["latent_loss_per_step"], -1)),
        terms["latent_loss"],
        rtol=1e-6,
    )
    assert terms["latent_loss_per_step"].shape == (batch, steps)


def test_kl_of_the_prior_itself_is_zero():
    # mu = 0, sigma = 1: eq. 11 is T*|z|/2 - T*|z|/2 = 0, which only holds
    # with the -T*|z|/2 constant (not -T/2 nor -1/2 per step).
    terms = losses.negative_elbo(
        np.zeros((2, 3, 3, 1)),
        _outputs(
            np.zeros((2, 3, 3, 1)), np.zeros((2, 7, 9)), np.zeros((2, 7, 9))
        ),
    )
    np.testing.assert_allclose(terms["latent_loss"], 0.0, atol=1e-5)


@pytest.mark.parametrize("shape", [(28, 28, 1), (5, 7, 1), (4, 6, 3)])
def test_zero_canvas_costs_log_2_per_pixel(shape):
    # sigmoid(0) = 1/2: every binary pixel costs log 2 nats, whatever it is.
    rng = np.random.default_rng(1)
    images = (rng.uniform(size=(3, *shape)) > 0.5).astype(np.float32)
    images[0] = 0.0
    images[1] = 1.0
    terms = losses.negative_elbo(
        images,
        _outputs(
            np.zeros((3, *shape)), np.zeros((3, 2, 4)), np.zeros((3, 2, 4))
        ),
    )
    np.testing.assert_allclose(
        terms["reconstruction_loss"], np.prod(shape) * np.log(2), rtol=1e-5
    )


def test_reconstruction_is_bernoulli_cross_entropy():
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(3, 4, 5, 2))
    images = rng.uniform(size=(3, 4, 5, 2))  # grey levels as targets
    terms = losses.negative_elbo(
        images, _outputs(logits, np.zeros((3, 1, 1)), np.zeros((3, 1, 1)))
    )
    p = ref.sigmoid(logits)
    expected = -np.sum(
        images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3)
    )
    np.testing.assert_allclose(
        terms["reconstruction_loss"], expected, rtol=1e-5
    )


def test_negative_elbo_is_sum_and_mean_is_over_images():
    rng = np.random.default_rng(3)
    images = (rng.uniform(size=(5, 3, 3, 1)) > 0.5).astype(np.float32)
    outputs = _outputs(
        rng.normal(size=(5, 3, 3, 1)),
        rng.normal(size=(5, 4, 2)),
        rng.normal(size=(5, 4, 2)),
    )
    terms = losses.negative_elbo(images, outputs)
    np.testing.assert_allclose(
        terms["negative_elbo"],
        terms["reconstruction_loss"] + terms["latent_loss"],
        rtol=1e-6,
    )
    means = losses.mean_negative_elbo(images, outputs)
    for key, value in terms.items():
        np.testing.assert_allclose(
            means[key], np.mean(value, axis=0), rtol=1e-6
        )
    assert means["negative_elbo"].shape == ()
    assert means["latent_loss_per_step"].shape == (4,)


def _log_normal(x, mean, log_stddev):
    """The log density of N(mean, exp(log_stddev)^2) at x, elementwise."""
    return (
        -0.5 * ((x - mean) / np.exp(log_stddev)) ** 2
        - log_stddev
        - 0.5 * np.log(2 * np.pi)
    )


def test_importance_log_weights_are_log_joint_minus_log_posterior():
    # log w = log D(x | c_T) + sum_t log N(z_t; 0, I) - log N(z_t; mu_t,
    # sigma_t), from the densities written out in float64.
    rng = np.random.default_rng(4)
    images = (rng.uniform(size=(3, 4, 4, 1)) > 0.5).astype(np.float32)
    logits = rng.normal(size=(3, 4, 4, 1))
    mu = rng.normal(size=(3, 5, 2))
    log_sigma = rng.normal(scale=0.3, size=(3, 5, 2))
    latents = mu + np.exp(log_sigma) * rng.normal(size=mu.shape)
    outputs = _outputs(logits, mu, log_sigma)
    outputs["latents"] = tensor(latents)
    p = ref.sigmoid(logits)
    log_likelihood = np.sum(
        images * np.log(p) + (1 - images) * np.log(1 - p), axis=(1, 2, 3)
    )
    expected = log_likelihood + np.sum(
        _log_normal(latents, 0.0, 0.0) - _log_normal(latents, mu, log_sigma),
        axis=(1, 2),
    )
    np.testing.assert_allclose(
        numpy(losses.importance_log_weights(images, outputs)),
        expected,
        rtol=1e-5,
    )


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="TFP's distributions are the TensorFlow path",
)
def test_closed_forms_of_other_backends_equal_tfp():
    # On TensorFlow the loss is TFP's; the keras.ops closed forms that JAX
    # uses must give the same numbers.
    rng = np.random.default_rng(5)
    images = rng.uniform(size=(3, 5, 4, 2)).astype(np.float32)
    logits = tensor(rng.normal(scale=4.0, size=(3, 5, 4, 2)))
    mu = tensor(rng.normal(size=(3, 6, 3)))
    log_sigma = tensor(rng.normal(scale=0.5, size=(3, 6, 3)))
    latents = tensor(rng.normal(size=(3, 6, 3)))
    np.testing.assert_allclose(
        numpy(losses._closed_form_reconstruction_loss(images, logits)),
        numpy(losses.reconstruction_loss(images, logits)),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        numpy(losses._closed_form_latent_loss_per_step(mu, log_sigma)),
        numpy(losses.latent_loss_per_step(mu, log_sigma)),
        rtol=1e-5,
        atol=1e-5,
    )
    outputs = {
        "canvas_logits": logits,
        "posterior_mean": mu,
        "posterior_log_stddev": log_sigma,
        "latents": latents,
    }
    np.testing.assert_allclose(
        numpy(
            -losses.reconstruction_loss(images, logits)
            + losses._closed_form_log_prior_over_posterior(
                latents, mu, log_sigma
            )
        ),
        numpy(losses.importance_log_weights(images, outputs)),
        rtol=1e-5,
    )
