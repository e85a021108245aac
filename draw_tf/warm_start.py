"""Starting weights from elsewhere: a shipped model or another workdir.

`train.py --init_from=SOURCE` starts a new run from SOURCE's weights
instead of a random init (the optimizer and the step start afresh), and
`--pretrained=NAME` evaluates or draws a shipped model. The run loop
(`draw_tf.trainer`) loads through here with either engine, so the same
flags check the same things on every backend:

    origin = warm_start.initialize(model, config, image_shape)
    # {"kind": "pretrained", "name": ..., "steps": ..., "test": {...}}
    # or {"kind": "workdir", "workdir": ..., "checkpoint": ..., "steps": ...}

The origin is written to `<workdir>/init_from.json` and goes into the
shipped model's record.
"""

import json
import os
import time

import keras

from draw_tf import loading, pretrained, workdir
from draw_tf.config import ConfigError, TrainConfig


def shipped_record(
    config: TrainConfig, image_shape, name: str, flag: str
) -> dict:
    """The record of shipped model `name`, checked against the config.

    Args:
      config: the run's config (its model flags).
      image_shape: the data's (height, width, channels).
      name: a shipped model's name.
      flag: the flag that named it, for the error ("pretrained", ...).

    Raises:
      ConfigError: if no model has this name, or its architecture or image
        shape is not the config's (one line naming the differences).
    """
    try:
        record = pretrained.record(name)
    except pretrained.UnknownModelError as error:
        raise ConfigError(f"--{flag}: {error}") from None
    ours = dict(
        config.architecture(), image_shape=[int(size) for size in image_shape]
    )
    theirs = dict(record["architecture"], image_shape=record["image_shape"])
    if ours != theirs:
        differences = "; ".join(
            f"{key}={theirs.get(key)!r} shipped, {value!r} asked"
            for key, value in ours.items()
            if theirs.get(key) != value
        )
        hint = (
            "drop the model flags to use its own"
            if flag == "pretrained"
            else "use its model flags"
        )
        raise ConfigError(
            f"--{flag}={name} is another model than the flags ask for "
            f"({differences}); {hint}."
        )
    return record


def load_shipped(
    model: keras.Model, config: TrainConfig, image_shape, name: str, flag: str
) -> dict:
    """Loads shipped model `name`'s weights into `model`; its record."""
    record = shipped_record(config, image_shape, name, flag)
    model.load_weights(
        os.path.join(pretrained.path(name), pretrained.WEIGHTS_FILE)
    )
    return record


def load_judge(judge: str) -> keras.Model | None:
    """The judge --judge names: a shipped judge, or a `.weights.h5` file.

    Args:
      judge: a shipped judge's name (e.g. "digit_judge"), the path of a
        `DigitJudge`'s weights file, or "" for none.

    Returns:
      The judge with its weights, or None for "".

    Raises:
      ConfigError: if it is neither (one line).
    """
    if not judge:
        return None
    if judge in pretrained.names():
        return pretrained.load(judge)
    if judge.endswith(".weights.h5") and os.path.isfile(judge):
        from draw_tf.judge import DigitJudge

        model = DigitJudge(name="digit_judge")
        try:
            model.load_weights(judge)
        except (OSError, ValueError, KeyError) as error:
            first_line = str(error).strip().splitlines()[0][:200]
            raise ConfigError(
                f"--judge={judge} is not a DigitJudge's weights ({first_line})."
            ) from None
        return model
    judges = pretrained.names_of_task("judge")
    raise ConfigError(
        f"--judge={judge}: expected a shipped judge "
        f"({', '.join(judges) or 'none shipped'}), a DigitJudge .weights.h5 "
        "file, or empty for none."
    )


def initialize(
    model: keras.Model,
    config: TrainConfig,
    image_shape,
    write_record: bool = True,
) -> dict:
    """Loads `config.init_from`'s weights into `model` (a new run's start).

    Args:
      model: the run's built model.
      config: its init_from is a shipped model's name or a workdir (its
        best TensorFlow checkpoint, else its latest, else the best
        weights `fit()` wrote).
      image_shape: the data's (height, width, channels).
      write_record: write `init_from.json` (the chief only, under several
        workers: they share the workdir).

    Returns:
      The origin, also written to `<config.workdir>/init_from.json`.

    Raises:
      ConfigError: if the source is neither, has no weights, or holds
        another model.
    """
    source = config.init_from
    if source in pretrained.names():
        record = load_shipped(model, config, image_shape, source, "init_from")
        origin = dict(
            kind="pretrained",
            name=source,
            steps=record["steps"],
            test=record.get("test"),
        )
    elif os.path.isdir(source):
        origin = _load_workdir(model, config, image_shape, source)
    else:
        raise ConfigError(
            f"--init_from={source} is neither a shipped model "
            f"({', '.join(pretrained.names())}) nor a workdir."
        )
    origin["unix_time"] = round(time.time())
    if write_record:
        with open(workdir.path(config.workdir, workdir.INIT_FROM), "w") as file:
            json.dump(origin, file, indent=2, sort_keys=True)
    return origin


def _load_workdir(model, config, image_shape, directory: str) -> dict:
    """Loads another workdir's best (else latest) weights into `model`."""
    path, step = loading.restore_workdir_weights(
        model, config, image_shape, directory, flag="init_from"
    )
    return dict(
        kind="workdir",
        workdir=os.path.abspath(directory),
        checkpoint=os.path.relpath(path, directory),
        steps=step,
    )
