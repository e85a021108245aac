"""The run loop of train.py: one for both engines and every backend.

A run lives in `--workdir` (its layout: `draw_tf.workdir`). `Trainer`
owns what every run does: steps and epochs, the learning rate schedule,
resume, the progress line and its timing, validation and the best
choice, divergence, TensorBoard scalars and images, pictures, machine
records, evaluation and the test JSON. An engine (`draw_tf.engine`) owns
the model and how it is stepped, saved and evaluated:

    tf.distribute   draw_tf.tensorflow.distributed_engine (TensorFlow)
    Keras fit()     draw_tf.keras_engine (JAX; also TensorFlow)

    results = trainer.run(config)            # the engine of the backend
    trainer.Trainer(config, splits, make_engine).train()

Training runs in chunks that end at every validation and checkpoint;
within a chunk the engine reports the loss every --log_every_steps.
Training batches and noise are a function of (seed, step) on both
engines, so a run killed at any moment and started again with the same
command resumes from its last checkpoint and redoes the same steps.
"""

import json
import math
import os
import time
from collections.abc import Callable

import keras
import numpy as np
from absl import logging

from draw_tf import (
    backend,
    event_summaries,
    instructed_mnist,
    machine,
    pictures,
    schedules,
    warm_start,
    workdir,
)
from draw_tf import data as data_lib
from draw_tf import judge as judge_lib
from draw_tf.config import ConfigError, TrainConfig, check_workdir_architecture
from draw_tf.engine import Engine
from draw_tf.errors import TrainingDivergedError

# Validation episodes the judge reads at each validation of an instructed
# model (the whole test split is read at the end).
VALIDATION_JUDGED = 1000
# The judge's scores, lists per turn, in validation.jsonl and test.json.
_JUDGE_SCORES = ("instruction_accuracy", "preservation", "kept")

# make_engine(config, splits, learning_rate_schedule) -> Engine
MakeEngine = Callable[
    [TrainConfig, data_lib.Splits, schedules.LearningRateSchedule], Engine
]


def run(config: TrainConfig, make_engine: MakeEngine | None = None):
    """Runs `config.mode`: train, evaluate (test split) or draw.

    Args:
      config: a config (validated here).
      make_engine: the engine's constructor; `default_engine(config)` when
        None (--engine; by default tf.distribute on TensorFlow, fit()
        elsewhere).

    Returns:
      train and evaluate: the test results dict; draw: the picture paths.

    Raises:
      ConfigError: for a bad flag, data file or workdir.
      TrainingDivergedError: if training diverged.
    """
    config.validate()
    splits = data_lib.load_splits(config)
    config.check_image_shape(splits.image_shape)
    config.check_fits_in_memory(splits.image_shape)
    check_workdir_architecture(config, splits.image_shape)
    trainer = Trainer(config, splits, make_engine or default_engine(config))
    if config.mode == "train":
        trainer.train()
        trainer.restore_for_evaluation()
        results = trainer.evaluate_test()
        trainer.draw()
        return results
    if config.pretrained:
        trainer.load_pretrained(config.pretrained)
    elif not trainer.restore_for_evaluation():
        raise ConfigError(
            f"--workdir={config.workdir} has no checkpoint to "
            f"{config.mode} from; train first (--mode=train)."
        )
    if config.mode == "evaluate":
        return trainer.evaluate_test()
    return trainer.draw()


def default_engine(config: TrainConfig | None = None) -> MakeEngine:
    """The engine --engine names; "" picks the backend's.

    tf.distribute on TensorFlow, fit() on the other backends; fit() for
    --task=instruct.

    Raises:
      ConfigError: for --engine=distributed off TensorFlow.
    """
    engine = config.engine if config else ""
    if not engine:
        distributed = backend.is_tensorflow() and not (
            config and config.task == "instruct"
        )
        engine = "distributed" if distributed else "keras"
    if engine == "distributed":
        if not backend.is_tensorflow():
            raise ConfigError(
                "--engine=distributed runs on TensorFlow "
                f"(KERAS_BACKEND=tensorflow); this run uses {backend.name()}:"
                " use --engine=keras."
            )
        from draw_tf.tensorflow import distributed_engine

        return distributed_engine.DistributedEngine
    from draw_tf import keras_engine

    return keras_engine.KerasEngine


