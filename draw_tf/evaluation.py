"""Likelihood bounds on a whole split, in nats per image.

The negative ELBO and the importance-weighted bound.

The paper reports the negative ELBO (eq. 12) averaged over the test set
(80.97 nats with attention on binarized MNIST). The importance-weighted
bound with k samples,

    -log p(x) <= -log (1/k sum_i p(x, z_i) / q(z_i | x)),  z_i ~ q,

is tighter for k > 1 (Burda et al. 2016) and is reported beside it.
Evaluation noise comes from stateless seeds, so a number is reproducible.
"""

import math

import numpy as np
import tensorflow as tf

from draw_tf import data as data_lib
from draw_tf import losses
from draw_tf.classifier import DrawClassifier, classification_terms
from draw_tf.model import DrawModel


class Evaluator:
    """Averages the bounds over a split; traces its functions once.

    Args:
      model: a DRAW model.
      batch_size: images per forward pass (the importance-weighted pass
        uses batch_size // importance_samples images at a time).
      seed: seed of the evaluation noise.
      jit_compile: compile each forward pass with XLA (as the training
        step). The noise is drawn outside the compiled pass (XLA draws other
        numbers from a stateless seed), so the bounds are the same either
        way, within float tolerance.
    """

    def __init__(
        self,
        model: DrawModel,
        batch_size: int,
        seed: int,
        jit_compile: bool = True,
    ):
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self.jit_compile = jit_compile
        image_spec = tf.TensorSpec([None, *model.image_shape], tf.float32)
        seed_spec = tf.TensorSpec([2], tf.int64)
        self._elbo_sums = tf.function(
            self._elbo_sums_fn, input_signature=[image_spec, seed_spec]
        )
        self._elbo_pass = tf.function(
            self._elbo_pass_fn, jit_compile=jit_compile
        )
        self._bound_sums = {}
        self._bound_passes = {}
        self._signature = [image_spec, seed_spec]

    def __call__(
        self,
        images: np.ndarray,
        importance_samples: int = 0,
        max_examples: int = 0,
    ) -> dict:
        """Evaluates `images`.

        Args:
          images: uint8 [n, height, width, channels] (0..255).
          importance_samples: k of the importance-weighted bound; 0 skips
            it.
          max_examples: evaluate only the first this many images; 0 for
            all.

        Returns:
          A dict, all in nats per image: negative_elbo,
          reconstruction_loss, latent_loss, and with k > 0
          importance_weighted_bound; plus num_examples and
          importance_samples.
        """
        if max_examples:
            images = images[:max_examples]
        totals = dict.fromkeys(_ELBO_KEYS, 0.0)
        batches = data_lib.eval_dataset(images, self.batch_size)
        for index, batch in enumerate(batches):
            sums = self._elbo_sums(batch, self._batch_seed(0, index))
            for key in totals:
                totals[key] += float(sums[key])
        count = len(images)
        results = {key: value / count for key, value in totals.items()}
        results["num_examples"] = count
        results["importance_samples"] = importance_samples
        if importance_samples:
            results["importance_weighted_bound"] = (
                self.importance_weighted_bound(images, importance_samples)
            )
        return results

    def importance_weighted_bound(
        self, images: np.ndarray, importance_samples: int
    ) -> float:
        """-log (1/k sum_i w_i), averaged over images: nats per image.

        Args:
          images: uint8 [n, height, width, channels].
          importance_samples: k >= 1.

        Returns:
          The mean importance-weighted bound.
        """
        k = importance_samples
        if k not in self._bound_sums:
            self._bound_passes[k] = tf.function(
                lambda images, noise: self._bound_pass_fn(images, noise, k),
                jit_compile=self.jit_compile,
            )
            self._bound_sums[k] = tf.function(
                lambda batch, seed: self._bound_sums_fn(batch, seed, k),
                input_signature=self._signature,
            )
        total = 0.0
        images_per_pass = max(1, self.batch_size // k)
        batches = data_lib.eval_dataset(images, images_per_pass)
        for index, batch in enumerate(batches):
            seed = self._batch_seed(k, index)
            total += float(self._bound_sums[k](batch, seed))
        return total / len(images)

    def _batch_seed(self, stream: int, index: int) -> tf.Tensor:
        seed = tf.random.experimental.stateless_fold_in(
            tf.constant([self.seed, stream], tf.int64), index
        )
        return tf.cast(seed, tf.int64)

    def _elbo_sums_fn(self, batch, seed):
        noise = self.model.sample_noise(tf.shape(batch)[0], seed)
        terms = self._elbo_pass(batch, noise)
        # Summed outside the compiled pass, in float64: XLA's CPU reduction
        # of a whole batch's KL terms in float32 was 2e-4 off.
        return {
            key: tf.reduce_sum(tf.cast(terms[key], tf.float64))
            for key in _ELBO_KEYS
        }

    def _elbo_pass_fn(self, batch, noise):
        """The ELBO terms of batch [b, H, W, C] with noise [b, T, z]: [b]."""
        terms = losses.negative_elbo(batch, self.model(batch, noise=noise))
        return {key: terms[key] for key in _ELBO_KEYS}

    def _bound_sums_fn(self, batch, seed, k):
        repeated = tf.repeat(batch, k, axis=0)  # [b * k, ...], image-major
        noise = self.model.sample_noise(tf.shape(repeated)[0], seed)
        return self._bound_passes[k](repeated, noise)

    def _bound_pass_fn(self, repeated, noise, k):
        """Sum of the k-sample bounds; repeated [b * k, H, W, C]."""
        log_weights = losses.importance_log_weights(
            repeated, self.model(repeated, noise=noise)
        )
        log_weights = tf.reshape(log_weights, [-1, k])
        bounds = -(tf.reduce_logsumexp(log_weights, axis=1) - math.log(k))
        return tf.reduce_sum(bounds)


_ELBO_KEYS = ("negative_elbo", "reconstruction_loss", "latent_loss")


class ClassifierEvaluator:
    """Accuracy, error rate and cross-entropy of a classifier on a split.

    Args:
      model: a `DrawClassifier`.
      batch_size: images per pass.
      jit_compile: compile each pass with XLA (as the training step).
    """

    def __init__(
        self, model: DrawClassifier, batch_size: int, jit_compile: bool = True
    ):
        self.model = model
        self.batch_size = batch_size
        self._sums = tf.function(
            self._sums_fn,
            input_signature=[
                tf.TensorSpec([None, *model.image_shape], tf.float32),
                tf.TensorSpec([None], tf.int64),
            ],
            jit_compile=jit_compile,
        )

    def __call__(self, images, labels, max_examples: int = 0) -> dict:
        """Evaluates uint8 images [n, H, W, C] against int labels [n].

        Returns:
          {"accuracy", "error_rate", "cross_entropy" (nats per image),
          "num_examples"}.
        """
        if max_examples:
            images, labels = images[:max_examples], labels[:max_examples]
        correct = cross_entropy = 0.0
        batches = data_lib.eval_dataset(images, self.batch_size)
        for index, batch in enumerate(batches):
            start = index * self.batch_size
            batch_labels = np.asarray(
                labels[start : start + len(batch)], np.int64
            )
            sums = self._sums(batch, batch_labels)
            correct += float(sums["correct"])
            cross_entropy += float(sums["cross_entropy"])
        count = len(images)
        return {
            "accuracy": correct / count,
            "error_rate": 1.0 - correct / count,
            "cross_entropy": cross_entropy / count,
            "num_examples": count,
        }

    def _sums_fn(self, images, labels):
        terms = classification_terms(labels, self.model(images)["logits"])
        return {key: tf.reduce_sum(value) for key, value in terms.items()}
