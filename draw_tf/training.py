"""Training, evaluation and pictures of a run: what train.py runs.

A run lives in `--workdir`:

    config.json           the architecture, checked on every restart
    checkpoints/          the latest checkpoints (model, optimizer, step)
    best/                 the checkpoint with the best validation bound
    eval/validation.jsonl one JSON line per validation (bounds, step, epoch)
    eval/test.json        the test-set bounds (mode=evaluate, end of train)
    tensorboard/          TensorBoard summaries
    pictures/             samples and the canvas drawn step by step
    machines.jsonl        the CPU kind of every (re)start of training

Training batches and noise are a function of (seed, step) (see
`draw_tf.data`), so a run killed at any moment and started again with the
same command resumes from its last checkpoint and redoes the same steps.

The loss of each replica is its examples' negative ELBO summed and divided
by the GLOBAL batch size, so that the gradients summed over replicas are
those of the mean over the global batch; a batch's examples and noise are
sliced by replica id from the same global batch, so the update does not
depend on the number of replicas.
"""

import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from draw_tf import data as data_lib
from draw_tf import (
    distribution,
    evaluation,
    losses,
    machine,
    pictures,
    schedules,
    warm_start,
    workdir,
)
from draw_tf.classifier import DrawClassifier, classification_terms
from draw_tf.config import ConfigError, TrainConfig, check_workdir_architecture
from draw_tf.errors import TrainingDivergedError
from draw_tf.model import DrawModel


