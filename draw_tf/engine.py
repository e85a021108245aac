"""What a training engine does for the run loop (`draw_tf.trainer`).

The run loop owns what every run does (the workdir, steps and epochs,
the schedule, resume, the progress line, validation and the best choice,
divergence, TensorBoard, pictures, machine records, the test JSON). An
engine owns the model and how it is stepped, saved and evaluated:

    engine = make_engine(config, splits, learning_rate_schedule)
    engine.restore_latest()            # -> Restored | None
    engine.train_steps(start, stop, total, report)  # -> Outcome
    engine.save(step, best_validation, train_seconds)
    engine.save_best(step, best_validation)
    engine.load_for_evaluation()       # -> (path, step) | None
    engine.evaluate(images, labels, importance_samples)  # -> results dict
    engine.generate(count, seed) / engine.reconstruct(images, seed)
    engine.classify_images(images)

Two engines: `draw_tf.tensorflow.distributed_engine.DistributedEngine`
(tf.distribute: a compiled per-replica step, MirroredStrategy and
MultiWorkerMirroredStrategy; TensorFlow checkpoints) and
`draw_tf.keras_engine.KerasEngine` (Keras `fit()` on any backend: JAX,
also TensorFlow; `.keras` checkpoints). Each keeps its own checkpoint
format, so the workdirs and checkpoints written before the run loop was
shared still resume and load.
"""

import abc
import dataclasses
import math
from collections.abc import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint an engine resumed from.

    Attributes:
      path: the checkpoint.
      step: the step it was written at.
      best_validation: the best validation number so far (lower is
        better; inf before the first validation).
      train_seconds: seconds spent training before it (0 if unknown).
    """

    path: str
    step: int
    best_validation: float
    train_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How `train_steps` ended.

    Attributes:
      step: the last step taken (== stop, or the step whose loss became
        non-finite).
      loss: that step's training loss (nats; a mean over the chunk where
        the engine only sees means).
      averaged_since: the chunk's first step when `loss` is such a mean,
        else None.
    """

    step: int
    loss: float
    averaged_since: int | None = None


# report(step, metrics, averaged_since): called at every log step with
# the training metrics (floats, or a [T] array for latent_loss_per_step);
# averaged_since is the first step of a running mean, or None for the
# step's own numbers.
Report = Callable[[int, dict, int | None], None]


class Engine(abc.ABC):
    """The model of one run and how it is trained, saved and evaluated.

    Attributes:
      model: the Keras model (`DrawModel`, or `DrawClassifier` to
        classify).
      is_chief: whether this process writes the workdir's files.
      description: a few words for the log, e.g. "1 replicas,
        MirroredStrategy" or "Keras fit() on jax".
      replicas: the copies of the model a global batch is split over.
    """

    model = None
    is_chief = True
    description = ""
    replicas = 1

    @abc.abstractmethod
    def restore_latest(self) -> Restored | None:
        """Restores the latest checkpoint (model, optimizer), if any."""

    @abc.abstractmethod
    def load_for_evaluation(self) -> tuple[str, int] | None:
        """Loads the best weights, else the latest; (path, step) or None."""

    @abc.abstractmethod
    def train_steps(
        self, start: int, stop: int, total: int, report: Report
    ) -> Outcome:
        """Trains steps [start, stop) of a run of `total` steps.

        Calls `report` at every --log_every_steps step and at `total`;
        stops early at a non-finite loss.
        """

    def recorded_best(self) -> float:
        """The best validation number the workdir's best weights hold.

        Read when training starts without a checkpoint to resume (a run
        killed after saving its best weights but before its first
        checkpoint): later validations must beat it. inf if none.
        """
        return math.inf

    @abc.abstractmethod
    def weights_are_finite(self) -> bool:
        """Whether every trainable weight is finite."""

    @abc.abstractmethod
    def save(
        self, step: int, best_validation: float, train_seconds: float
    ) -> str:
        """Writes a checkpoint to resume from; its path."""

    @abc.abstractmethod
    def save_best(self, step: int, best_validation: float) -> str:
        """Writes the best-validation weights; their path."""

    @abc.abstractmethod
    def latest_checkpoint(self) -> str | None:
        """The newest checkpoint to resume from, or None."""

    @abc.abstractmethod
    def evaluate(
        self,
        images: np.ndarray,
        labels,
        importance_samples: int = 0,
        places=None,
    ) -> dict:
        """The bounds (or classifier numbers) of uint8 images [n, H, W, C].

        Args:
          images: uint8 [n, height, width, channels]; to instruct, episode
            targets [n, turns, H, W, C].
          labels: int [n] to classify; to instruct, the classes [n,
            turns]; else None.
          importance_samples: k of the importance-weighted bound; 0 skips
            (not to instruct).
          places: to instruct on places, int [n, turns]; else None.
        """

    @abc.abstractmethod
    def generate(self, count: int, seed) -> dict:
        """`count` samples (NumPy): images [count, H, W, C], canvases..."""

    @abc.abstractmethod
    def reconstruct(self, images: np.ndarray, seed) -> dict:
        """The model's outputs (NumPy) on float images, with canvases."""

    @abc.abstractmethod
    def classify_images(self, images: np.ndarray) -> dict:
        """The classifier's outputs (NumPy): logits, read_windows."""

    def draw_instructions(self, classes, places=None, canvases=False):
        """Episodes drawn from instructions (NumPy; --task=instruct).

        Episode i's noise is a function of (the evaluation seed, i):
        `draw_tf.bounds.EpisodeEvaluator.draw`.

        Returns:
          images [n, turns, H, W, C], write_windows, and with `canvases`
          the canvas after every step.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not train instructed models."
        )

    def devices(self) -> list[str]:
        """The accelerators or replicas training runs on, for the record."""
        return []
