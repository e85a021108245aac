"""Tests of the shipped models and of shipping one.

Every model in draw_tf/pretrained_models loads, its bound on the fixed
test subset equals the one recorded when it was shipped, and its export
(`--pretrained`) serves the same images through the TF Serving path. The
shipping tool is tested on the tiny model.
"""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import h5py
import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from draw_tf import config as config_lib
from draw_tf import data, pretrained
from draw_tf.tensorflow import distributed_engine, distribution
from export import export_saved_model_lib, ship_pretrained_lib
from serving.session_predictor import SessionPredictor

ROOT = pathlib.Path(__file__).resolve().parents[1]
MNIST = pathlib.Path(data.find_local_mnist() or ROOT.parent / "no_mnist")
# The unconditional models and the classifiers (the tf.distribute
# engine's); the instructed models and the judge: instructed_models_test.
SHIPPED = [
    name
    for name in pretrained.names()
    if pretrained.task(name) in ("generate", "classify")
]


def _subset_results(name, workdir):
    """The shipped model's bound on its record's fixed test subset."""
    record = pretrained.record(name)
    subset = record["subset"]
    config = pretrained.train_config(
        name,
        workdir=str(workdir),
        mode="evaluate",
        data_dir=str(MNIST),
        pretrained=name,
        max_eval_examples=subset["num_examples"],
    )
    splits = data.load_splits(config)
    experiment = distributed_engine.make_trainer(
        config, distribution.make_strategy(), splits
    )
    experiment.load_pretrained(name)
    return record, experiment.evaluate_split(splits.test, splits.test_labels)


@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.slow
def test_shipped_model_reproduces_its_bound_on_the_shipped_sample(
    name, tmp_path
):
    # Offline, anywhere: the package's own 500 test digits
    # (draw_tf.mnist_sample), no idx files.
    record = pretrained.record(name)
    config = pretrained.train_config(
        name, workdir=str(tmp_path), mode="evaluate", pretrained=name
    )
    empty = np.zeros([config.batch_size, *record["image_shape"]], np.uint8)
    splits = data.Splits(empty, empty, empty, dynamic_binarization=False)
    experiment = distributed_engine.make_trainer(
        config, distribution.make_strategy(), splits
    )
    experiment.load_pretrained(name)
    results = ship_pretrained_lib.sample_subset(experiment.model, config)
    recorded = record["sample_subset"]
    assert results["num_examples"] == recorded["num_examples"] == 500
    keys = ["error_rate", "cross_entropy"]
    if record["config"]["task"] == "generate":
        keys = ["negative_elbo", "reconstruction_loss", "latent_loss"]
    for key in keys:
        np.testing.assert_allclose(
            results[key], recorded[key], rtol=1e-4, atol=1e-4
        )


def test_shipped_records_hold_no_machine_paths():
    for name in pretrained.names():
        text = json.dumps(pretrained.record(name))
        for prefix in ("/work/", "/root/", "/home/", "/tmp/"):
            assert prefix not in text, (name, prefix)


def test_a_record_of_another_version_gives_its_config():
    # A key this version lacks is left out; one the record lacks takes
    # its default; overrides win over the record.
    saved = dict(
        pretrained.record("mnist_attention")["config"], removed_field=1
    )
    saved.pop("judge", None)  # (older records have none)
    config = config_lib.TrainConfig.from_dict(saved, mode="evaluate")
    assert config.mode == "evaluate" and config.judge == "digit_judge"
    assert config.latent_size == saved["latent_size"] == 100
    assert config == pretrained.train_config("mnist_attention", mode="evaluate")


def test_at_least_the_paper_model_is_shipped():
    assert "mnist_attention" in SHIPPED


@pytest.mark.skipif(
    not MNIST.is_dir(),
    reason="needs the full MNIST idx files ($DRAW_TF_MNIST_DIR or "
    "../shared/data/mnist): the record's subset is of the whole test file's "
    "composites",
)
@pytest.mark.parametrize("name", SHIPPED)
@pytest.mark.slow
def test_shipped_model_reproduces_its_recorded_subset_bound(name, tmp_path):
    weights = pathlib.Path(pretrained.path(name)) / pretrained.WEIGHTS_FILE
    assert weights.stat().st_size <= 12 * 2**20  # a shipped model's limit
    record, results = _subset_results(name, tmp_path)
    if record["config"]["task"] == "classify":
        keys = ["error_rate"]
    else:
        keys = ["negative_elbo", "reconstruction_loss"]
    for key in keys:
        np.testing.assert_allclose(
            results[key], record["subset"][key], rtol=1e-4, atol=1e-4
        )
    for field in ("steps", "epochs", "training_wall_hours", "commands"):
        assert field in record, field
    assert record["machines"], "no CPU kind recorded"
    assert record["test"]["num_examples"] == 10000


