"""The Keras `fit()` engine of the run loop (`draw_tf.trainer`).

`python train.py --flagfile=...` trains with this engine when Keras runs
on another backend than TensorFlow (`KERAS_BACKEND=jax`, on the CPU or on
the GPUs JAX sees, with no TensorFlow installed); it runs on TensorFlow
too. Every task: the DRAW model (`--task=generate`), the attention
classifier (`--task=classify`) and the instructed model (`--task=instruct`,
the only engine that trains it). Its files in the workdir
(`draw_tf.workdir`):

    keras_checkpoints/         ckpt-<step>.keras: model and optimizer, the
                               latest 3, and state.json (step, best, and
                               the seconds spent training so far)
    best/model.weights.h5      the weights with the best validation number,
    best/state.json            and their step and number

The tf.distribute engine (`train.py --mode=evaluate|draw`, the SavedModel
export) reads `best/model.weights.h5` of such a workdir.

Resume is exact at checkpoints: the run loop calls `train_steps` in
chunks that end at validations and checkpoints, one `fit()` call each;
the images of step s (their order, and their dynamic binarization) are a
function of (seed, s), and the model's noise generator is reset to
(seed, first step) at the start of every chunk. A run killed mid-chunk
redoes that chunk from its last checkpoint. The numbers are not those of
the tf.distribute engine for the same seed (another random number
generator).

Several accelerators: `keras.distribution.DataParallel` over all of them
when JAX sees more than one (`distribute()`).
"""

import json
import math
import os

import keras
import numpy as np
from absl import logging

from draw_tf import (
    backend,
    bounds,
    instructed_mnist,
    loading,
    models,
    schedules,
    workdir,
)
from draw_tf import data as data_lib
from draw_tf.config import INSTRUCTED_DATASET, ConfigError, TrainConfig
from draw_tf.engine import Engine, Outcome, Restored

CHECKPOINTS = workdir.KERAS_CHECKPOINTS
BEST_WEIGHTS = workdir.KERAS_BEST_WEIGHTS
BEST_STATE = workdir.KERAS_BEST_STATE
_KEEP_CHECKPOINTS = 3
# Streams of the (seed, stream, ...) random numbers.
_ORDER_STREAM, _BINARIZATION_STREAM, _NOISE_STREAM = 1, 2, 3
_COMPOSITE_STREAM = 4


def distribute() -> int:
    """Data parallelism over every accelerator JAX sees, if several.

    Returns:
      The number of devices a batch is split over (1 off JAX).
    """
    if backend.name() != "jax":
        return 1
    import jax

    devices = jax.devices()
    if len(devices) > 1:
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices)
        )
        logging.info("Data parallel over %d devices.", len(devices))
    return len(devices)


