"""The DRAW model: the cell unrolled over T steps, and generation.

The generative story (Gregor et al. 2015, Section 2): a canvas c_0 = 0 is
refined over T steps; at each step a latent z_t ~ N(0, I) drives the
decoder LSTM, whose write adds to the canvas; the image is Bernoulli with
logits c_T. Inference runs an encoder LSTM alongside, reading the image and
the error image x - sigmoid(c_{t-1}), and gives the Gaussian posterior
Q(z_t | h^enc_t) = N(mu_t, sigma_t). The loss (`draw_tf.losses`) is the
negative ELBO: -log D(x | c_T) plus sum_t KL(Q(z_t) || N(0, I)).

Randomness is explicit. Every call takes either `noise` (the eps of every
step, `[batch, T, latent_size]`) or a stateless `seed` (`[2]` ints), or
falls back on the model's `keras.random.SeedGenerator`. With a seed, the
noise is folded with the replica id under a `tf.distribute` strategy, so
replicas draw different noise from one seed.

How the T steps run is `draw_tf.unrolling`'s business: by default a
tf.while_loop for inference and a fused decoder for generation;
`implementation="reference"` calls the cell T times from Python. Both give
the same numbers from the same variables.
"""

from collections.abc import Sequence

import keras
from keras import ops

from draw_tf import attention, backend, losses, unrolling
from draw_tf import cell as cell_lib
from draw_tf.backend import Tensor

IMPLEMENTATIONS = ("fast", "reference")


def standard_normal_noise(shape, seed) -> Tensor:
    """Stateless N(0, I) noise, different on every distribution replica.

    Args:
      shape: the noise shape, e.g. [batch, T, latent_size].
      seed: [2] int32 or int64 stateless seed (uint32 on JAX).

    Returns:
      float32 tensor of `shape`. The same seed gives the same noise on one
      backend (TensorFlow and JAX draw different numbers from one seed),
      except that under a tf.distribute strategy with several replicas the
      replica id is folded into the seed first. (JAX's data parallelism
      shards one global batch, so its replicas differ without it.)
    """
    if not backend.is_tensorflow():
        # JAX takes a [2] uint32 array as a raw PRNG key.
        seed_dtype = "uint32" if backend.name() == "jax" else "int32"
        return keras.random.normal(shape, seed=ops.cast(seed, seed_dtype))
    import tensorflow as tf

    seed = tf.cast(seed, tf.int64)
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
        seed = tf.random.experimental.stateless_fold_in(
            seed, tf.cast(replica_context.replica_id_in_sync_group, tf.int64)
        )
    return tf.random.stateless_normal(shape, seed=seed)


