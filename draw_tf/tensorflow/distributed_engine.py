"""The tf.distribute engine of the run loop (`draw_tf.trainer`).

One global step is one compiled per-replica forward and backward pass
under a `tf.distribute.Strategy` (MirroredStrategy over local devices,
MultiWorkerMirroredStrategy across machines; `draw_tf.tensorflow.distribution`),
fed by `draw_tf.data.train_dataset` (tf.data). Checkpoints are
`tf.train.Checkpoint`s of the model, the optimizer, the step and the best
validation number, in `<workdir>/checkpoints/` (the latest 3) and
`<workdir>/best/`.

The loss of each replica is its examples' negative ELBO summed and divided
by the GLOBAL batch size, so that the gradients summed over replicas are
those of the mean over the global batch; a batch's examples and noise are
sliced by replica id from the same global batch, so the update does not
depend on the number of replicas.
"""

import functools
import math
import os
import shutil

import keras
import tensorflow as tf

from draw_tf import bounds, losses, models, schedules, workdir
from draw_tf import data as data_lib
from draw_tf.classifier import classification_terms
from draw_tf.config import ConfigError, TrainConfig
from draw_tf.engine import Engine, Outcome, Restored
from draw_tf.tensorflow import distribution


class DistributedEngine(Engine):
    """The model, optimizer, checkpoints and compiled step under a strategy.

    Args:
      config: the run's config.
      splits: the data.
      learning_rate_schedule: the optimizer's schedule.
      strategy: the strategy to train under; `distribution.make_strategy()`
        when None.
    """

    def __init__(
        self,
        config: TrainConfig,
        splits: data_lib.Splits,
        learning_rate_schedule: schedules.LearningRateSchedule,
        strategy: tf.distribute.Strategy | None = None,
    ):
        if config.task == "instruct":
            raise ConfigError(
                "--task=instruct trains with Keras fit() (--engine=keras); "
                "the tf.distribute engine trains the unconditional model and "
                "the classifier."
            )
        if config.train_only:
            raise ConfigError(
                f"--train_only={config.train_only} is applied by Keras fit() "
                "(--engine=keras); the tf.distribute engine trains every "
                "variable."
            )
        strategy = strategy or distribution.make_strategy()
        self.config = config
        self.strategy = strategy
        self.splits = splits
        self.is_chief = distribution.is_chief(strategy)
        self.replicas = replicas = strategy.num_replicas_in_sync
        self.description = f"{replicas} replicas, {type(strategy).__name__}"
        if config.batch_size % replicas:
            raise ConfigError(
                f"--batch_size={config.batch_size} must be a multiple of the "
                f"{replicas} replicas."
            )
        self.classify = config.task == "classify"
        self.loss_key = "cross_entropy" if self.classify else "negative_elbo"
        keras.utils.set_random_seed(config.seed)  # same init on all workers
        with strategy.scope():
            self.model = models.build(config, splits.image_shape)
            self.optimizer = keras.optimizers.Adam(learning_rate_schedule)
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
            self.evaluator = bounds.ClassifierEvaluator(
                self.model, config.eval_batch_size, config.jit_compile
            )
        else:
            self.evaluator = bounds.Evaluator(
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
        self._batches = None  # (next step, iterator) of the training data

    def devices(self) -> list[str]:
        try:
            return list(self.strategy.extended.worker_devices)
        except RuntimeError:  # the default strategy: no device list
            return []

    # Checkpoints.

    def restore_latest(self) -> Restored | None:
        path = self._restore(workdir.CHECKPOINTS)
        if path is None:
            state = workdir.path(self.config.workdir, workdir.KERAS_STATE)
            if os.path.exists(state):
                raise ConfigError(
                    f"--workdir={self.config.workdir} holds the fit() "
                    "engine's checkpoints (keras_checkpoints/); resume it "
                    "with --engine=keras, or start the tf.distribute engine "
                    "in a new --workdir (--init_from can take its weights)."
                )
            return None
        # The best value lives with the best checkpoint; the latest
        # checkpoint may have been written before it improved.
        self.best_validation.assign(self.recorded_best())
        return Restored(
            path=path,
            step=int(self.step.numpy()),
            best_validation=float(self.best_validation.numpy()),
        )

    def recorded_best(self) -> float:
        best_path = tf.train.latest_checkpoint(
            workdir.path(self.config.workdir, workdir.BEST)
        )
        if not best_path:
            return math.inf
        reader = tf.train.load_checkpoint(best_path)
        return float(
            reader.get_tensor("best_validation/.ATTRIBUTES/VARIABLE_VALUE")
        )

    def load_for_evaluation(self) -> tuple[str, int] | None:
        """The best checkpoint, else the latest, else fit()'s best weights.

        A workdir trained with `fit()` (`draw_tf.keras_engine`, e.g. on
        JAX) has no TensorFlow checkpoint; its best weights are used.
        """
        path = self._restore(workdir.BEST) or self._restore(workdir.CHECKPOINTS)
        if path:
            return path, int(self.step.numpy())
        weights = workdir.find_weights(self.config.workdir)
        if weights is None or weights.kind != "keras":
            return None
        self.model.load_weights(weights.path)
        self.step.assign(weights.step)
        return weights.path, weights.step

    def _restore(self, manager_name: str) -> str | None:
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

    def latest_checkpoint(self) -> str | None:
        return self.managers[workdir.CHECKPOINTS].latest_checkpoint

    def save(self, step, best_validation, train_seconds) -> str:
        del train_seconds  # not in TensorFlow checkpoints (their format)
        return self._save(workdir.CHECKPOINTS, step, best_validation)

    def save_best(self, step, best_validation) -> str:
        return self._save(workdir.BEST, step, best_validation)

    def _save(self, name: str, step: int, best_validation: float) -> str:
        self.step.assign(step)
        self.best_validation.assign(best_validation)
        path = self.managers[name].save(checkpoint_number=step)
        if not self.is_chief:
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
        return path

    def _checkpoint_dir(self, name: str) -> str:
        if self.is_chief:
            return os.path.join(self.config.workdir, name)
        # Every worker must take part in a save; the others write to a
        # scratch directory of their own, removed after each save.
        worker = distribution.worker_id(self.strategy)
        return os.path.join(
            self.config.workdir, "scratch", f"worker_{worker}", name
        )

    # Training.

    def train_steps(self, start, stop, total, report) -> Outcome:
        """Steps [start, stop) from one tf.data iterator kept across calls.

        The iterator runs to `total` (each batch is a function of the seed
        and its step), so the next chunk, which starts at `stop`, takes
        the following batches without a new pipeline; it is dropped at
        the end of the run.
        """
        config = self.config
        if self._batches is None or self._batches[0] != start:
            dataset = data_lib.train_dataset(
                self.splits.train,
                config.batch_size,
                None
                if self.classify
                else (config.num_steps, config.latent_size),
                config.seed,
                start,
                total,
                self.splits.dynamic_binarization,
                labels=self.splits.train_labels if self.classify else None,
                composite=self.splits.composite,
            )
            self._batches = (start, iter(dataset))
        iterator = self._batches[1]
        loss = math.nan
        step = start
        for step in range(start + 1, stop + 1):
            metrics = self.train_step(next(iterator))
            self._batches = (step, iterator)
            loss = float(metrics[self.loss_key])
            if not math.isfinite(loss):
                self._batches = None
                return Outcome(step=step, loss=loss)
            if step % config.log_every_steps == 0 or step == total:
                report(
                    step,
                    {key: value.numpy() for key, value in metrics.items()},
                    None,
                )
        if stop == total:
            self._batches = None  # no batches prefetched past the run
        return Outcome(step=step, loss=loss)

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

    def weights_are_finite(self) -> bool:
        return bool(self._weights_are_finite())

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

    # Evaluation and pictures.

    def evaluate(self, images, labels, importance_samples=0, places=None):
        del places  # --task=instruct trains with fit() only
        if self.classify:
            return self.evaluator(images, labels)
        return self.evaluator(images, importance_samples=importance_samples)

    def generate(self, count, seed) -> dict:
        outputs = self._generate(count, seed=tf.constant(seed, tf.int64))
        return {key: value.numpy() for key, value in outputs.items()}

    def reconstruct(self, images, seed) -> dict:
        outputs = self._reconstruct(
            tf.constant(images, tf.float32), tf.constant(seed, tf.int64)
        )
        return {key: value.numpy() for key, value in outputs.items()}

    def classify_images(self, images) -> dict:
        outputs = self._classify(tf.constant(images, tf.float32))
        return {key: value.numpy() for key, value in outputs.items()}


def make_trainer(
    config: TrainConfig,
    strategy: tf.distribute.Strategy | None,
    splits: data_lib.Splits,
):
    """The run loop (`draw_tf.trainer.Trainer`) with this engine.

    Args:
      config: the run's config.
      strategy: the strategy to train under; `distribution.make_strategy()`
        when None.
      splits: the data.
    """
    from draw_tf import trainer

    return trainer.Trainer(
        config, splits, functools.partial(DistributedEngine, strategy=strategy)
    )


def run(config: TrainConfig, strategy: tf.distribute.Strategy | None = None):
    """`draw_tf.trainer.run` with this engine under `strategy`."""
    from draw_tf import trainer

    return trainer.run(
        config, functools.partial(DistributedEngine, strategy=strategy)
    )
