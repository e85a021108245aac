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
import tensorflow as tf

from draw_tf import attention, unrolling
from draw_tf import cell as cell_lib

IMPLEMENTATIONS = ("fast", "reference")


def standard_normal_noise(shape, seed) -> tf.Tensor:
    """Stateless N(0, I) noise, different on every distribution replica.

    Args:
      shape: the noise shape, e.g. [batch, T, latent_size].
      seed: [2] int32 or int64 stateless seed.

    Returns:
      float32 tensor of `shape`. The same seed gives the same noise, except
      that under a strategy with several replicas the replica id is folded
      into the seed first.
    """
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
            name="draw_cell",
        )
        self.seed_generator = keras.random.SeedGenerator(
            seed, name="noise_seed_generator"
        )
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

    def sample_noise(self, batch_size, seed=None) -> tf.Tensor:
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
        images = tf.convert_to_tensor(images, dtype=tf.float32)
        self._check_image_shape(images.shape)
        batch_size = tf.shape(images)[0]
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
            outputs["canvases"] = tf.sigmoid(_batch_major(steps["canvas"]))
        return outputs

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
            batch_size = tf.shape(noise)[0]
        latents = self._resolve_noise(batch_size, noise, seed)
        if self.implementation == "fast":
            steps = unrolling.generate(self.cell, latents)
        else:
            steps = unrolling.reference_generate(self.cell, latents)
        outputs = {
            "images": tf.sigmoid(steps["canvas_logits"]),
            "canvases": tf.sigmoid(_batch_major(steps["canvas"])),
        }
        if self.cell.write_attention:
            outputs["write_windows"] = _batch_major(steps["write_window"])
        return outputs

    def _resolve_noise(self, batch_size, noise, seed):
        if noise is None:
            return self.sample_noise(batch_size, seed)
        noise = tf.convert_to_tensor(noise, dtype=tf.float32)
        expected = self.noise_shape(None)
        if noise.shape.rank != 3 or not noise.shape[1:].is_compatible_with(
            expected[1:]
        ):
            raise ValueError(
                f"noise must have shape [batch, {self.num_steps}, "
                f"{self.latent_size}] ([batch, T, latent_size]); got "
                f"{noise.shape}."
            )
        return noise

    def _check_image_shape(self, shape):
        shape = tf.TensorShape(shape)
        expected = tf.TensorShape([None, *self.image_shape])
        if not shape.is_compatible_with(expected):
            height, width, channels = self.image_shape
            raise ValueError(
                f"images must have shape [batch, {height}, {width}, "
                f"{channels}] ([batch, height, width, channels]); got {shape}."
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
        }


def _batch_major(time_major: tf.Tensor) -> tf.Tensor:
    """[T, batch, ...] -> [batch, T, ...]."""
    rank = time_major.shape.rank
    return tf.transpose(time_major, [1, 0, *range(2, rank)])