def learning_rate_schedule(
    config: TrainConfig, total_steps: int
) -> schedules.LearningRateSchedule:
    """The config's schedule over a run of `total_steps`.

    Raises:
      ConfigError: if a cosine schedule's warmup is not below the run.
    """
    if config.mode != "train":
        # Evaluate and draw take no step (and may have fewer data, e.g.
        # the package's sample): any valid schedule does.
        total_steps = max(total_steps, config.learning_rate_warmup_steps + 1)
    elif (
        config.learning_rate_schedule == "cosine"
        and config.learning_rate_warmup_steps >= total_steps
    ):
        raise ConfigError(
            f"--learning_rate_warmup_steps="
            f"{config.learning_rate_warmup_steps} must be below the "
            f"run's {total_steps} steps for a cosine schedule."
        )
    return schedules.LearningRateSchedule(
        config.learning_rate,
        max(total_steps, 1),
        kind=config.learning_rate_schedule,
        warmup_steps=config.learning_rate_warmup_steps,
        final_fraction=config.learning_rate_final_fraction,
    )


class Trainer:
    """One run: the loop around an engine.

    Args:
      config: the run's config.
      splits: the data.
      make_engine: the engine's constructor, called with (config, splits,
        learning_rate_schedule).

    Attributes:
      engine: the engine; `model` is its model.
      step: the step of the weights in the model.
    """

    def __init__(
        self,
        config: TrainConfig,
        splits: data_lib.Splits,
        make_engine: MakeEngine | None = None,
    ):
        self.config = config
        self.splits = splits
        self.classify = config.task == "classify"
        self.instruct = config.task == "instruct"
        # The validation number that picks the best checkpoint (lower is
        # better), and the training loss.
        self.selection_key = "error_rate" if self.classify else "negative_elbo"
        self.loss_key = "cross_entropy" if self.classify else "negative_elbo"
        self.learning_rate_schedule = learning_rate_schedule(
            config, self.total_steps
        )
        self.engine = (make_engine or default_engine(config))(
            config, splits, self.learning_rate_schedule
        )
        self.step = 0
        self.best_validation = math.inf
        self.train_seconds = 0.0
        self._summaries = None
        # The --judge, loaded at its first use (False: none).
        self._judge = None

    @property
    def model(self) -> keras.Model:
        """The engine's model."""
        return self.engine.model

    @property
    def is_chief(self) -> bool:
        """Whether this process writes the workdir's files."""
        return self.engine.is_chief

    @property
    def steps_per_epoch(self) -> int:
        """Global batches in one pass over the training images."""
        return len(self.splits.train) // self.config.batch_size

    @property
    def total_steps(self) -> int:
        """The step training ends at."""
        if self.config.train_steps:
            return self.config.train_steps
        return self.config.num_epochs * self.steps_per_epoch

    @property
    def summaries(self) -> event_summaries.EventWriter | None:
        """The TensorBoard writer (the chief's), made when first written."""
        if self._summaries is None and self.is_chief:
            self._summaries = event_summaries.EventWriter(
                workdir.path(self.config.workdir, workdir.TENSORBOARD)
            )
        return self._summaries

    def learning_rate_at(self, step: int) -> float:
        """The rate of the update that takes training from `step` to +1."""
        return float(self.learning_rate_schedule(step))

    @property
    def has_validation(self) -> bool:
        """Whether there are validation images (--validation_size >= 1)."""
        return len(self.splits.validation) > 0

    # Loading.

    def restore_for_evaluation(self) -> str | None:
        """Loads the best-validation weights, else the latest; their path."""
        found = self.engine.load_for_evaluation()
        if not found:
            return None
        path, self.step = found
        logging.info("Using checkpoint %s (step %d).", path, self.step)
        return path

    def load_pretrained(self, name: str) -> None:
        """Loads a shipped model's weights (`draw_tf.pretrained`).

        Raises:
          ConfigError: if the name is unknown or its architecture is not
            this run's.
        """
        shipped = warm_start.load_shipped(
            self.model, self.config, self.splits.image_shape, name, "pretrained"
        )
        self.step = int(shipped["steps"])
        logging.info("Using pretrained model %s (step %d).", name, self.step)

    # Training.

    def train(self) -> None:
        """Trains to `total_steps`, resuming from the latest checkpoint.

        Raises:
          TrainingDivergedError: if the loss or the weights become NaN or
            infinite; the checkpoints written before are left as they were.
        """
        config = self.config
        restored = self.engine.restore_latest()
        if restored:
            self.step = restored.step
            self.best_validation = restored.best_validation
            self.train_seconds = restored.train_seconds
        else:
            self.best_validation = self.engine.recorded_best()
        if not restored and config.init_from:
            origin = warm_start.initialize(
                self.model,
                config,
                self.splits.image_shape,
                write_record=self.is_chief,
            )
            logging.info("Initialized the weights from %s.", origin)
        total = self.total_steps
        self._record_machine()
        logging.info(
            "%s at step %d of %d (%d steps per epoch, %s).",
            f"Resuming from {restored.path}" if restored else "Starting",
            self.step,
            total,
            self.steps_per_epoch,
            self.engine.description,
        )
        if self.step >= total:
            logging.info("Already trained to step %d.", total)
            return
        if not self.has_validation:
            logging.info(
                "No validation (--validation_size=0): trains on every "
                "training image; the last checkpoint is the model."
            )
        eval_every = (
            config.eval_every_steps or self.steps_per_epoch
            if self.has_validation
            else total
        )
        save_every = config.checkpoint_every_steps
        while self.step < total:
            start = self.step
            stop = min(
                total,
                _next_multiple(start, save_every),
                _next_multiple(start, eval_every),
            )
            started = time.perf_counter()
            self._interval = (started, start)
            outcome = self.engine.train_steps(start, stop, total, self._report)
            if not math.isfinite(outcome.loss):
                where = (
                    f"at step {outcome.step}"
                    if outcome.averaged_since is None
                    else f"between steps {outcome.averaged_since} and "
                    f"{outcome.step}"
                )
                raise TrainingDivergedError(
                    f"The loss became {outcome.loss} {where}; "
                    "training stopped. The last good checkpoint "
                    f"({self.engine.latest_checkpoint() or 'none'}) is "
                    "intact: lower --learning_rate or set "
                    "--gradient_clip_norm and run again."
                )
            self.step = stop
            # A finite loss can still come with a NaN update (inf
            # gradients): never write non-finite weights over a good
            # checkpoint.
            if not self.engine.weights_are_finite():
                raise TrainingDivergedError(
                    f"The weights became NaN or infinite by step {stop}; "
                    "training stopped. The last good checkpoint "
                    f"({self.engine.latest_checkpoint() or 'none'}) is "
                    "intact: lower --learning_rate or set "
                    "--gradient_clip_norm and run again."
                )
            if self.has_validation and (
                stop % eval_every == 0 or stop == total
            ):
                self._validate()
            self.train_seconds += time.perf_counter() - started
            if stop % save_every == 0 or stop == total:
                self.engine.save(stop, self.best_validation, self.train_seconds)

    def _report(self, step: int, metrics: dict, averaged_since) -> None:
        """The progress line and TensorBoard scalars of a log step."""
        started, first = self._interval
        seconds = max(time.perf_counter() - started, 1e-9)
        steps = step - first
        self._interval = (time.perf_counter(), step)
        config, total = self.config, self.total_steps
        examples_per_second = steps * config.batch_size / seconds
        eta = (total - step) * seconds / max(steps, 1)
        if self.classify:
            summary = (
                f"cross-entropy {float(metrics['cross_entropy']):.4f} nats, "
                f"accuracy {float(metrics['correct']):.4f}"
            )
        else:
            summary = (
                f"-ELBO {float(metrics['negative_elbo']):.2f} = L^x "
                f"{float(metrics['reconstruction_loss']):.2f} + L^z "
                f"{float(metrics['latent_loss']):.2f} nats"
            )
        if averaged_since is not None:
            summary += f" (mean since step {averaged_since})"
        learning_rate = self.learning_rate_at(step - 1)
        logging.info(
            "step %d/%d (epoch %.2f) | %s | lr %.3g | %.0f examples/s | ETA %s",
            step,
            total,
            step / self.steps_per_epoch,
            summary,
            learning_rate,
            examples_per_second,
            _duration(eta),
        )
        summaries = self.summaries
        if summaries is None:
            return
        for key, value in metrics.items():
            if key == "latent_loss_per_step":
                for t, kl in enumerate(np.asarray(value)):
                    summaries.scalar(
                        f"train_kl_per_step/t{t + 1:03d}", kl, step
                    )
            else:
                summaries.scalar(f"train/{key}", float(value), step)
        summaries.scalar("train/examples_per_second", examples_per_second, step)
        summaries.scalar("train/learning_rate", learning_rate, step)
        summaries.flush()

    def _validate(self) -> None:
        step = self.step
        results = self.evaluate_split(
            self.splits.validation,
            self.splits.validation_labels,
            places=self.splits.validation_places,
        )
        results.update(split="validation", step=step)
        if self.instruct:
            results.update(self._judge_validation_episodes())
        logging.info(
            "validation at step %d: %s",
            step,
            ", ".join(
                f"{key} {value:.4f}"
                for key, value in sorted(results.items())
                if isinstance(value, float)
            ),
        )
        if self.is_chief:
            summaries = self.summaries
            for key, value in results.items():
                if isinstance(value, float):
                    summaries.scalar(f"validation/{key}", value, step)
                elif key in _JUDGE_SCORES:
                    for turn, score in enumerate(value):
                        summaries.scalar(
                            f"validation_{key}/turn{turn + 1}", score, step
                        )
            if self.instruct:
                drawn = self._draw_validation_instructions(8)
                summaries.image(
                    "episodes",
                    pictures.grid(
                        drawn.reshape(-1, *drawn.shape[2:]),
                        columns=drawn.shape[1],
                    ),
                    step,
                )
            elif not self.classify:
                samples = self.engine.generate(16, seed=np.array([0, 0]))
                summaries.image(
                    "samples",
                    pictures.grid(samples["images"], columns=8),
                    step,
                )
            summaries.flush()
            _append_line(
                workdir.path(self.config.workdir, workdir.VALIDATION),
                dict(results, epoch=round(step / self.steps_per_epoch, 3)),
            )
        if results[self.selection_key] < self.best_validation:
            self.best_validation = results[self.selection_key]
            self.engine.save_best(step, self.best_validation)

    def _record_machine(self) -> None:
        """Appends this machine to `<workdir>/machines.jsonl`.

        A long run may resume on machines of other kinds; a shipped model
        names every CPU kind it trained on. `steps_per_epoch` gives a run
        without validation records its epochs.
        """
        if not self.is_chief:
            return
        entry = dict(
            machine.cpu_description(),
            start_step=self.step,
            steps_per_epoch=self.steps_per_epoch,
            unix_time=round(time.time()),
            backend=backend.name(),
            engine=self.engine.description,
            replicas=self.engine.replicas,
            devices=self.engine.devices(),
        )
        _append_line(workdir.path(self.config.workdir, workdir.MACHINES), entry)

    # Evaluation and pictures.

    def evaluate_split(
        self, images, labels=None, importance_samples=0, places=None
    ) -> dict:
        """The bounds (or, to classify, the error rate) of uint8 images.

        Args:
          images: uint8 [n, H, W, C] (episodes [n, turns, H, W, C] to
            instruct); the first --max_eval_examples only.
          labels: int [n] to classify, the classes [n, turns] to
            instruct; else None.
          importance_samples: k of the importance-weighted bound; 0 skips
            (the instructed model's bounds are ELBOs).
          places: int [n, turns] to instruct on places, else None.
        """
        limit = self.config.max_eval_examples or None
        images = images[:limit]
        labels = None if labels is None else labels[:limit]
        places = None if places is None else places[:limit]
        if self.instruct:
            return self.engine.evaluate(images, labels, 0, places)
        return self.engine.evaluate(
            images, labels if self.classify else None, importance_samples
        )

    def evaluate_test(self) -> dict:
        """The test-split results, written to eval/test.json and printed."""
        results = self.evaluate_split(
            self.splits.test,
            self.splits.test_labels,
            self.config.importance_samples,
            places=self.splits.test_places,
        )
        if self.instruct:
            results.update(self.judge_test_episodes())
        results.update(split="test", step=self.step, backend=backend.name())
        if self.is_chief:
            path = workdir.path(self.config.workdir, workdir.TEST)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                json.dump(results, file, indent=2, sort_keys=True)
        print(json.dumps(results, sort_keys=True), flush=True)
        return results

    def judge_test_episodes(self) -> dict:
        """The judge's reading of episodes drawn from the test instructions.

        The test split's instructions (the first --max_eval_examples),
        drawn with episode i's noise from (seed + 1, stream, i)
        (`draw_tf.bounds.EpisodeEvaluator.draw`), read by --judge at each
        instructed place (`draw_tf.judge.judge_episodes`).

        Returns:
          {"instruction_accuracy": [per turn], "preservation": [per turn],
          "judge": its name} in fractions, or {} without --judge.
        """
        scores = self._judge_drawn(
            self.splits.test_labels,
            self.splits.test_places,
            self.config.max_eval_examples or None,
        )
        return dict(scores, judge=self.config.judge) if scores else {}

    def _judge_drawn(self, labels, places, count) -> dict:
        """The judge's scores of the first `count` instructions drawn.

        Args:
          labels: int64 [n, turns] instructed classes of a split.
          places: int64 [n, turns] their places, or None.
          count: how many (None: all).

        Returns:
          `judge.instruction_scores` of the drawn episodes, or {} without
          --judge (loaded once, at the first call).
        """
        if self._judge is None:
            self._judge = warm_start.load_judge(self.config.judge) or False
        if self._judge is False:
            return {}
        classes = labels[:count]
        places = None if places is None else places[:count]
        drawn = self.engine.draw_instructions(classes, places)
        return judge_lib.instruction_scores(
            self._judge, drawn["images"], classes, places
        )

    def _judge_validation_episodes(self) -> dict:
        """The judge's scores of the first validation episodes drawn.

        The first `VALIDATION_JUDGED` validation instructions (at most
        --max_eval_examples), drawn as the test's are and read by --judge:
        the curve of what the model draws, beside the -ELBO that selects
        the checkpoint.

        Returns:
          {"instruction_accuracy": [per turn], "preservation": [per turn]},
          or {} without --judge.
        """
        count = min(
            VALIDATION_JUDGED,
            self.config.max_eval_examples or VALIDATION_JUDGED,
        )
        return self._judge_drawn(
            self.splits.validation_labels,
            self.splits.validation_places,
            count,
        )

    def _draw_validation_instructions(self, count: int) -> np.ndarray:
        """The first validation instructions drawn: [count, turns, H, W, C]."""
        places = self.splits.validation_places
        return self.engine.draw_instructions(
            self.splits.validation_labels[:count],
            None if places is None else places[:count],
        )["images"]

    def instructions(self) -> tuple[np.ndarray, np.ndarray | None]:
        """What --mode=draw draws: --instructions, else test instructions.

        --instructions="7 top-left; 3 bottom-right" is one episode, drawn
        min(--num_pictures, 8) times (new noise each); to a
        class-conditional model "7, 3" is as many digits of each class.

        Returns:
          (classes int64 [n, turns], places int64 [n, turns] or None).

        Raises:
          ConfigError: for --instructions this model can't draw (one line).
        """
        config = self.config
        count = min(config.num_pictures, 8)
        if not config.instructions:
            places = self.splits.test_places
            return (
                self.splits.test_labels[:count],
                None if places is None else places[:count],
            )
        try:
            if not config.num_places:
                digits = instructed_mnist.parse_classes(config.instructions)
                classes = np.repeat(np.array(digits, np.int64), count)
                return classes[:, np.newaxis], None
            parsed = instructed_mnist.parse(
                config.instructions, max_turns=config.num_turns
            )
        except instructed_mnist.InstructionError as error:
            raise ConfigError(f"--instructions: {error}") from None
        classes = np.array([[i.digit for i in parsed]] * count, np.int64)
        places = np.array([[i.place for i in parsed]] * count, np.int64)
        return classes, places

    def draw(self) -> dict:
        """Writes the sample grid and the step-by-step canvas pictures."""
        config = self.config
        count = config.num_pictures
        directory = workdir.path(config.workdir, workdir.PICTURES)
        if not (self.is_chief and count):
            return {}
        if self.classify:
            return self._draw_glimpses(directory)
        if self.instruct:
            return self._draw_episodes(directory)
        cell = self.model.cell
        seed = np.array([config.seed, 7])
        generated = self.engine.generate(count, seed)
        shown = min(count, 8)
        test_images = self.splits.test[:shown].astype(np.float32) / 255.0
        paths = pictures.save_run_pictures(
            generated,
            self.engine.reconstruct(test_images, seed),
            directory,
            read_size=cell.read_glimpse_size,
            write_size=cell.write_patch_size,
        )
        self.summaries.image(
            "samples",
            pictures.grid(generated["images"][: min(count, 16)], columns=8),
            self.step,
        )
        self.summaries.flush()
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return paths

    def _draw_episodes(self, directory) -> dict:
        """Episodes drawn turn by turn, and the first step by step."""
        classes, places = self.instructions()
        drawn = self.engine.draw_instructions(classes, places, canvases=True)
        paths = pictures.save_episode_pictures(
            drawn,
            directory,
            self.model.cell.write_patch_size,
            # One turn: a row of the samples of each class.
            columns=None
            if classes.shape[1] > 1
            else min(len(classes), self.config.num_pictures, 8),
        )
        logging.info(
            "drew %d episodes: %s",
            len(classes),
            instructed_mnist.describe(
                classes[0], None if places is None else places[0]
            )
            if places is not None
            else instructed_mnist.describe(np.unique(classes)),
        )
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return paths

    def _draw_glimpses(self, directory) -> dict:
        """The classifier's glimpses on test images, step by step."""
        shown = min(self.config.num_pictures, 8)
        images = self.splits.test[:shown].astype("float32") / 255.0
        outputs = self.engine.classify_images(images)
        steps = self.model.num_glimpses
        tiles = pictures.annotated_tiles(
            np.repeat(images[:, np.newaxis], steps, axis=1),
            read_windows=outputs["read_windows"],
            read_size=self.model.glimpse_size,
        )
        paths = pictures.save_sequence(tiles, directory, "glimpses")
        predicted = np.argmax(outputs["logits"], axis=-1)
        logging.info(
            "glimpses on test images: labels %s, predicted %s",
            self.splits.test_labels[:shown].tolist(),
            predicted.tolist(),
        )
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return paths


def _next_multiple(step: int, every: int) -> int:
    """The smallest multiple of `every` above `step`."""
    return (step // every + 1) * every


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def _append_line(path: str, value: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as file:
        file.write(json.dumps(value, sort_keys=True) + "\n")
