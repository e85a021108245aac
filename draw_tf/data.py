"""Input data: local idx files, TFDS or synthetic images; binarization.

Images are kept in memory as uint8 `[n, height, width, channels]` (0..255;
binary images are 0 or 255) and become float32 in [0, 1] in the pipeline.

Splits. Local MNIST-format files and TFDS sets without a validation split
give train = the training file less its last `validation_size` images,
validation = those last images, test = the test file (for MNIST the
classic 50k / 10k / 10k split; `--validation_size=0` trains on the whole
training file, with no validation). TFDS `binarized_mnist` has its own
validation split.

Binarization (`--binarization`):
  static: every split is binarized once, pixel ~ Bernoulli(intensity),
    with numpy's `default_rng` seeded with `STATIC_BINARIZATION_SEED`
    (the training file and the test file each with their own stream), so
    every run sees the same binary images; this is the binarized-MNIST
    benchmark the paper reports.
  dynamic: the training images are binarized afresh every time they are
    drawn (a function of the seed and the step); validation and test are
    binarized statically as above, so their numbers stay comparable.
  none: intensities in [0, 1] are the Bernoulli targets (colour data).
TFDS `binarized_mnist` is binary already and is used as it is.

Where MNIST comes from. `--data_dir` names a directory of idx files. Left
empty for an MNIST-based dataset (mnist, two_digit_mnist,
cluttered_mnist), the idx files are looked for in `$DRAW_TF_MNIST_DIR` and
in `../shared/data/mnist` beside the checkout (`local_mnist_dirs()`), and
TFDS "mnist" is used when neither has them (a download the first time).
When that fails too, one line says to pass `--data_dir`.

Training batches are a pure function of (seed, global step): the epoch's
order, the dynamic binarization, the noise eps of every DRAW step and, with
--resample_composites, the composite images built around the batch's
digits. A run
resumed from a checkpoint at step s therefore sees exactly the batches it
would have seen, and a batch's examples and noise do not depend on how many
replicas share it.
"""

import dataclasses
import gzip
import os
import socket
import threading
from typing import TYPE_CHECKING

import numpy as np
from absl import logging

from draw_tf import composite_mnist, instructed_mnist
from draw_tf.config import (
    COMPOSITE_DATASETS,
    INSTRUCTED_DATASET,
    ConfigError,
    TrainConfig,
)

if TYPE_CHECKING:  # TensorFlow only where tf.data is used: not on JAX.
    import tensorflow as tf

# Seed of the static binarization (documented in the README).
STATIC_BINARIZATION_SEED = 1502_04623
IMAGE_FILES = {
    "train": "train-images-idx3-ubyte",
    "test": "t10k-images-idx3-ubyte",
}
LABEL_FILES = {
    "train": "train-labels-idx1-ubyte",
    "test": "t10k-labels-idx1-ubyte",
}
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
# Seed streams of the training pipeline.
_ORDER_STREAM, _BINARIZATION_STREAM, _NOISE_STREAM = 1, 2, 3
_COMPOSITE_STREAM = 4
_SYNTHETIC_SIZES = {"train": 512, "validation": 128, "test": 128}


class DataError(ConfigError):
    """Missing, corrupt or unusable data: a one-line user-facing error."""


@dataclasses.dataclass(frozen=True)
class Splits:
    """uint8 images [n, height, width, channels] of each split.

    Attributes:
      train: the training images (grey levels when binarization is
        dynamic); with `composite` set, the training DIGITS [n, 28, 28, 1]
        around which each batch is composed afresh.
      validation: images for model selection, distinct from test; none
        ([0, height, width, channels]) with --validation_size=0.
      test: the test images.
      dynamic_binarization: whether training batches are binarized afresh.
      train_labels: int64 [n] class labels, or None when the set has none.
      validation_labels: likewise.
      test_labels: likewise.
      composite: "" or the composite dataset (two_digit_mnist,
        cluttered_mnist, instructed_mnist) whose training batches are built
        at every step from `train`'s digits (`compose_training_batch`,
        `draw_tf.instructed_mnist.episodes`).
      validation_places: --task=instruct on instructed_mnist: int64 [n,
        turns] the quadrant of every turn; else None.
      test_places: likewise.

    With --task=instruct, validation and test are episodes: uint8 targets
    [n, turns, H, W, 1] (the canvas after each turn; one turn of plain
    digits for the class-conditional model), their labels int64 [n,
    turns] the instructed classes; `train` holds the training digits and
    `train_labels` their classes.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    dynamic_binarization: bool
    train_labels: np.ndarray | None = None
    validation_labels: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    composite: str = ""
    validation_places: np.ndarray | None = None
    test_places: np.ndarray | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of the model's images (or canvas)."""
        return tuple(int(size) for size in self.validation.shape[-3:])

    @property
    def episodic(self) -> bool:
        """Whether validation and test are episodes (--task=instruct)."""
        return self.validation.ndim == 5


