"""DRAW that follows instructions: one canvas, drawn turn by turn.

An episode is K turns; turn k gives an instruction (a digit class and,
on the instructed task, a place) and its target image, the canvas as it
should be after that turn (`draw_tf.instructed_mnist`). The model runs its
`ConditionalDrawCell` T steps per turn with the turn's instruction
embedded as e_k = E_class[class_k] + E_place[place_k]; the canvas carries
over from turn to turn (the LSTM states too, with `carry_states`):

    for k = 1..K:
      for t = 1..T:  DRAW's step (eqs. 3-8) reading x_k, with e_k (5', 7')
      p(x_k | canvas after turn k) = Bernoulli(sigmoid(c_{k,T}))

    loss = sum_k -log p(x_k | c_{k,T}) + sum_k sum_t KL(q(z_kt) || N(0, I))

in nats per episode (`losses` terms per turn: `episode_terms`). With K = 1
and no places it is class-conditional DRAW ("draw a 7"). With
`place_frames` each turn reads and writes its instructed quadrant alone
(eqs. 22-24 on a frame of half the canvas, at the quadrant's corner) and
draws there from c_0 = 0, on a canvas that starts from a learned blank.
Generation
runs the decoder alone, z ~ N(0, I), the instructions given:

    model = ConditionalDrawModel((60, 60, 1), num_turns=3, num_places=4)
    outputs = model({"targets": x, "classes": c, "places": p})
    model.generate(classes=c, places=p, seed=[0, 1])["images"]
    # [batch, turns, 60, 60, 1]: the canvas after every turn

Written in keras.ops: the same on TensorFlow and JAX.
"""

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from draw_tf import attention, backend, losses, unrolling
from draw_tf import cell as cell_lib
from draw_tf.backend import Tensor
from draw_tf.conditional_cell import ConditionalDrawCell
from draw_tf.model import standard_normal_noise

# c_0 of a model with place_frames at the start of training: sigmoid
# 1.2e-4, a blank canvas (binarized MNIST's background is 0).
INITIAL_CANVAS_LOGIT = -9.0


