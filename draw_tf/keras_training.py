"""Training with Keras' `fit()` on any backend: train.py off TensorFlow.

`python train.py --flagfile=...` runs `draw_tf.training` (tf.distribute)
when Keras runs on TensorFlow, and this module otherwise
(`KERAS_BACKEND=jax`, on the CPU or on the GPUs JAX sees, with no
TensorFlow installed). Same flags, same data files, same workdir layout
where the two meet:

    config.json                the architecture, checked on every restart
    keras_checkpoints/         ckpt-<step>.keras: model and optimizer, the
                               latest 3, and state.json (step, best, and
                               the seconds spent training so far)
    best/model.weights.h5      the weights with the best validation bound,
    best/state.json            and their step and bound
    eval/validation.jsonl      one JSON line per validation (bounds, step,
                               epoch)
    eval/test.json             the test-set bounds
    pictures/                  samples and the canvas drawn step by step
    machines.jsonl             the machine of every (re)start

The TensorFlow side (`train.py --mode=evaluate|draw`, the SavedModel
export) reads `best/model.weights.h5` of such a workdir.

Resume is exact at checkpoints: training runs in chunks of
`--checkpoint_every_steps` (one `fit()` call each, cut at validations);
the images of step s (their order, and their dynamic binarization) are a
function of (seed, s), and the model's noise generator is reset to
(seed, first step) at the start of every chunk. A run killed mid-chunk
redoes that chunk from its last checkpoint. The numbers are not those of
the TensorFlow path for the same seed (another random number generator).

Several accelerators: `keras.distribution.DataParallel` over all of them
when JAX sees more than one.
"""

import json
import math
import os
import time

import keras
import numpy as np
from absl import logging

from draw_tf import (
    backend,
    event_summaries,
    losses,
    machine,
    pictures,
    schedules,
    warm_start,
    workdir,
)
from draw_tf import data as data_lib
from draw_tf.config import ConfigError, TrainConfig, check_workdir_architecture
from draw_tf.errors import TrainingDivergedError
from draw_tf.model import DrawModel

CHECKPOINTS = workdir.KERAS_CHECKPOINTS
BEST_WEIGHTS = workdir.KERAS_BEST_WEIGHTS
BEST_STATE = workdir.KERAS_BEST_STATE
_KEEP_CHECKPOINTS = 3
# Streams of the (seed, stream, ...) random numbers.
_ORDER_STREAM, _BINARIZATION_STREAM, _NOISE_STREAM = 1, 2, 3
_COMPOSITE_STREAM = 4


def run(config: TrainConfig) -> dict:
    """Runs `config.mode` (train, evaluate or draw) with Keras.

    Returns:
      train and evaluate: the test results; draw: the picture paths.

    Raises:
      ConfigError: for what this backend cannot do, or a bad workdir.
    """
    config.validate()
    if config.task != "generate":
        raise ConfigError(
            f"--task={config.task} trains under TensorFlow only "
            f"(KERAS_BACKEND=tensorflow); this run uses "
            f"{backend.name()}."
        )
    if config.num_cpu_devices:
        raise ConfigError(
            "--num_cpu_devices splits the CPU for tf.distribute; under "
            f"{backend.name()} leave it 0."
        )
    splits = data_lib.load_splits(config)
    config.check_image_shape(splits.image_shape)
    config.check_fits_in_memory(splits.image_shape)
    check_workdir_architecture(config, splits.image_shape)
    distribute()
    trainer = KerasTrainer(config, splits)
    if config.mode == "train":
        trainer.train()
        trainer.load_best()
        results = trainer.evaluate_test()
        trainer.draw()
        return results
    if config.pretrained:
        trainer.load_pretrained(config.pretrained)
    elif not trainer.load_best():
        raise ConfigError(
            f"--workdir={config.workdir} has no {BEST_WEIGHTS} to "
            f"{config.mode} from; train first (--mode=train)."
        )
    if config.mode == "evaluate":
        return trainer.evaluate_test()
    return trainer.draw()


def distribute() -> None:
    """Data parallelism over every accelerator JAX sees, if several."""
    if backend.name() != "jax":
        return
    import jax

    devices = jax.devices()
    if len(devices) > 1:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        logging.info("Data parallel over %d devices.", len(devices))


