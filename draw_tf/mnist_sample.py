"""500 MNIST test digits shipped with the package, for offline examples.

    from draw_tf import mnist_sample
    sample = mnist_sample.load()
    sample.images      # uint8 [500, 28, 28, 1], grey levels 0..255
    sample.binarized   # uint8 [500, 28, 28, 1], 0 or 255
    sample.labels      # int64 [500]

The first 500 images and labels of the MNIST test file
(t10k-images-idx3-ubyte), unchanged. `binarized` is what the package
evaluates on: binarized with `data.STATIC_BINARIZATION_SEED` exactly as the
whole test file is (the draws run pixel by pixel in file order, so the
first 500 digits binarize the same alone), so a bound on them equals the
bound on the first 500 test images of a full evaluation.
`test_images(config)` builds a dataset's test images from them (two-digit
and cluttered composites too), as `data.load_splits` builds them from the
whole file. The quickstart notebook, the README's example and the shipped
models' tests use them; no download, no idx files needed.
"""

import dataclasses
import functools
import os

import numpy as np

from draw_tf import data
from draw_tf.config import TrainConfig

PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "sample_data",
    "mnist_test_500.npz",
)
NUM_DIGITS = 500


@dataclasses.dataclass(frozen=True)
class MnistSample:
    """The shipped digits; see the module docstring for the shapes."""

    images: np.ndarray
    labels: np.ndarray

    @property
    def binarized(self) -> np.ndarray:
        """uint8 [500, 28, 28, 1]: 0 or 255, the evaluation's binarization."""
        return data.binarize(self.images, [data.STATIC_BINARIZATION_SEED, 1])


@functools.cache
def load() -> MnistSample:
    """The first 500 MNIST test digits and labels."""
    with np.load(PATH) as arrays:
        images, labels = arrays["images"], arrays["labels"]
    images.setflags(write=False)
    labels = labels.astype(np.int64)
    labels.setflags(write=False)
    return MnistSample(images=images, labels=labels)


def test_images(config: TrainConfig):
    """A dataset's test images built from the sample (no idx files).

    Args:
      config: a run's config; its dataset is mnist, two_digit_mnist or
        cluttered_mnist.

    Returns:
      (uint8 [500, H, W, 1] images as `data.load_splits` makes the test
      split from the whole file, int64 [500] labels or None); to instruct,
      (episode targets, classes, places) built from the sample's digits.
    """
    if config.dataset not in data.MNIST_BASED_DATASETS:
        raise ValueError(
            f"The MNIST sample has no {config.dataset} images; expected one "
            f"of {', '.join(data.MNIST_BASED_DATASETS)}."
        )
    sample = load()
    return data.static_test_images(config, sample.images, sample.labels)
