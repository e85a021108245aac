"""draw_tf.keras_engine: the run loop with fit(), on whichever backend runs.

The main pytest run runs it on TensorFlow; tests/jax_backend_test.py runs
it again on JAX with TensorFlow unimportable (the path train.py takes
there).
"""

import json
import os

import numpy as np
import pytest

from draw_tf import config as config_lib
from draw_tf import data, keras_engine
from draw_tf import trainer as trainer_lib
from tests.tiny_run import tiny_config


def keras_run(config):
    return trainer_lib.run(config, keras_engine.KerasEngine)


def _trainer(workdir, **overrides):
    settings = dict(
        train_steps=4,
        checkpoint_every_steps=2,
        eval_every_steps=2,
        max_eval_examples=32,
        eval_batch_size=16,
    )
    config = tiny_config(workdir, **{**settings, **overrides})
    splits = data.load_splits(config)
    config_lib.check_workdir_architecture(config, splits.image_shape)
    return trainer_lib.Trainer(config, splits, keras_engine.KerasEngine)


def _tensorboard_tags(directory) -> dict:
    """{tag: steps} of the summaries in a TensorBoard events directory."""
    from tensorboard.backend.event_processing import event_file_loader

    tags = {}
    for path in sorted(directory.glob("events.*")):
        for event in event_file_loader.EventFileLoader(str(path)).Load():
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(event.step)
    return tags