def training_images(
    splits: data_lib.Splits, config: TrainConfig, start: int, stop: int
) -> np.ndarray:
    """The images of steps [start, stop), in order: float32 in [0, 1].

    Step s takes batch s mod (steps per epoch) of epoch s // (steps per
    epoch)'s permutation of the training images (seeded by the seed and the
    epoch), composed around those digits (seeded by the seed and s) with
    --resample_composites, binarized afresh (seeded by the seed and s) when
    the binarization is dynamic.

    Returns:
      [(stop - start) * batch_size, height, width, channels].
    """
    batch = config.batch_size
    steps_per_epoch = len(splits.train) // batch
    chunks = []
    for step in range(start, stop):
        epoch, index = divmod(step, steps_per_epoch)
        order = np.random.default_rng(
            [config.seed, _ORDER_STREAM, epoch]
        ).permutation(len(splits.train))
        indices = order[index * batch : (index + 1) * batch]
        if splits.composite:
            images = data_lib.compose_training_batch(
                splits.composite,
                splits.train,
                indices,
                [config.seed, _COMPOSITE_STREAM, step],
            )
        else:
            images = splits.train[indices]
        if splits.dynamic_binarization:
            images = data_lib.binarize(
                images, [config.seed, _BINARIZATION_STREAM, step]
            )
        chunks.append(images)
    return np.concatenate(chunks).astype(np.float32) / 255.0


