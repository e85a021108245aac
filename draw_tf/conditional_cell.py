"""A DRAW step told what to draw: the conditional cell (eqs. 3-8 plus e).

The instruction of the current turn, embedded as e (`[batch,
condition_size]`), enters the encoder and the decoder at every step:

    h^enc_t = LSTM_enc(h^enc_{t-1}, [r_t, h^dec_{t-1}, e])      (5')
    h^dec_t = LSTM_dec(h^dec_{t-1}, [z_t, e])                   (7')

Everything else is DRAW's step (`draw_tf.cell.DrawCell`): the read, the
posterior, the write, the canvas. With e the generation of a class or an
instruction: z_t ~ N(0, I) and e given.

With `frame_size` (the model's `place_frames`) each step is also given
the corner of the instructed place, and the read and write windows are
placed relative to it (`draw_tf.attention.window_from_head_outputs`).
"""

import keras
from keras import ops

from draw_tf import attention
from draw_tf import cell as cell_lib


@keras.saving.register_keras_serializable(package="draw_tf")
class ConditionalDrawCell(cell_lib.DrawCell):
    """`DrawCell` with a condition e at every step of the encoder and decoder.

    `call((images, noise, condition), states)`: condition [batch,
    condition_size]; the rest as `DrawCell`. `generate_step((latent,
    condition), states)` likewise. With a `frame_size` the inputs end
    with frame_corners [batch, 2], the (x, y) pixels before the frame.
    """

    def __init__(self, image_shape, condition_size: int, **kwargs):
        """Creates the cell.

        Args:
          image_shape: (height, width, channels).
          condition_size: the size of e, >= 1.
          **kwargs: `DrawCell`'s arguments.
        """
        super().__init__(image_shape, **kwargs)
        self.condition_size = attention.validate_positive_int(
            "condition_size", condition_size
        )

    def build(self, input_shape=None):
        decoder_hidden_shape = (None, self.decoder_units)
        if self.read_attention:
            self.read_layer.build(decoder_hidden_shape=decoder_hidden_shape)
        self.encoder.build(
            (
                None,
                self.read_layer.output_size
                + self.decoder_units
                + self.condition_size,
            )
        )
        self.posterior.build((None, self.encoder_units))
        self.decoder.build((None, self.latent_size + self.condition_size))
        self.write_layer.build(decoder_hidden_shape)

    def call(self, inputs, states):
        images, noise, condition, *frame = inputs
        frame_corners = self._frame_corners(frame)
        previous = cell_lib.DrawState(*states)
        outputs = {}
        error_images = images - ops.sigmoid(previous.canvas)  # eq. 3
        if self.read_attention:  # eq. 4
            read, outputs["read_window"] = self.read_layer(
                images, error_images, previous.decoder_hidden, frame_corners
            )
        else:
            read = self.read_layer(images, error_images)
        encoder_hidden, (_, encoder_cell) = self.encoder(  # eq. 5'
            ops.concatenate([read, previous.decoder_hidden, condition], -1),
            [previous.encoder_hidden, previous.encoder_cell],
        )
        encoder_hidden, encoder_cell = self._float32(
            encoder_hidden, encoder_cell
        )
        (posterior,) = self._float32(self.posterior(encoder_hidden))
        posterior_mean, posterior_log_stddev = ops.split(posterior, 2, axis=-1)
        latent = posterior_mean + ops.exp(posterior_log_stddev) * noise  # eq. 6
        step_outputs, decoder_state = self._decode_and_write(
            ops.concatenate([latent, condition], -1), previous, frame_corners
        )
        outputs.update(step_outputs)
        outputs.update(
            latent=latent,
            posterior_mean=posterior_mean,
            posterior_log_stddev=posterior_log_stddev,
        )
        return outputs, cell_lib.DrawState(
            canvas=outputs["canvas"],
            encoder_hidden=encoder_hidden,
            encoder_cell=encoder_cell,
            decoder_hidden=decoder_state[0],
            decoder_cell=decoder_state[1],
        )

    def generate_step(self, inputs, states):
        """One generation step: (z_t, e[, frame_corners]) -> (7', 8)."""
        latent, condition, *frame = inputs
        previous = cell_lib.DrawState(*states)
        outputs, decoder_state = self._decode_and_write(
            ops.concatenate([latent, condition], -1),
            previous,
            self._frame_corners(frame),
        )
        next_state = previous._replace(
            canvas=outputs["canvas"],
            decoder_hidden=decoder_state[0],
            decoder_cell=decoder_state[1],
        )
        return outputs, next_state

    def _frame_corners(self, frame: list):
        """The frame corners ending the inputs: given exactly with frames."""
        if bool(frame) != (self.frame_size is not None):
            raise ValueError(
                "the inputs end with frame_corners [batch, 2] exactly when "
                f"the cell has a frame_size; frame_size={self.frame_size}."
            )
        return frame[0] if frame else None

    def get_config(self):
        config = super().get_config()
        config.update(condition_size=self.condition_size)
        return config