@keras.saving.register_keras_serializable(package="draw_tf")
class ConditionalDrawModel(keras.Model):
    """DRAW told what to draw, over K turns on one canvas.

    `model(inputs, noise=None, seed=None, return_canvases=False)`: inputs
    a dict of targets (float [batch, turns, H, W, C] in [0, 1], the canvas
    wanted after each turn), classes (int [batch, turns]) and, with
    places, places (int [batch, turns]); noise [batch, turns, T,
    latent_size]. Returns a dict:

      canvas_logits: [batch, turns, H, W, C], the canvas after each turn.
      posterior_mean, posterior_log_stddev, latents: [batch, turns, T,
        latent_size].
      read_windows, write_windows: [batch, turns, T, 5], with attention.
      canvases: [batch, turns, T, H, W, C], sigmoid(c) after every step,
        with `return_canvases=True`.

    `fit(inputs)` minimises `episode_terms`' negative_elbo (nats per
    episode).
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        num_turns: int = 3,
        num_places: int = 4,
        num_classes: int = 10,
        steps_per_turn: int = 16,
        encoder_units: int = 256,
        decoder_units: int = 256,
        latent_size: int = 100,
        read_glimpse_size: int | None = 2,
        write_patch_size: int | None = 5,
        condition_size: int = 32,
        carry_states: bool = True,
        place_frames: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        """Creates and builds the model.

        Args:
          image_shape: (height, width, channels) of the canvas.
          num_turns: the most turns of an episode, >= 1.
          num_places: places an instruction can name; 0 for none (the
            class-conditional model).
          num_classes: digit classes, >= 1.
          steps_per_turn: T, DRAW steps per turn, >= 1.
          encoder_units: units of the encoder LSTM (as `DrawModel`).
          decoder_units: units of the decoder LSTM.
          latent_size: |z|.
          read_glimpse_size: N of the read, or None for no read attention.
          write_patch_size: N of the write, or None for no write attention.
          condition_size: the size of the instruction's embedding e.
          carry_states: carry the LSTM states from turn to turn (the
            canvas always carries over); False starts each turn's LSTMs
            from zero.
          place_frames: each turn reads and writes its instructed
            quadrant alone (a frame of half the canvas' side: eqs. 22-24
            applied to it, the filters covering it alone) and draws there
            from DRAW's c_0 = 0; the canvas starts from a learned blank
            (`initial_canvas`, initialised to INITIAL_CANVAS_LOGIT), which
            the quadrants no turn draws in keep. Needs the 4 places and
            attention.
          seed: seed of the fallback noise generator.
          **kwargs: base Model arguments.

        Raises:
          ValueError: if an argument is out of its range.
        """
        super().__init__(**kwargs)
        self.num_turns = attention.validate_positive_int("num_turns", num_turns)
        if num_places < 0:
            raise ValueError(f"num_places must be >= 0; got {num_places}.")
        self.num_places = num_places
        self.num_classes = attention.validate_positive_int(
            "num_classes", num_classes
        )
        self.steps_per_turn = attention.validate_positive_int(
            "steps_per_turn", steps_per_turn
        )
        self.carry_states = bool(carry_states)
        self.place_frames = bool(place_frames)
        self.seed = seed
        image_shape = attention.validate_image_shape(image_shape)
        frame_size = None
        if self.place_frames:
            height, width, _ = image_shape
            if num_places != 4 or height != width or height % 2:
                raise ValueError(
                    "place_frames needs the 4 quadrants of a square canvas "
                    f"of even side; got num_places={num_places}, "
                    f"image_shape={image_shape}."
                )
            if read_glimpse_size is None or write_patch_size is None:
                raise ValueError(
                    "place_frames needs read and write attention "
                    "(read_glimpse_size and write_patch_size)."
                )
            frame_size = height // 2
        self.cell = ConditionalDrawCell(
            image_shape,
            condition_size,
            encoder_units=encoder_units,
            decoder_units=decoder_units,
            latent_size=latent_size,
            read_glimpse_size=read_glimpse_size,
            write_patch_size=write_patch_size,
            frame_size=frame_size,
            name="draw_cell",
        )
        self.class_embedding = keras.layers.Embedding(
            num_classes, condition_size, name="class_embedding"
        )
        self.place_embedding = (
            keras.layers.Embedding(
                num_places, condition_size, name="place_embedding"
            )
            if num_places
            else None
        )
        self.seed_generator = keras.random.SeedGenerator(
            seed, name="noise_seed_generator"
        )
        self.reconstruction_loss_tracker = keras.metrics.Mean(
            name="reconstruction_loss"
        )
        self.latent_loss_tracker = keras.metrics.Mean(name="latent_loss")
        self.initial_canvas = None
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
        self.cell.build()
        self.class_embedding.build((None,))
        if self.place_embedding is not None:
            self.place_embedding.build((None,))
        if self.place_frames and self.initial_canvas is None:
            self.initial_canvas = self.add_weight(
                shape=self.image_shape,
                initializer=keras.initializers.Constant(INITIAL_CANVAS_LOGIT),
                name="initial_canvas",
            )

    def frame_corners(self, places) -> Tensor:
        """The (x, y) corners of the places' quadrants: [..., 2] float32.

        Place p is quadrant p of the canvas: 0 top-left, 1 top-right,
        2 bottom-left, 3 bottom-right (`draw_tf.instructed_mnist`).
        """
        places = ops.cast(places, "int32")
        side = self.image_shape[0] // 2
        return ops.cast(
            ops.stack([(places % 2) * side, (places // 2) * side], axis=-1),
            "float32",
        )

    def initial_state(self, batch) -> cell_lib.DrawState:
        """Zero LSTM states and c_0: zero, or `initial_canvas`."""
        state = self.cell.get_initial_state(batch)
        if self.initial_canvas is None:
            return state
        canvas = ops.broadcast_to(
            ops.expand_dims(self.initial_canvas, 0), ops.shape(state.canvas)
        )
        return state._replace(canvas=canvas)

    def noise_shape(self, batch_size, turns) -> list:
        """[batch_size, turns, T, latent_size], the shape of `noise`."""
        return [batch_size, turns, self.steps_per_turn, self.latent_size]

    def condition(self, classes, places=None) -> Tensor:
        """E = E_class[classes] + E_place[places]: [batch, turns, size].

        Raises:
          ValueError: for NumPy (or list) classes or places out of range,
            as `generate` is given them (an embedding lookup out of range
            is not an error on every backend); tensors, as a call gets
            them from Keras, are the caller's to check, as the serving
            signatures do.
        """
        _check_range("classes", classes, self.num_classes)
        if places is not None and self.place_embedding is not None:
            _check_range("places", places, self.num_places)
        embedded = self.class_embedding(ops.cast(classes, "int32"))
        if self.place_embedding is not None:
            if places is None:
                raise ValueError(
                    "this model draws at places: pass places [batch, turns]."
                )
            embedded = embedded + self.place_embedding(
                ops.cast(places, "int32")
            )
        return embedded

    def call(self, inputs, noise=None, seed=None, return_canvases=False):
        targets = ops.convert_to_tensor(inputs["targets"], "float32")
        turns = self._check_turns(targets.shape[1])
        batch = ops.shape(targets)[0]
        conditions = self.condition(inputs["classes"], inputs.get("places"))
        corners = self._corners(inputs.get("places"))
        noise = self._noise(batch, turns, noise, seed)
        keys = unrolling.step_keys(self.cell, return_canvases)
        state = self.initial_state(batch)
        per_turn = {key: [] for key in keys}
        canvas_logits = []
        for turn in range(turns):
            if turn and not self.carry_states:
                state = self.cell.get_initial_state(batch)._replace(
                    canvas=state.canvas
                )
            if corners is not None:
                state = self._clear_frame(state, corners[:, turn])
            images = targets[:, turn]
            given = (conditions[:, turn],) + (
                () if corners is None else (corners[:, turn],)
            )

            def step(carried, step_noise, images=images, given=given):
                outputs, carried = self.cell(
                    (images, step_noise, *given),
                    cell_lib.DrawState(*carried),
                )
                return tuple(carried), {key: outputs[key] for key in keys}

            carried, steps = _scan(
                step, tuple(state), ops.transpose(noise[:, turn], (1, 0, 2))
            )
            state = cell_lib.DrawState(*carried)
            canvas_logits.append(state.canvas)
            for key in keys:
                per_turn[key].append(_batch_major(steps[key]))
        outputs = {"canvas_logits": ops.stack(canvas_logits, axis=1)}
        names = {
            "latent": "latents",
            "posterior_mean": "posterior_mean",
            "posterior_log_stddev": "posterior_log_stddev",
            "read_window": "read_windows",
            "write_window": "write_windows",
            "canvas": "canvases",
        }
        for key in keys:
            outputs[names[key]] = ops.stack(per_turn[key], axis=1)
        if return_canvases:
            outputs["canvases"] = ops.sigmoid(outputs["canvases"])
        return outputs

    def generate(self, classes, places=None, noise=None, seed=None) -> dict:
        """Draws episodes from instructions: the decoder alone, z ~ N(0, I).

        Args:
          classes: int [batch, turns].
          places: int [batch, turns], with places.
          noise: optional [batch, turns, T, latent_size].
          seed: optional [2] int stateless seed of the noise.

        Returns:
          A dict of images [batch, turns, H, W, C] (sigmoid of the canvas
          after each turn), canvases [batch, turns, T, H, W, C] and, with
          write attention, write_windows [batch, turns, T, 5].
        """
        conditions = self.condition(classes, places)
        corners = self._corners(places)
        turns = self._check_turns(conditions.shape[1])
        batch = ops.shape(conditions)[0]
        noise = self._noise(batch, turns, noise, seed)
        state = self.initial_state(batch)
        images, canvases, windows = [], [], []
        for turn in range(turns):
            if turn and not self.carry_states:
                state = self.cell.get_initial_state(batch)._replace(
                    canvas=state.canvas
                )
            if corners is not None:
                state = self._clear_frame(state, corners[:, turn])
            given = (conditions[:, turn],) + (
                () if corners is None else (corners[:, turn],)
            )

            def step(carried, latent, given=given):
                outputs, carried = self.cell.generate_step(
                    (latent, *given), cell_lib.DrawState(*carried)
                )
                kept = {"canvas": outputs["canvas"]}
                if self.cell.write_attention:
                    kept["write_window"] = outputs["write_window"]
                return tuple(carried), kept

            carried, steps = _scan(
                step, tuple(state), ops.transpose(noise[:, turn], (1, 0, 2))
            )
            state = cell_lib.DrawState(*carried)
            images.append(ops.sigmoid(state.canvas))
            canvases.append(ops.sigmoid(_batch_major(steps["canvas"])))
            if self.cell.write_attention:
                windows.append(_batch_major(steps["write_window"]))
        outputs = {
            "images": ops.stack(images, axis=1),
            "canvases": ops.stack(canvases, axis=1),
        }
        if windows:
            outputs["write_windows"] = ops.stack(windows, axis=1)
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The loss `fit()` minimises: the negative ELBO, nats per episode.

        `x` is the inputs dict (targets, classes, places); `y` unused.
        """
        del y, training
        if y_pred is None:
            y_pred = self(x)
        terms = episode_terms(x["targets"], y_pred)
        self.reconstruction_loss_tracker.update_state(
            terms["reconstruction_loss"], sample_weight=sample_weight
        )
        self.latent_loss_tracker.update_state(
            terms["latent_loss"], sample_weight=sample_weight
        )
        return losses.weighted_mean(terms["negative_elbo"], sample_weight)

    def _clear_frame(self, state, corners) -> cell_lib.DrawState:
        """The turn's quadrant set to DRAW's c_0 = 0, the rest kept.

        The state's canvas is [batch, H, W, C]; corners [batch, 2] (x, y).
        Before its turn a quadrant holds the blank `initial_canvas` (no
        other turn writes there), so each turn draws its digit from zero,
        as the class-conditional model does.
        """
        height, width, _ = self.image_shape
        side = height // 2

        def inside(start, size):  # [batch, size]: 0-based pixels in frame
            pixels = ops.arange(size, dtype="float32")
            start = start[:, None]
            return ops.logical_and(pixels >= start, pixels < start + side)

        frame = ops.logical_and(
            inside(corners[:, 1], height)[:, :, None],
            inside(corners[:, 0], width)[:, None, :],
        )[..., None]
        return state._replace(
            canvas=ops.where(frame, ops.zeros_like(state.canvas), state.canvas)
        )

    def _corners(self, places):
        """Each turn's frame corners [batch, turns, 2], or None."""
        return self.frame_corners(places) if self.place_frames else None

    def _check_turns(self, turns) -> int:
        if turns is None or not 1 <= turns <= self.num_turns:
            raise ValueError(
                f"episodes of 1 to {self.num_turns} turns; got {turns}."
            )
        return int(turns)

    def _noise(self, batch, turns, noise, seed):
        if noise is not None:
            return ops.convert_to_tensor(noise, "float32")
        if seed is None:
            seed = self.seed_generator.next()
        return standard_normal_noise(self.noise_shape(batch, turns), seed)

    def get_config(self):
        cell = self.cell
        return {
            "name": self.name,
            "image_shape": list(cell.image_shape),
            "num_turns": self.num_turns,
            "num_places": self.num_places,
            "num_classes": self.num_classes,
            "steps_per_turn": self.steps_per_turn,
            "encoder_units": cell.encoder_units,
            "decoder_units": cell.decoder_units,
            "latent_size": cell.latent_size,
            "read_glimpse_size": cell.read_glimpse_size,
            "write_patch_size": cell.write_patch_size,
            "condition_size": cell.condition_size,
            "carry_states": self.carry_states,
            "place_frames": self.place_frames,
            "seed": self.seed,
        }