class KerasTrainer:
    """The model, optimizer, checkpoints and loops of one run, with fit().

    Args:
      config: the run's config.
      splits: the data.
    """

    def __init__(self, config: TrainConfig, splits: data_lib.Splits):
        self.config = config
        self.splits = splits
        self.step = 0
        self.best_validation = math.inf
        self.train_seconds = 0.0
        backend.set_random_seed(config.seed)
        self.model = DrawModel(
            **config.model_kwargs(splits.image_shape), name="draw"
        )
        self.learning_rate_schedule = schedules.LearningRateSchedule(
            config.learning_rate,
            max(self.total_steps, 1),
            kind=config.learning_rate_schedule,
            warmup_steps=config.learning_rate_warmup_steps,
            final_fraction=config.learning_rate_final_fraction,
        )
        self.model.compile(
            optimizer=keras.optimizers.Adam(
                self.learning_rate_schedule,
                global_clipnorm=config.gradient_clip_norm or None,
            ),
            jit_compile=config.jit_compile,
        )
        self._evaluate_batch = _compiled_bounds(self.model)
        self._summaries = None

    @property
    def summaries(self) -> event_summaries.EventWriter:
        """The TensorBoard writer, made when training first writes to it."""
        if self._summaries is None:
            self._summaries = event_summaries.EventWriter(
                self._path(workdir.TENSORBOARD)
            )
        return self._summaries

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one pass over the training images."""
        return len(self.splits.train) // self.config.batch_size

    @property
    def total_steps(self) -> int:
        """The step training ends at."""
        if self.config.train_steps:
            return self.config.train_steps
        return self.config.num_epochs * self.steps_per_epoch

    def _path(self, *parts) -> str:
        return os.path.join(self.config.workdir, *parts)

    def restore(self) -> str | None:
        """Restores the latest checkpoint (model and optimizer), if any."""
        state_path = self._path(workdir.KERAS_STATE)
        if not os.path.exists(state_path):
            return None
        with open(state_path) as file:
            state = json.load(file)
        path = self._path(CHECKPOINTS, f"ckpt-{state['step']}.keras")
        try:
            restored = keras.models.load_model(path)
        except (OSError, ValueError, KeyError) as error:
            first_line = str(error).strip().splitlines()[0][:300]
            raise ConfigError(
                f"Checkpoint {path} does not load into this model "
                f"({first_line}); use a new --workdir."
            ) from None
        self.model.set_weights(restored.get_weights())
        self.model.optimizer.build(self.model.trainable_variables)
        for ours, theirs in zip(
            self.model.optimizer.variables,
            restored.optimizer.variables,
            strict=True,
        ):
            ours.assign(theirs.value)
        self.step = int(state["step"])
        self.best_validation = float(state["best_validation"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        return path

    def load_best(self) -> str | None:
        """Loads the best-validation weights, else the latest checkpoint's."""
        path = self._path(BEST_WEIGHTS)
        if os.path.exists(path):
            self.model.load_weights(path)
            with open(self._path(BEST_STATE)) as file:
                self.step = int(json.load(file)["step"])
            logging.info("Using %s (step %d).", path, self.step)
            return path
        return self.restore()

    def load_pretrained(self, name: str) -> None:
        """Loads a shipped model's weights (`draw_tf.pretrained`).

        Raises:
          ConfigError: if the name is unknown or its architecture is not
            this run's.
        """
        record = warm_start.load_shipped(
            self.model, self.config, self.splits.image_shape, name, "pretrained"
        )
        self.step = int(record["steps"])

    def train(self) -> None:
        """Trains to `total_steps`, resuming from the latest checkpoint.

        Raises:
          TrainingDivergedError: if the loss or the weights become NaN or
            infinite; the checkpoints written before are left as they were.
        """
        config = self.config
        restored = self.restore()
        if not restored and config.init_from:
            origin = warm_start.initialize(
                self.model, config, self.splits.image_shape
            )
            logging.info("Initialized the weights from %s.", origin)
        total = self.total_steps
        self._record_machine()
        logging.info(
            "%s at step %d of %d (%d steps per epoch, Keras on %s).",
            f"Resuming from {restored}" if restored else "Starting",
            self.step,
            total,
            self.steps_per_epoch,
            backend.name(),
        )
        eval_every = config.eval_every_steps or self.steps_per_epoch
        while self.step < total:
            start = self.step
            stop = min(
                total,
                _next_multiple(start, config.checkpoint_every_steps),
                _next_multiple(start, eval_every),
            )
            started = time.perf_counter()
            self._fit(start, stop)
            self.step = stop
            if stop % eval_every == 0 or stop == total:
                self._validate()
            self.train_seconds += time.perf_counter() - started
            if stop % config.checkpoint_every_steps == 0 or stop == total:
                self._save_checkpoint()
        if restored and self.step >= total:
            logging.info("Trained to step %d.", total)

    def _fit(self, start: int, stop: int) -> None:
        """Runs steps [start, stop) in one fit() call."""
        config = self.config
        images = training_images(self.splits, config, start, stop)
        self.model.seed_generator.state.assign(
            np.array([config.seed, _NOISE_STREAM * 2**20 + start]).astype(
                self.model.seed_generator.state.dtype
            )
        )
        history = self.model.fit(
            images,
            batch_size=config.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[_ProgressLogger(self, start)],
        ).history
        loss = history["loss"][-1]
        if not math.isfinite(loss) or not self._weights_are_finite():
            raise TrainingDivergedError(
                f"The loss became {loss} between steps {start} and {stop}; "
                "training stopped. The last good checkpoint is intact: lower "
                "--learning_rate or set --gradient_clip_norm and run again."
            )

    def _weights_are_finite(self) -> bool:
        return all(
            np.all(np.isfinite(weights)) for weights in self.model.get_weights()
        )

    def _validate(self) -> None:
        results = self.evaluate_split(self.splits.validation)
        results.update(split="validation", step=self.step)
        logging.info(
            "validation at step %d: %s",
            self.step,
            ", ".join(
                f"{key} {value:.4f}"
                for key, value in sorted(results.items())
                if isinstance(value, float)
            ),
        )
        _append_line(
            self._path(workdir.VALIDATION),
            dict(results, epoch=round(self.step / self.steps_per_epoch, 3)),
        )
        for key, value in results.items():
            if isinstance(value, float):
                self.summaries.scalar(f"validation/{key}", value, self.step)
        samples = self.model.generate(batch_size=16, seed=[0, 0])["images"]
        self.summaries.image(
            "samples",
            pictures.grid(keras.ops.convert_to_numpy(samples), columns=8),
            self.step,
        )
        self.summaries.flush()
        if results["negative_elbo"] < self.best_validation:
            self.best_validation = results["negative_elbo"]
            os.makedirs(self._path(workdir.BEST), exist_ok=True)
            _replace(
                self._path(BEST_WEIGHTS), self.model.save_weights, ".weights.h5"
            )
            _write_json(
                self._path(BEST_STATE),
                {"step": self.step, "negative_elbo": self.best_validation},
            )

    def _save_checkpoint(self) -> None:
        directory = self._path(CHECKPOINTS)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"ckpt-{self.step}.keras")
        _replace(path, self.model.save, ".keras")
        _write_json(
            os.path.join(directory, "state.json"),
            {
                "step": self.step,
                "best_validation": self.best_validation,
                "train_seconds": self.train_seconds,
            },
        )
        steps = sorted(
            int(name[len("ckpt-") : -len(".keras")])
            for name in os.listdir(directory)
            if name.startswith("ckpt-") and name.endswith(".keras")
        )
        for old in steps[:-_KEEP_CHECKPOINTS]:
            os.remove(os.path.join(directory, f"ckpt-{old}.keras"))

    def _record_machine(self) -> None:
        description = machine.cpu_description()
        record = {
            "backend": backend.name(),
            "devices": _devices(),
            "start_step": self.step,
            "unix_time": int(time.time()),
            **description,
        }
        _append_line(self._path(workdir.MACHINES), record)

    def evaluate_split(self, images: np.ndarray, importance_samples=0) -> dict:
        """The bounds of uint8 images [n, H, W, C], nats per image.

        The first --max_eval_examples images only; noise from seeds fixed
        by --seed, so a number is reproducible on one backend.
        """
        config = self.config
        if config.max_eval_examples:
            images = images[: config.max_eval_examples]
        totals = dict.fromkeys(_ELBO_KEYS, 0.0)
        batch = config.eval_batch_size
        for index in range(0, len(images), batch):
            terms = self._evaluate_batch(
                images[index : index + batch].astype(np.float32) / 255.0,
                np.array([config.seed, index]),
            )
            for key in _ELBO_KEYS:
                totals[key] += float(np.sum(terms[key]))
        results = {key: value / len(images) for key, value in totals.items()}
        results.update(
            num_examples=len(images), importance_samples=importance_samples
        )
        if importance_samples:
            results["importance_weighted_bound"] = self._importance_bound(
                images, importance_samples
            )
        return results

    def _importance_bound(self, images, k) -> float:
        """-log (1/k sum_i w_i) averaged over images (Burda et al. 2016)."""
        per_pass = max(1, self.config.eval_batch_size // k)
        total = 0.0
        for index in range(0, len(images), per_pass):
            batch = images[index : index + per_pass].astype(np.float32) / 255.0
            repeated = np.repeat(batch, k, axis=0)  # image-major
            log_weights = self._evaluate_batch(
                repeated, np.array([self.config.seed + 1, index])
            )["log_weights"].reshape(-1, k)
            top = log_weights.max(axis=1, keepdims=True)
            log_mean = top[:, 0] + np.log(
                np.mean(np.exp(log_weights - top), axis=1)
            )
            total += float(np.sum(-log_mean))
        return total / len(images)

    def evaluate_test(self) -> dict:
        """The test-split results, written to eval/test.json and printed."""
        results = self.evaluate_split(
            self.splits.test, self.config.importance_samples
        )
        results.update(split="test", step=self.step, backend=backend.name())
        _write_json(self._path(workdir.TEST), results)
        print(json.dumps(results, sort_keys=True), flush=True)
        return results

    def draw(self) -> dict:
        """Writes the sample grid and the step-by-step canvas pictures."""
        config, model = self.config, self.model
        if not config.num_pictures:
            return {}
        shown = min(config.num_pictures, 8)
        generated = _to_numpy(
            model.generate(config.num_pictures, seed=np.array([config.seed, 7]))
        )
        test_images = self.splits.test[:shown].astype(np.float32) / 255.0
        reconstructed = _to_numpy(
            model(
                test_images,
                seed=np.array([config.seed, 7]),
                return_canvases=True,
            )
        )
        paths = pictures.save_run_pictures(
            generated,
            reconstructed,
            self._path(workdir.PICTURES),
            read_size=model.cell.read_glimpse_size,
            write_size=model.cell.write_patch_size,
        )
        for name, path in paths.items():
            logging.info("Wrote %s: %s", name, path)
        return paths


class _ProgressLogger(keras.callbacks.Callback):
    """Logs the running loss every --log_every_steps steps of a fit()."""

    def __init__(self, trainer: KerasTrainer, start: int):
        super().__init__()
        self.trainer = trainer
        self.start = start
        self.started = time.perf_counter()
        self.last_step = start

    def on_train_batch_end(self, batch, logs=None):
        trainer = self.trainer
        step = self.start + batch + 1
        total = trainer.total_steps
        if step % trainer.config.log_every_steps and step != total:
            return
        elapsed = time.perf_counter() - self.started
        steps = step - self.last_step
        examples_per_second = steps * trainer.config.batch_size / elapsed
        eta = (total - step) * elapsed / max(steps, 1)
        logs = logs or {}
        logging.info(
            "step %d/%d (epoch %.2f) | -ELBO %.2f = L^x %.2f + L^z %.2f "
            "nats (mean since step %d) | lr %.3g | %.0f examples/s | ETA "
            "%dh%02dm",
            step,
            total,
            step / trainer.steps_per_epoch,
            logs.get("loss", math.nan),
            logs.get("reconstruction_loss", math.nan),
            logs.get("latent_loss", math.nan),
            self.start,
            float(trainer.learning_rate_schedule(step - 1)),
            examples_per_second,
            eta // 3600,
            eta % 3600 // 60,
        )
        summaries = trainer.summaries
        for key, tag in (
            ("loss", "negative_elbo"),
            ("reconstruction_loss", "reconstruction_loss"),
            ("latent_loss", "latent_loss"),
        ):
            if key in logs:
                summaries.scalar(f"train/{tag}", logs[key], step)
        summaries.scalar("train/examples_per_second", examples_per_second, step)
        summaries.scalar(
            "train/learning_rate",
            float(trainer.learning_rate_schedule(step - 1)),
            step,
        )
        summaries.flush()
        self.started, self.last_step = time.perf_counter(), step


_ELBO_KEYS = ("negative_elbo", "reconstruction_loss", "latent_loss")


def _compiled_bounds(model: DrawModel):
    """images, seed -> per-image ELBO terms and log weights, compiled once.

    Returns a function of (float32 images [b, H, W, C], int [2] seed) that
    returns NumPy arrays {negative_elbo, reconstruction_loss, latent_loss,
    log_weights}, each [b].
    """

    def terms_of(outputs, images):
        terms = losses.negative_elbo(images, outputs)
        result = {key: terms[key] for key in _ELBO_KEYS}
        result["log_weights"] = losses.importance_log_weights(images, outputs)
        return result

    if backend.name() == "jax":
        import jax

        @jax.jit
        def compiled(trainable, non_trainable, images, seed):
            outputs, _ = model.stateless_call(
                trainable, non_trainable, images, seed=seed
            )
            return terms_of(outputs, images)

        def evaluate(images, seed):
            result = compiled(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                images,
                seed.astype(np.uint32),
            )
            return {key: np.asarray(value) for key, value in result.items()}

        return evaluate
    import tensorflow as tf

    compiled = tf.function(
        lambda images, seed: terms_of(model(images, seed=seed), images),
        reduce_retracing=True,
    )

    def evaluate(images, seed):
        result = compiled(tf.constant(images), tf.constant(seed, tf.int64))
        return {key: value.numpy() for key, value in result.items()}

    return evaluate


def _to_numpy(outputs: dict) -> dict:
    return {key: keras.ops.convert_to_numpy(v) for key, v in outputs.items()}


def _devices() -> list[str]:
    if backend.name() == "jax":
        import jax

        return [str(device) for device in jax.devices()]
    return []


def _next_multiple(step: int, every: int) -> int:
    """The smallest multiple of `every` above `step`."""
    return (step // every + 1) * every


def _replace(path: str, save, suffix: str) -> None:
    """Saves through `save(temporary)` and renames it to `path`."""
    temporary = f"{path}.partial{suffix}"
    save(temporary)
    os.replace(temporary, path)


def _write_json(path: str, value: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = path + ".partial"
    with open(temporary, "w") as file:
        json.dump(value, file, indent=2, sort_keys=True)
    os.replace(temporary, path)


def _append_line(path: str, value: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a") as file:
        file.write(json.dumps(value, sort_keys=True) + "\n")
