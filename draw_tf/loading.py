"""A workdir's or a shipped model, loaded to evaluate, without a trainer.

Evaluation, shipping and the analyses need the model and its weights,
not the optimizer, the checkpoint managers or a strategy:

    loaded = loading.load_workdir(config, image_shape)   # config.workdir
    loaded = loading.load_shipped(config, image_shape, "mnist_attention")
    loaded.model, loaded.path, loaded.step
    loading.evaluator(loaded.model, config)(images)      # draw_tf.bounds

A workdir's weights are its best, else its latest (`workdir.find_weights`):
a TensorFlow checkpoint of the tf.distribute engine, or the best
`.weights.h5` of the fit() engine; a TensorFlow checkpoint needs
TensorFlow. Runs on every backend.
"""

import dataclasses
import os

import keras

from draw_tf import bounds, models, pretrained, workdir
from draw_tf.config import ConfigError, TrainConfig, check_workdir_architecture


@dataclasses.dataclass(frozen=True)
class Loaded:
    """A model with its weights.

    Attributes:
      model: the config's model (`draw_tf.models`).
      path: where the weights came from (a checkpoint prefix or a file).
      step: the training step they are of.
    """

    model: keras.Model
    path: str
    step: int


def build_model(config: TrainConfig, image_shape) -> keras.Model:
    """The config's model (`draw_tf.models`: DrawModel, ...)."""
    return models.build(config, image_shape)


def evaluator(model: keras.Model, config: TrainConfig):
    """The run loop's evaluator of `model` under `config` (its seed)."""
    if config.task == "instruct":
        return bounds.EpisodeEvaluator(
            model,
            config.eval_batch_size,
            seed=config.seed + 1,
            jit_compile=config.jit_compile,
        )
    if config.task == "classify":
        return bounds.ClassifierEvaluator(
            model, config.eval_batch_size, config.jit_compile
        )
    return bounds.Evaluator(
        model,
        config.eval_batch_size,
        seed=config.seed + 1,
        jit_compile=config.jit_compile,
    )


def load_shipped(config: TrainConfig, image_shape, name: str) -> Loaded:
    """Shipped model `name` (`draw_tf.pretrained`), checked against config.

    Raises:
      ConfigError: if the name is unknown or its architecture is not the
        config's.
    """
    from draw_tf import warm_start

    model = build_model(config, image_shape)
    record = warm_start.load_shipped(
        model, config, image_shape, name, "pretrained"
    )
    return Loaded(
        model,
        os.path.join(pretrained.path(name), pretrained.WEIGHTS_FILE),
        int(record["steps"]),
    )


def load_workdir(
    config: TrainConfig,
    image_shape,
    directory: str = "",
    checkpoint: str = "",
    flag: str = "workdir",
) -> Loaded:
    """A workdir's best weights, else its latest, in a new model.

    Args:
      config: the model's config.
      image_shape: the data's (height, width, channels).
      directory: the workdir; `config.workdir` when empty.
      checkpoint: a TensorFlow checkpoint prefix to use instead.
      flag: the flag that named the workdir, for the errors.

    Raises:
      ConfigError: if the workdir has no weights, holds another model, or
        its weights cannot be read.
    """
    model = build_model(config, image_shape)
    path, step = restore_workdir_weights(
        model, config, image_shape, directory, checkpoint, flag
    )
    return Loaded(model, path, step)


def restore_workdir_weights(
    model: keras.Model,
    config: TrainConfig,
    image_shape,
    directory: str = "",
    checkpoint: str = "",
    flag: str = "workdir",
) -> tuple[str, int]:
    """Loads a workdir's best (else latest) weights into `model`.

    Args: as `load_workdir`'s, and the built model of the config.

    Returns:
      (the weights' path, their training step).

    Raises:
      ConfigError: as `load_workdir`.
    """
    directory = directory or config.workdir
    if not os.path.exists(workdir.path(directory, workdir.CONFIG)):
        shipped = ", or a shipped model's name" if flag == "init_from" else ""
        raise ConfigError(
            f"--{flag}={directory} has no config.json; expected a workdir "
            f"that train.py wrote{shipped}."
        )
    check_workdir_architecture(
        dataclasses.replace(config, workdir=directory),
        [int(size) for size in image_shape],
        flag=flag,
    )
    if keras.backend.backend() != "tensorflow":
        if checkpoint:
            raise ConfigError(
                f"--checkpoint={checkpoint} is a TensorFlow checkpoint; on "
                f"{keras.backend.backend()} use a workdir's best weights."
            )
        if workdir.has_tensorflow_checkpoints(directory):
            raise ConfigError(
                f"--{flag}={directory} holds TensorFlow checkpoints; on "
                f"{keras.backend.backend()} start from a workdir trained "
                "there or from a shipped model."
            )
    try:
        weights = (
            workdir.Weights("tensorflow", checkpoint, -1)
            if checkpoint
            else workdir.find_weights(directory)
        )
        if weights is None:
            raise ConfigError(
                f"--{flag}={directory} has no checkpoint; train it first."
            )
        step = weights.step
        if weights.kind == "tensorflow":
            import tensorflow as tf

            step_variable = tf.Variable(0, dtype=tf.int64)
            status = tf.train.Checkpoint(
                model=model, step=step_variable
            ).restore(weights.path)
            status.assert_existing_objects_matched().expect_partial()
            step = int(step_variable.numpy())
        else:
            model.load_weights(weights.path)
    except ConfigError:
        raise
    except Exception as error:  # a damaged workdir: files, checkpoints
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        if checkpoint:
            raise ConfigError(
                f"--checkpoint={checkpoint}: cannot be read into the model "
                f"of {directory} ({type(error).__name__}: {first_line})."
            ) from None
        raise ConfigError(
            f"--{flag}={directory}: its weights cannot be read "
            f"({type(error).__name__}: {first_line}); expected a workdir "
            "that train.py wrote."
        ) from None
    return weights.path, step