def run(config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
    """Runs `config.mode`: train, evaluate (test split) or draw.

    Args:
      config: a validated config.
      strategy: the strategy to train under; `distribution.make_strategy()`
        when None.

    Returns:
      train and evaluate: the test results dict; draw: the picture paths.
    """
    config.validate()
    splits = data_lib.load_splits(config)
    config.check_image_shape(splits.image_shape)
    config.check_fits_in_memory(splits.image_shape)
    check_workdir_architecture(config, splits.image_shape)
    experiment = Experiment(
        config, strategy or distribution.make_strategy(), splits
    )
    if config.mode == "train":
        experiment.train()
        experiment.restore_for_evaluation()
        results = experiment.evaluate_test()
        experiment.draw()
        return results
    if config.pretrained:
        experiment.load_pretrained(config.pretrained)
    elif not experiment.restore_for_evaluation():
        raise ConfigError(
            f"--workdir={config.workdir} has no checkpoint to "
            f"{config.mode} from; train first (--mode=train)."
        )
    if config.mode == "evaluate":
        return experiment.evaluate_test()
    return experiment.draw()


class Experiment:
    """The model, optimizer, checkpoints and loops of one run.

    Args:
      config: the run's config.
      strategy: the distribution strategy.
      splits: the data.
    """

    def __init__(
        self,
        config: TrainConfig,
        strategy: tf.distribute.Strategy,
        splits: data_lib.Splits,
    ):
        self.config = config
        self.strategy = strategy
        self.splits = splits
        self.is_chief = distribution.is_chief(strategy)
        replicas = strategy.num_replicas_in_sync
        if config.batch_size % replicas:
            raise ConfigError(
                f"--batch_size={config.batch_size} must be a multiple of the "
                f"{replicas} replicas."
            )
        self.classify = config.task == "classify"
        # The validation number that picks the best checkpoint (lower is
        # better), and the training loss.
        self.selection_key = "error_rate" if self.classify else "negative_elbo"
        self.loss_key = "cross_entropy" if self.classify else "negative_elbo"
        keras.utils.set_random_seed(config.seed)  # same init on all workers
        with strategy.scope():
            model_class = DrawClassifier if self.classify else DrawModel
            self.model = model_class(
                **config.model_kwargs(splits.image_shape), name="draw"
            )
            self.learning_rate_schedule = self._learning_rate()
            self.optimizer = keras.optimizers.Adam(self.learning_rate_schedule)
            self.optimizer.build(self.model.trainable_variables)
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.best_validation = tf.Variable(
                math.inf, dtype=tf.float64, trainable=False
            )
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            step=self.step,
            best_validation=self.best_validation,
        )
        self.managers = {
            name: tf.train.CheckpointManager(
                self.checkpoint,
                self._checkpoint_dir(name),
                max_to_keep=3 if name == workdir.CHECKPOINTS else 1,
            )
            for name in (workdir.CHECKPOINTS, workdir.BEST)
        }
        if self.classify:
            self.evaluator = evaluation.ClassifierEvaluator(
                self.model, config.eval_batch_size, config.jit_compile
            )
        else:
            self.evaluator = evaluation.Evaluator(
                self.model,
                config.eval_batch_size,
                seed=config.seed + 1,
                jit_compile=config.jit_compile,
            )
        self._train_step = tf.function(self._train_step_fn)
        # XLA compiles one replica's forward and backward pass (the DRAW
        # loop is a tf.while_loop, so it compiles in seconds; the
        # classifier's 8 glimpses are unrolled, 1.7x faster compiled on
        # 100 x 100 cluttered MNIST); the all-reduce, clipping and the
        # optimizer stay outside it.
        self._loss_and_gradients = tf.function(
            self._loss_and_gradients_fn, jit_compile=config.jit_compile
        )
        self._weights_are_finite = tf.function(
            lambda: tf.reduce_all(
                [
                    tf.reduce_all(tf.math.is_finite(variable))
                    for variable in self.model.trainable_variables
                ]
            )
        )
        if self.classify:
            self._classify = tf.function(self.model)
        else:
            self._generate = tf.function(self.model.generate)
            self._reconstruct = tf.function(
                lambda images, seed: self.model(
                    images, seed=seed, return_canvases=True
                )
            )
        if self.is_chief:
            self.writer = tf.summary.create_file_writer(
                workdir.path(config.workdir, workdir.TENSORBOARD)
            )
        else:
            self.writer = tf.summary.create_noop_writer()

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

    def _learning_rate(self) -> schedules.LearningRateSchedule:
        """The config's schedule over `total_steps`."""
        config = self.config
        if (
            config.learning_rate_schedule == "cosine"
            and config.learning_rate_warmup_steps >= self.total_steps
        ):
            raise ConfigError(
                f"--learning_rate_warmup_steps="
                f"{config.learning_rate_warmup_steps} must be below the "
                f"run's {self.total_steps} steps for a cosine schedule."
            )
        return schedules.LearningRateSchedule(
            config.learning_rate,
            max(self.total_steps, 1),
            kind=config.learning_rate_schedule,
            warmup_steps=config.learning_rate_warmup_steps,
            final_fraction=config.learning_rate_final_fraction,
        )

    def learning_rate_at(self, step: int) -> float:
        """The rate of the update that takes training from `step` to +1."""
        return float(self.learning_rate_schedule(step))

    def restore(self, manager_name: str = workdir.CHECKPOINTS) -> str | None:
        """Restores the newest checkpoint of a manager, if there is one."""
        # The chief's directory, on every worker.
        path = tf.train.latest_checkpoint(
            os.path.join(self.config.workdir, manager_name)
        )
        if path is None:
            return None
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.OpError) as error:
            first_line = str(error).strip().splitlines()[0][:300]
            raise ConfigError(
                f"Checkpoint {path} does not match this model ({first_line});"
                " use a new --workdir or the flags it was trained with."
            ) from None
        return path

    def restore_for_evaluation(self) -> str | None:
        """Restores the best-validation checkpoint, else the latest.

        A workdir trained with `fit()` on another backend
        (`draw_tf.keras_training`, e.g. on JAX) has no TensorFlow
        checkpoint; its best weights are used.
        """
        path = (
            self.restore(workdir.BEST)
            or self.restore(workdir.CHECKPOINTS)
            or self._load_keras_best()
        )
        if path:
            logging.info(
                "Using checkpoint %s (step %d).", path, int(self.step.numpy())
            )
        return path

    def _load_keras_best(self) -> str | None:
        """The best weights of a workdir `draw_tf.keras_training` wrote."""
        path = workdir.path(self.config.workdir, workdir.KERAS_BEST_WEIGHTS)
        if not os.path.exists(path):
            return None
        self.model.load_weights(path)
        state = workdir.path(self.config.workdir, workdir.KERAS_BEST_STATE)
        with open(state) as file:
            self.step.assign(int(json.load(file)["step"]))
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
        self.step.assign(shipped["steps"])
        logging.info(
            "Using pretrained model %s (step %d).", name, shipped["steps"]
        )

    def train(self) -> None:
        """Trains to `total_steps`, resuming from the latest checkpoint.

        Raises:
          TrainingDivergedError: if the loss becomes NaN or infinite; the
            checkpoints written before are left as they were.
        """
        config = self.config
        restored = self.restore()
        if not restored and config.init_from:
            origin = warm_start.initialize(
                self.model,
                config,
                self.splits.image_shape,
                write_record=self.is_chief,
            )
            logging.info("Initialized the weights from %s.", origin)
        best_path = tf.train.latest_checkpoint(
            workdir.path(config.workdir, workdir.BEST)
        )
        if best_path:
            # The best value lives with the best checkpoint; the latest
            # checkpoint may have been written before it improved.
            reader = tf.train.load_checkpoint(best_path)
            self.best_validation.assign(
                reader.get_tensor("best_validation/.ATTRIBUTES/VARIABLE_VALUE")
            )
        start = int(self.step.numpy())
        total = self.total_steps
        self._record_machine(start)
        logging.info(
            "%s at step %d of %d (%d steps per epoch, %d replicas).",
            f"Resuming from {restored}" if restored else "Starting",
            start,
            total,
            self.steps_per_epoch,
            self.strategy.num_replicas_in_sync,
        )
        eval_every = config.eval_every_steps or self.steps_per_epoch
        dataset = data_lib.train_dataset(
            self.splits.train,
            config.batch_size,
            None if self.classify else (config.num_steps, config.latent_size),
            config.seed,
            start,
            total,
            self.splits.dynamic_binarization,
            labels=self.splits.train_labels if self.classify else None,
            composite=self.splits.composite,
        )
        interval_start, interval_steps = time.perf_counter(), 0
        for batch in dataset:
            metrics = self.train_step(batch)
            step = int(batch["step"]) + 1
            loss = float(metrics[self.loss_key])
            if not math.isfinite(loss):
                latest = self.managers[workdir.CHECKPOINTS].latest_checkpoint
                raise TrainingDivergedError(
                    f"The loss became {loss} at step {step}; training "
                    f"stopped. The last good checkpoint ({latest or 'none'}) "
                    "is intact: lower --learning_rate or set "
                    "--gradient_clip_norm and run again."
                )
            interval_steps += 1
            if step % config.log_every_steps == 0 or step == total:
                elapsed = time.perf_counter() - interval_start
                self._report_progress(
                    step, total, metrics, interval_steps, elapsed
                )
                interval_start, interval_steps = time.perf_counter(), 0
            if step % eval_every == 0 or step == total:
                self._validate(step)
                interval_start = time.perf_counter()  # rates count training
            if step % config.checkpoint_every_steps == 0 or step == total:
                self._save(workdir.CHECKPOINTS, step)
                interval_start = time.perf_counter()
        if start >= total:
            logging.info("Already trained to step %d.", total)

    def _record_machine(self, start: int) -> None:
        """Appends this machine to `<workdir>/machines.jsonl`.

        A long run may resume on machines of other kinds; a shipped model
        names every CPU kind it trained on.
        """
        if not self.is_chief:
            return
        entry = dict(
            machine.cpu_description(),
            start_step=start,
            unix_time=round(time.time()),
            replicas=self.strategy.num_replicas_in_sync,
        )
        path = workdir.path(self.config.workdir, workdir.MACHINES)
        with open(path, "a") as file:
            file.write(json.dumps(entry, sort_keys=True) + "\n")

    def train_step(self, batch: dict) -> dict:
        """One global step (forward, backward, optimizer update).

        Args:
          batch: a global batch of `data.train_dataset` (images, noise or
            labels).

        Returns:
          The batch's mean loss terms (scalars; latent_loss_per_step [T]).
        """
        return self._train_step(
            batch["images"], batch.get("noise"), batch.get("labels")
        )

    def evaluate_test(self) -> dict:
        """The test-split results, written to eval/test.json and printed."""
        results = self.evaluate_split(
            self.splits.test,
            self.splits.test_labels,
            self.config.importance_samples,
        )
        results.update(split="test", step=int(self.step.numpy()))
        if self.is_chief:
            path = workdir.path(self.config.workdir, workdir.TEST)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as file:
                json.dump(results, file, indent=2, sort_keys=True)
        print(json.dumps(results, sort_keys=True), flush=True)
        return results

    def evaluate_split(self, images, labels, importance_samples=0) -> dict:
        """The bounds (or, to classify, the error rate) of uint8 images.

        Args:
          images: uint8 [n, H, W, C]; the first --max_eval_examples only.
          labels: int [n] to classify, else None.
          importance_samples: k of the importance-weighted bound; 0 skips.
        """
        if self.classify:
            return self.evaluator(
                images, labels, max_examples=self.config.max_eval_examples
            )
        return self.evaluator(
            images,
            importance_samples=importance_samples,
            max_examples=self.config.max_eval_examples,
        )

    def draw(self) -> dict:
        """Writes the sample grid and the step-by-step canvas pictures."""
        config, model = self.config, self.model
        count = config.num_pictures
        directory = workdir.path(config.workdir, workdir.PICTURES)
        if not (self.is_chief and count):
            return {}
        if self.classify:
            return self._draw_glimpses(directory)
        seed = tf.constant([config.seed, 7], tf.int64)
        generated = self._generate(count, seed=seed)
        shown = min(count, 8)
        test_images = tf.cast(self.splits.test[:shown], tf.float32) / 255.0
        reconstructed = self._reconstruct(test_images, seed)
        paths = pictures.save_run_pictures(
            {key: value.numpy() for key, value in generated.items()},
            {key: value.numpy() for key, value in reconstructed.items()},
            directory,
            read_size=model.cell.read_glimpse_size,
            write_size=model.cell.write_patch_size,
        )
        with self.writer.as_default(step=int(self.step.numpy())):
            tf.summary.image(
                "samples", generated["images"][: min(count, 16)], max_outputs=16
            )
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return paths

    def _draw_glimpses(self, directory) -> dict:
        """The classifier's glimpses on test images, step by step."""
        shown = min(self.config.num_pictures, 8)
        images = self.splits.test[:shown].astype("float32") / 255.0
        outputs = self._classify(tf.constant(images))
        steps = self.model.num_glimpses
        tiles = pictures.annotated_tiles(
            np.repeat(images[:, np.newaxis], steps, axis=1),
            read_windows=outputs["read_windows"].numpy(),
            read_size=self.model.glimpse_size,
        )
        paths = pictures.save_sequence(tiles, directory, "glimpses")
        predicted = np.argmax(outputs["logits"].numpy(), axis=-1)
        logging.info(
            "glimpses on test images: labels %s, predicted %s",
            self.splits.test_labels[:shown].tolist(),
            predicted.tolist(),
        )
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return paths

    def _train_step_fn(self, images, noise, labels=None):
        global_batch = self.config.batch_size
        clip_norm = self.config.gradient_clip_norm

        def replica_step(images, noise, labels):
            context = tf.distribute.get_replica_context()
            replicas = context.num_replicas_in_sync
            per_replica = global_batch // replicas
            first = context.replica_id_in_sync_group * per_replica
            images = images[first : first + per_replica]
            if self.classify:
                labels = labels[first : first + per_replica]
            else:
                noise = noise[first : first + per_replica]
            terms, gradients = self._loss_and_gradients(images, noise, labels)
            variables = self.model.trainable_variables
            if clip_norm:
                # Clip the global gradient, not each replica's: sum it
                # here, and let the optimizer's own sum over replicas
                # undo the division.
                gradients = context.all_reduce(
                    tf.distribute.ReduceOp.SUM, gradients
                )
                gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
                gradients = [gradient / replicas for gradient in gradients]
            self.optimizer.apply_gradients(
                zip(gradients, variables, strict=True)
            )
            return {
                key: tf.reduce_sum(value, axis=0)
                for key, value in terms.items()
            }

        if labels is None:
            labels = tf.zeros([global_batch], tf.int64)
        if noise is None:
            noise = tf.zeros([global_batch, 0])
        sums = self.strategy.run(replica_step, args=(images, noise, labels))
        self.step.assign_add(1)
        return {
            key: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, None)
            / global_batch
            for key, value in sums.items()
        }

    def _loss_and_gradients_fn(self, images, noise, labels):
        """One replica's loss terms and gradients (of the global mean)."""
        with tf.GradientTape() as tape:
            if self.classify:
                terms = classification_terms(
                    labels, self.model(images)["logits"]
                )
            else:
                terms = losses.negative_elbo(
                    images, self.model(images, noise=noise)
                )
            loss = tf.reduce_sum(terms[self.loss_key]) / self.config.batch_size
        gradients = tape.gradient(loss, self.model.trainable_variables)
        return terms, gradients

    def _report_progress(self, step, total, metrics, steps, seconds):
        config = self.config
        examples_per_second = steps * config.batch_size / max(seconds, 1e-9)
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
        with self.writer.as_default(step=step):
            for key, value in metrics.items():
                if key == "latent_loss_per_step":
                    for t, kl in enumerate(value.numpy()):
                        tf.summary.scalar(f"train_kl_per_step/t{t + 1:03d}", kl)
                else:
                    tf.summary.scalar(f"train/{key}", value)
            tf.summary.scalar("train/examples_per_second", examples_per_second)
            tf.summary.scalar("train/learning_rate", learning_rate)

    def _validate(self, step: int) -> None:
        results = self.evaluate_split(
            self.splits.validation, self.splits.validation_labels
        )
        results.update(split="validation", step=step)
        logging.info(
            "validation at step %d: %s",
            step,
            ", ".join(
                f"{key} {value:.4f}"
                for key, value in sorted(results.items())
                if isinstance(value, float)
            ),
        )
        with self.writer.as_default(step=step):
            for key, value in results.items():
                if isinstance(value, float):
                    tf.summary.scalar(f"validation/{key}", value)
            if not self.classify:
                samples = self._generate(16, seed=tf.constant([0, 0], tf.int64))
                tf.summary.image("samples", samples["images"], max_outputs=16)
        if self.is_chief:
            path = workdir.path(self.config.workdir, workdir.VALIDATION)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            line = dict(results, epoch=round(step / self.steps_per_epoch, 3))
            with open(path, "a") as file:
                file.write(json.dumps(line, sort_keys=True) + "\n")
        if results[self.selection_key] < self.best_validation.numpy():
            self.best_validation.assign(results[self.selection_key])
            self._save(workdir.BEST, step)

    def _checkpoint_dir(self, name: str) -> str:
        if self.is_chief:
            return os.path.join(self.config.workdir, name)
        # Every worker must take part in a save; the others write to a
        # scratch directory of their own, removed after each save.
        worker = distribution.worker_id(self.strategy)
        return os.path.join(
            self.config.workdir, "scratch", f"worker_{worker}", name
        )

    def _save(self, name: str, step: int) -> None:
        # A finite loss can still come with a NaN update (inf gradients):
        # never write non-finite weights over a good checkpoint.
        if not bool(self._weights_are_finite()):
            latest = self.managers[workdir.CHECKPOINTS].latest_checkpoint
            raise TrainingDivergedError(
                f"The weights became NaN or infinite at step {step}; "
                f"training stopped. The last good checkpoint "
                f"({latest or 'none'}) is intact: lower --learning_rate or "
                "set --gradient_clip_norm and run again."
            )
        path = self.managers[name].save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"
