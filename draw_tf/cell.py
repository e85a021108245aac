"""One DRAW step: encoder, sampler, decoder and write (paper eqs. 3-8).

For t = 1..T, with c_0 = 0 and all LSTM states zero at t = 0:

    x_hat_t = x - sigmoid(c_{t-1})                          (3)
    r_t     = read(x, x_hat_t, h^dec_{t-1})                 (4)
    h^enc_t = LSTM_enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])     (5)
    z_t     = mu_t + sigma_t * eps_t,  eps_t ~ N(0, I)      (6)
    h^dec_t = LSTM_dec(h^dec_{t-1}, z_t)                    (7)
    c_t     = c_{t-1} + write(h^dec_t)                      (8)

mu_t and log sigma_t are linear in h^enc_t. The noise eps_t is an input of
the step, so the caller decides where randomness comes from (and a fresh
eps_t is used at every step). Generation (Section 2.3) runs eqs. 7-8 alone
with z_t ~ N(0, I); see `DrawCell.generate_step`.
"""

from collections.abc import Sequence
from typing import NamedTuple

import keras
from keras import ops

from draw_tf import attention
from draw_tf.backend import Tensor

# Training precisions: "fp32", or "bf16" (bfloat16 matmuls, see DrawCell).
PRECISIONS = ("fp32", "bf16")
_MATMUL_POLICIES = {"fp32": None, "bf16": "mixed_bfloat16"}


class DrawState(NamedTuple):
    """The recurrent state carried from step t-1 to step t.

    Attributes:
      canvas: [batch, height, width, channels] c_{t-1}, in logit space.
      encoder_hidden: [batch, encoder_units] h^enc_{t-1}.
      encoder_cell: [batch, encoder_units] LSTM cell of the encoder.
      decoder_hidden: [batch, decoder_units] h^dec_{t-1}.
      decoder_cell: [batch, decoder_units] LSTM cell of the decoder.
    """

    canvas: Tensor
    encoder_hidden: Tensor
    encoder_cell: Tensor
    decoder_hidden: Tensor
    decoder_cell: Tensor


