"""Models trained by this package and shipped with it, loaded offline.

    import draw_tf.pretrained
    draw_tf.pretrained.names()                  # ["mnist_attention", ...]
    model = draw_tf.pretrained.load("mnist_attention")
    model.generate(batch_size=16, seed=[1, 2])["images"]   # [16, 28, 28, 1]
    draw_tf.pretrained.record("mnist_attention")["test"]["negative_elbo"]

Each model is a directory `draw_tf/pretrained_models/<name>/`:

    model.weights.h5  the Keras weights (`model.save_weights`)
    record.json       how it was made and what it measures: the run's
                      config, its architecture and image shape, the test
                      bounds (nats per image; error rate for a classifier),
                      steps, epochs, wall time, the CPU kinds it trained on,
                      the validation curve, the commands that reproduce it,
                      and the bound on a fixed test subset that the tests
                      check the shipped weights against.

Written by `python export/ship_pretrained.py` from a training workdir.
"""

import json
import os

import keras

from draw_tf import config as config_lib
from draw_tf import models

DIRECTORY = os.path.join(os.path.dirname(__file__), "pretrained_models")
WEIGHTS_FILE = "model.weights.h5"
RECORD_FILE = "record.json"


class UnknownModelError(ValueError):
    """No shipped model has this name."""


def names() -> list[str]:
    """The shipped models' names, sorted."""
    if not os.path.isdir(DIRECTORY):
        return []
    return sorted(
        name
        for name in os.listdir(DIRECTORY)
        if os.path.isfile(os.path.join(DIRECTORY, name, WEIGHTS_FILE))
    )


def path(name: str) -> str:
    """The directory of a shipped model.

    Raises:
      UnknownModelError: naming the models there are.
    """
    if name not in names():
        raise UnknownModelError(
            f"No pretrained model {name!r}; shipped: "
            f"{', '.join(names()) or 'none'}."
        )
    return os.path.join(DIRECTORY, name)


def record(name: str) -> dict:
    """The model's record.json: config, test bounds, training, commands."""
    with open(os.path.join(path(name), RECORD_FILE)) as file:
        return json.load(file)


def names_of_task(kind: str) -> list[str]:
    """The shipped models of one task (e.g. "judge"), sorted."""
    return [name for name in names() if task(name) == kind]


def task(name: str) -> str:
    """What the model does: generate, classify, instruct or judge."""
    return record(name)["architecture"].get("task", "generate")


def train_config(name: str, **overrides) -> config_lib.TrainConfig:
    """The TrainConfig the model was trained with; `overrides` win."""
    return config_lib.TrainConfig.from_dict(record(name)["config"], **overrides)


def build(architecture: dict, image_shape) -> keras.Model:
    """An untrained model of a record's architecture and image shape."""
    return models.build_from_architecture(architecture, image_shape)


def load(name: str) -> keras.Model:
    """The shipped model `name`, built, with its trained weights.

    Args:
      name: one of `names()`.

    Returns:
      The model in inference use (`draw_tf.models`): a `DrawModel`
      (`model(images)`, `model.generate(...)`), a `DrawClassifier`, a
      `ConditionalDrawModel` or the `DigitJudge`.

    Raises:
      UnknownModelError: if no model has this name.
    """
    directory = path(name)
    shipped = record(name)
    model = build(shipped["architecture"], shipped["image_shape"])
    model.load_weights(os.path.join(directory, WEIGHTS_FILE))
    return model


def store_float16(weights_path: str) -> None:
    """Rewrites a `.weights.h5` file's float32 arrays as float16, in place.

    Half the bytes; `load` reads it as it reads any weights file (Keras
    casts each array to its float32 variable). The values are the float32
    weights rounded to float16: a model shipped so is measured with them
    (`ship_pretrained.py --float16`), and its record says so.
    """
    import h5py
    import numpy as np

    staging = weights_path + ".float16.tmp"
    with (
        h5py.File(weights_path, "r") as source,
        h5py.File(staging, "w") as target,
    ):

        def copy(name, item):
            if isinstance(item, h5py.Group):
                group = target.require_group(name)
                group.attrs.update(item.attrs)
                return
            data = item[()]
            if data.dtype == np.float32:
                data = data.astype(np.float16)
            dataset = target.create_dataset(name, data=data)
            dataset.attrs.update(item.attrs)

        target.attrs.update(source.attrs)
        source.visititems(copy)
    os.replace(staging, weights_path)