def training_batches(
    splits: data_lib.Splits, config: TrainConfig, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The images (and labels) of steps [start, stop), in order.

    Step s takes batch s mod (steps per epoch) of epoch s // (steps per
    epoch)'s permutation of the training images (seeded by the seed and the
    epoch), composed around those digits (seeded by the seed and s) with
    --resample_composites, binarized afresh (seeded by the seed and s) when
    the binarization is dynamic.

    Returns:
      float32 images in [0, 1] [(stop - start) * batch_size, height,
      width, channels], and their int64 labels [(stop - start) *
      batch_size] when the splits have labels (else None).
    """
    batch = config.batch_size
    steps_per_epoch = len(splits.train) // batch
    chunks, label_chunks = [], []
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
        if splits.train_labels is not None:
            label_chunks.append(splits.train_labels[indices])
    labels = (
        np.concatenate(label_chunks).astype(np.int64) if label_chunks else None
    )
    return np.concatenate(chunks).astype(np.float32) / 255.0, labels


def training_episodes(
    splits: data_lib.Splits, config: TrainConfig, start: int, stop: int
) -> dict[str, np.ndarray]:
    """The episodes of steps [start, stop), in order (--task=instruct).

    instructed_mnist: step s composes `batch_size` new episodes of
    --num_turns turns from the training digits (seeded by the seed and s),
    binarized afresh (seeded likewise) when the binarization is dynamic.
    A class-conditional dataset: `training_batches`' digits, one turn each,
    told their labels.

    Returns:
      {"targets": float32 [n, turns, H, W, C] in [0, 1], "classes": int64
      [n, turns], and on instructed_mnist "places": int64 [n, turns]},
      n = (stop - start) * batch_size.
    """
    if splits.composite != INSTRUCTED_DATASET:
        images, labels = training_batches(splits, config, start, stop)
        return {
            "targets": images[:, np.newaxis],
            "classes": labels[:, np.newaxis],
        }
    parts = []
    for step in range(start, stop):
        episodes = instructed_mnist.episodes(
            splits.train,
            splits.train_labels,
            count=config.batch_size,
            turns=config.num_turns,
            seed=[config.seed, _COMPOSITE_STREAM, step],
        )
        targets = episodes.targets
        if splits.dynamic_binarization:
            targets = data_lib.binarize_episodes(
                targets, [config.seed, _BINARIZATION_STREAM, step]
            )
        parts.append((targets, episodes.classes, episodes.places))
    return {
        "targets": np.concatenate([p[0] for p in parts]).astype(np.float32)
        / 255.0,
        "classes": np.concatenate([p[1] for p in parts]),
        "places": np.concatenate([p[2] for p in parts]),
    }


def training_images(
    splits: data_lib.Splits, config: TrainConfig, start: int, stop: int
) -> np.ndarray:
    """The images of `training_batches` alone."""
    return training_batches(splits, config, start, stop)[0]


class KerasEngine(Engine):
    """The model, its compiled fit() step and its `.keras` checkpoints.

    Args:
      config: the run's config.
      splits: the data.
      learning_rate_schedule: the optimizer's schedule.
    """

    def __init__(
        self,
        config: TrainConfig,
        splits: data_lib.Splits,
        learning_rate_schedule: schedules.LearningRateSchedule,
    ):
        if os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "TF_CONFIG is set: several workers train with the "
                "tf.distribute engine only (--engine=distributed, on "
                "TensorFlow); fit() trains in one process."
            )
        if config.num_cpu_devices:
            raise ConfigError(
                "--num_cpu_devices splits the CPU for the tf.distribute "
                f"engine; with fit() (on {backend.name()}) leave it 0."
            )
        self.config = config
        self.splits = splits
        self.classify = config.task == "classify"
        self.instruct = config.task == "instruct"
        self.description = f"Keras fit() on {backend.name()}"
        self.learning_rate_schedule = learning_rate_schedule
        self.replicas = distribute()
        backend.set_random_seed(config.seed)
        self.model = models.build(config, splits.image_shape)
        if config.train_only:
            freeze_all_but(self.model, config.train_only)
        self.model.compile(
            optimizer=keras.optimizers.Adam(
                learning_rate_schedule,
                global_clipnorm=config.gradient_clip_norm or None,
            ),
            jit_compile=config.jit_compile,
        )
        self.evaluator = loading.evaluator(self.model, config)
        if self.classify:
            self._classify = bounds.compiled_pass(
                self.model, _outputs, config.jit_compile
            )

    def devices(self) -> list[str]:
        if backend.name() == "jax":
            import jax

            return [str(device) for device in jax.devices()]
        return []

    def _path(self, *parts) -> str:
        return os.path.join(self.config.workdir, *parts)

    # Checkpoints.

    def restore_latest(self) -> Restored | None:
        state_path = self._path(workdir.KERAS_STATE)
        if not os.path.exists(state_path):
            if workdir.has_tensorflow_checkpoints(self.config.workdir):
                raise ConfigError(
                    f"--workdir={self.config.workdir} holds TensorFlow "
                    "checkpoints of the tf.distribute engine; resume it on "
                    "TensorFlow (KERAS_BACKEND=tensorflow), or start fit() "
                    "in a new --workdir (--init_from can take its weights "
                    "there on TensorFlow)."
                )
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
        if self.config.train_only:
            # The loaded model trains every variable, so its optimizer is
            # not the one saved: read the saved one's variables directly.
            saved = _saved_optimizer_values(path)
        else:
            saved = [theirs.value for theirs in restored.optimizer.variables]
        for ours, theirs in zip(
            self.model.optimizer.variables, saved, strict=True
        ):
            ours.assign(theirs)
        return Restored(
            path=path,
            step=int(state["step"]),
            best_validation=float(state["best_validation"]),
            train_seconds=float(state.get("train_seconds", 0.0)),
        )

    def load_for_evaluation(self) -> tuple[str, int] | None:
        """The best-validation weights, else the latest checkpoint's."""
        path = self._path(BEST_WEIGHTS)
        if os.path.exists(path):
            self.model.load_weights(path)
            with open(self._path(BEST_STATE)) as file:
                return path, int(json.load(file)["step"])
        if workdir.has_tensorflow_checkpoints(self.config.workdir):
            raise ConfigError(
                f"--workdir={self.config.workdir} holds TensorFlow "
                f"checkpoints; evaluate it on TensorFlow "
                "(KERAS_BACKEND=tensorflow), or export it."
            )
        restored = self.restore_latest()
        return (restored.path, restored.step) if restored else None

    def latest_checkpoint(self) -> str | None:
        state_path = self._path(workdir.KERAS_STATE)
        if not os.path.exists(state_path):
            return None
        with open(state_path) as file:
            step = json.load(file)["step"]
        return self._path(CHECKPOINTS, f"ckpt-{step}.keras")

    def save(self, step, best_validation, train_seconds) -> str:
        directory = self._path(CHECKPOINTS)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"ckpt-{step}.keras")
        _replace(path, self.model.save, ".keras")
        _write_json(
            os.path.join(directory, "state.json"),
            {
                "step": step,
                "best_validation": best_validation,
                "train_seconds": train_seconds,
            },
        )
        steps = sorted(
            int(name[len("ckpt-") : -len(".keras")])
            for name in os.listdir(directory)
            if name.startswith("ckpt-") and name.endswith(".keras")
        )
        for old in steps[:-_KEEP_CHECKPOINTS]:
            os.remove(os.path.join(directory, f"ckpt-{old}.keras"))
        return path

    def save_best(self, step, best_validation) -> str:
        os.makedirs(self._path(workdir.BEST), exist_ok=True)
        path = self._path(BEST_WEIGHTS)
        _replace(path, self.model.save_weights, ".weights.h5")
        key = "error_rate" if self.classify else "negative_elbo"
        _write_json(
            self._path(BEST_STATE), {"step": step, key: best_validation}
        )
        return path

    # Training.

    def recorded_best(self) -> float:
        path = self._path(BEST_STATE)
        if not os.path.exists(path):
            return math.inf
        with open(path) as file:
            state = json.load(file)
        key = "error_rate" if self.classify else "negative_elbo"
        return float(state.get(key, math.inf))

    def train_steps(self, start, stop, total, report) -> Outcome:
        """Steps [start, stop) in one fit() call."""
        config = self.config
        if self.instruct:
            images, labels = (
                training_episodes(self.splits, config, start, stop),
                None,
            )
        else:
            images, labels = training_batches(self.splits, config, start, stop)
        if not self.classify:
            labels = None
            self.model.seed_generator.state.assign(
                np.array([config.seed, _NOISE_STREAM * 2**20 + start]).astype(
                    self.model.seed_generator.state.dtype
                )
            )
        history = self.model.fit(
            images,
            labels,
            batch_size=config.batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
            callbacks=[
                _Reporter(
                    report, start, total, config.log_every_steps, self.classify
                )
            ],
        ).history
        return Outcome(
            step=stop, loss=float(history["loss"][-1]), averaged_since=start
        )

    def weights_are_finite(self) -> bool:
        return all(
            np.all(np.isfinite(weights)) for weights in self.model.get_weights()
        )

    # Evaluation and pictures.

    def evaluate(self, images, labels, importance_samples=0, places=None):
        if self.instruct:
            return self.evaluator(images, labels, places)
        if self.classify:
            return self.evaluator(images, labels)
        return self.evaluator(images, importance_samples=importance_samples)

    def generate(self, count, seed) -> dict:
        return _to_numpy(self.model.generate(count, seed=np.asarray(seed)))

    def reconstruct(self, images, seed) -> dict:
        return _to_numpy(
            self.model(images, seed=np.asarray(seed), return_canvases=True)
        )

    def classify_images(self, images) -> dict:
        return self._classify(np.asarray(images, np.float32))

    def draw_instructions(self, classes, places=None, canvases=False):
        return self.evaluator.draw(classes, places, canvases=canvases)