def _assert_same_state(resumed, straight):
    """The weights and the optimizer's variables of two trainers agree."""
    for got, want in zip(
        resumed.model.get_weights(), straight.model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    for got, want in zip(
        resumed.model.optimizer.variables,
        straight.model.optimizer.variables,
        strict=True,
    ):
        np.testing.assert_allclose(
            np.asarray(got.value), np.asarray(want.value), rtol=1e-5, atol=1e-6
        )


def test_batches_are_a_function_of_the_seed_and_step():
    config = tiny_config("unused")
    splits = data.load_splits(config)
    whole = keras_engine.training_images(splits, config, 0, 5)
    assert whole.shape == (5 * config.batch_size, 8, 8, 1)
    assert set(np.unique(whole)) <= {0.0, 1.0}  # dynamically binarized
    np.testing.assert_array_equal(
        keras_engine.training_images(splits, config, 3, 5),
        whole[3 * config.batch_size :],
    )
    other_seed = keras_engine.training_images(
        splits, tiny_config("unused", seed=1), 0, 5
    )
    assert not np.array_equal(whole, other_seed)


@pytest.mark.slow
def test_train_writes_the_workdir_and_resumes_exactly(tmp_path):
    straight = _trainer(tmp_path / "straight")
    straight.train()
    assert straight.step == 4
    workdir = tmp_path / "straight"
    assert sorted(os.listdir(workdir / "keras_checkpoints")) == [
        "ckpt-2.keras",
        "ckpt-4.keras",
        "state.json",
    ]
    lines = (workdir / "eval" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    assert [json.loads(line)["epoch"] for line in lines] == [
        round(step / straight.steps_per_epoch, 3) for step in (2, 4)
    ]
    best = json.loads((workdir / "best" / "state.json").read_text())
    assert best["step"] in (2, 4)
    assert (workdir / "best" / "model.weights.h5").exists()
    machines = (workdir / "machines.jsonl").read_text().splitlines()
    assert json.loads(machines[0])["start_step"] == 0
    assert (
        json.loads(machines[0])["steps_per_epoch"] == straight.steps_per_epoch
    )
    state = json.loads(
        (workdir / "keras_checkpoints" / "state.json").read_text()
    )
    assert state["step"] == 4 and state["train_seconds"] > 0
    # TensorBoard, without TensorFlow: the tf.distribute trainer's tags.
    tags = _tensorboard_tags(workdir / "tensorboard")
    assert {2, 4} <= tags["validation/negative_elbo"], tags
    assert 4 in tags["train/negative_elbo"] and 4 in tags["samples"]
    assert 4 in tags["train/learning_rate"]

    # Stopped after 2 steps, then a new process goes on to 4.
    first = _trainer(tmp_path / "resumed", train_steps=2)
    first.train()
    second = _trainer(tmp_path / "resumed")
    second.train()
    assert second.step == 4
    _assert_same_state(second, straight)


@pytest.mark.slow
def test_evaluation_draws_and_bounds(tmp_path):
    trainer = _trainer(tmp_path, num_pictures=4, importance_samples=4)
    trainer.train()
    assert trainer.restore_for_evaluation()
    results = trainer.evaluate_test()
    assert results["num_examples"] == 32
    assert results["importance_samples"] == 4
    np.testing.assert_allclose(
        results["negative_elbo"],
        results["reconstruction_loss"] + results["latent_loss"],
        rtol=1e-5,
    )
    # The importance-weighted bound is tighter than the ELBO on average.
    assert results["importance_weighted_bound"] < results["negative_elbo"]
    # Same seeds, same numbers.
    assert trainer.evaluate_test() == results
    written = json.loads((tmp_path / "eval" / "test.json").read_text())
    assert written["negative_elbo"] == results["negative_elbo"]
    paths = trainer.draw()
    assert sorted(paths) == [
        "generation_gif",
        "generation_png",
        "reconstruction_gif",
        "reconstruction_png",
        "samples",
    ]
    for path in paths.values():
        assert os.path.getsize(path) > 0


def test_what_only_tensorflow_does_is_refused(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="--num_cpu_devices"):
        keras_run(tiny_config(tmp_path, num_cpu_devices=2))
    with pytest.raises(config_lib.ConfigError, match="train first"):
        keras_run(tiny_config(tmp_path / "empty", mode="evaluate"))


def test_the_classifier_trains_and_evaluates_with_fit(tmp_path):
    trainer = _trainer(
        tmp_path,
        task="classify",
        dataset="synthetic",
        num_steps=2,
        num_pictures=2,
    )
    trainer.train()
    assert trainer.step == 4
    best = json.loads((tmp_path / "best" / "state.json").read_text())
    assert best["step"] in (2, 4) and 0 <= best["error_rate"] <= 1
    lines = (tmp_path / "eval" / "validation.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [2, 4]
    assert trainer.restore_for_evaluation()
    results = trainer.evaluate_test()
    assert results["num_examples"] == 32
    np.testing.assert_allclose(
        results["accuracy"] + results["error_rate"], 1.0, rtol=1e-6
    )
    assert results["cross_entropy"] > 0
    assert sorted(trainer.draw()) == ["glimpses_gif", "glimpses_png"]


@pytest.mark.slow
def test_init_from_starts_from_another_fit_workdirs_best_weights(tmp_path):
    source = _trainer(tmp_path / "source", train_steps=2)
    source.train()
    source.restore_for_evaluation()
    expected = [np.array(value) for value in source.model.get_weights()]
    warm = _trainer(
        tmp_path / "warm",
        train_steps=1,
        init_from=str(tmp_path / "source"),
        learning_rate=1e-12,  # one step that moves nothing measurable
    )
    warm.train()
    record = json.loads((tmp_path / "warm" / "init_from.json").read_text())
    assert record["kind"] == "workdir" and record["steps"] == 2
    assert record["checkpoint"] == os.path.join("best", "model.weights.h5")
    for ours, theirs in zip(warm.model.get_weights(), expected, strict=True):
        np.testing.assert_allclose(np.array(ours), theirs, atol=1e-6)


def test_pretrained_of_another_architecture_is_one_line(tmp_path):
    trainer = _trainer(tmp_path / "run", mode="evaluate")
    with pytest.raises(config_lib.ConfigError, match="another model") as error:
        trainer.load_pretrained("mnist_attention")  # 28 x 28, not 8 x 8
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_train_only_trains_the_variables_named_and_resumes_exactly(tmp_path):
    def run(name, **overrides):
        trainer = _trainer(
            tmp_path / name, train_only="draw_cell/write", **overrides
        )
        initial = {v.path: np.array(v) for v in trainer.model.weights}
        trainer.train()
        return trainer, initial

    straight, initial = run("straight")
    for variable in straight.model.weights:
        moved = not np.array_equal(np.array(variable), initial[variable.path])
        assert moved == ("/draw_cell/write/" in variable.path), variable.path
    # Stopped after 2 steps, then a new process goes on to 4.
    run("resumed", train_steps=2)
    second, _ = run("resumed")
    assert second.step == 4
    _assert_same_state(second, straight)


def test_train_only_names_variables_of_the_model(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="names no variable") as e:
        _trainer(tmp_path, train_only="draw_cell/write,no_such_layer")
    assert "\n" not in str(e.value)
