"""Likelihood bounds on a whole split, in nats per image, on every backend.

The negative ELBO and the importance-weighted bound, for both engines of
the run loop (`draw_tf.trainer`) and every Keras backend.

The paper reports the negative ELBO (eq. 12) averaged over the test set
(80.97 nats with attention on binarized MNIST). The importance-weighted
bound with k samples,

    -log p(x) <= -log (1/k sum_i p(x, z_i) / q(z_i | x)),  z_i ~ q,

is tighter for k > 1 (Burda et al. 2016) and is reported beside it.

The noise of image i is drawn by NumPy from (seed, stream, i): stream 0
for the ELBO, stream k for the k-sample bound. So a bound depends on the
weights, the images and the seed alone: not on the backend (TensorFlow
and JAX give the same number within float error), the engine, the batch
size, or how many images come after (the first n images of a split get
the same noise whether n or all are evaluated).
"""

import keras
import numpy as np
from keras import ops

from draw_tf import backend, losses
from draw_tf.classifier import DrawClassifier
from draw_tf.conditional_model import episode_terms
from draw_tf.model import DrawModel

_ELBO_KEYS = ("negative_elbo", "reconstruction_loss", "latent_loss")
# How the noise of a bound was drawn, for the shipped models' records.
NOISE = "draw_tf.bounds: NumPy noise per image from (seed, stream, image index)"


def image_noise(
    seed: int, stream: int, first: int, count: int, shape, samples: int = 1
) -> np.ndarray:
    """The evaluation noise of images [first, first + count).

    Args:
      seed: the evaluation seed.
      stream: 0 for the ELBO, k for the k-sample bound.
      first: the index of the first image in its split.
      count: how many images.
      shape: (T, latent_size) of one image's noise.
      samples: draws per image (k of the importance-weighted bound).

    Returns:
      float32 [count * samples, T, latent_size], image-major (the
      `samples` draws of one image are consecutive).
    """
    size = samples * int(np.prod(shape))
    noise = np.empty((count, size), np.float32)
    for offset in range(count):
        generator = np.random.default_rng([seed, stream, first + offset])
        noise[offset] = generator.standard_normal(size, np.float32)
    return noise.reshape(count * samples, *shape)