def read_idx(path: str, expected_magic: int = _IMAGES_MAGIC) -> np.ndarray:
    """Reads an MNIST-format idx file, gzipped (.gz) or not.

    Args:
      path: the file.
      expected_magic: 2051 for images, 2049 for labels.

    Returns:
      uint8 array: [n, rows, columns] for images, [n] for labels.

    Raises:
      DataError: if the file is missing, not gzip when named .gz, has the
        wrong magic number or a size that does not match its header.
    """
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as file:
                content = file.read()
        else:
            with open(path, "rb") as file:
                content = file.read()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found.") from None
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise DataError(f"{path}: cannot read it ({error}).") from None
    dimensions = 3 if expected_magic == _IMAGES_MAGIC else 1
    header_size = 4 * (1 + dimensions)
    if len(content) < header_size:
        raise DataError(
            f"{path}: {len(content)} bytes, too short for an idx header."
        )
    header = np.frombuffer(content[:header_size], dtype=">u4")
    if header[0] != expected_magic:
        raise DataError(
            f"{path}: magic number {header[0]}, expected {expected_magic} "
            f"(an MNIST-format idx {'image' if dimensions == 3 else 'label'}"
            " file)."
        )
    shape = tuple(int(size) for size in header[1:])
    expected_bytes = header_size + int(np.prod(shape))
    if len(content) != expected_bytes:
        raise DataError(
            f"{path}: {len(content)} bytes, expected {expected_bytes} for "
            f"shape {shape} (truncated or corrupt)."
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(
        shape
    )


def find_idx_file(data_dir: str, stem: str) -> str:
    """The path of `stem` or `stem.gz` in `data_dir`.

    Raises:
      DataError: if neither exists.
    """
    for name in (stem, stem + ".gz"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise DataError(
        f"--data_dir={data_dir} has no {stem} or {stem}.gz (MNIST-format "
        "idx files expected, e.g. ../shared/data/mnist or "
        "/usr/share/datasets/fashion-mnist)."
    )


def binarize(images: np.ndarray, seed) -> np.ndarray:
    """Samples every pixel once, Bernoulli(intensity); returns 0 or 255."""
    rng = np.random.default_rng(seed)
    intensities = images.astype(np.float32) / 255.0
    return np.where(
        rng.uniform(size=images.shape) < intensities, 255, 0
    ).astype(np.uint8)


def load_splits(config: TrainConfig) -> Splits:
    """Loads the configured dataset's splits into memory.

    An MNIST-based dataset is read from --data_dir, else from local idx
    files (`find_local_mnist`), else from TFDS; --mode=draw without local
    files draws with the package's 500 test digits (`draw_tf.mnist_sample`)
    instead, offline.

    Raises:
      DataError: if the data can't be found or read.
    """
    train_labels = test_labels = None
    sample = None
    if not config.data_dir and config.dataset in MNIST_BASED_DATASETS:
        found = find_local_mnist()
        if found:
            logging.info("Reading MNIST from %s.", found)
            config = dataclasses.replace(config, data_dir=found)
        elif config.mode == "draw":
            # Drawing needs a few test digits only: the package's own.
            from draw_tf import mnist_sample  # imports this module

            logging.info(
                "No local MNIST: drawing with the %d test digits of "
                "draw_tf.mnist_sample.",
                len(mnist_sample.load().images),
            )
            sample = mnist_sample.load()
            config = dataclasses.replace(
                config, validation_size=len(sample.images) // 5
            )
    if sample is not None:
        train, train_labels = sample.images, sample.labels
        test, test_labels = sample.images, sample.labels
    elif config.dataset == "synthetic":
        (train, train_labels), (test, test_labels) = _synthetic(config)
    elif config.data_dir:
        (train, train_labels), (test, test_labels) = (
            _read_local_split(config, split) for split in ("train", "test")
        )
    else:
        splits = _load_tfds(config)
        if len(splits) == 3:  # binarized_mnist: binary, own validation
            if config.validation_size == 0:
                raise ConfigError(
                    f"--validation_size=0: --dataset={config.dataset} has "
                    "its own validation split, kept apart; expected >= 1."
                )
            (train, _), (validation, _), (test, _) = splits
            return Splits(255 * train, 255 * validation, 255 * test, False)
        (train, train_labels), (test, test_labels) = splits
    _check_images(train, "training")
    _check_images(test, "test")
    if _needs_labels(config) and (train_labels is None or test_labels is None):
        raise DataError(
            f"--task={config.task} needs label files next to the images in "
            f"--data_dir={config.data_dir} ({LABEL_FILES['train']}[.gz], "
            f"{LABEL_FILES['test']}[.gz])."
        )
    validation_size = config.validation_size
    if config.dataset == "synthetic":  # fixed sizes, see _SYNTHETIC_SIZES
        validation_size = _SYNTHETIC_SIZES["validation"]
    if not 0 <= validation_size < len(train):
        raise ConfigError(
            f"--validation_size={validation_size} must be between 0 (no "
            f"validation) and {len(train) - 1} (the training file has "
            f"{len(train)} images)."
        )
    cut = len(train) - validation_size
    labels = {
        "train": None if train_labels is None else train_labels[:cut],
        "validation": None if train_labels is None else train_labels[cut:],
        "test": test_labels,
    }
    dynamic = config.binarization == "dynamic"
    if config.dataset in COMPOSITE_DATASETS:
        images = {"train": train[:cut], "validation": train[cut:], "test": test}
        splits_composed = ("train", "validation", "test")
        if config.resample_composites:  # training digits stay digits
            splits_composed = ("validation", "test")
        for split in splits_composed:
            if not len(images[split]):  # --validation_size=0
                size = composite_mnist.IMAGE_SIZES[config.dataset]
                images[split] = np.zeros((0, size, size, 1), np.uint8)
                if config.dataset != "cluttered_mnist":  # no labels
                    labels[split] = None
                continue
            images[split], labels[split] = composite_split(
                config, split, images[split], labels[split]
            )
    else:
        static_train = train
        if config.binarization != "none":
            # The training file as a whole, then the test file: the
            # validation images do not depend on --validation_size.
            static_train = binarize(train, [STATIC_BINARIZATION_SEED, 0])
            static_test = binarize(test, [STATIC_BINARIZATION_SEED, 1])
        else:
            static_test = test
        if config.task == "instruct":
            return _episode_splits(
                config,
                train[:cut],
                labels["train"],
                {
                    "validation": (
                        train[cut:],
                        static_train[cut:],
                        labels["validation"],
                    ),
                    "test": (test, static_test, labels["test"]),
                },
            )
        test = static_test
        images = {
            "train": (train if dynamic else static_train)[:cut],
            "validation": static_train[cut:],
            "test": test,
        }
    return Splits(
        train=images["train"],
        validation=images["validation"],
        test=images["test"],
        dynamic_binarization=dynamic,
        train_labels=labels["train"],
        validation_labels=labels["validation"],
        test_labels=labels["test"],
        composite=config.dataset if config.resample_composites else "",
    )


def compose_training_batch(
    composite: str, digits: np.ndarray, indices: np.ndarray, seed
) -> np.ndarray:
    """One training batch of composites around digits[indices].

    Args:
      composite: "two_digit_mnist" or "cluttered_mnist".
      digits: uint8 [n, 28, 28, 1] training digits.
      indices: int [batch] the batch's digits (their labels are the
        cluttered images' labels).
      seed: the batch's seed, a sequence of ints (negative ones wrap).

    Returns:
      uint8 [batch, size, size, 1].
    """
    entropy = [int(value) % 2**64 for value in np.ravel(seed)]
    return composite_mnist.compose_around(
        composite, digits[..., 0], indices, entropy
    )


# Datasets built from the MNIST digits: found locally when --data_dir is
# empty, else loaded from TFDS "mnist".
MNIST_BASED_DATASETS = ("mnist", *COMPOSITE_DATASETS, INSTRUCTED_DATASET)
_PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def local_mnist_dirs() -> list[str]:
    """Where MNIST idx files are looked for when --data_dir is empty."""
    candidates = [
        os.environ.get("DRAW_TF_MNIST_DIR", ""),
        os.path.join(_PACKAGE_PARENT, "..", "shared", "data", "mnist"),
    ]
    return [os.path.normpath(path) for path in candidates if path]


def find_local_mnist() -> str:
    """The first of `local_mnist_dirs()` with both image files, or ""."""
    for directory in local_mnist_dirs():
        try:
            for stem in IMAGE_FILES.values():
                find_idx_file(directory, stem)
        except DataError:
            continue
        return directory
    return ""


def _read_local_split(config: TrainConfig, split: str):
    """(images [n, H, W, 1], labels [n] or None) from --data_dir."""
    images = read_idx(find_idx_file(config.data_dir, IMAGE_FILES[split]))
    labels = None
    if _needs_labels(config):
        labels = read_idx(
            find_idx_file(config.data_dir, LABEL_FILES[split]),
            expected_magic=_LABELS_MAGIC,
        ).astype(np.int64)
        if len(labels) != len(images):
            raise DataError(
                f"--data_dir={config.data_dir}: {len(images)} {split} images "
                f"but {len(labels)} labels."
            )
    return images[..., np.newaxis], labels


def _needs_labels(config: TrainConfig) -> bool:
    return config.task in ("classify", "instruct") or (
        config.dataset == "cluttered_mnist"
    )


# The seeds of the evaluation episodes of instructed MNIST (split index
# 1 validation, 2 test), fixed so that every run is judged on the same.
EPISODE_SEED = 2019_06_21


def binarize_episodes(targets: np.ndarray, seed) -> np.ndarray:
    """`binarize` of episode targets, one draw per pixel for all turns.

    A pixel of a digit keeps its binary value from the turn the digit is
    added on through every later turn (digits of one episode do not
    overlap).

    Args:
      targets: uint8 [n, turns, H, W, C].
      seed: numpy's default_rng seed.

    Returns:
      uint8 [n, turns, H, W, C] of 0 or 255.
    """
    rng = np.random.default_rng(seed)
    shape = (targets.shape[0], 1, *targets.shape[2:])
    uniform = rng.uniform(size=shape)
    return np.where(uniform < targets / 255.0, 255, 0).astype(np.uint8)


def evaluation_episodes(config, grey, static, labels, index: int):
    """The fixed evaluation episodes of a split (--task=instruct).

    Args:
      config: --task=instruct.
      grey: uint8 [n, 28, 28, 1] the split's digits.
      static: the same digits binarized as the unconditional splits are
        (grey with --binarization=none).
      labels: int [n] their classes.
      index: 1 validation, 2 test: the seeds of its episodes.

    Returns:
      (targets uint8 [n, turns, H, W, 1], classes int64 [n, turns], places
      int64 [n, turns] or None): instructed_mnist episodes (one per digit,
      `EPISODE_SEED`), or the class-conditional model's digits (one turn).
    """
    if config.dataset != INSTRUCTED_DATASET:
        return (
            static[:, np.newaxis],
            labels[:, np.newaxis].astype(np.int64),
            None,
        )
    episodes = instructed_mnist.episodes(
        grey[..., 0],
        labels,
        count=len(grey),
        turns=config.num_turns,
        seed=[EPISODE_SEED, index],
    )
    targets = episodes.targets
    if config.binarization != "none":
        targets = binarize_episodes(
            targets, [STATIC_BINARIZATION_SEED, 20 + index]
        )
    return targets, episodes.classes, episodes.places


def _episode_splits(config, train, train_labels, evaluation) -> Splits:
    """--task=instruct's splits: training digits, evaluation episodes.

    Args:
      config: --task=instruct.
      train: uint8 [n, 28, 28, 1] training digits (grey).
      train_labels: int64 [n].
      evaluation: {"validation": ..., "test": ...}, each the (grey,
        static, labels) of `evaluation_episodes`.
    """
    splits = {
        split: evaluation_episodes(config, *evaluation[split], index)
        for index, split in enumerate(("validation", "test"), start=1)
    }
    return Splits(
        train=train,
        validation=splits["validation"][0],
        test=splits["test"][0],
        dynamic_binarization=config.binarization == "dynamic",
        train_labels=train_labels,
        validation_labels=splits["validation"][1],
        test_labels=splits["test"][1],
        composite=INSTRUCTED_DATASET
        if config.dataset == INSTRUCTED_DATASET
        else "",
        validation_places=splits["validation"][2],
        test_places=splits["test"][2],
    )


def composite_split(config: TrainConfig, split: str, digits, labels):
    """The evaluation images of a composite dataset, from a split's digits.

    Args:
      config: its dataset is two_digit_mnist or cluttered_mnist.
      split: "train", "validation" or "test" (each its own seeds).
      digits: uint8 [n, 28, 28, 1] MNIST digits of that split.
      labels: int [n] or None.

    Returns:
      (uint8 [n, size, size, 1] composites, binarized statically unless
      --binarization=none or a dynamic training split; labels [n] of
      cluttered MNIST, else None).
    """
    index = ("train", "validation", "test").index(split)
    images, labels = _composite(config, digits, labels, seed=index)
    dynamic_training = config.binarization == "dynamic" and split == "train"
    if config.binarization != "none" and not dynamic_training:
        images = binarize(images, [STATIC_BINARIZATION_SEED, 10 + index])
    return images, labels


def static_test_images(config: TrainConfig, digits, labels):
    """The test images of an MNIST-based dataset, from test-file digits.

    What `load_splits` evaluates on, built from the first digits of the
    MNIST test file (e.g. `draw_tf.mnist_sample`): the binarization of
    plain MNIST draws pixel by pixel in file order, so the first n digits
    binarize as in the whole file.

    Args:
      config: its dataset is one of MNIST_BASED_DATASETS.
      digits: uint8 [n, 28, 28, 1] the first n test-file digits.
      labels: int [n].

    Returns:
      (uint8 [m, H, W, 1] images, their labels or None); to instruct,
      `evaluation_episodes`' (targets, classes, places).
    """
    if config.task == "instruct":
        static = digits
        if config.binarization != "none":
            static = binarize(digits, [STATIC_BINARIZATION_SEED, 1])
        return evaluation_episodes(config, digits, static, labels, 2)
    if config.dataset in COMPOSITE_DATASETS:
        return composite_split(config, "test", digits, labels)
    if config.binarization != "none":
        digits = binarize(digits, [STATIC_BINARIZATION_SEED, 1])
    return digits, labels


def _composite(config: TrainConfig, digits, labels, seed: int):
    """Two-digit or cluttered MNIST built from one split's digits."""
    digits = digits[..., 0]
    count = len(digits)
    if config.dataset == "two_digit_mnist":
        images, _ = composite_mnist.two_digit_mnist(
            digits, count, seed=[config.seed, seed]
        )
        return images, None
    images, labels, _ = composite_mnist.cluttered_mnist(
        digits, labels, count, seed=[config.seed, seed]
    )
    return images, labels


def _check_images(images: np.ndarray, what: str) -> None:
    if images.ndim != 4 or min(images.shape) < 1:
        raise DataError(
            f"The {what} images have shape {images.shape}; expected "
            "[n, height, width, channels] with n >= 1."
        )


def _synthetic(config: TrainConfig):
    """Deterministic grey images of random rectangles, for smoke runs.

    512 training, 128 validation and 128 test images (--validation_size
    does not apply). The label is the quadrant of the rectangle's top-left
    corner (0..3), so a classifier has something to learn.
    """
    size = config.synthetic_image_size
    rng = np.random.default_rng(config.seed)
    arrays = []
    for split in ("train", "test"):
        count = _SYNTHETIC_SIZES[split]
        if split == "train":
            count += _SYNTHETIC_SIZES["validation"]
        images = np.zeros((count, size, size, 1), np.uint8)
        labels = np.zeros(count, np.int64)
        for index, image in enumerate(images):
            top, left = rng.integers(0, size // 2, size=2)
            height, width = rng.integers(2, size // 2 + 1, size=2)
            image[top : top + height, left : left + width] = rng.integers(
                128, 256
            )
            labels[index] = 2 * int(top >= size // 4) + int(left >= size // 4)
        arrays.append((images, labels))
    return arrays


# Where TFDS downloads MNIST and the other sets from.
TFDS_DOWNLOAD_HOST = ("storage.googleapis.com", 443)


def download_host_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to TFDS's download host opens in `timeout`.

    Name resolution included: the probe runs in a daemon thread, so a
    machine without a network answers within `timeout` seconds. Behind a
    proxy (`HTTPS_PROXY` or `https_proxy` set) the host is not reached
    directly: the answer is yes, and TFDS tries through the proxy.
    """
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    outcome = []

    def probe():
        try:
            socket.create_connection(TFDS_DOWNLOAD_HOST, timeout).close()
            outcome.append(True)
        except OSError:
            outcome.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(outcome and outcome[0])


def _load_tfds(config: TrainConfig):
    try:
        import tensorflow_datasets as tfds  # Slow to import; only when used.
    except ImportError as error:
        raise DataError(
            f"--dataset={config.dataset} without local files needs TFDS, "
            f"which needs TensorFlow ({error}); pass --data_dir=DIR with "
            "MNIST-format idx files."
        ) from None

    if config.tfds_data_dir and os.path.isfile(config.tfds_data_dir):
        raise DataError(
            f"--tfds_data_dir={config.tfds_data_dir} is a file; expected a "
            "directory for TFDS's data (or empty for TFDS's default)."
        )
    name = config.dataset
    if name in (*COMPOSITE_DATASETS, INSTRUCTED_DATASET):
        name = "mnist"  # built from its digits and labels
    if name == "binarized_mnist":
        split_names = ["train", "validation", "test"]
    else:
        split_names = ["train", "test"]
    try:
        builder = tfds.builder(name, data_dir=config.tfds_data_dir or None)
        if not builder.is_prepared():
            if not download_host_reachable():
                # Offline: fail now, not after minutes of TFDS's retries.
                raise ConnectionError(
                    f"{name} is not prepared in {builder.data_dir} and "
                    f"{TFDS_DOWNLOAD_HOST[0]} cannot be reached to "
                    "download it"
                )
            logging.info(
                "Downloading %s with TFDS into %s (offline, pass --data_dir "
                "with MNIST-format idx files instead).",
                name,
                builder.data_dir,
            )
        datasets = tfds.load(
            name,
            split=split_names,
            data_dir=config.tfds_data_dir or None,
        )
    except Exception as error:  # TFDS raises many types; all are user-facing.
        message = str(error).strip().splitlines()[0] if str(error) else ""
        looked = ""
        if config.dataset in MNIST_BASED_DATASETS:
            looked = (
                f"no MNIST idx files in {' or '.join(local_mnist_dirs())}, and "
            )
        raise DataError(
            f"--dataset={config.dataset}: {looked}TFDS could not load "
            f"{name} ({type(error).__name__}: {message[:200]}); pass "
            "--data_dir=DIR with train-images-idx3-ubyte[.gz] and "
            "t10k-images-idx3-ubyte[.gz] (and the label files to classify)."
        ) from None
    # Batched reads, concatenated (batch_size=-1 aborts in TFDS 4.9.10's
    # mock data).
    results = []
    for split in datasets:
        has_labels = "label" in split.element_spec
        batches = list(tfds.as_numpy(split.map(_image_and_label).batch(4096)))
        images = np.concatenate([batch["image"] for batch in batches])
        labels = np.concatenate([batch["label"] for batch in batches])
        results.append(
            (images, labels.astype(np.int64) if has_labels else None)
        )
    return results


def _image_and_label(example):
    import tensorflow as tf

    return {
        "image": example["image"],
        "label": example.get("label", tf.zeros([], tf.int64)),
    }


def train_dataset(
    images: np.ndarray,
    batch_size: int,
    noise_shape: tuple[int, int] | None,
    seed: int,
    start_step: int,
    end_step: int,
    dynamic_binarization: bool,
    labels: np.ndarray | None = None,
    composite: str = "",
) -> "tf.data.Dataset":
    """Global training batches for steps start_step..end_step - 1.

    Args:
      images: uint8 [n, height, width, channels].
      batch_size: the global batch size, <= n.
      noise_shape: (T, latent_size) of the DRAW noise per example; None
        for no noise (classification).
      seed: the run's seed.
      start_step: first global step (the checkpoint's step on resume).
      end_step: one past the last step.
      dynamic_binarization: binarize each batch afresh.
      labels: optional int64 [n] labels of the images.
      composite: "" or "two_digit_mnist" / "cluttered_mnist": `images` are
        digits and each batch is composed around them afresh
        (`compose_training_batch`, seeded by the seed and the step).

    Returns:
      A dataset of dicts: step (int64 scalar), images (float32 [batch,
      height, width, channels] in [0, 1]), noise (float32 [batch, T,
      latent_size], eps ~ N(0, I) for every DRAW step) and, with labels,
      labels (int64 [batch]).
    """
    import tensorflow as tf

    count = len(images)
    if batch_size > count:
        raise ConfigError(
            f"--batch_size={batch_size} is larger than the {count} training "
            "images."
        )
    steps_per_epoch = count // batch_size
    data = None if composite else tf.constant(images)
    image_shape = images.shape[1:]
    if composite:
        size = composite_mnist.IMAGE_SIZES[composite]
        image_shape = (size, size, 1)

        def compose(indices, composite_seed):
            return compose_training_batch(
                composite, images, indices, composite_seed
            )

    label_data = None if labels is None else tf.constant(labels, tf.int64)

    def batch_for_step(step):
        epoch = step // steps_per_epoch
        position = step % steps_per_epoch
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=_stream_seed(seed, _ORDER_STREAM, epoch)
        )
        indices = order[position * batch_size : (position + 1) * batch_size]
        if composite:
            batch = tf.numpy_function(
                compose,
                [indices, _stream_seed(seed, _COMPOSITE_STREAM, step)],
                tf.uint8,
                stateful=False,
            )
            batch.set_shape([batch_size, *image_shape])
        else:
            batch = tf.gather(data, indices)
        batch = tf.cast(batch, tf.float32) / 255.0
        if dynamic_binarization:
            uniform = tf.random.stateless_uniform(
                tf.shape(batch),
                seed=_stream_seed(seed, _BINARIZATION_STREAM, step),
            )
            batch = tf.cast(uniform < batch, tf.float32)
        result = {"step": step, "images": batch}
        if noise_shape is not None:
            result["noise"] = tf.random.stateless_normal(
                [batch_size, *noise_shape],
                seed=_stream_seed(seed, _NOISE_STREAM, step),
            )
        if label_data is not None:
            result["labels"] = tf.gather(label_data, indices)
        return result

    return (
        tf.data.Dataset.range(start_step, end_step)
        .map(
            batch_for_step,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(tf.data.AUTOTUNE)
    )


def eval_dataset(images: np.ndarray, batch_size: int) -> "tf.data.Dataset":
    """float32 [<=batch, height, width, channels] batches in order, all kept."""
    import tensorflow as tf

    return (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(batch_size)
        .map(lambda batch: tf.cast(batch, tf.float32) / 255.0)
        .prefetch(tf.data.AUTOTUNE)
    )


def _stream_seed(seed: int, stream: int, counter) -> "tf.Tensor":
    """A stateless seed for (run seed, stream, counter)."""
    import tensorflow as tf

    base = tf.constant([seed, stream], dtype=tf.int64)
    return tf.random.experimental.stateless_fold_in(
        base, tf.cast(counter, tf.int64)
    )