def episode_terms(targets, outputs) -> dict[str, Tensor]:
    """The loss terms of every episode of a batch, per turn and in all.

    Args:
      targets: [batch, turns, H, W, C] x_k in [0, 1].
      outputs: `ConditionalDrawModel.__call__`'s dict.

    Returns:
      In nats: negative_elbo, reconstruction_loss and latent_loss [batch]
      (summed over turns), and reconstruction_loss_per_turn and
      latent_loss_per_turn [batch, turns].
    """
    targets = ops.convert_to_tensor(targets, "float32")
    logits = outputs["canvas_logits"]
    shape = ops.shape(logits)
    batch, turns = shape[0], shape[1]
    image_shape = tuple(logits.shape[2:])
    reconstruction = ops.reshape(
        losses.reconstruction_loss(
            ops.reshape(targets, (-1, *image_shape)),
            ops.reshape(logits, (-1, *image_shape)),
        ),
        (batch, turns),
    )
    mean = outputs["posterior_mean"]
    steps, latent_size = mean.shape[2], mean.shape[3]
    latent = ops.reshape(
        ops.sum(
            losses.latent_loss_per_step(
                ops.reshape(mean, (-1, steps, latent_size)),
                ops.reshape(
                    outputs["posterior_log_stddev"], (-1, steps, latent_size)
                ),
            ),
            axis=-1,
        ),
        (batch, turns),
    )
    return {
        "negative_elbo": ops.sum(reconstruction + latent, axis=1),
        "reconstruction_loss": ops.sum(reconstruction, axis=1),
        "latent_loss": ops.sum(latent, axis=1),
        "reconstruction_loss_per_turn": reconstruction,
        "latent_loss_per_turn": latent,
    }