@pytest.mark.parametrize(
    "name",
    [
        name
        for name in SHIPPED
        if pretrained.record(name)["config"]["task"] == "generate"
    ],
)
@pytest.mark.slow
def test_pretrained_export_serves_what_the_model_draws(name, tmp_path):
    path = export_saved_model_lib.export(
        "", str(tmp_path), "draw", version=1, pretrained_name=name
    )
    model = draw_tf.pretrained.load(name)
    noise = (
        np.random.default_rng(0)
        .normal(size=model.noise_shape(3))
        .astype(np.float32)
    )
    expected = model.generate(noise=tf.constant(noise))["images"].numpy()
    predictor = SessionPredictor(path)
    try:
        served = predictor.predict("generate_from_noise", {"noise": noise})
    finally:
        predictor.close()
    np.testing.assert_allclose(served["images"], expected, atol=1e-5)
    info = json.loads(
        (pathlib.Path(path) / "assets.extra" / "export_info.json").read_text()
    )
    assert info["checkpoint"] == f"pretrained:{name}"
    assert info["step"] == pretrained.record(name)["steps"]


def test_unknown_name_lists_the_shipped_models():
    with pytest.raises(pretrained.UnknownModelError, match="shipped: "):
        pretrained.load("no_such_model")
    with pytest.raises(
        export_saved_model_lib.ExportError, match="--pretrained"
    ):
        export_saved_model_lib.export(
            "", "/tmp/unused", pretrained_name="no_such_model"
        )
    with pytest.raises(export_saved_model_lib.ExportError, match="one of"):
        export_saved_model_lib.export("", "/tmp/unused")


@pytest.fixture
def shipped_tiny(trained_workdir, tmp_path, monkeypatch):
    """The tiny trained workdir shipped into a temporary directory."""
    output = tmp_path / "shipped"
    output.mkdir()
    record = ship_pretrained_lib.ship(
        str(trained_workdir),
        "tiny",
        importance_samples=3,
        subset_size=8,
        train_command="python train.py (the tiny test model)",
        output_dir=str(output),
    )
    monkeypatch.setattr(pretrained, "DIRECTORY", str(output))
    return record


