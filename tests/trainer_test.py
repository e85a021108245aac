"""Tests of training: distribution, evaluation, checkpoints and train.py."""

import dataclasses
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from draw_tf import config as config_lib
from draw_tf import data, errors, models
from draw_tf import workdir as workdir_layout
from draw_tf.tensorflow import distributed_engine
from tests.tiny_run import tiny_config, tiny_flags

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY_FLAGS = [
    *tiny_flags(),
    "--max_eval_examples=32",
    "--importance_samples=3",
    "--num_pictures=4",
]


def _mirrored(count):
    devices = [d.name for d in tf.config.list_logical_devices("CPU")][:count]
    assert len(devices) == count, "conftest.py sets up two logical CPUs"
    return tf.distribute.MirroredStrategy(devices)


def _weights(experiment):
    return [variable.numpy() for variable in experiment.model.weights]


@pytest.mark.parametrize("clip", [0.0, 0.5])
@pytest.mark.slow
def test_two_replicas_give_the_update_of_one(tmp_path, clip):
    config = tiny_config(tmp_path / "one", gradient_clip_norm=clip)
    splits = data.load_splits(config)
    batch = next(
        iter(
            data.train_dataset(
                splits.train, 16, (3, 3), 0, 0, 1, splits.dynamic_binarization
            )
        )
    )
    results = {}
    for replicas in (1, 2):
        experiment = distributed_engine.make_trainer(
            config.__class__(
                **dict(config.__dict__, workdir=str(tmp_path / f"r{replicas}"))
            ),
            _mirrored(replicas),
            splits,
        )
        before = _weights(experiment)
        metrics = experiment.engine._train_step(batch["images"], batch["noise"])
        results[replicas] = (before, _weights(experiment), metrics)
    (before_1, after_1, metrics_1), (before_2, after_2, metrics_2) = (
        results[1],
        results[2],
    )
    for initial_1, initial_2 in zip(before_1, before_2, strict=True):
        np.testing.assert_array_equal(initial_1, initial_2)
    moved = 0
    for a, b, initial in zip(after_1, after_2, before_1, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)
        moved += int(not np.allclose(a, initial))
    assert moved >= len(after_1) - 2  # the update really changed the model
    for key in ("negative_elbo", "reconstruction_loss", "latent_loss"):
        np.testing.assert_allclose(metrics_1[key], metrics_2[key], rtol=1e-5)


def _splits_and_batch(config):
    """The config's splits and one training batch of 16 (T = 4, |z| = 3)."""
    splits = data.load_splits(config)
    batch = next(
        iter(
            data.train_dataset(
                splits.train, 16, (4, 3), 0, 0, 1, splits.dynamic_binarization
            )
        )
    )
    return splits, batch


def _one_replica_experiment(config, splits, **overrides):
    """The run loop on one replica of `config` with `overrides`."""
    return distributed_engine.make_trainer(
        config.__class__(**dict(config.__dict__, **overrides)),
        _mirrored(1),
        splits,
    )


