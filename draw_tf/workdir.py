"""A run's workdir: the names of what it holds, in one place.

    <workdir>/
      config.json              CONFIG: the architecture, checked on restart
      checkpoints/             CHECKPOINTS: TensorFlow's latest checkpoints
      best/                    BEST: the best-validation checkpoint (TF) or
        model.weights.h5       KERAS_BEST_WEIGHTS (fit(), e.g. on JAX)
        state.json             KERAS_BEST_STATE: its step and bound
      keras_checkpoints/       KERAS_CHECKPOINTS: fit()'s latest models
        ckpt-<step>.keras, state.json (KERAS_STATE)
      eval/validation.jsonl    VALIDATION: one line per validation
      eval/test.json           TEST: the test results
      tensorboard/             TENSORBOARD: summaries
      pictures/                PICTURES: samples, the canvas step by step
      machines.jsonl           MACHINES: the CPU kind of every (re)start
      init_from.json           INIT_FROM: where --init_from's weights came

Every module that reads or writes a workdir (both trainers, the export,
shipping, the benchmarks) takes the names from here. `find_weights` says
which weights of a workdir evaluation, export and shipping use. Pure
Python: no TensorFlow needed to read a workdir's layout.
"""

import dataclasses
import json
import os

CONFIG = "config.json"
CHECKPOINTS = "checkpoints"
BEST = "best"
KERAS_CHECKPOINTS = "keras_checkpoints"
KERAS_STATE = os.path.join(KERAS_CHECKPOINTS, "state.json")
KERAS_BEST_WEIGHTS = os.path.join(BEST, "model.weights.h5")
KERAS_BEST_STATE = os.path.join(BEST, "state.json")
VALIDATION = os.path.join("eval", "validation.jsonl")
TEST = os.path.join("eval", "test.json")
TENSORBOARD = "tensorboard"
PICTURES = "pictures"
MACHINES = "machines.jsonl"
INIT_FROM = "init_from.json"
# A TensorFlow CheckpointManager's index file in CHECKPOINTS and BEST.
_TF_CHECKPOINT_INDEX = "checkpoint"


@dataclasses.dataclass(frozen=True)
class Weights:
    """Where a workdir's weights to use are.

    Attributes:
      kind: "tensorflow" (a tf.train.Checkpoint prefix, with the optimizer
        and the step) or "keras" (a `.weights.h5` file that fit() wrote).
      path: the checkpoint prefix or the weights file.
      step: the training step they are of.
    """

    kind: str
    path: str
    step: int


def path(workdir: str, name: str) -> str:
    """`<workdir>/<name>` for one of this module's names."""
    return os.path.join(workdir, name)


def has_tensorflow_checkpoints(workdir: str) -> bool:
    """Whether tf.distribute training wrote checkpoints here."""
    return any(
        os.path.exists(os.path.join(workdir, name, _TF_CHECKPOINT_INDEX))
        for name in (BEST, CHECKPOINTS)
    )


def find_weights(workdir: str) -> Weights | None:
    """The weights to evaluate, export or ship: the best, else the latest.

    TensorFlow checkpoints (best/, then checkpoints/) first, then the best
    weights fit() wrote; None if the workdir has neither.
    """
    if has_tensorflow_checkpoints(workdir):
        import tensorflow as tf  # only for a workdir TensorFlow wrote

        for name in (BEST, CHECKPOINTS):
            prefix = tf.train.latest_checkpoint(os.path.join(workdir, name))
            if prefix:
                step = tf.train.load_checkpoint(prefix).get_tensor(
                    "step/.ATTRIBUTES/VARIABLE_VALUE"
                )
                return Weights("tensorflow", prefix, int(step))
    weights = os.path.join(workdir, KERAS_BEST_WEIGHTS)
    if os.path.exists(weights):
        with open(os.path.join(workdir, KERAS_BEST_STATE)) as file:
            step = int(json.load(file)["step"])
        return Weights("keras", weights, step)
    return None


def read_json(workdir: str, name: str):
    """A workdir's JSON file, or None when it is not there."""
    try:
        with open(os.path.join(workdir, name)) as file:
            return json.load(file)
    except FileNotFoundError:
        return None


def read_json_lines(workdir: str, name: str) -> list[dict]:
    """A workdir's JSON-lines file (e.g. VALIDATION), [] when absent."""
    try:
        with open(os.path.join(workdir, name)) as file:
            return [json.loads(line) for line in file if line.strip()]
    except FileNotFoundError:
        return []