@keras.saving.register_keras_serializable(package="draw_tf")
class DrawModel(keras.Model):
    """DRAW: the `DrawCell` run for `num_steps` steps (paper Section 2).

    `model(images, noise=None, seed=None, return_canvases=False)` takes
    images `[batch, height, width, channels]` with values in [0, 1] and
    returns a dict:

      canvas_logits: [batch, height, width, channels], c_T.
      latents: [batch, T, latent_size], z_t.
      posterior_mean: [batch, T, latent_size], mu_t.
      posterior_log_stddev: [batch, T, latent_size], log sigma_t.
      read_windows: [batch, T, 5], with read attention (see
        `draw_tf.attention.WINDOW_PARAMETER_NAMES`).
      write_windows: [batch, T, 5], with write attention.
      canvases: [batch, T, height, width, channels], sigmoid(c_t) after
        every step; only when `return_canvases=True`.

    `model.generate(...)` runs the decoder alone from z_t ~ N(0, I).

    Keras training: `model.compile(optimizer=...)` and `model.fit(images)`
    minimise the negative ELBO (`compute_loss`, nats per image; the noise
    comes from the model's seed generator, fresh at every step) and report
    L^x and L^z as the metrics `reconstruction_loss` and `latent_loss`;
    `model.evaluate(images)` gives the same three on held-out images.
    Binarize the images yourself (dynamically, for the paper's MNIST
    numbers); `fit` takes them as they come.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_steps: int = 64,
        encoder_units: int = 256,
        decoder_units: int = 256,
        latent_size: int = 100,
        read_glimpse_size: int | None = 2,
        write_patch_size: int | None = 5,
        seed: int | None = None,
        implementation: str = "fast",
        steps_per_iteration: int = unrolling.DEFAULT_STEPS_PER_ITERATION,
        precision: str = "fp32",
        **kwargs,
    ):
        """Creates and builds the model.

        The defaults are the paper's MNIST generation model (Table 3):
        T = 64, 256 LSTM units, |z| = 100, 2 x 2 read, 5 x 5 write.

        Args:
          image_shape: (height, width, channels) of the images.
          num_steps: T, the number of glimpses, >= 1.
          encoder_units: units of the encoder LSTM, >= 1.
          decoder_units: units of the decoder LSTM, >= 1.
          latent_size: |z|, >= 1.
          read_glimpse_size: N of the read, or None for no read attention.
          write_patch_size: N of the write, or None for no write attention.
          seed: seed of the fallback noise generator (used when a call gets
            neither `noise` nor `seed`); None for a random one.
          implementation: "fast" (a tf.while_loop for inference, and fused
            generation; see `draw_tf.unrolling`) or "reference" (the cell
            called T times from Python). Same numbers, same variables.
          steps_per_iteration: with "fast", the steps run per loop
            iteration (T unrolls fully).
          precision: "fp32", or "bf16" for bfloat16 LSTM and posterior
            matmuls with float32 weights, canvas and loss (see
            `DrawCell`); the variables are the same in both.
          **kwargs: base Model arguments (name, ...).

        Raises:
          ValueError: if an argument is out of its range.
        """
        super().__init__(**kwargs)
        self.num_steps = attention.validate_positive_int("num_steps", num_steps)
        self.seed = seed
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}; got "
                f"{implementation!r}."
            )
        self.implementation = implementation
        self.steps_per_iteration = attention.validate_positive_int(
            "steps_per_iteration", steps_per_iteration
        )
        self.cell = cell_lib.DrawCell(
            image_shape,
            encoder_units=encoder_units,
            decoder_units=decoder_units,
            latent_size=latent_size,
            read_glimpse_size=read_glimpse_size,
            write_patch_size=write_patch_size,
            precision=precision,
            name="draw_cell",
        )
        self.seed_generator = keras.random.SeedGenerator(
            seed, name="noise_seed_generator"
        )
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.latent_loss_tracker = keras.metrics.Mean(name="latent_loss")
        self.build()

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels)."""
        return self.cell.image_shape

    @property
    def latent_size(self) -> int:
        """|z|."""
        return self.cell.latent_size

    def build(self, input_shape=None):
        """Creates every variable; all shapes follow from the config."""
        if input_shape is not None:
            self._check_image_shape(input_shape)
        self.cell.build()

    def noise_shape(self, batch_size) -> list:
        """[batch_size, T, latent_size], the shape of `noise`."""
        return [batch_size, self.num_steps, self.latent_size]

    def sample_noise(self, batch_size, seed=None) -> Tensor:
        """Draws eps ~ N(0, I) of shape `noise_shape(batch_size)`.

        Args:
          batch_size: int or scalar int tensor.
          seed: [2] int stateless seed, or None to draw one from the
            model's seed generator.

        Returns:
          [batch_size, T, latent_size] float32.
        """
        if seed is None:
            seed = self.seed_generator.next()
        return standard_normal_noise(self.noise_shape(batch_size), seed)

    def call(self, images, noise=None, seed=None, return_canvases=False):
        images = ops.convert_to_tensor(images, dtype="float32")
        self._check_image_shape(images.shape)
        batch_size = ops.shape(images)[0]
        noise = self._resolve_noise(batch_size, noise, seed)
        if self.implementation == "fast":
            steps, state = unrolling.unroll(
                self.cell,
                images,
                noise,
                return_canvases,
                self.steps_per_iteration,
            )
        else:
            steps, state = unrolling.reference_unroll(
                self.cell, images, noise, return_canvases
            )
        outputs = {
            "canvas_logits": state.canvas,
            "latents": _batch_major(steps["latent"]),
            "posterior_mean": _batch_major(steps["posterior_mean"]),
            "posterior_log_stddev": _batch_major(steps["posterior_log_stddev"]),
        }
        if self.cell.read_attention:
            outputs["read_windows"] = _batch_major(steps["read_window"])
        if self.cell.write_attention:
            outputs["write_windows"] = _batch_major(steps["write_window"])
        if return_canvases:
            outputs["canvases"] = ops.sigmoid(_batch_major(steps["canvas"]))
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The loss `fit()` minimises: the negative ELBO, nats per image.

        Keras calls it with `x` the images `[batch, height, width,
        channels]` and `y_pred` this model's outputs on them; `y` is not
        used (the model is trained on its inputs). It also updates the
        `reconstruction_loss` (L^x) and `latent_loss` (L^z) metrics.

        Args:
          x: [batch, height, width, channels] images in [0, 1].
          y: unused.
          y_pred: the dict `call` returned for `x`; computed when None.
          sample_weight: optional [batch] weights of the images.
          training: unused.

        Returns:
          A scalar: the (weighted) mean of L^x + L^z over the batch, plus
          any losses the layers added.
        """
        del y, training  # The target is the input; no dropout.
        if isinstance(x, (tuple, list)):
            x = x[0]
        if y_pred is None:
            y_pred = self(x)
        terms = losses.negative_elbo(
            ops.convert_to_tensor(x, "float32"), y_pred
        )
        self.reconstruction_loss_tracker.update_state(
            terms["reconstruction_loss"], sample_weight=sample_weight
        )
        self.latent_loss_tracker.update_state(
            terms["latent_loss"], sample_weight=sample_weight
        )
        loss = losses.weighted_mean(terms["negative_elbo"], sample_weight)
        for layer_loss in self.losses:
            loss = loss + layer_loss
        return loss

    def generate(self, batch_size=None, noise=None, seed=None):
        """Draws images from the model: the decoder alone, z_t ~ N(0, I).

        Args:
          batch_size: number of images; may be omitted when `noise` is
            given.
          noise: optional [batch, T, latent_size] z_1..z_T.
          seed: optional [2] int stateless seed for the noise.

        Returns:
          A dict of
            images: [batch, height, width, channels], sigmoid(c_T), the
              Bernoulli means.
            canvases: [batch, T, height, width, channels], sigmoid(c_t).
            write_windows: [batch, T, 5], with write attention.

        Raises:
          ValueError: if neither `batch_size` nor `noise` is given.
        """
        if batch_size is None:
            if noise is None:
                raise ValueError("generate() needs batch_size or noise.")
            batch_size = ops.shape(noise)[0]
        latents = self._resolve_noise(batch_size, noise, seed)
        if self.implementation == "fast":
            steps = unrolling.generate(self.cell, latents)
        else:
            steps = unrolling.reference_generate(self.cell, latents)
        outputs = {
            "images": ops.sigmoid(steps["canvas_logits"]),
            "canvases": ops.sigmoid(_batch_major(steps["canvas"])),
        }
        if self.cell.write_attention:
            outputs["write_windows"] = _batch_major(steps["write_window"])
        return outputs

    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        **kwargs,
    ):
        """Keras' `Model.export`, with the images' signature by default.

        The SavedModel's `serve` endpoint is `call` on float32 images
        `[batch, height, width, channels]` (noise from the model's seed
        generator). To serve generation with TF Serving, use
        export/export_saved_model.py: its signatures take seeds or noise,
        check requests and carry warmup requests.
        """
        if input_signature is None:
            input_signature = [
                keras.InputSpec(
                    shape=(None, *self.image_shape), dtype="float32"
                )
            ]
        return super().export(
            filepath,
            format=format,
            verbose=verbose,
            input_signature=input_signature,
            **kwargs,
        )

    def _resolve_noise(self, batch_size, noise, seed):
        if noise is None:
            return self.sample_noise(batch_size, seed)
        noise = ops.convert_to_tensor(noise, dtype="float32")
        if not _shape_compatible(noise.shape, self.noise_shape(None)):
            raise ValueError(
                f"noise must have shape [batch, {self.num_steps}, "
                f"{self.latent_size}] ([batch, T, latent_size]); got "
                f"{_shape_string(noise.shape)}."
            )
        return noise

    def _check_image_shape(self, shape):
        if not _shape_compatible(shape, [None, *self.image_shape]):
            height, width, channels = self.image_shape
            raise ValueError(
                f"images must have shape [batch, {height}, {width}, "
                f"{channels}] ([batch, height, width, channels]); got "
                f"{_shape_string(shape)}."
            )

    def get_config(self):
        cell = self.cell
        return {
            "name": self.name,
            "image_shape": list(cell.image_shape),
            "num_steps": self.num_steps,
            "encoder_units": cell.encoder_units,
            "decoder_units": cell.decoder_units,
            "latent_size": cell.latent_size,
            "read_glimpse_size": cell.read_glimpse_size,
            "write_patch_size": cell.write_patch_size,
            "seed": self.seed,
            "implementation": self.implementation,
            "steps_per_iteration": self.steps_per_iteration,
            "precision": cell.precision,
        }


def _batch_major(time_major: Tensor) -> Tensor:
    """[T, batch, ...] -> [batch, T, ...]."""
    rank = len(time_major.shape)
    return ops.transpose(time_major, (1, 0, *range(2, rank)))


def _shape_dims(shape):
    """A shape (tuple, list, tf.TensorShape) as a tuple of ints and None.

    None for a shape of unknown rank.
    """
    try:
        return tuple(None if dim is None else int(dim) for dim in shape)
    except (TypeError, ValueError):
        return None


def _shape_compatible(shape, expected) -> bool:
    """Whether `shape` can be `expected` (None matches any size)."""
    dims = _shape_dims(shape)
    if dims is None or len(dims) != len(expected):
        return False
    return all(
        dim is None or want is None or dim == want
        for dim, want in zip(dims, expected, strict=True)
    )


def _shape_string(shape) -> str:
    """`shape` as (4, 28, 28, 1), None for unknown sizes."""
    dims = _shape_dims(shape)
    return "unknown" if dims is None else str(dims)