@pytest.mark.slow
def test_compiled_step_matches_the_plain_formulation(tmp_path):
    """XLA + the while loop give the plain op-by-op step's numbers."""
    config = tiny_config(tmp_path / "plain", num_steps=4)
    splits, batch = _splits_and_batch(config)
    results = []
    for name, jit_compile, implementation in (
        ("plain", False, "reference"),
        ("compiled", True, "fast"),
    ):
        experiment = _one_replica_experiment(
            config,
            splits,
            workdir=str(tmp_path / name),
            jit_compile=jit_compile,
        )
        experiment.model.implementation = implementation
        metrics = experiment.engine.train_step(batch)
        results.append((_weights(experiment), metrics))
    (plain_weights, plain_metrics), (weights, metrics) = results
    graph = experiment.engine._loss_and_gradients.experimental_get_compiler_ir(
        batch["images"], batch["noise"], tf.zeros([16], tf.int64)
    )(stage="hlo")
    assert "while" in graph  # really compiled, with the symbolic loop
    for got, want in zip(weights, plain_weights, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for key in ("negative_elbo", "reconstruction_loss", "latent_loss"):
        np.testing.assert_allclose(metrics[key], plain_metrics[key], rtol=1e-5)


@pytest.mark.slow
def test_bf16_compiled_gradients_follow_fp32(tmp_path):
    """--precision=bf16 under XLA: the loss within 1%, gradients aligned."""
    config = tiny_config(tmp_path / "fp32", num_steps=4)
    splits, batch = _splits_and_batch(config)
    results = {}
    for precision in ("fp32", "bf16"):
        experiment = _one_replica_experiment(
            config,
            splits,
            workdir=str(tmp_path / precision),
            precision=precision,
        )
        terms, gradients = experiment.engine._loss_and_gradients(
            batch["images"], batch["noise"], tf.zeros([16], tf.int64)
        )
        results[precision] = (
            float(tf.reduce_mean(terms["negative_elbo"])),
            np.concatenate([np.ravel(g) for g in gradients]),
        )
        assert all(v.dtype == tf.float32 for v in experiment.model.weights)
    (loss, gradient), (loss16, gradient16) = results["fp32"], results["bf16"]
    np.testing.assert_allclose(loss16, loss, rtol=0.01)
    cosine = gradient @ gradient16 / np.linalg.norm(gradient)
    cosine /= np.linalg.norm(gradient16)
    assert cosine > 0.99, cosine


@pytest.mark.slow
def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(
        tmp_path, learning_rate=1e4, train_steps=50, checkpoint_every_steps=1
    )
    experiment = distributed_engine.make_trainer(
        config, tf.distribute.get_strategy(), data.load_splits(config)
    )
    with pytest.raises(errors.TrainingDivergedError, match="is intact"):
        experiment.train()
    latest = tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))
    assert latest is not None
    reader = tf.train.load_checkpoint(latest)
    names = [name for name, _ in tf.train.list_variables(latest)]
    assert sum("_trainable_variables" in name for name in names) >= 14
    for name in names:
        if name.startswith("optimizer/"):  # weights and Adam moments
            value = reader.get_tensor(name)
            assert np.all(np.isfinite(value)), name


def test_config_validation_names_the_flag(tmp_path):
    cases = [
        (dict(batch_size=0), "--batch_size"),
        (dict(num_steps=-1), "--num_steps"),
        (dict(dataset="imagenet"), "--dataset='imagenet'"),
        (dict(learning_rate=0.0), "--learning_rate"),
        (dict(num_epochs=0, train_steps=0), "--num_epochs or --train_steps"),
        (dict(precision="fp16"), "--precision='fp16'"),
        (dict(task="classify", precision="bf16"), "--precision=bf16 is for"),
    ]
    for kwargs, message in cases:
        with pytest.raises(config_lib.ConfigError, match=message):
            tiny_config(tmp_path, **kwargs)
    with pytest.raises(config_lib.ConfigError, match="--read_glimpse_size=9"):
        tiny_config(tmp_path, read_glimpse_size=9).check_image_shape((8, 8, 1))


IMAGE_SHAPES = {
    "mnist": (28, 28, 1),
    "fashion_mnist": (28, 28, 1),
    "two_digit_mnist": (60, 60, 1),
    "cluttered_mnist": (100, 100, 1),
    "instructed_mnist": (60, 60, 1),
    "svhn_cropped": (32, 32, 3),
    "cifar10": (32, 32, 3),
}


def test_every_config_parses_and_builds_its_model():
    from absl import flags

    import train  # noqa: F401  (defines the flags)

    configs = sorted((ROOT / "configs").glob("*.flags"))
    assert len(configs) >= 7
    tasks = set()
    for path in configs:
        values = flags.FlagValues()
        for name in config_lib.TrainConfig.__dataclass_fields__:
            flags.FLAGS[name].unparse()  # the previous file's value goes
            values[name] = flags.FLAGS[name]
        values(["train.py", f"--flagfile={path}", "--workdir=/tmp/unused"])
        config = config_lib.TrainConfig(
            **{name: values[name].value for name in values}
        ).validate()
        image_shape = IMAGE_SHAPES[config.dataset]
        config.check_image_shape(image_shape)
        model = models.build(config, image_shape)
        assert model.count_params() > 0, path
        tasks.add(config.task)
    assert tasks == {"generate", "classify", "instruct"}


