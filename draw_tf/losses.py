"""The DRAW loss, the negative ELBO, with TFP distributions (eqs. 9-12).

In nats per image:

    L^x = -log D(x | c_T),  D = Bernoulli(logits = c_T)         (9)
    L^z = sum_t KL(N(mu_t, sigma_t) || N(0, I))                 (10)
        = 1/2 sum_t sum_j (mu_tj^2 + sigma_tj^2 - log sigma_tj^2)
          - T * |z| / 2                                          (11)
    L   = <L^x + L^z>_{z ~ Q}                                    (12)

L^x sums over pixels (and channels), L^z over latent dimensions and steps;
batch values are means over images. For images with values in [0, 1] that
are not binary (colour data in the paper) L^x is the Bernoulli
cross-entropy with those values as targets.

On TensorFlow the terms are TFP distributions' log-probabilities and KL
divergences. On the other backends (JAX) they are the same closed forms in
`keras.ops`: TFP's JAX substrate (tensorflow-probability 0.25, the newest
release) does not import with the JAX releases Keras 3.15 runs on (0.10
here, 0.11 on the GPU machine: `jax.interpreters.xla.pytype_aval_mappings`
is gone). tests/losses_test.py checks the closed forms against TFP.
"""

import functools

from keras import ops

from draw_tf import backend
from draw_tf.backend import Tensor


@functools.cache
def _tfd():
    """tfp.distributions, imported on first use (TensorFlow only)."""
    import tensorflow_probability as tfp

    return tfp.distributions


def reconstruction_loss(images, canvas_logits) -> Tensor:
    """L^x, eq. 9: -log Bernoulli(x | logits = c_T) per image.

    Args:
      images: [batch, height, width, channels] x, values in [0, 1].
      canvas_logits: [batch, height, width, channels] c_T.

    Returns:
      [batch] nats.
    """
    if not backend.is_tensorflow():
        return _closed_form_reconstruction_loss(images, canvas_logits)
    import tensorflow as tf

    tfd = _tfd()
    likelihood = tfd.Independent(
        tfd.Bernoulli(logits=canvas_logits, dtype=canvas_logits.dtype),
        reinterpreted_batch_ndims=3,
    )
    return -likelihood.log_prob(tf.cast(images, canvas_logits.dtype))


def latent_loss_per_step(posterior_mean, posterior_log_stddev) -> Tensor:
    """KL(Q(z_t | h^enc_t) || N(0, I)) for every step t, eq. 10.

    Args:
      posterior_mean: [batch, T, latent_size] mu_t.
      posterior_log_stddev: [batch, T, latent_size] log sigma_t.

    Returns:
      [batch, T] nats, summed over latent dimensions.
    """
    if not backend.is_tensorflow():
        return _closed_form_latent_loss_per_step(
            posterior_mean, posterior_log_stddev
        )
    import tensorflow as tf

    tfd = _tfd()
    posterior = tfd.Independent(
        tfd.Normal(loc=posterior_mean, scale=tf.exp(posterior_log_stddev)),
        reinterpreted_batch_ndims=1,
    )
    prior = tfd.Independent(
        tfd.Normal(
            loc=tf.zeros_like(posterior_mean),
            scale=tf.ones_like(posterior_mean),
        ),
        reinterpreted_batch_ndims=1,
    )
    return tfd.kl_divergence(posterior, prior)


def negative_elbo(images, outputs) -> dict[str, Tensor]:
    """The terms of the loss for every image of a batch.

    Args:
      images: [batch, height, width, channels] x in [0, 1].
      outputs: the dict returned by `DrawModel.__call__` (uses
        `canvas_logits`, `posterior_mean` and `posterior_log_stddev`).

    Returns:
      A dict of per-image tensors, in nats:
        negative_elbo: [batch] L^x + L^z, an upper bound on -log p(x) in
          expectation over the posterior noise.
        reconstruction_loss: [batch] L^x.
        latent_loss: [batch] L^z.
        latent_loss_per_step: [batch, T], KL at each step.
    """
    reconstruction = reconstruction_loss(images, outputs["canvas_logits"])
    latent_per_step = latent_loss_per_step(
        outputs["posterior_mean"], outputs["posterior_log_stddev"]
    )
    latent = ops.sum(latent_per_step, axis=-1)
    return {
        "negative_elbo": reconstruction + latent,
        "reconstruction_loss": reconstruction,
        "latent_loss": latent,
        "latent_loss_per_step": latent_per_step,
    }