@keras.saving.register_keras_serializable(package="draw_tf")
class DrawCell(keras.layers.Layer):
    """The DRAW recurrent cell (eqs. 3-8), a Keras RNN cell.

    It follows the Keras RNN-cell contract (`state_size`,
    `get_initial_state(batch_size)`, `call(inputs, states)`), with
    `inputs = (images, noise)`:

      images: [batch, height, width, channels], x, the same at every step.
      noise: [batch, latent_size], eps_t ~ N(0, I), fresh at every step.

    `call` returns `(outputs, next_state)`, `next_state` a `DrawState` and
    `outputs` a dict of:

      canvas: [batch, height, width, channels] c_t (logits).
      latent: [batch, latent_size] z_t.
      posterior_mean: [batch, latent_size] mu_t.
      posterior_log_stddev: [batch, latent_size] log sigma_t.
      read_window: [batch, 5], only with read attention.
      write_window: [batch, 5], only with write attention.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        encoder_units: int = 256,
        decoder_units: int = 256,
        latent_size: int = 100,
        read_glimpse_size: int | None = 2,
        write_patch_size: int | None = 5,
        precision: str = "fp32",
        frame_size: int | None = None,
        **kwargs,
    ):
        """Creates the cell.

        Args:
          image_shape: (height, width, channels) of the images.
          encoder_units: units of the encoder LSTM, >= 1.
          decoder_units: units of the decoder LSTM, >= 1.
          latent_size: |z|, size of each z_t, >= 1.
          read_glimpse_size: N of the attentive read, 1..max(height, width);
            None reads the whole image (no read attention, eq. 17).
          write_patch_size: N of the attentive write, 1..max(height, width);
            None writes the whole canvas (no write attention, eq. 18).
          precision: "fp32", or "bf16": the LSTMs and the posterior compute
            in bfloat16 (Keras' "mixed_bfloat16" policy: float32 weights,
            bfloat16 matmuls and gates) and hand float32 back; attention,
            write, canvas and loss stay float32. Not part of the variables:
            weights trained in one precision load in the other.
          frame_size: with both attentions, place the windows in a square frame
            of this side whose corner is given at each step (the
            instructed quadrant of `ConditionalDrawCell`); None (DRAW's):
            on the whole image.
          **kwargs: base Layer arguments.

        Raises:
          ValueError: if an argument is out of its range.
        """
        super().__init__(**kwargs)
        self.image_shape = attention.validate_image_shape(image_shape)
        self.encoder_units = attention.validate_positive_int(
            "encoder_units", encoder_units
        )
        self.decoder_units = attention.validate_positive_int(
            "decoder_units", decoder_units
        )
        self.latent_size = attention.validate_positive_int(
            "latent_size", latent_size
        )
        self.read_glimpse_size = read_glimpse_size
        self.write_patch_size = write_patch_size
        if precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {PRECISIONS}; got {precision!r}."
            )
        self.precision = precision
        self.frame_size = attention.validate_frame_size(
            frame_size, self.image_shape
        )
        if frame_size is not None and None in (
            read_glimpse_size,
            write_patch_size,
        ):
            raise ValueError(
                "frame_size places the read and write windows: it needs both "
                "attentions (read_glimpse_size and write_patch_size)."
            )
        matmul_policy = _MATMUL_POLICIES[precision]
        if read_glimpse_size is None:
            self.read_layer = attention.FullImageRead(
                self.image_shape, name="read"
            )
        else:
            self.read_layer = attention.AttentiveRead(
                read_glimpse_size,
                self.image_shape,
                frame_size=frame_size,
                name="read",
            )
        if write_patch_size is None:
            self.write_layer = attention.DenseWrite(
                self.image_shape, name="write"
            )
        else:
            self.write_layer = attention.AttentiveWrite(
                write_patch_size,
                self.image_shape,
                frame_size=frame_size,
                name="write",
            )
        self.encoder = keras.layers.LSTMCell(
            encoder_units, name="encoder", dtype=matmul_policy
        )
        # mu_t and log sigma_t, both linear in h^enc_t (eq. 6).
        self.posterior = keras.layers.Dense(
            2 * latent_size, name="posterior", dtype=matmul_policy
        )
        self.decoder = keras.layers.LSTMCell(
            decoder_units, name="decoder", dtype=matmul_policy
        )

    @property
    def read_attention(self) -> bool:
        """Whether the read uses selective attention."""
        return self.read_glimpse_size is not None

    @property
    def write_attention(self) -> bool:
        """Whether the write uses selective attention."""
        return self.write_patch_size is not None

    @property
    def state_size(self):
        """Sizes of the `DrawState` fields, for the Keras RNN contract."""
        return DrawState(
            canvas=tuple(self.image_shape),
            encoder_hidden=self.encoder_units,
            encoder_cell=self.encoder_units,
            decoder_hidden=self.decoder_units,
            decoder_cell=self.decoder_units,
        )

    def build(self, input_shape=None):
        """Builds every sub-layer; all shapes follow from the config."""
        decoder_hidden_shape = (None, self.decoder_units)
        if self.read_attention:
            self.read_layer.build(decoder_hidden_shape=decoder_hidden_shape)
        self.encoder.build(
            (None, self.read_layer.output_size + self.decoder_units)
        )
        self.posterior.build((None, self.encoder_units))
        self.decoder.build((None, self.latent_size))
        self.write_layer.build(decoder_hidden_shape)

    def get_initial_state(self, batch_size) -> DrawState:
        """All zeros: c_0 = 0 and zero LSTM states (Section 2).

        Args:
          batch_size: int or scalar int tensor.

        Returns:
          A `DrawState` of zeros.
        """
        return DrawState(
            canvas=ops.zeros((batch_size, *self.image_shape)),
            encoder_hidden=ops.zeros((batch_size, self.encoder_units)),
            encoder_cell=ops.zeros((batch_size, self.encoder_units)),
            decoder_hidden=ops.zeros((batch_size, self.decoder_units)),
            decoder_cell=ops.zeros((batch_size, self.decoder_units)),
        )

    def call(self, inputs, states):
        images, noise = inputs
        previous = DrawState(*states)
        outputs = {}
        error_images = images - ops.sigmoid(previous.canvas)  # eq. 3
        if self.read_attention:  # eq. 4
            read, outputs["read_window"] = self.read_layer(
                images, error_images, previous.decoder_hidden
            )
        else:
            read = self.read_layer(images, error_images)
        encoder_hidden, (_, encoder_cell) = self.encoder(  # eq. 5
            ops.concatenate([read, previous.decoder_hidden], axis=-1),
            [previous.encoder_hidden, previous.encoder_cell],
        )
        encoder_hidden, encoder_cell = self._float32(
            encoder_hidden, encoder_cell
        )
        (posterior,) = self._float32(self.posterior(encoder_hidden))
        posterior_mean, posterior_log_stddev = ops.split(posterior, 2, axis=-1)
        latent = posterior_mean + ops.exp(posterior_log_stddev) * noise  # eq. 6
        step_outputs, decoder_state = self._decode_and_write(latent, previous)
        outputs.update(step_outputs)
        outputs.update(
            latent=latent,
            posterior_mean=posterior_mean,
            posterior_log_stddev=posterior_log_stddev,
        )
        next_state = DrawState(
            canvas=outputs["canvas"],
            encoder_hidden=encoder_hidden,
            encoder_cell=encoder_cell,
            decoder_hidden=decoder_state[0],
            decoder_cell=decoder_state[1],
        )
        return outputs, next_state

    def generate_step(self, latent, states):
        """One generation step, the decoder alone (eqs. 7-8).

        Args:
          latent: [batch, latent_size] z_t, drawn from the prior N(0, I).
          states: the previous `DrawState`; its encoder fields are unused
            and passed through.

        Returns:
          (outputs, next_state): `outputs` has `canvas` and, with write
          attention, `write_window`; `next_state` is a `DrawState`.
        """
        previous = DrawState(*states)
        outputs, decoder_state = self._decode_and_write(latent, previous)
        next_state = previous._replace(
            canvas=outputs["canvas"],
            decoder_hidden=decoder_state[0],
            decoder_cell=decoder_state[1],
        )
        return outputs, next_state

    def decoder_step(self, latent, decoder_state):
        """Eq. 7: LSTM_dec one step, float32 in and out.

        Args:
          latent: [batch, latent_size] z_t.
          decoder_state: [h^dec_{t-1}, decoder cell], each [batch, units].

        Returns:
          (h^dec_t, [h^dec_t, decoder cell]).
        """
        hidden, (_, cell) = self.decoder(latent, list(decoder_state))
        hidden, cell = self._float32(hidden, cell)
        return hidden, [hidden, cell]

    def _float32(self, *tensors):
        """The sub-layers' outputs back in float32 (a no-op in fp32)."""
        if self.precision == "fp32":
            return tensors
        return tuple(ops.cast(tensor, "float32") for tensor in tensors)

    def _decode_and_write(
        self, latent, previous: DrawState, frame_corners=None
    ):
        """Eqs. 7-8: returns ({canvas[, write_window]}, (h^dec_t, cell)).

        `frame_corners` [batch, 2]: the write's frame, with `frame_size`.
        """
        decoder_hidden, (_, decoder_cell) = self.decoder_step(
            latent, [previous.decoder_hidden, previous.decoder_cell]
        )
        outputs = {}
        if self.write_attention:
            update, outputs["write_window"] = self.write_layer(
                decoder_hidden, frame_corners
            )
        else:
            update = self.write_layer(decoder_hidden)
        outputs["canvas"] = previous.canvas + update  # eq. 8
        return outputs, (decoder_hidden, decoder_cell)

    def get_config(self):
        config = super().get_config()
        config.update(
            image_shape=list(self.image_shape),
            encoder_units=self.encoder_units,
            decoder_units=self.decoder_units,
            latent_size=self.latent_size,
            read_glimpse_size=self.read_glimpse_size,
            write_patch_size=self.write_patch_size,
            precision=self.precision,
        )
        if self.frame_size is not None:
            config.update(frame_size=self.frame_size)
        return config