@pytest.mark.slow
def test_colour_images_train_end_to_end_through_tfds(
    tmp_path, tfds_mock_reachable
):
    tfds = pytest.importorskip("tensorflow_datasets")
    config = tiny_config(
        tmp_path,
        dataset="cifar10",
        binarization="none",
        validation_size=4,
        read_glimpse_size=2,
        write_patch_size=3,
        train_steps=2,
        batch_size=8,
        importance_samples=2,
        max_eval_examples=8,
        num_pictures=2,
    )
    with tfds.testing.mock_data(num_examples=16):
        results = distributed_engine.run(config, tf.distribute.get_strategy())
    assert results["num_examples"] == 8 and np.isfinite(
        results["importance_weighted_bound"]
    )
    # Colour canvases: the pictures are RGB of 32 x 32 tiles.
    assert (tmp_path / "pictures" / "reconstruction.png").exists()


def test_classifier_trains_and_evaluates_through_the_experiment(tmp_path):
    config = tiny_config(
        tmp_path,
        task="classify",
        synthetic_image_size=12,
        num_steps=2,
        read_glimpse_size=4,
        encoder_units=16,
        batch_size=32,
        train_steps=40,
        learning_rate=5e-3,
        eval_every_steps=40,
        num_pictures=2,
    )
    # (One process runs one multi-replica strategy; the replica
    # equivalence tests cover the distributed step.)
    experiment = distributed_engine.make_trainer(
        config, tf.distribute.get_strategy(), data.load_splits(config)
    )
    experiment.train()
    results = experiment.evaluate_test()
    assert results["num_examples"] == 128
    assert results["error_rate"] == pytest.approx(1 - results["accuracy"])
    assert results["accuracy"] > 0.5  # 4 classes: chance is about 0.25
    assert set(experiment.draw()) == {"glimpses_png", "glimpses_gif"}


def test_a_run_without_validation_ships_its_last_checkpoint(tmp_path):
    # --validation_size=0: no validation images, so no validation and no
    # best checkpoint; the test is evaluated with the last weights.
    config = tiny_config(tmp_path, train_steps=4, eval_every_steps=2)
    splits = data.load_splits(config)
    splits = dataclasses.replace(
        splits,
        validation=splits.validation[:0],
        validation_labels=None,
    )
    experiment = distributed_engine.make_trainer(
        config, tf.distribute.get_strategy(), splits
    )
    assert not experiment.has_validation
    experiment.train()
    assert not (tmp_path / workdir_layout.VALIDATION).exists()
    assert not (tmp_path / workdir_layout.BEST).exists()
    assert experiment.restore_for_evaluation().endswith("ckpt-4")
    assert np.isfinite(experiment.evaluate_test()["negative_elbo"])


