"""Tests of draw_tf.data: idx files, splits, binarization, batches."""

import dataclasses
import gzip
import time

import numpy as np
import pytest
import tensorflow as tf

from draw_tf import config as config_lib
from draw_tf import data


def _write_idx(path, array, magic=2051, compress=False):
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    content = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as file:
        file.write(content)


def _fake_mnist(directory, train=60, test=20, size=6, compress=True):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    arrays = {}
    for split, count in (("train", train), ("test", test)):
        images = rng.integers(0, 256, size=(count, size, size), dtype=np.uint8)
        _write_idx(
            directory / (data.IMAGE_FILES[split] + suffix),
            images,
            2051,
            compress,
        )
        labels = rng.integers(0, 10, size=count, dtype=np.uint8)
        _write_idx(
            directory / (data.LABEL_FILES[split] + suffix),
            labels,
            2049,
            compress,
        )
        arrays[split] = images
        arrays[split + "_labels"] = labels
    return arrays


def _config(tmp_path, **kwargs):
    defaults = dict(
        workdir=str(tmp_path / "work"),
        dataset="mnist",
        data_dir=str(tmp_path),
        validation_size=10,
    )
    return config_lib.TrainConfig(**dict(defaults, **kwargs)).validate()


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_reads_gzipped_and_plain_files(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("images.gz" if compress else "images")
    _write_idx(path, images, compress=compress)
    np.testing.assert_array_equal(data.read_idx(str(path)), images)
    labels = np.array([3, 1, 4], np.uint8)
    _write_idx(tmp_path / "labels", labels, magic=2049)
    np.testing.assert_array_equal(
        data.read_idx(str(tmp_path / "labels"), expected_magic=2049), labels
    )


def test_read_idx_rejects_corrupt_files_with_one_line_errors(tmp_path):
    images = np.zeros((4, 5, 5), np.uint8)
    _write_idx(tmp_path / "ok", images)
    content = (tmp_path / "ok").read_bytes()
    cases = {
        "truncated": (content[:-7], "truncated or corrupt"),
        "tiny": (content[:5], "too short"),
        "magic": (b"\x00\x00\x08\x01" + content[4:], "magic number 2049"),
        "bad.gz": (b"not gzip at all", "cannot read"),
    }
    for name, (payload, message) in cases.items():
        (tmp_path / name).write_bytes(payload)
        with pytest.raises(data.DataError, match=message) as error:
            data.read_idx(str(tmp_path / name))
        assert name in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(data.DataError, match="file not found"):
        data.read_idx(str(tmp_path / "missing"))


def test_missing_files_name_the_data_dir(tmp_path):
    with pytest.raises(data.DataError, match="--data_dir=.*t10k-images"):
        (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
        data.find_idx_file(str(tmp_path), "t10k-images-idx3-ubyte")


def test_local_splits_static_binarization(tmp_path):
    raw = _fake_mnist(tmp_path)
    splits = data.load_splits(_config(tmp_path, binarization="static"))
    assert splits.train.shape == (50, 6, 6, 1)
    assert splits.validation.shape == (10, 6, 6, 1)
    assert splits.test.shape == (20, 6, 6, 1)
    assert not splits.dynamic_binarization
    for split in (splits.train, splits.validation, splits.test):
        assert set(np.unique(split)) <= {0, 255}
    # Static binarization is fixed by the documented seed ...
    again = data.load_splits(_config(tmp_path, binarization="static"))
    np.testing.assert_array_equal(splits.train, again.train)
    np.testing.assert_array_equal(splits.test, again.test)
    # ... follows the intensities (mean of Bernoulli(p) is p) ...
    np.testing.assert_allclose(
        splits.test.mean() / 255, raw["test"].mean() / 255, atol=0.03
    )
    # ... and validation is the end of the training file, not the test.
    dynamic = data.load_splits(_config(tmp_path, binarization="dynamic"))
    np.testing.assert_array_equal(dynamic.validation, splits.validation)
    np.testing.assert_array_equal(dynamic.test, splits.test)
    np.testing.assert_array_equal(dynamic.train[..., 0], raw["train"][:50])


def test_composite_datasets_from_local_files(tmp_path):
    raw = _fake_mnist(tmp_path, size=28)
    two = data.load_splits(
        _config(tmp_path, dataset="two_digit_mnist", binarization="static")
    )
    assert two.train.shape == (50, 60, 60, 1)
    assert two.validation.shape == (10, 60, 60, 1)
    assert two.test.shape == (20, 60, 60, 1)
    assert set(np.unique(two.test)) <= {0, 255}
    cluttered = data.load_splits(
        _config(
            tmp_path,
            dataset="cluttered_mnist",
            binarization="none",
            task="classify",
        )
    )
    assert cluttered.train.shape == (50, 100, 100, 1)
    assert cluttered.test_labels.shape == (20,)
    # Test labels come from the test file's labels.
    assert set(cluttered.test_labels) <= set(raw["test_labels"].tolist())
    labelled = data.load_splits(_config(tmp_path, task="classify"))
    np.testing.assert_array_equal(
        labelled.validation_labels, raw["train_labels"][50:]
    )


def test_resampled_composites_are_built_at_every_step(tmp_path):
    raw = _fake_mnist(tmp_path, size=28)
    splits = data.load_splits(
        _config(
            tmp_path,
            dataset="cluttered_mnist",
            binarization="none",
            task="classify",
            resample_composites=True,
        )
    )
    # Training keeps the 50 digits; validation and test are composed.
    assert splits.composite == "cluttered_mnist"
    np.testing.assert_array_equal(splits.train[..., 0], raw["train"][:50])
    assert splits.validation.shape == (10, 100, 100, 1)
    assert splits.image_shape == (100, 100, 1)
    make = lambda start: data.train_dataset(  # noqa: E731
        splits.train,
        batch_size=25,
        noise_shape=None,
        seed=1,
        start_step=start,
        end_step=4,
        dynamic_binarization=False,
        labels=splits.train_labels,
        composite=splits.composite,
    )
    full = _batches(make(0))
    assert full[0]["images"].shape == (25, 100, 100, 1)
    # A function of the step: resuming at step 3 sees the same batch.
    np.testing.assert_array_equal(
        _batches(make(3))[0]["images"], full[3]["images"]
    )
    # An epoch (2 steps) takes each digit once: its labels are the digits'
    # labels. The next epoch composes the same digits anew (fixed
    # composites would give the same images, in another order).
    epochs = [
        np.concatenate([batch[key] for batch in full[e : e + 2]])
        for e in (0, 2)
        for key in ("images", "labels")
    ]
    for labels in epochs[1::2]:
        np.testing.assert_array_equal(
            np.sort(labels), np.sort(raw["train_labels"][:50])
        )
    sums = [np.sort(images.reshape(50, -1).sum(1)) for images in epochs[::2]]
    assert not np.allclose(sums[0], sums[1])
    assert 0.0 <= full[0]["images"].min() and full[0]["images"].max() <= 1.0


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(dataset="mnist"), "has no composites"),
        (dict(dataset="two_digit_mnist", binarization="static"), "dynamic or"),
    ],
)
def test_resample_composites_needs_composites_to_resample(
    tmp_path, changes, message
):
    with pytest.raises(config_lib.ConfigError, match=message):
        _config(tmp_path, resample_composites=True, **changes)