@pytest.mark.slow
def test_ship_then_load_gives_the_trained_weights(
    shipped_tiny, trained_workdir
):
    assert pretrained.names() == ["tiny"]
    record = pretrained.record("tiny")
    assert record == json.loads(json.dumps(shipped_tiny))
    assert record["steps"] == 4 and record["test"]["importance_samples"] == 3
    assert record["subset"]["num_examples"] == 8
    assert [entry["step"] for entry in record["validation_curve"]] == [4]
    assert record["training_wall_hours"] >= 0
    assert record["untimed_steps"] == []
    assert record["machines"][0]["vector_extensions"]
    loaded = pretrained.load("tiny")
    restored, _, step = export_saved_model_lib.load_model(str(trained_workdir))
    assert step == 4
    for ours, theirs in zip(loaded.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def _write_summaries(path, wall_times_and_steps):
    with tf.io.TFRecordWriter(path) as writer:
        for wall_time, step in wall_times_and_steps:
            event = tf.compat.v1.Event(wall_time=wall_time, step=step)
            event.summary.value.add(tag="loss", simple_value=1.0)
            writer.write(event.SerializeToString())


def test_wall_time_counts_training_and_names_the_steps_it_cannot_time(
    tmp_path,
):
    # Steps 50-500 logged every 10 s, a 2-hour stop, steps 500-700 again
    # from a checkpoint; then a copy of the workdir without the events of
    # steps 700-2000 went on from 2000 to 2500, and the run ends at 3500.
    events = tmp_path / "tensorboard"
    events.mkdir()
    _write_summaries(
        str(events / "events.out.tfevents.1"),
        [(1000.0 + 10 * i, 50 * (i + 1)) for i in range(10)],
    )
    _write_summaries(
        str(events / "events.out.tfevents.2"),
        [(10000.0 + 10 * i, 500 + 50 * i) for i in range(5)],
    )
    _write_summaries(
        str(events / "events.out.tfevents.3"),
        [(50000.0 + 10 * i, 2000 + 50 * i) for i in range(11)],
    )
    assert ship_pretrained_lib.training_wall_seconds(str(tmp_path)) == (
        90 + 40 + 100
    )
    assert ship_pretrained_lib.untimed_step_ranges(
        str(tmp_path), final_step=3500, log_every_steps=50
    ) == [[700, 2000], [2500, 3500]]
    assert (
        ship_pretrained_lib.untimed_step_ranges(
            str(tmp_path), final_step=2500, log_every_steps=200
        )
        == []
    )


@pytest.mark.slow
def test_evaluate_and_draw_a_shipped_model_through_train(
    shipped_tiny, tmp_path
):
    config = pretrained.train_config(
        "tiny",
        workdir=str(tmp_path / "eval"),
        mode="evaluate",
        pretrained="tiny",
        importance_samples=3,
        num_pictures=4,
    )
    results = distributed_engine.run(config, tf.distribute.get_strategy())
    for key in ("negative_elbo", "importance_weighted_bound"):
        np.testing.assert_allclose(
            results[key], shipped_tiny["test"][key], rtol=1e-5
        )
    assert results["step"] == 4
    drawn = distributed_engine.run(
        config_lib.TrainConfig(
            **{**config.__dict__, "mode": "draw"}
        ).validate(),
        tf.distribute.get_strategy(),
    )
    assert os.path.getsize(drawn["generation_png"]) > 100
    with pytest.raises(config_lib.ConfigError, match="another model"):
        distributed_engine.run(
            config_lib.TrainConfig(
                **{
                    **config.__dict__,
                    "num_steps": 5,
                    "workdir": str(tmp_path / "other"),
                }
            ).validate(),
            tf.distribute.get_strategy(),
        )
    with pytest.raises(config_lib.ConfigError, match="--mode=evaluate"):
        config_lib.TrainConfig(
            **{**config.__dict__, "mode": "train"}
        ).validate()


def test_ship_refuses_a_bad_name_and_an_empty_workdir(tmp_path):
    with pytest.raises(ship_pretrained_lib.ShipError, match="--name"):
        ship_pretrained_lib.ship(str(tmp_path), "a/b")
    with pytest.raises(ship_pretrained_lib.ShipError, match="config.json"):
        ship_pretrained_lib.ship(str(tmp_path), "fine")


@pytest.mark.slow
def test_train_binary_says_which_models_are_shipped(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            "--pretrained=no_such_model",
            "--mode=evaluate",
            f"--workdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: --pretrained: No pretrained")
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_remeasure_rewrites_the_bounds_and_keeps_the_weights(
    shipped_tiny, tmp_path
):
    directory = pathlib.Path(pretrained.path("tiny"))
    weights = (directory / pretrained.WEIGHTS_FILE).read_bytes()
    record = ship_pretrained_lib.remeasure(
        "tiny", importance_samples=5, output_dir=str(directory.parent)
    )
    assert (directory / pretrained.WEIGHTS_FILE).read_bytes() == weights
    assert pretrained.record("tiny") == json.loads(json.dumps(record))
    assert record["test"]["importance_samples"] == 5
    assert (
        record["test"]["num_examples"] == shipped_tiny["test"]["num_examples"]
    )
    # The same weights and evaluator noise: the same ELBO as at the ship,
    # and an importance-weighted bound no worse than it (k = 5 vs 3 here).
    np.testing.assert_allclose(
        record["test"]["negative_elbo"],
        shipped_tiny["test"]["negative_elbo"],
        rtol=1e-5,
    )
    assert record["test"]["importance_weighted_bound"] <= (
        record["test"]["negative_elbo"] + 1e-4
    )
    assert "--importance_samples=5" in record["commands"]["evaluate"]
    assert record["remeasured_on"]["vector_extensions"]
    unchanged = set(shipped_tiny) - {"test", "commands"}
    for key in unchanged:
        assert record[key] == json.loads(json.dumps(shipped_tiny[key])), key
    assert not list(directory.glob("*.tmp"))


@pytest.mark.slow
def test_remeasure_refuses_other_weights_and_unknown_names(shipped_tiny):
    directory = pathlib.Path(pretrained.path("tiny"))
    with pytest.raises(ship_pretrained_lib.ShipError, match="shipped: tiny"):
        ship_pretrained_lib.remeasure(
            "no_such_model", output_dir=str(directory.parent)
        )
    record_path = directory / pretrained.RECORD_FILE
    record = json.loads(record_path.read_text())
    record["subset"]["negative_elbo"] += 1.0
    record_path.write_text(json.dumps(record))
    with pytest.raises(ship_pretrained_lib.ShipError, match="subset"):
        ship_pretrained_lib.remeasure(
            "tiny", importance_samples=2, output_dir=str(directory.parent)
        )
    assert json.loads(record_path.read_text()) == record


@pytest.mark.parametrize(
    "arguments",
    [["--name=tiny"], ["--name=tiny", "--remeasure", "--workdir=/tmp/x"]],
)
@pytest.mark.slow
def test_ship_binary_wants_a_workdir_or_remeasure(arguments):
    result = subprocess.run(
        [sys.executable, str(ROOT / "export" / "ship_pretrained.py")]
        + arguments,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "ship_pretrained.py: error: expected either --workdir"
    ), result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_float16_ship_stores_half_the_bytes_measured_as_shipped(
    trained_workdir, tmp_path, monkeypatch
):
    output = tmp_path / "shipped"
    output.mkdir()
    record = ship_pretrained_lib.ship(
        str(trained_workdir),
        "tiny16",
        importance_samples=0,
        subset_size=8,
        output_dir=str(output),
        float16=True,
    )
    assert record["weights_dtype"] == "float16"
    assert (
        abs(
            record["test"]["negative_elbo"]
            - record["float32_test"]["negative_elbo"]
        )
        <= ship_pretrained_lib.FLOAT16_TOLERANCE
    )
    weights = output / "tiny16" / pretrained.WEIGHTS_FILE
    with h5py.File(weights, "r") as file:
        dtypes = set()
        file.visititems(
            lambda _, item: (
                dtypes.add(str(item.dtype))
                if isinstance(item, h5py.Dataset)
                else None
            )
        )
    assert dtypes == {"float16"}, dtypes
    monkeypatch.setattr(pretrained, "DIRECTORY", str(output))
    loaded = pretrained.load("tiny16")
    config = pretrained.train_config(
        "tiny16", workdir=str(trained_workdir), mode="evaluate"
    )
    source = distributed_engine.make_trainer(
        config, distribution.make_strategy(), data.load_splits(config)
    )
    source.restore_for_evaluation()
    for ours, theirs in zip(
        loaded.get_weights(), source.model.get_weights(), strict=True
    ):
        np.testing.assert_array_equal(
            np.asarray(ours),
            np.asarray(theirs).astype(np.float16).astype(np.float32),
        )
    # Rounding that moves the bound too far is refused in one line.
    monkeypatch.setattr(ship_pretrained_lib, "FLOAT16_TOLERANCE", -1.0)
    with pytest.raises(ship_pretrained_lib.ShipError, match="--float16"):
        ship_pretrained_lib.ship(
            str(trained_workdir),
            "tiny16b",
            importance_samples=0,
            subset_size=8,
            output_dir=str(output),
            float16=True,
        )


def test_a_records_init_from_names_no_machine_path(tmp_path):
    (tmp_path / "init_from.json").write_text(
        json.dumps({"kind": "workdir", "workdir": "/home/me/runs/first"})
    )
    origin = ship_pretrained_lib._shipped_origin(str(tmp_path))
    assert origin == {"kind": "workdir", "workdir": "first"}
    assert ship_pretrained_lib._shipped_origin(str(tmp_path / "no")) is None


def test_a_restart_of_a_shipped_model_keeps_its_history(tmp_path, monkeypatch):
    shipped = tmp_path / "shipped" / "first"
    shipped.mkdir(parents=True)
    earliest = {"source": "workdir zero", "steps": 3, "epochs": 1.0}
    (shipped / "model.weights.h5").write_bytes(b"")  # what names() lists
    (shipped / "record.json").write_text(
        json.dumps(
            {
                "name": "first",
                "shipped": "2026-11-01",
                "steps": 10,
                "epochs": 2.0,
                "training_wall_hours": 0.5,
                "untimed_steps": [[2, 8]],
                "machines": [
                    {"vector_extensions": "AVX2"},
                    {"vector_extensions": "AVX-512-BF16"},
                    {"vector_extensions": "AVX2"},
                ],
                "validation_curve": [{"step": 10, "negative_elbo": 90.0}],
                "commands": {"train": "python train.py --flagfile=x"},
                "test": {"negative_elbo": 91.0},
                "config": {"dataset": "mnist"},
                "history": [earliest],
            }
        )
    )
    monkeypatch.setattr(pretrained, "DIRECTORY", str(tmp_path / "shipped"))
    workdir = tmp_path / "restart"
    workdir.mkdir()
    (workdir / "init_from.json").write_text(
        json.dumps({"kind": "pretrained", "name": "first", "steps": 10})
    )
    stages = ship_pretrained_lib.earlier_stages(str(workdir))
    # Each stage names its dataset (an older one is the source's).
    assert stages == [
        dict(earliest, dataset="mnist"),
        {
            "source": "shipped first (2026-11-01)",
            "dataset": "mnist",
            "steps": 10,
            "epochs": 2.0,
            "training_wall_hours": 0.5,
            "untimed_steps": [[2, 8]],
            "vector_extensions": ["AVX2", "AVX-512-BF16"],
            "validation_curve": [{"step": 10, "negative_elbo": 90.0}],
            "train_command": "python train.py --flagfile=x",
            "test": {"negative_elbo": 91.0},
        },
    ]
    # A source that is gone leaves no stage; a run from scratch has none.
    (workdir / "init_from.json").write_text(
        json.dumps({"kind": "workdir", "workdir": str(tmp_path / "gone")})
    )
    assert ship_pretrained_lib.earlier_stages(str(workdir)) == []
    assert ship_pretrained_lib.earlier_stages(str(tmp_path / "none")) == []


def test_a_source_run_without_validation_counts_its_epochs(tmp_path):
    # A --validation_size=0 run writes no validation records: its stage
    # takes its epochs from the steps per epoch the trainer recorded.
    import dataclasses

    from draw_tf import config as config_lib

    config = config_lib.TrainConfig(workdir=str(tmp_path), dataset="synthetic")
    (tmp_path / "config.json").write_text(
        json.dumps({"config": dataclasses.asdict(config)})
    )
    (tmp_path / "machines.jsonl").write_text(
        json.dumps({"vector_extensions": "AVX2", "steps_per_epoch": 600}) + "\n"
    )
    stage = ship_pretrained_lib._stage_of_workdir(str(tmp_path), 1500)
    assert stage["epochs"] == 2.5 and stage["validation_curve"] == []
    # A run of a version that recorded neither leaves its epochs unknown.
    (tmp_path / "machines.jsonl").write_text(
        json.dumps({"vector_extensions": "AVX2"}) + "\n"
    )
    stage = ship_pretrained_lib._stage_of_workdir(str(tmp_path), 1500)
    assert stage["epochs"] is None


def test_a_warm_restarted_workdir_reads_for_evaluation(tmp_path):
    # bench/cluttered_errors.py --workdir= of a finished restart: its
    # --init_from is its history (init_from.json), not a flag to refuse.
    config = config_lib.TrainConfig(
        workdir=str(tmp_path), init_from="cluttered_mnist"
    )
    (tmp_path / "config.json").write_text(
        json.dumps({"config": dataclasses.asdict(config)})
    )
    read = ship_pretrained_lib.read_workdir_config(
        str(tmp_path), mode="evaluate"
    )
    assert (read.mode, read.init_from) == ("evaluate", "")
    again = ship_pretrained_lib.read_workdir_config(str(tmp_path))
    assert (again.mode, again.init_from) == ("train", "cluttered_mnist")


@pytest.mark.slow
def test_a_warm_restarted_run_ships_with_its_origin(trained_workdir, tmp_path):
    from draw_tf import trainer
    from tests.tiny_run import tiny_config

    config = tiny_config(
        tmp_path / "restart", train_steps=2, init_from=str(trained_workdir)
    )
    trainer.run(config)
    record = ship_pretrained_lib.ship(
        str(tmp_path / "restart"),
        "restarted",
        importance_samples=0,
        subset_size=8,
        output_dir=str(tmp_path / "shipped"),
    )
    assert record["init_from"]["kind"] == "workdir"
    assert record["init_from"]["workdir"] == trained_workdir.name
    assert record["config"]["init_from"] == ""  # no machine path
    # The run it started from stays in the record: its steps and curve.
    (first,) = record["history"]
    assert first["source"] == f"workdir {trained_workdir.name}"
    assert first["steps"] == 4
    assert [entry["step"] for entry in first["validation_curve"]] == [4]
    assert first["vector_extensions"] and first["training_wall_hours"] >= 0