class Evaluator:
    """Averages the bounds over a split; compiles its passes once.

    Args:
      model: a DRAW model.
      batch_size: images per forward pass (the importance-weighted pass
        uses batch_size // importance_samples images at a time).
      seed: seed of the evaluation noise.
      jit_compile: compile each pass with XLA on TensorFlow (as the
        training step); JAX always compiles.
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
        self._pass = compiled_pass(model, _bound_terms, jit_compile, noise=True)

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
        for first in range(0, len(images), self.batch_size):
            batch = _floats(images[first : first + self.batch_size])
            terms = self._pass(batch, self._noise(0, first, len(batch)))
            for key in totals:
                # Summed in float64: a float32 sum of a whole batch's KL
                # terms was 2e-4 off.
                totals[key] += float(np.sum(terms[key], dtype=np.float64))
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
        per_pass = max(1, self.batch_size // k)
        total = 0.0
        for first in range(0, len(images), per_pass):
            batch = _floats(images[first : first + per_pass])
            repeated = np.repeat(batch, k, axis=0)  # image-major
            noise = self._noise(k, first, len(batch), samples=k)
            log_weights = self._pass(repeated, noise)["log_weights"]
            log_weights = log_weights.astype(np.float64).reshape(-1, k)
            top = log_weights.max(axis=1, keepdims=True)
            log_mean = top[:, 0] + np.log(
                np.mean(np.exp(log_weights - top), axis=1)
            )
            total += float(np.sum(-log_mean))
        return total / len(images)

    def _noise(self, stream, first, count, samples=1) -> np.ndarray:
        shape = (self.model.num_steps, self.model.latent_size)
        return image_noise(self.seed, stream, first, count, shape, samples)


class ClassifierEvaluator:
    """Accuracy, error rate and cross-entropy of a classifier on a split.

    Args:
      model: a `DrawClassifier`.
      batch_size: images per pass.
      jit_compile: compile each pass with XLA on TensorFlow.
    """

    def __init__(
        self, model: DrawClassifier, batch_size: int, jit_compile: bool = True
    ):
        self.model = model
        self.batch_size = batch_size
        self._pass = compiled_pass(model, _logits, jit_compile)

    def __call__(self, images, labels, max_examples: int = 0) -> dict:
        """Evaluates uint8 images [n, H, W, C] against int labels [n].

        Returns:
          {"accuracy", "error_rate", "cross_entropy" (nats per image),
          "num_examples"}.
        """
        if max_examples:
            images, labels = images[:max_examples], labels[:max_examples]
        correct = cross_entropy = 0.0
        for first in range(0, len(images), self.batch_size):
            batch = _floats(images[first : first + self.batch_size])
            logits = self._pass(batch)["logits"].astype(np.float64)
            batch_labels = np.asarray(labels[first : first + len(batch)])
            top = logits.max(axis=1, keepdims=True)
            log_normalizer = top[:, 0] + np.log(
                np.sum(np.exp(logits - top), axis=1)
            )
            picked = logits[np.arange(len(batch)), batch_labels]
            cross_entropy += float(np.sum(log_normalizer - picked))
            correct += float(np.sum(np.argmax(logits, axis=1) == batch_labels))
        count = len(images)
        return {
            "accuracy": correct / count,
            "error_rate": 1.0 - correct / count,
            "cross_entropy": cross_entropy / count,
            "num_examples": count,
        }


def compiled_pass(
    model: keras.Model, terms_of, jit_compile: bool = True, noise=False
):
    """A compiled `terms_of(model outputs, images)` on NumPy inputs.

    Args:
      model: the model; its current weights are used at every call.
      terms_of: (outputs dict, images) -> dict of per-example tensors.
      jit_compile: XLA on TensorFlow (JAX always compiles).
      noise: whether the pass takes the model's noise as a second input.

    Returns:
      A function of float32 images [b, H, W, C] (and, with noise, float32
      noise [b, T, latent_size]) returning a dict of NumPy arrays.
    """

    def forward(images, *extra):
        kwargs = {"noise": extra[0]} if noise else {}
        return model(images, **kwargs)

    if backend.name() == "jax":
        import jax

        @jax.jit
        def stateless(trainable, non_trainable, images, *extra):
            kwargs = {"noise": extra[0]} if noise else {}
            outputs, _ = model.stateless_call(
                trainable, non_trainable, images, **kwargs
            )
            return terms_of(outputs, images)

        def run(images, *extra):
            result = stateless(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                images,
                *extra,
            )
            return {key: np.asarray(value) for key, value in result.items()}

        return run
    if backend.is_tensorflow():
        import tensorflow as tf

        def terms(images, *extra):
            return terms_of(forward(images, *extra), images)

        traced = tf.function(
            terms, jit_compile=jit_compile, reduce_retracing=True
        )

        def run(images, *extra):
            result = traced(
                tf.constant(images), *[tf.constant(e) for e in extra]
            )
            return {key: value.numpy() for key, value in result.items()}

        return run

    def run(images, *extra):  # another backend: eagerly
        result = terms_of(forward(images, *extra), images)
        return {key: ops.convert_to_numpy(v) for key, v in result.items()}

    return run


def _bound_terms(outputs, images) -> dict:
    """Per-image ELBO terms and importance log weights, each [b]."""
    terms = losses.negative_elbo(images, outputs)
    result = {key: terms[key] for key in _ELBO_KEYS}
    result["log_weights"] = losses.importance_log_weights(images, outputs)
    return result


def _logits(outputs, images) -> dict:
    del images
    return {"logits": outputs["logits"]}


def _floats(images: np.ndarray) -> np.ndarray:
    """uint8 (or float) images -> float32 in [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return np.asarray(images, np.float32)


class EpisodeEvaluator:
    """The bounds of instructed episodes, and episodes drawn from them.

    For `ConditionalDrawModel` (--task=instruct): the negative ELBO of an
    episode is the sum over its turns of -log p(x_k | canvas after turn k)
    plus every step's KL term, in nats per episode, and per turn. The noise
    of episode i is drawn by NumPy from (seed, stream, i), as `Evaluator`
    draws an image's: stream 0 for the ELBO, `DRAW_STREAM` for `draw`.

    Args:
      model: a `ConditionalDrawModel`.
      batch_size: episodes per pass.
      seed: seed of the noise.
      jit_compile: compile each pass with XLA on TensorFlow.
    """

    DRAW_STREAM = 1000

    def __init__(self, model, batch_size: int, seed: int, jit_compile=True):
        self.model = model
        self.batch_size = batch_size
        self.seed = seed
        self._terms = compiled_call(
            model,
            lambda inputs, noise: _episode_terms(model, inputs, noise),
            jit_compile,
        )
        self._draws = {
            canvases: compiled_call(
                model,
                lambda inputs, noise, canvases=canvases: _drawn(
                    model, inputs, noise, canvases
                ),
                jit_compile,
            )
            for canvases in (False, True)
        }

    def __call__(self, targets, classes, places=None, max_examples=0) -> dict:
        """The mean bounds of episodes.

        Args:
          targets: uint8 [n, turns, H, W, C] (0..255), each turn's canvas.
          classes: int [n, turns].
          places: int [n, turns], or None for a class-conditional model.
          max_examples: the first this many episodes only; 0 for all.

        Returns:
          negative_elbo, reconstruction_loss, latent_loss (nats per
          episode); negative_elbo_per_turn, reconstruction_loss_per_turn,
          latent_loss_per_turn (lists, nats per turn); num_examples.
        """
        if max_examples:
            targets, classes = targets[:max_examples], classes[:max_examples]
            if places is not None:
                places = places[:max_examples]
        turns = targets.shape[1]
        totals = {
            "reconstruction_loss_per_turn": np.zeros(turns),
            "latent_loss_per_turn": np.zeros(turns),
        }
        for first in range(0, len(targets), self.batch_size):
            inputs = _episode_inputs(
                targets, classes, places, first, self.batch_size
            )
            count = len(inputs["classes"])
            terms = self._terms(inputs, self._noise(0, first, count, turns))
            for key in totals:
                totals[key] += np.sum(terms[key], axis=0, dtype=np.float64)
        count = len(targets)
        per_turn = {key: value / count for key, value in totals.items()}
        elbo_per_turn = (
            per_turn["reconstruction_loss_per_turn"]
            + per_turn["latent_loss_per_turn"]
        )
        return {
            "negative_elbo": float(np.sum(elbo_per_turn)),
            "reconstruction_loss": float(
                np.sum(per_turn["reconstruction_loss_per_turn"])
            ),
            "latent_loss": float(np.sum(per_turn["latent_loss_per_turn"])),
            "negative_elbo_per_turn": elbo_per_turn.tolist(),
            "reconstruction_loss_per_turn": per_turn[
                "reconstruction_loss_per_turn"
            ].tolist(),
            "latent_loss_per_turn": per_turn["latent_loss_per_turn"].tolist(),
            "num_examples": count,
        }

    def draw(
        self,
        classes,
        places=None,
        stream: int = DRAW_STREAM,
        canvases: bool = False,
    ) -> dict:
        """Episodes drawn from instructions, z ~ N(0, I) per episode.

        Args:
          classes: int [n, turns].
          places: int [n, turns], or None.
          stream: the noise stream (episode i's noise from (seed, stream,
            i)).
          canvases: also return the canvas after every step (T times the
            memory of the images).

        Returns:
          NumPy arrays: images [n, turns, H, W, C], the canvas after each
          turn; with write attention write_windows [n, turns, T, 5]; with
          `canvases`, canvases [n, turns, T, H, W, C].
        """
        classes = np.asarray(classes, np.int64)
        turns = classes.shape[1]
        parts = []
        for first in range(0, len(classes), self.batch_size):
            inputs = {"classes": classes[first : first + self.batch_size]}
            if places is not None:
                inputs["places"] = np.asarray(places, np.int64)[
                    first : first + self.batch_size
                ]
            count = len(inputs["classes"])
            parts.append(
                self._draws[canvases](
                    inputs, self._noise(stream, first, count, turns)
                )
            )
        return {
            key: np.concatenate([part[key] for part in parts])
            for key in parts[0]
        }

    def _noise(self, stream, first, count, turns) -> np.ndarray:
        steps, latent = self.model.steps_per_turn, self.model.latent_size
        noise = image_noise(
            self.seed, stream, first, count, (turns * steps, latent)
        )
        return noise.reshape(count, turns, steps, latent)


def compiled_call(model: keras.Model, function, jit_compile: bool = True):
    """A compiled `function(inputs, noise)` of a model on NumPy inputs.

    Args:
      model: the model `function` calls; its current weights are used at
        every call.
      function: (inputs, a dict of arrays; noise, an array) -> a dict of
        tensors.
      jit_compile: XLA on TensorFlow (JAX always compiles).

    Returns:
      A function of (a dict of NumPy arrays, a NumPy array) returning a
      dict of NumPy arrays.
    """
    if backend.name() == "jax":
        import jax

        @jax.jit
        def stateless(trainable, non_trainable, inputs, noise):
            mapping = [
                *zip(model.trainable_variables, trainable, strict=True),
                *zip(model.non_trainable_variables, non_trainable, strict=True),
            ]
            with keras.StatelessScope(state_mapping=mapping):
                return function(inputs, noise)

        def run(inputs, noise):
            result = stateless(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                inputs,
                noise,
            )
            return {key: np.asarray(value) for key, value in result.items()}

        return run
    if backend.is_tensorflow():
        import tensorflow as tf

        traced = tf.function(
            function, jit_compile=jit_compile, reduce_retracing=True
        )

        def run(inputs, noise):
            result = traced(
                {key: tf.constant(value) for key, value in inputs.items()},
                tf.constant(noise),
            )
            return {key: value.numpy() for key, value in result.items()}

        return run

    def run(inputs, noise):  # another backend: eagerly
        result = function(inputs, noise)
        return {key: ops.convert_to_numpy(v) for key, v in result.items()}

    return run


def _episode_inputs(targets, classes, places, first, size) -> dict:
    inputs = {
        "targets": _floats(targets[first : first + size]),
        "classes": np.asarray(classes[first : first + size], np.int64),
    }
    if places is not None:
        inputs["places"] = np.asarray(places[first : first + size], np.int64)
    return inputs


def _drawn(model, inputs, noise, canvases: bool) -> dict:
    outputs = model.generate(
        inputs["classes"], inputs.get("places"), noise=noise
    )
    if not canvases:
        outputs.pop("canvases")
    return outputs


def _episode_terms(model, inputs, noise) -> dict:
    terms = episode_terms(inputs["targets"], model(inputs, noise=noise))
    return {
        key: terms[key]
        for key in ("reconstruction_loss_per_turn", "latent_loss_per_turn")
    }
