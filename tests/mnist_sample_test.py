"""The shipped MNIST sample: what it holds and that it is the test file's."""

import hashlib

import numpy as np
import pytest

from draw_tf import config as config_lib
from draw_tf import data, mnist_sample

# The file's digest: a change of the shipped digits changes every bound
# recorded on them (the shipped models' records, sample_subset).
SHA256 = "bc196d5668f79efc0418b87009d3aebd5017ef86f23486bf6394bbbb2fdf8375"


def test_sample_holds_500_labelled_digits():
    sample = mnist_sample.load()
    assert sample.images.shape == (500, 28, 28, 1)
    assert sample.images.dtype == np.uint8
    assert sample.labels.shape == (500,) and sample.labels.dtype == np.int64
    assert sorted(set(sample.labels.tolist())) == list(range(10))
    assert sample.labels[:5].tolist() == [7, 2, 1, 0, 4]  # MNIST's first
    binary = sample.binarized
    assert binary.shape == (500, 28, 28, 1)
    assert set(np.unique(binary).tolist()) == {0, 255}
    # Bernoulli(intensity): the mean of the binary pixels follows the grey.
    assert abs(binary.mean() - sample.images.mean()) < 1.0
    with open(mnist_sample.PATH, "rb") as file:
        assert hashlib.sha256(file.read()).hexdigest() == SHA256


@pytest.mark.parametrize(
    "dataset, shape",
    [
        ("mnist", (28, 28, 1)),
        ("two_digit_mnist", (60, 60, 1)),
        ("cluttered_mnist", (100, 100, 1)),
    ],
)
def test_test_images_of_each_mnist_dataset(dataset, shape):
    binarization = "none" if dataset == "cluttered_mnist" else "dynamic"
    config = config_lib.TrainConfig(
        workdir="-", dataset=dataset, binarization=binarization
    )
    images, labels = mnist_sample.test_images(config)
    assert images.shape == (500, *shape) and images.dtype == np.uint8
    if dataset == "two_digit_mnist":
        assert labels is None
    else:
        assert labels.shape == (500,)
    again, _ = mnist_sample.test_images(config)
    np.testing.assert_array_equal(images, again)  # deterministic


def test_other_datasets_are_refused():
    config = config_lib.TrainConfig(workdir="-", dataset="cifar10")
    with pytest.raises(ValueError, match="no cifar10 images"):
        mnist_sample.test_images(config)


@pytest.mark.skipif(
    not data.find_local_mnist(),
    reason="compares with the full MNIST idx files ($DRAW_TF_MNIST_DIR or "
    "../shared/data/mnist), absent here",
)
def test_sample_is_the_first_500_test_images_binarized_as_evaluated():
    config = config_lib.TrainConfig(
        workdir="-", data_dir=data.find_local_mnist()
    )
    splits = data.load_splits(config)
    sample = mnist_sample.load()
    np.testing.assert_array_equal(sample.binarized, splits.test[:500])
    labels = data.read_idx(
        data.find_idx_file(config.data_dir, data.LABEL_FILES["test"]),
        expected_magic=data._LABELS_MAGIC,
    )
    np.testing.assert_array_equal(sample.labels, labels[:500])
    images, _ = mnist_sample.test_images(config)
    np.testing.assert_array_equal(images, splits.test[:500])
