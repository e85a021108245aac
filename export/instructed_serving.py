"""The serving signatures of an instructed (conditional) DRAW model.

`export_saved_model_lib.export` writes these for a `ConditionalDrawModel`
(--task=instruct) instead of the unconditional model's; method
`tensorflow/serving/predict`, batch dimension -1:

  draw_instructions (serving_default of a model with places):
      classes int64 [batch, turns], places int64 [batch, turns] (a model
      with places only), seeds int64 [batch]
      -> images float32 [batch, turns, H, W, C], the canvas after each
         turn, and write_windows float32 [batch, turns, T, 5] (with write
         attention)
  generate (a class-conditional model, no places; its serving_default):
      classes int64 [batch], seeds int64 [batch]
      -> images float32 [batch, H, W, C]

A seed fixes the noise of one episode: z = stateless_normal([K, T, z],
seed=[seed, 0]) for the model's K turns, of which the first `turns` are
used, so a seed draws the same first turns whatever the number of turns
asked. The model always runs its K turns (instructions padded after the
last), and returns the first `turns`: a turn depends on the turns before
it only. Refused with INVALID_ARGUMENT, naming the input, before any
work: a class outside 0-9, a place outside 0-3, a place repeated within an
episode, more turns than the model's K, classes and places of other
shapes, seeds of another batch, an empty batch or one above the maximum.
"""

import numpy as np
import tensorflow as tf

from draw_tf.conditional_model import ConditionalDrawModel

_NOISE_STREAM = 0