@pytest.fixture
def no_local_mnist(monkeypatch):
    """As on a machine without local MNIST files: TFDS is the source."""
    monkeypatch.setattr(data, "local_mnist_dirs", lambda: [])


def test_empty_data_dir_finds_local_mnist(tmp_path, monkeypatch):
    raw = _fake_mnist(tmp_path)
    monkeypatch.setenv("DRAW_TF_MNIST_DIR", str(tmp_path))
    assert data.local_mnist_dirs()[0] == str(tmp_path)
    assert data.find_local_mnist() == str(tmp_path)
    splits = data.load_splits(_config(tmp_path, data_dir=""))
    assert len(splits.train) + len(splits.validation) == len(raw["train"])


def test_composites_come_from_tfds_without_local_files(
    tmp_path, no_local_mnist, tfds_mock_reachable
):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = _config(
        tmp_path, dataset="cluttered_mnist", data_dir="", validation_size=4
    )
    with tfds.testing.mock_data(num_examples=12):
        splits = data.load_splits(config)
    assert splits.image_shape == (100, 100, 1)
    assert splits.train_labels is not None and len(splits.test) == 12


def test_no_binarization_keeps_grey_levels(tmp_path):
    raw = _fake_mnist(tmp_path, compress=False)
    splits = data.load_splits(_config(tmp_path, binarization="none"))
    np.testing.assert_array_equal(splits.validation[..., 0], raw["train"][50:])
    np.testing.assert_array_equal(splits.test[..., 0], raw["test"])


