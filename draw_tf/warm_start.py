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

A conditional model (--task=instruct) can start from another whose
variables are the same but for what the episodes add: a class-conditional
model (28 x 28, one turn, no places) initialises an instructed one (60 x
60, K turns, places) in every variable it has; the place embedding (and
`initial_canvas`, with --place_frames) keep their initial values, and the
origin lists them as `new_variables`.
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
        record = pretrained.record(source)
        new_variables = None
        if _transfers(config, image_shape, record["architecture"], record):
            new_variables = copy_shared_variables(
                model,
                pretrained.load(source),
                f"--init_from={source}",
            )
        else:
            load_shipped(model, config, image_shape, source, "init_from")
        origin = dict(
            kind="pretrained",
            name=source,
            steps=record["steps"],
            test=record.get("test"),
        )
        if new_variables is not None:
            origin["new_variables"] = new_variables
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
    saved = workdir.read_json(directory, workdir.CONFIG) or {}
    source_config = saved.get("config")
    new_variables = None
    if source_config and _transfers(
        config, image_shape, saved.get("architecture", {}), saved
    ):
        source_config = TrainConfig.from_dict(source_config, workdir=directory)
        source_shape = saved["architecture"]["image_shape"]
        loaded = loading.load_workdir(
            source_config, source_shape, directory, flag="init_from"
        )
        path, step = loaded.path, loaded.step
        new_variables = copy_shared_variables(
            model, loaded.model, f"--init_from={directory}"
        )
    else:
        path, step = loading.restore_workdir_weights(
            model, config, image_shape, directory, flag="init_from"
        )
    origin = dict(
        kind="workdir",
        workdir=os.path.abspath(directory),
        checkpoint=os.path.relpath(path, directory),
        steps=step,
    )
    if new_variables is not None:
        origin["new_variables"] = new_variables
    return origin


# What an instructed model adds to a conditional one it starts from.
TRANSFERABLE_FIELDS = (
    "dataset",
    "image_shape",
    "num_turns",
    "carry_states",
    "place_frames",
)
# The datasets whose class-conditional models start an instructed one: its
# episodes are made of their digits.
DIGITS_OF = {"instructed_mnist": "mnist"}


def _transfers(config, image_shape, architecture: dict, saved: dict) -> bool:
    """Whether a conditional source differs from the run only in episodes.

    Args:
      config: the run's config.
      image_shape: the run's data shape.
      architecture: the source's architecture (a record's, a workdir's).
      saved: the record or config.json holding it (its image_shape).

    Returns:
      True if both are --task=instruct models that differ, and only in
      TRANSFERABLE_FIELDS (a dataset only from the one whose digits the
      run's episodes hold, `DIGITS_OF`); False for the same architecture,
      or for any other difference (the strict load then names it).
    """
    if config.task != "instruct" or architecture.get("task") != "instruct":
        return False
    ours = dict(config.architecture(), image_shape=list(image_shape))
    theirs = dict(
        architecture,
        image_shape=list(
            saved.get("image_shape", architecture.get("image_shape", []))
        ),
    )
    differing = {
        key
        for key in set(ours) | set(theirs)
        if ours.get(key, False) != theirs.get(key, False)
    }
    if "dataset" in differing and DIGITS_OF.get(ours["dataset"]) != (
        theirs.get("dataset")
    ):
        return False
    return bool(differing) and differing <= set(TRANSFERABLE_FIELDS)


def copy_shared_variables(
    model: keras.Model, source: keras.Model, what: str
) -> list:
    """Copies every variable of `source` into the same one of `model`.

    Variables are matched by their path below the model (e.g.
    "draw_cell/encoder/kernel") and must have the same shapes.

    Returns:
      The paths of `model`'s variables `source` does not have (left at
      their initial values), sorted.

    Raises:
      ConfigError: if a variable of the source has no match (one line).
    """

    def below_model(variable) -> str:
        return variable.path.split("/", 1)[-1]

    targets = {below_model(variable): variable for variable in model.weights}
    pairs = []
    for variable in source.weights:  # all checked before any is copied
        name = below_model(variable)
        target = targets.pop(name, None)
        if target is None or tuple(target.shape) != tuple(variable.shape):
            found = "none" if target is None else tuple(target.shape)
            raise ConfigError(
                f"{what}: its variable {name} {tuple(variable.shape)} has no "
                f"match in this model (found {found}); expected a "
                "conditional model of the same sizes."
            )
        pairs.append((target, variable))
    # Copied through the host: on JAX the target must not share the
    # source's buffers, which training donates.
    for target, variable in pairs:
        target.assign(keras.ops.convert_to_numpy(variable.value))
    return sorted(targets)