class InstructedServingModule(tf.Module):
    """The serving functions of a `ConditionalDrawModel`.

    Args:
      model: the model with its trained weights.
      max_batch_size: the largest batch a request may ask for.
    """

    def __init__(self, model: ConditionalDrawModel, max_batch_size: int):
        super().__init__(name="instructed_serving")
        self.model = model
        self.max_batch_size = int(max_batch_size)
        # As DrawServingModule: the tf.Variables under the Keras ones.
        self.tf_variables = [variable.value for variable in model.variables]
        self.has_places = bool(model.num_places)
        seeds = tf.TensorSpec([None], tf.int64, name="seeds")
        classes = tf.TensorSpec([None, None], tf.int64, name="classes")
        places = tf.TensorSpec([None, None], tf.int64, name="places")
        if self.has_places:
            self.draw_instructions = tf.function(
                self._draw_instructions,
                input_signature=[classes, places, seeds],
            )
        else:
            self.draw_instructions = tf.function(
                lambda classes, seeds: self._draw_instructions(
                    classes, None, seeds
                ),
                input_signature=[classes, seeds],
            )
            self.generate = tf.function(
                self._generate,
                input_signature=[
                    tf.TensorSpec([None], tf.int64, name="classes"),
                    seeds,
                ],
            )

    def _checked(self, classes, places, seeds):
        """The inputs, once every check above has passed."""
        model = self.model
        batch = tf.shape(classes)[0]
        turns = tf.shape(classes)[1]
        checks = [
            tf.debugging.assert_greater(
                batch,
                0,
                message="classes: the batch is empty; send at "
                "least one episode",
            ),
            tf.debugging.assert_less_equal(
                batch,
                self.max_batch_size,
                message="classes: the batch is above the maximum of "
                f"{self.max_batch_size} episodes set at export "
                "(--max_batch_size); split the request",
            ),
            tf.debugging.assert_greater(
                turns, 0, message="classes: no turns; send at least one"
            ),
            tf.debugging.assert_less_equal(
                turns,
                model.num_turns,
                message=f"classes: at most {model.num_turns} turns, the "
                "turns this model was trained for",
            ),
            tf.debugging.assert_equal(
                tf.shape(seeds)[0],
                batch,
                message="seeds: one seed per episode (the batch of classes)",
            ),
            tf.debugging.assert_greater_equal(
                tf.reduce_min(classes),
                tf.constant(0, tf.int64),
                message="classes: digit classes must be in 0-9",
            ),
            tf.debugging.assert_less(
                tf.reduce_max(classes),
                tf.constant(model.num_classes, tf.int64),
                message="classes: digit classes must be in 0-9",
            ),
        ]
        if places is not None:
            same = tf.reduce_all(tf.equal(tf.shape(places), tf.shape(classes)))
            # Of the places' own turns: a places tensor of another shape is
            # refused by the check above, not by a broadcast here.
            repeated = tf.logical_and(
                tf.equal(places[:, :, None], places[:, None, :]),
                tf.logical_not(tf.eye(tf.shape(places)[1], dtype=tf.bool))[
                    None
                ],
            )
            checks += [
                tf.debugging.assert_equal(
                    same,
                    True,
                    message="places: one place per turn, [batch, turns] as "
                    "classes",
                ),
            ]
            with tf.control_dependencies(checks):
                checks = [
                    tf.debugging.assert_greater_equal(
                        tf.reduce_min(places),
                        tf.constant(0, tf.int64),
                        message="places: quadrants must be in 0-3 (0 "
                        "top-left, 1 top-right, 2 bottom-left, 3 "
                        "bottom-right)",
                    ),
                    tf.debugging.assert_less(
                        tf.reduce_max(places),
                        tf.constant(model.num_places, tf.int64),
                        message="places: quadrants must be in 0-3 (0 "
                        "top-left, 1 top-right, 2 bottom-left, 3 "
                        "bottom-right)",
                    ),
                    tf.debugging.assert_equal(
                        tf.reduce_any(repeated),
                        False,
                        message="places: the places of one episode must be "
                        "distinct",
                    ),
                ]
        with tf.control_dependencies(checks):
            classes = tf.identity(classes)
            places = None if places is None else tf.identity(places)
            seeds = tf.identity(seeds)
        return classes, places, seeds

    def _noise(self, seeds) -> tf.Tensor:
        """[batch] seeds -> [batch, K, T, z] noise, one seed per episode."""
        model = self.model
        shape = [model.num_turns, model.steps_per_turn, model.latent_size]
        return tf.map_fn(
            lambda seed: tf.random.stateless_normal(
                shape,
                seed=tf.stack([seed, tf.constant(_NOISE_STREAM, tf.int64)]),
            ),
            seeds,
            fn_output_signature=tf.TensorSpec(shape, tf.float32),
        )

    def _draw_instructions(self, classes, places, seeds):
        classes, places, seeds = self._checked(classes, places, seeds)
        turns = tf.shape(classes)[1]
        num_turns = self.model.num_turns

        def padded(values):  # [batch, turns] -> [batch, K], a static K
            values = tf.pad(values, [[0, 0], [0, num_turns - turns]])
            return tf.ensure_shape(values, [None, num_turns])

        outputs = self.model.generate(
            padded(classes),
            None if places is None else padded(places),
            noise=self._noise(seeds),
        )
        result = {"images": outputs["images"][:, :turns]}
        if "write_windows" in outputs:
            result["write_windows"] = outputs["write_windows"][:, :turns]
        return result

    def _generate(self, classes, seeds):
        episodes = self._draw_instructions(classes[:, None], None, seeds)
        return {"images": episodes["images"][:, 0]}

    def signatures(self) -> dict:
        """The concrete functions to save, by signature name."""
        draw = self.draw_instructions.get_concrete_function()
        if self.has_places:
            return {"draw_instructions": draw, "serving_default": draw}
        generate = self.generate.get_concrete_function()
        return {
            "draw_instructions": draw,
            "generate": generate,
            "serving_default": generate,
        }


def warmup_inputs(model: ConditionalDrawModel, batch_size: int = 2) -> dict:
    """One small, valid input dict per signature ([batch_size, every turn])."""
    seeds = np.arange(batch_size, dtype=np.int64)
    turns = model.num_turns
    classes = (
        np.arange(batch_size * turns, dtype=np.int64).reshape(batch_size, turns)
        % model.num_classes
    )
    if model.num_places:
        places = np.tile(np.arange(turns, dtype=np.int64), (batch_size, 1))
        draw = {"classes": classes, "places": places, "seeds": seeds}
        return {"draw_instructions": draw, "serving_default": draw}
    generate = {"classes": classes[:, 0], "seeds": seeds}
    return {
        "draw_instructions": {"classes": classes, "seeds": seeds},
        "generate": generate,
        "serving_default": generate,
    }