def _scan(step, carry, xs):
    """`ops.scan(step, carry, xs)`; on TensorFlow a loop unrolled in Python.

    Keras' TensorFlow scan stores the per-step outputs in arrays shaped
    like the carry, so outputs of other shapes (the windows, z) fail there.

    Returns:
      (the last carry, the per-step outputs stacked, [T, ...]).
    """
    if not backend.is_tensorflow():
        return ops.scan(step, carry, xs)
    per_step = []
    for t in range(xs.shape[0]):
        carry, outputs = step(carry, xs[t])
        per_step.append(outputs)
    return carry, {
        key: ops.stack([outputs[key] for outputs in per_step])
        for key in per_step[0]
    }


def _check_range(name: str, values, size: int) -> None:
    """Raises ValueError if concrete `values` fall outside [0, size)."""
    if not isinstance(values, (np.ndarray, list, tuple)):
        return
    values = np.asarray(values)
    if values.size and (values.min() < 0 or values.max() >= size):
        raise ValueError(
            f"{name} must be in 0-{size - 1}; got values from "
            f"{values.min()} to {values.max()}."
        )


def _batch_major(time_major: Tensor) -> Tensor:
    """[T, batch, ...] -> [batch, T, ...]."""
    rank = len(time_major.shape)
    return ops.transpose(time_major, (1, 0, *range(2, rank)))
