"""The judge: a small digit classifier that reads a canvas place by place.

Instructed drawing (`draw_tf.conditional_model`) is judged by whether each
instructed digit appears at its place and whether the earlier ones
survive. `DigitJudge` is a small convolutional classifier of 30 x 30
crops: an MNIST digit anywhere in a crop shifted by 0-2 pixels, as a
quadrant of an instructed canvas holds it (`draw_tf.instructed_mnist`).

    judge = DigitJudge()
    judge.compile(...); judge.fit(judge_crops(digits, seed=0), labels)
    scores = judge_episodes(judge, images, classes, places)
    scores["instruction_accuracy"]   # [turns]: turn k's digit read as asked
    scores["preservation"]           # [turns]: earlier digits still read

Written in keras.ops: the same on TensorFlow and JAX.
"""

import keras
import numpy as np
from keras import ops

from draw_tf import instructed_mnist

CROP_SIZE = instructed_mnist.QUADRANT_SIZE


@keras.saving.register_keras_serializable(package="draw_tf")
class DigitJudge(keras.Model):
    """Logits [batch, 10] of 30 x 30 x 1 crops in [0, 1]."""

    def __init__(self, filters: int = 32, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.units = filters, units
        self.body = [
            keras.layers.Conv2D(filters, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(2 * filters, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(instructed_mnist.NUM_CLASSES),
        ]
        self.build((None, CROP_SIZE, CROP_SIZE, 1))

    def build(self, input_shape):
        shape = input_shape
        for layer in self.body:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, crops):
        outputs = ops.convert_to_tensor(crops, "float32")
        for layer in self.body:
            outputs = layer(outputs)
        return outputs

    def get_config(self):
        return {"name": self.name, "filters": self.filters, "units": self.units}


def judge_crops(digits: np.ndarray, seed=0) -> np.ndarray:
    """Digits placed in 30 x 30 crops, shifted 0-2 pixels: the judge's data.

    Args:
      digits: uint8 [n, 28, 28] or [n, 28, 28, 1].
      seed: the shifts' seed.

    Returns:
      float32 [n, 30, 30, 1] in [0, 1].
    """
    digits = np.asarray(digits)
    if digits.ndim == 4:
        digits = digits[..., 0]
    rng = np.random.default_rng(seed)
    shifts = rng.integers(
        0, instructed_mnist.MAX_SHIFT + 1, size=(len(digits), 2)
    )
    crops = np.zeros((len(digits), CROP_SIZE, CROP_SIZE, 1), np.float32)
    size = instructed_mnist.DIGIT_SIZE
    for index, (top, left) in enumerate(shifts):
        crops[index, top : top + size, left : left + size, 0] = digits[index]
    return crops / 255.0


def place_crops(images: np.ndarray, places: np.ndarray) -> np.ndarray:
    """The quadrant crops of canvases: [batch, 60, 60, 1] -> [batch, 30, 30, 1].

    Args:
      images: float [batch, 60, 60, 1] canvases in [0, 1].
      places: int [batch] quadrants 0-3.
    """
    crops = np.empty((len(images), CROP_SIZE, CROP_SIZE, 1), np.float32)
    for index, place in enumerate(np.asarray(places)):
        top, left = instructed_mnist.quadrant_corner(int(place))
        crops[index] = images[
            index, top : top + CROP_SIZE, left : left + CROP_SIZE
        ]
    return crops


def judge_episodes(
    judge, images, classes, places, batch_size: int = 500
) -> dict:
    """Instruction accuracy and preservation of drawn episodes, per turn.

    Args:
      judge: a `DigitJudge` (or any model of 30 x 30 crops -> logits).
      images: float [n, turns, 60, 60, 1], the canvas after each turn.
      classes: int [n, turns] the instructed classes.
      places: int [n, turns] the instructed places.
      batch_size: crops per judge pass.

    Returns:
      instruction_accuracy [turns]: the fraction of episodes whose turn-k
      digit is read, after turn k, as its class; preservation [turns]: the
      fraction of the digits of turns < k still read as their classes
      after turn k (1.0 at the first turn, nothing to preserve).
    """
    images = np.asarray(images, np.float32)
    classes, places = np.asarray(classes), np.asarray(places)
    count, turns = classes.shape
    # read[i, k, j]: the class read at turn j's place after turn k.
    read = np.empty((count, turns, turns), np.int64)
    for k in range(turns):
        for j in range(k + 1):
            crops = place_crops(images[:, k], places[:, j])
            logits = np.concatenate(
                [
                    np.asarray(
                        keras.ops.convert_to_numpy(
                            judge(crops[s : s + batch_size])
                        )
                    )
                    for s in range(0, count, batch_size)
                ]
            )
            read[:, k, j] = np.argmax(logits, axis=-1)
    accuracy = np.array(
        [np.mean(read[:, k, k] == classes[:, k]) for k in range(turns)]
    )
    preservation = np.array(
        [
            1.0 if k == 0 else np.mean(read[:, k, :k] == classes[:, :k])
            for k in range(turns)
        ]
    )
    return {"instruction_accuracy": accuracy, "preservation": preservation}