def test_bad_validation_size_is_a_config_error(tmp_path):
    _fake_mnist(tmp_path)
    with pytest.raises(config_lib.ConfigError, match="--validation_size=60"):
        data.load_splits(_config(tmp_path, validation_size=60))


def test_validation_size_zero_trains_on_the_whole_training_file(tmp_path):
    raw = _fake_mnist(tmp_path, compress=False)
    splits = data.load_splits(
        _config(tmp_path, binarization="none", validation_size=0)
    )
    np.testing.assert_array_equal(splits.train[..., 0], raw["train"])
    assert splits.validation.shape == (0, 6, 6, 1)
    assert len(splits.test) == 20


@pytest.mark.parametrize("resample", [True, False])
def test_validation_size_zero_composes_no_validation_images(tmp_path, resample):
    _fake_mnist(tmp_path, size=28)
    splits = data.load_splits(
        _config(
            tmp_path,
            task="classify",
            dataset="cluttered_mnist",
            binarization="none",
            resample_composites=resample,
            validation_size=0,
        )
    )
    assert len(splits.train) == len(splits.train_labels) == 60
    assert splits.validation.shape == (0, 100, 100, 1)
    assert len(splits.validation_labels) == 0
    assert splits.test.shape == (20, 100, 100, 1)


def test_validation_size_zero_is_refused_where_it_cannot_hold(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="--validation_size=0"):
        _config(
            tmp_path,
            task="instruct",
            dataset="instructed_mnist",
            validation_size=0,
        )
    # A run keeps the split it started with (its training images, its
    # best checkpoint).
    _fake_mnist(tmp_path)
    config = _config(tmp_path)
    config_lib.check_workdir_architecture(config, (6, 6, 1))
    changed = dataclasses.replace(config, validation_size=0)
    with pytest.raises(
        config_lib.ConfigError, match="trained with --validation_size=10"
    ):
        config_lib.check_workdir_architecture(changed, (6, 6, 1))
    evaluate = dataclasses.replace(changed, mode="evaluate")
    config_lib.check_workdir_architecture(evaluate, (6, 6, 1))


def test_tfds_datasets_load_through_tfds(
    tmp_path, no_local_mnist, tfds_mock_reachable
):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = _config(tmp_path, data_dir="", validation_size=5)
    with tfds.testing.mock_data(num_examples=12):
        splits = data.load_splits(config)
    assert splits.image_shape == (28, 28, 1)
    assert len(splits.train) + len(splits.validation) == 12
    assert len(splits.validation) == 5
    config = _config(
        tmp_path,
        data_dir="",
        dataset="cifar10",
        binarization="none",
        validation_size=3,
    )
    with tfds.testing.mock_data(num_examples=8):
        splits = data.load_splits(config)
    assert splits.image_shape == (32, 32, 3)


def test_tfds_failure_is_a_one_line_data_error(
    tmp_path, monkeypatch, no_local_mnist
):
    # What TFDS raises offline, without trying to download here.
    tfds = pytest.importorskip("tensorflow_datasets")

    def unreachable(*args, **kwargs):
        raise ConnectionError("Failed to reach the download host.\nDetails")

    monkeypatch.setattr(tfds, "load", unreachable)
    monkeypatch.setattr(data, "download_host_reachable", lambda: True)
    monkeypatch.setattr(data, "local_mnist_dirs", lambda: ["/nowhere/mnist"])
    with pytest.raises(data.DataError, match="TFDS could not load") as error:
        data.load_splits(_config(tmp_path, data_dir=""))
    message = str(error.value)
    assert "--data_dir=DIR" in message and "\n" not in message
    assert "no MNIST idx files in /nowhere/mnist" in message


def test_offline_without_local_mnist_fails_in_seconds(
    tmp_path, monkeypatch, no_local_mnist
):
    # No network here, or one made unreachable: the probe answers, TFDS's
    # download (minutes of retries) is never tried.
    tfds = pytest.importorskip("tensorflow_datasets")

    def must_not_download(*args, **kwargs):
        raise AssertionError("tfds.load called without a reachable host")

    monkeypatch.setattr(tfds, "load", must_not_download)
    monkeypatch.setattr(data, "TFDS_DOWNLOAD_HOST", ("127.0.0.1", 9))
    for proxy in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    config = _config(
        tmp_path, data_dir="", tfds_data_dir=str(tmp_path / "tfds")
    )
    started = time.monotonic()
    with pytest.raises(data.DataError, match="cannot be reached") as error:
        data.load_splits(config)
    assert time.monotonic() - started < 10
    message = str(error.value)
    assert "--data_dir=DIR" in message and "\n" not in message