class _Reporter(keras.callbacks.Callback):
    """Hands fit()'s running means to the run loop every log step."""

    def __init__(self, report, start, total, every, classify):
        super().__init__()
        self.report, self.start, self.total = report, start, total
        self.every, self.classify = every, classify

    def on_train_batch_end(self, batch, logs=None):
        step = self.start + batch + 1
        if step % self.every and step != self.total:
            return
        logs = logs or {}
        if self.classify:
            metrics = {
                "cross_entropy": logs.get("loss", math.nan),
                "correct": logs.get("accuracy", math.nan),
            }
        else:
            metrics = {
                "negative_elbo": logs.get("loss", math.nan),
                "reconstruction_loss": logs.get(
                    "reconstruction_loss", math.nan
                ),
                "latent_loss": logs.get("latent_loss", math.nan),
            }
        self.report(step, {k: float(v) for k, v in metrics.items()}, self.start)


def _outputs(outputs, images) -> dict:
    del images
    return outputs


def _to_numpy(outputs: dict) -> dict:
    return {key: keras.ops.convert_to_numpy(v) for key, v in outputs.items()}


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


def _saved_optimizer_values(path: str) -> list[np.ndarray]:
    """The optimizer variables a `.keras` checkpoint holds, in order."""
    import io
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as archive:  # the archive's one .h5 file
        (name,) = [name for name in archive.namelist() if name.endswith(".h5")]
        weights = io.BytesIO(archive.read(name))
    with h5py.File(weights, "r") as file:
        group = file["optimizer"]["vars"]
        return [np.asarray(group[str(index)]) for index in range(len(group))]


def freeze_all_but(model: keras.Model, train_only: str) -> list[str]:
    """Makes every variable not named by --train_only non-trainable.

    Args:
      model: the built model.
      train_only: comma-separated prefixes of variable paths below the
        model (e.g. "place_embedding,initial_canvas").

    Returns:
      The paths below the model of the variables left trainable.

    Raises:
      ConfigError: if a prefix names no variable (one line, listing them).
    """
    prefixes = [prefix.strip() for prefix in train_only.split(",")]
    paths = {
        variable.path.split("/", 1)[-1]: variable for variable in model.weights
    }
    for prefix in prefixes:
        if not prefix or not any(path.startswith(prefix) for path in paths):
            raise ConfigError(
                f"--train_only={train_only}: {prefix!r} names no variable of "
                f"this model; expected prefixes of {', '.join(sorted(paths))}."
            )
    trained = []
    for path, variable in paths.items():
        variable.trainable = any(path.startswith(prefix) for prefix in prefixes)
        if variable.trainable:
            trained.append(path)
    return sorted(trained)