def _run_train(args, timeout=240, **popen):
    return subprocess.run(
        [sys.executable, str(ROOT / "train.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        **popen,
    )


@pytest.mark.slow
def test_train_binary_dry_run_on_two_replicas(tmp_path):
    workdir = tmp_path / "run"
    result = _run_train(
        [
            *TINY_FLAGS,
            f"--workdir={workdir}",
            "--train_steps=8",
            "--eval_every_steps=4",
            "--checkpoint_every_steps=4",
            "--log_every_steps=2",
            "--num_cpu_devices=2",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replicas" in result.stderr
    assert "examples/s" in result.stderr and "ETA" in result.stderr
    assert "| lr 0.001 |" in result.stderr
    test = json.loads((workdir / "eval" / "test.json").read_text())
    assert test["split"] == "test" and test["num_examples"] == 32
    for key in ("negative_elbo", "importance_weighted_bound"):
        assert 0 < test[key] < 8 * 8 * 2, key
    validations = (
        (workdir / "eval" / "validation.jsonl").read_text().splitlines()
    )
    assert [json.loads(line)["step"] for line in validations] == [4, 8]
    epochs = [json.loads(line)["epoch"] for line in validations]
    assert epochs[0] > 0 and epochs[1] == pytest.approx(2 * epochs[0], abs=1e-3)
    for name in (
        "samples.png",
        "generation.png",
        "generation.gif",
        "reconstruction.png",
        "reconstruction.gif",
    ):
        assert (workdir / "pictures" / name).stat().st_size > 100, name
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert tf.train.latest_checkpoint(str(workdir / "best"))
    # Bad input afterwards: a workdir of another architecture, a read
    # larger than the image, corrupt data: one line, exit status 2.
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bjunk")
    (corrupt / "t10k-images-idx3-ubyte").write_bytes(b"\x00" * 20)
    for args, message in (
        ([f"--workdir={workdir}", "--num_steps=4"], "another architecture"),
        (
            [f"--workdir={tmp_path / 'b'}", "--read_glimpse_size=9"],
            "--read_glimpse_size=9 is larger than the images",
        ),
        (
            [
                f"--workdir={tmp_path / 'c'}",
                "--dataset=mnist",
                f"--data_dir={corrupt}",
            ],
            "train-images-idx3-ubyte.gz: cannot read",
        ),
    ):
        bad = _run_train([*TINY_FLAGS, "--train_steps=2", *args])
        assert bad.returncode == 2, bad.stderr[-2000:]
        last = bad.stderr.strip().splitlines()[-1]
        assert last.startswith("train.py: error: ") and message in last, last
        assert "Traceback" not in bad.stderr


@pytest.mark.slow
def test_resume_after_sigkill_loses_nothing(tmp_path):
    args = [
        *TINY_FLAGS,
        "--train_steps=1500",
        # Killed mid-schedule: the resumed run must take the same rates.
        "--learning_rate_schedule=cosine",
        "--learning_rate_warmup_steps=50",
        "--checkpoint_every_steps=100",
        "--eval_every_steps=100000",
        "--num_pictures=0",
        "--importance_samples=0",
    ]
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "train.py"), *args, f"--workdir={killed}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    deadline = time.monotonic() + 180
    while not tf.train.latest_checkpoint(str(killed / "checkpoints")):
        assert process.poll() is None, "finished before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert not (killed / "eval" / "test.json").exists(), "killed too late"
    resumed = _run_train([*args, f"--workdir={killed}"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stderr
    straight = _run_train([*args, f"--workdir={tmp_path / 'straight'}"])
    assert straight.returncode == 0, straight.stderr[-2000:]
    finals = [
        tf.train.load_checkpoint(
            tf.train.latest_checkpoint(str(workdir / "checkpoints"))
        )
        for workdir in (killed, tmp_path / "straight")
    ]
    names = [
        name
        for name, _ in tf.train.list_variables(
            tf.train.latest_checkpoint(str(killed / "checkpoints"))
        )
        if name.startswith(("model/", "optimizer/", "step/"))
    ]
    assert len(names) > 10
    for name in names:
        np.testing.assert_allclose(
            finals[0].get_tensor(name),
            finals[1].get_tensor(name),
            rtol=1e-5,
            atol=1e-6,
            err_msg=name,
        )


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_workers_on_loopback_train_to_the_same_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(2)]}
    processes = []
    for index in range(2):
        tf_config = {
            "cluster": cluster,
            "task": {"type": "worker", "index": index},
        }
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "tests" / "multi_worker_main.py"),
                    str(tmp_path / "work"),
                    str(tmp_path / f"worker{index}"),
                ],
                env=dict(
                    os.environ,
                    TF_CONFIG=json.dumps(tf_config),
                    TF_CPP_MIN_LOG_LEVEL="3",
                ),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    try:
        for process in processes:
            output, _ = process.communicate(timeout=180)
            assert process.returncode == 0, output[-3000:]
    finally:
        for process in processes:
            process.kill()
    workers = [np.load(tmp_path / f"worker{index}.npz") for index in range(2)]
    assert int(workers[0]["step"]) == 6 and int(workers[0]["replicas"]) == 2
    weight_keys = [key for key in workers[0].files if key.startswith("arr_")]
    for key in weight_keys:
        np.testing.assert_array_equal(workers[0][key], workers[1][key])
    # And they equal one process training on the same global batches.
    config = tiny_config(
        tmp_path / "single",
        eval_every_steps=3,
        checkpoint_every_steps=3,
        max_eval_examples=16,
        importance_samples=0,
    )
    single = distributed_engine.make_trainer(
        config, _mirrored(1), data.load_splits(config)
    )
    single.train()
    for key, value in zip(weight_keys, _weights(single), strict=True):
        np.testing.assert_allclose(workers[0][key], value, rtol=1e-5, atol=2e-6)
    assert (tmp_path / "work" / "checkpoints").exists()


def test_one_divergence_error_for_both_engines():
    from draw_tf import keras_engine, trainer

    assert trainer.TrainingDivergedError is errors.TrainingDivergedError
    assert not hasattr(keras_engine, "TrainingDivergedError")


def _run_loop(workdir, make_engine=None, **overrides):
    from draw_tf import trainer

    settings = dict(
        train_steps=4,
        checkpoint_every_steps=2,
        eval_every_steps=2,
        log_every_steps=3,
        max_eval_examples=16,
        eval_batch_size=16,
        num_pictures=0,
        importance_samples=0,
    )
    config = tiny_config(workdir, **{**settings, **overrides})
    splits = data.load_splits(config)
    config_lib.check_workdir_architecture(config, splits.image_shape)
    return trainer.Trainer(config, splits, make_engine)


@pytest.mark.parametrize("engine", ["distributed", "keras"])
def test_progress_is_reported_every_log_step_and_at_the_end(tmp_path, engine):
    from draw_tf import keras_engine

    make_engine = (
        keras_engine.KerasEngine
        if engine == "keras"
        else distributed_engine.DistributedEngine
    )
    run = _run_loop(tmp_path, make_engine)
    reported = []
    run._report = lambda step, metrics, since: reported.append(step)
    run.train()
    # Chunks end at the validations and checkpoints (2, 4); the progress
    # line comes at every third step and at the last.
    assert reported == [3, 4]


def test_each_engine_refuses_the_other_engines_workdir(tmp_path):
    from draw_tf import keras_engine

    _run_loop(tmp_path / "fit", keras_engine.KerasEngine, train_steps=2).train()
    with pytest.raises(config_lib.ConfigError, match="--engine=keras"):
        _run_loop(
            tmp_path / "fit", distributed_engine.DistributedEngine
        ).train()
    _run_loop(
        tmp_path / "tf", distributed_engine.DistributedEngine, train_steps=2
    ).train()
    with pytest.raises(config_lib.ConfigError, match="TensorFlow checkpoints"):
        _run_loop(tmp_path / "tf", keras_engine.KerasEngine).train()


@pytest.mark.parametrize("engine", ["distributed", "keras"])
def test_a_restart_without_checkpoints_keeps_the_best_value(tmp_path, engine):
    import shutil

    from draw_tf import keras_engine, workdir

    make_engine = (
        keras_engine.KerasEngine
        if engine == "keras"
        else distributed_engine.DistributedEngine
    )
    first = _run_loop(tmp_path, make_engine, train_steps=2)
    first.train()
    best = first.best_validation
    # Killed after its best weights, before its first checkpoint.
    for name in (workdir.CHECKPOINTS, workdir.KERAS_CHECKPOINTS):
        shutil.rmtree(tmp_path / name, ignore_errors=True)
    again = _run_loop(tmp_path, make_engine, train_steps=2)
    assert again.engine.recorded_best() == pytest.approx(best)


def test_fit_engine_refuses_several_workers(tmp_path, monkeypatch):
    from draw_tf import keras_engine

    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(config_lib.ConfigError, match="TF_CONFIG"):
        _run_loop(tmp_path, keras_engine.KerasEngine)