def mean_negative_elbo(images, outputs) -> dict[str, Tensor]:
    """`negative_elbo` averaged over the batch: nats per image.

    Args:
      images: [batch, height, width, channels].
      outputs: the dict returned by `DrawModel.__call__`.

    Returns:
      The keys of `negative_elbo`, each averaged over images: scalars, and
      `latent_loss_per_step` of shape [T].
    """
    return {
        key: ops.mean(value, axis=0)
        for key, value in negative_elbo(images, outputs).items()
    }


def importance_log_weights(images, outputs) -> Tensor:
    """Log importance weights, log p(x, z) - log q(z | x), of `outputs`' z.

    log w = log D(x | c_T) + sum_t [log N(z_t; 0, I)
            - log N(z_t; mu_t, sigma_t)]

    Averaging exp(log w) over k independent samples gives the
    importance-weighted bound on log p(x) (Burda et al. 2016), tighter
    than the ELBO as k grows; with k = 1 its expectation is the ELBO.

    Args:
      images: [batch, height, width, channels].
      outputs: the dict returned by `DrawModel.__call__` (uses
        `canvas_logits`, `latents`, `posterior_mean`,
        `posterior_log_stddev`).

    Returns:
      [batch] log weights, in nats.
    """
    log_likelihood = -reconstruction_loss(images, outputs["canvas_logits"])
    if not backend.is_tensorflow():
        return log_likelihood + _closed_form_log_prior_over_posterior(
            outputs["latents"],
            outputs["posterior_mean"],
            outputs["posterior_log_stddev"],
        )
    import tensorflow as tf

    tfd = _tfd()
    latents = outputs["latents"]
    posterior = tfd.Independent(
        tfd.Normal(
            loc=outputs["posterior_mean"],
            scale=tf.exp(outputs["posterior_log_stddev"]),
        ),
        reinterpreted_batch_ndims=2,
    )
    prior = tfd.Independent(
        tfd.Normal(loc=tf.zeros_like(latents), scale=tf.ones_like(latents)),
        reinterpreted_batch_ndims=2,
    )
    return (
        log_likelihood + prior.log_prob(latents) - posterior.log_prob(latents)
    )


def _closed_form_reconstruction_loss(images, canvas_logits) -> Tensor:
    """Eq. 9 in keras.ops: sum over pixels of softplus(c) - x c, [batch]."""
    logits = ops.convert_to_tensor(canvas_logits)
    images = ops.cast(images, logits.dtype)
    per_pixel = ops.softplus(logits) - images * logits
    return ops.sum(per_pixel, axis=tuple(range(1, len(per_pixel.shape))))


def _closed_form_latent_loss_per_step(
    posterior_mean, posterior_log_stddev
) -> Tensor:
    """Eq. 11 in keras.ops, per step: [batch, T]."""
    per_dimension = 0.5 * (
        ops.square(posterior_mean)
        + ops.exp(2.0 * posterior_log_stddev)
        - 2.0 * posterior_log_stddev
        - 1.0
    )
    return ops.sum(per_dimension, axis=-1)


def _closed_form_log_prior_over_posterior(
    latents, posterior_mean, posterior_log_stddev
) -> Tensor:
    """sum_t [log N(z_t; 0, I) - log N(z_t; mu_t, sigma_t)], [batch].

    The log(2 pi) terms cancel.
    """
    standardized = (latents - posterior_mean) * ops.exp(-posterior_log_stddev)
    per_dimension = (
        -0.5 * ops.square(latents)
        + 0.5 * ops.square(standardized)
        + posterior_log_stddev
    )
    return ops.sum(per_dimension, axis=(1, 2))


def weighted_mean(per_example, sample_weight=None) -> Tensor:
    """The (weighted) mean of per-example losses, as `fit()` minimises it.

    Args:
      per_example: [batch] losses.
      sample_weight: optional [batch] weights (any shape of batch
        elements); None for the plain mean.

    Returns:
      A scalar: sum(w * loss) / max(sum(w), 1e-12), or the mean.
    """
    if sample_weight is None:
        return ops.mean(per_example)
    weights = ops.reshape(
        ops.convert_to_tensor(sample_weight, per_example.dtype), (-1,)
    )
    return ops.sum(per_example * weights) / ops.maximum(ops.sum(weights), 1e-12)