def test_download_host_probe_answers_within_its_timeout(monkeypatch):
    for proxy in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    # A port nothing listens on: refused at once.
    monkeypatch.setattr(data, "TFDS_DOWNLOAD_HOST", ("127.0.0.1", 9))
    assert data.download_host_reachable(timeout=1.0) is False

    # A name lookup or connection that hangs: the timeout bounds it.
    def hangs(*args, **kwargs):
        time.sleep(5)  # past the timeout; then fails as a real one would
        raise OSError("timed out")

    monkeypatch.setattr(data.socket, "create_connection", hangs)
    started = time.monotonic()
    assert data.download_host_reachable(timeout=1.0) is False
    assert time.monotonic() - started < 3


def test_behind_a_proxy_the_probe_leaves_it_to_tfds(monkeypatch):
    monkeypatch.setattr(data, "TFDS_DOWNLOAD_HOST", ("127.0.0.1", 9))
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert data.download_host_reachable(timeout=1.0) is True


def _batches(dataset):
    return [
        {key: value.numpy() for key, value in batch.items()}
        for batch in dataset
    ]


def test_training_batches_are_a_function_of_the_step():
    images = np.arange(10 * 2 * 2, dtype=np.uint8).reshape(10, 2, 2, 1)
    make = lambda start, dynamic=False: data.train_dataset(  # noqa: E731
        images,
        batch_size=3,
        noise_shape=(4, 2),
        seed=5,
        start_step=start,
        end_step=9,
        dynamic_binarization=dynamic,
    )
    full = _batches(make(0))
    assert [batch["step"] for batch in full] == list(range(9))
    assert full[0]["images"].shape == (3, 2, 2, 1)
    assert full[0]["noise"].shape == (3, 4, 2)
    # Resuming at step 4 sees exactly the batches of the full run.
    for resumed, original in zip(_batches(make(4)), full[4:], strict=True):
        for key in resumed:
            np.testing.assert_array_equal(resumed[key], original[key])
    # Each epoch (3 steps of 3) visits 9 distinct images, in a new order.
    firsts = [
        tuple(
            np.concatenate([b["images"][:, 0, 0, 0] for b in full[e : e + 3]])
        )
        for e in (0, 3)
    ]
    assert len(set(firsts[0])) == 9 and firsts[0] != firsts[1]
    # Noise differs between steps.
    assert not np.allclose(full[0]["noise"], full[1]["noise"])


def test_dynamic_binarization_resamples_every_step():
    images = np.full((4, 8, 8, 1), 128, np.uint8)
    batches = _batches(
        data.train_dataset(
            images,
            4,
            (1, 1),
            seed=0,
            start_step=0,
            end_step=2,
            dynamic_binarization=True,
        )
    )
    for batch in batches:
        assert set(np.unique(batch["images"])) == {0.0, 1.0}
        assert abs(batch["images"].mean() - 128 / 255) < 0.1
    assert not np.array_equal(batches[0]["images"], batches[1]["images"])


def test_batch_larger_than_the_data_is_a_config_error():
    with pytest.raises(config_lib.ConfigError, match="--batch_size=5"):
        data.train_dataset(
            np.zeros((4, 2, 2, 1), np.uint8), 5, (1, 1), 0, 0, 1, False
        )


def test_eval_dataset_keeps_every_image_in_order():
    images = np.arange(7, dtype=np.uint8).reshape(7, 1, 1, 1) * 30
    batches = [batch.numpy() for batch in data.eval_dataset(images, 3)]
    assert [len(batch) for batch in batches] == [3, 3, 1]
    np.testing.assert_allclose(
        np.concatenate(batches).ravel(), images.ravel() / 255.0, rtol=1e-6
    )


def test_shared_mnist_copy_reads_if_present():
    import pathlib

    found = data.find_local_mnist()
    if not found:
        pytest.skip(
            "reads the full MNIST idx files ($DRAW_TF_MNIST_DIR or "
            "../shared/data/mnist), absent here"
        )
    directory = pathlib.Path(found)
    test = data.read_idx(str(directory / "t10k-images-idx3-ubyte.gz"))
    labels = data.read_idx(
        str(directory / "t10k-labels-idx1-ubyte.gz"), expected_magic=2049
    )
    assert test.shape == (10000, 28, 28)
    np.testing.assert_array_equal(
        np.bincount(labels),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    )
    assert tf.reduce_max(test) == 255
