"""The judge: a small digit classifier that reads a canvas place by place.

Instructed drawing (`draw_tf.conditional_model`) is judged by whether each
instructed digit appears at its place and whether the earlier ones
survive. `DigitJudge` is a small convolutional classifier of 30 x 30
crops: an MNIST digit anywhere in a crop shifted by 0-2 pixels, as a
quadrant of an instructed canvas holds it (`draw_tf.instructed_mnist`).

    judge = train_judge(digits, labels, epochs=4)     # or, shipped:
    judge = draw_tf.pretrained.load("digit_judge")
    accuracy(judge, judge_crops(test_digits, seed=1), test_labels)
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
    """Logits [batch, 10] of 30 x 30 x 1 crops in [0, 1].

    Two pairs of 3 x 3 convolutions (`filters`, then 2 x `filters`), each
    pair max-pooled, a dense layer of `units`; dropout 0.5 in training.
    """

    def __init__(self, filters: int = 32, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.units = filters, units
        self.body = [
            keras.layers.Conv2D(filters, 3, activation="relu"),
            keras.layers.Conv2D(filters, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(2 * filters, 3, activation="relu"),
            keras.layers.Conv2D(2 * filters, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(instructed_mnist.NUM_CLASSES),
        ]
        self.build((None, CROP_SIZE, CROP_SIZE, 1))

    def build(self, input_shape):
        shape = input_shape
        for layer in self.body:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, crops, training=False):
        outputs = ops.convert_to_tensor(crops, "float32")
        for layer in self.body:
            outputs = layer(outputs, training=training)
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


def training_crops(digits: np.ndarray, seed) -> np.ndarray:
    """`judge_crops` of grey digits, half of them binarized: one epoch's data.

    Drawn canvases are grey (a sigmoid) and training targets are binary:
    the judge sees both.

    Args:
      digits: uint8 [n, 28, 28(, 1)].
      seed: a sequence of ints: the shifts and the binarization.

    Returns:
      float32 [n, 30, 30, 1] in [0, 1].
    """
    rng = np.random.default_rng(seed)
    crops = judge_crops(digits, seed=rng.integers(2**32))
    binary = rng.random(len(crops)) < 0.5
    sampled = (rng.random(crops.shape) < crops).astype(np.float32)
    crops[binary] = sampled[binary]
    return crops


def train_judge(
    digits: np.ndarray,
    labels: np.ndarray,
    epochs: int = 8,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    on_epoch=None,
) -> DigitJudge:
    """Trains a `DigitJudge` on MNIST digits, new crops every epoch.

    Adam from `learning_rate`, cosine-decayed to 0 over the run; softmax
    cross-entropy. The crops of epoch e are `training_crops(digits, (seed,
    e))`; the order a permutation seeded likewise.

    Args:
      digits: uint8 [n, 28, 28(, 1)] training digits.
      labels: int [n].
      epochs: passes over the digits, >= 1.
      batch_size: crops per step.
      learning_rate: Adam's first rate.
      seed: the seed of weights, crops and order.
      on_epoch: optional callable(epoch, judge), after every epoch.

    Returns:
      The trained judge.
    """
    keras.utils.set_random_seed(seed)
    judge = DigitJudge(name="digit_judge")
    schedule = keras.optimizers.schedules.CosineDecay(
        learning_rate, epochs * (len(digits) // batch_size)
    )
    judge.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    labels = np.asarray(labels, np.int64)
    for epoch in range(epochs):
        crops = training_crops(digits, [seed, epoch])
        order = np.random.default_rng([seed, epoch, 1]).permutation(len(crops))
        judge.fit(
            crops[order],
            labels[order],
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        if on_epoch is not None:
            on_epoch(epoch, judge)
    return judge


def predict(judge, crops: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The classes a judge reads in crops [n, 30, 30, 1]: int64 [n]."""
    logits = [
        keras.ops.convert_to_numpy(judge(crops[first : first + batch_size]))
        for first in range(0, len(crops), batch_size)
    ]
    return np.argmax(np.concatenate(logits), axis=-1)


def accuracy(judge, crops: np.ndarray, labels: np.ndarray) -> float:
    """The fraction of crops read as their labels."""
    return float(np.mean(predict(judge, crops) == np.asarray(labels)))


def place_crops(images: np.ndarray, places) -> np.ndarray:
    """The crops the judge reads: [batch, H, W, 1] -> [batch, 30, 30, 1].

    Args:
      images: float [batch, 60, 60, 1] canvases in [0, 1]; or float
        [batch, 28, 28, 1] digits of the class-conditional model.
      places: int [batch] the quadrants 0-3 of the canvases; None for
        digits, each padded by one pixel all round.
    """
    images = np.asarray(images, np.float32)
    if places is None:
        pad = (CROP_SIZE - images.shape[1]) // 2
        rest = CROP_SIZE - images.shape[1] - pad
        return np.pad(images, ((0, 0), (pad, rest), (pad, rest), (0, 0)))
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
      images: float [n, turns, 60, 60, 1], the canvas after each turn
        (or [n, 1, 28, 28, 1] of a class-conditional model).
      classes: int [n, turns] the instructed classes.
      places: int [n, turns] the instructed places (None for the
        class-conditional model).
      batch_size: crops per judge pass.

    Returns:
      instruction_accuracy [turns]: the fraction of episodes whose turn-k
      digit is read, after turn k, as its class; preservation [turns]: the
      fraction of episodes in which every digit of turns < k is still read
      as its class after turn k (1.0 at the first turn, nothing to
      preserve; a digit misdrawn at its own turn counts as not preserved);
      kept [turns]: what later turns spoil alone, the same fraction among
      the episodes whose digits of turns < k were each read as its class
      after its own turn (1.0 where there are none).
    """
    images = np.asarray(images, np.float32)
    classes = np.asarray(classes)
    count, turns = classes.shape
    # read[i, k, j]: the class read at turn j's place after turn k.
    read = np.empty((count, turns, turns), np.int64)
    for k in range(turns):
        for j in range(k + 1):
            crops = place_crops(
                images[:, k], None if places is None else places[:, j]
            )
            read[:, k, j] = predict(judge, crops, batch_size)
    accuracy = np.array(
        [np.mean(read[:, k, k] == classes[:, k]) for k in range(turns)]
    )
    preservation = np.array(
        [
            1.0
            if k == 0
            else np.mean(np.all(read[:, k, :k] == classes[:, :k], axis=1))
            for k in range(turns)
        ]
    )
    drawn_right = np.stack(
        [read[:, j, j] == classes[:, j] for j in range(turns)], axis=1
    )  # [n, turns]: turn j's digit read right after turn j
    kept = np.ones(turns)
    for k in range(1, turns):
        earlier_right = np.all(drawn_right[:, :k], axis=1)
        still = np.all(read[:, k, :k] == classes[:, :k], axis=1)
        if earlier_right.any():
            kept[k] = np.mean(still[earlier_right])
    return {
        "instruction_accuracy": accuracy,
        "preservation": preservation,
        "kept": kept,
    }


def instruction_scores(judge, images, classes, places) -> dict:
    """`judge_episodes` as lists, for JSON: what eval/test.json records.

    Returns:
      {"instruction_accuracy", "preservation", "kept": [per turn]}.
    """
    scores = judge_episodes(judge, images, classes, places)
    return {key: value.tolist() for key, value in scores.items()}
