"""--init_from: a new run starts from a workdir's or a shipped model's."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from draw_tf import config as config_lib
from draw_tf import data, warm_start
from draw_tf.tensorflow import distributed_engine
from tests.tiny_run import tiny_config


def _experiment(config):
    splits = data.load_splits(config)
    config_lib.check_workdir_architecture(config, splits.image_shape)
    return distributed_engine.make_trainer(
        config, tf.distribute.get_strategy(), splits
    )


def _weights(model):
    return [np.array(value) for value in model.get_weights()]


@pytest.mark.slow
def test_a_new_run_starts_from_the_source_workdirs_best_weights(
    trained_workdir, tmp_path
):
    source = _experiment(
        tiny_config(trained_workdir, mode="evaluate", max_eval_examples=16)
    )
    source.restore_for_evaluation()
    expected = _weights(source.model)
    fresh = _experiment(tiny_config(tmp_path / "fresh"))
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(_weights(fresh.model), expected, strict=True)
    )
    config = tiny_config(
        tmp_path / "warm", init_from=str(trained_workdir), train_steps=1
    )
    experiment = _experiment(config)
    origin = warm_start.initialize(
        experiment.model, config, experiment.splits.image_shape
    )
    for ours, theirs in zip(_weights(experiment.model), expected, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert origin["kind"] == "workdir" and origin["steps"] == 4
    assert origin["checkpoint"].startswith("best/ckpt-")
    assert experiment.step == 0  # the run's own steps
    written = json.loads((tmp_path / "warm" / "init_from.json").read_text())
    assert written == origin


@pytest.mark.slow
def test_train_starts_from_init_from_and_resumes_without_it(
    trained_workdir, tmp_path
):
    workdir = tmp_path / "warm"
    config = tiny_config(
        workdir,
        init_from=str(trained_workdir),
        train_steps=2,
        checkpoint_every_steps=1,
        eval_every_steps=2,
        max_eval_examples=16,
    )
    experiment = _experiment(config)
    experiment.train()
    assert (workdir / "init_from.json").exists()
    assert experiment.step == 2
    # Resumed: the checkpoint wins, init_from is not loaded again.
    (workdir / "init_from.json").unlink()
    again = _experiment(dataclasses.replace(config, train_steps=3))
    again.train()
    assert not (workdir / "init_from.json").exists()
    assert again.step == 3


@pytest.mark.parametrize(
    "source, message",
    [
        ("no_such_thing", "neither a shipped model"),
        ("mnist_attention", "--init_from=mnist_attention is another model"),
    ],
)
def test_bad_sources_are_one_line_config_errors(tmp_path, source, message):
    config = tiny_config(tmp_path / "run", init_from=source)
    experiment = _experiment(config)
    with pytest.raises(config_lib.ConfigError, match=message) as error:
        warm_start.initialize(
            experiment.model, config, experiment.splits.image_shape
        )
    assert "\n" not in str(error.value)


def test_a_workdir_of_another_architecture_is_refused(
    trained_workdir, tmp_path
):
    config = tiny_config(
        tmp_path / "run", init_from=str(trained_workdir), latent_size=4
    )
    experiment = _experiment(config)
    with pytest.raises(config_lib.ConfigError, match="--init_from=.*latent"):
        warm_start.initialize(
            experiment.model, config, experiment.splits.image_shape
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    config = tiny_config(tmp_path / "run2", init_from=str(empty))
    with pytest.raises(config_lib.ConfigError, match="no config.json"):
        warm_start.initialize(_experiment(config).model, config, (8, 8, 1))


def test_init_from_needs_train_mode(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="--mode=train"):
        tiny_config(tmp_path, mode="evaluate", init_from="mnist_attention")


def test_a_damaged_source_workdir_is_one_line(trained_workdir, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(trained_workdir, damaged)
    for data_file in (damaged / "best").glob("*.data-*"):
        data_file.write_bytes(b"not a checkpoint")
    config = tiny_config(tmp_path / "run", init_from=str(damaged))
    experiment = _experiment(config)
    with pytest.raises(config_lib.ConfigError, match="cannot be read") as error:
        warm_start.initialize(
            experiment.model, config, experiment.splits.image_shape
        )
    assert "\n" not in str(error.value)


def test_only_the_recording_worker_writes_init_from_json(
    trained_workdir, tmp_path
):
    config = tiny_config(tmp_path / "run", init_from=str(trained_workdir))
    experiment = _experiment(config)
    warm_start.initialize(
        experiment.model,
        config,
        experiment.splits.image_shape,
        write_record=False,
    )
    assert not (tmp_path / "run" / "init_from.json").exists()


# An instructed model with place frames of conditional_mnist's sizes.
SHIPPED_CONDITIONAL_SIZES = dict(
    task="instruct",
    num_steps=16,
    encoder_units=256,
    decoder_units=256,
    latent_size=100,
    condition_size=32,
    read_glimpse_size=5,
    write_patch_size=5,
)


def _instructed(workdir, **overrides):
    from draw_tf import models

    config = config_lib.TrainConfig(
        **{
            **SHIPPED_CONDITIONAL_SIZES,
            "workdir": str(workdir),
            "dataset": "instructed_mnist",
            "num_turns": 3,
            "carry_states": False,
            "place_frames": True,
            **overrides,
        }
    )
    return config, models.build(config, (60, 60, 1))


def _by_path(model):
    return {v.path.split("/", 1)[1]: np.array(v) for v in model.weights}


def test_a_class_conditional_model_starts_an_instructed_one(tmp_path):
    from draw_tf import pretrained

    config, model = _instructed(tmp_path, init_from="conditional_mnist")
    before = _by_path(model)
    origin = warm_start.initialize(model, config, (60, 60, 1))
    assert origin["kind"] == "pretrained"
    assert origin["new_variables"] == [
        "initial_canvas",
        "place_embedding/embeddings",
    ]
    source, after = (
        _by_path(pretrained.load("conditional_mnist")),
        _by_path(model),
    )
    assert set(after) - set(source) == set(origin["new_variables"])
    for name, value in source.items():
        np.testing.assert_array_equal(after[name], value)
    for name in origin["new_variables"]:
        np.testing.assert_array_equal(after[name], before[name])
    saved = json.loads((tmp_path / "init_from.json").read_text())
    assert saved["new_variables"] == origin["new_variables"]


def test_a_conditional_model_of_other_sizes_is_refused(tmp_path):
    config, model = _instructed(
        tmp_path, init_from="conditional_mnist", latent_size=50
    )
    with pytest.raises(
        config_lib.ConfigError, match="latent_size=100 shipped, 50 asked"
    ) as error:
        warm_start.initialize(model, config, (60, 60, 1))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_a_class_conditional_workdir_starts_an_instructed_one(
    tmp_path, dataset
):
    from draw_tf import models
    from draw_tf import workdir as workdir_lib

    tiny = dict(SHIPPED_CONDITIONAL_SIZES, encoder_units=6, decoder_units=7)
    tiny.update(latent_size=3, condition_size=4, num_steps=2)
    source_config = config_lib.TrainConfig(
        **tiny, workdir=str(tmp_path / "source"), dataset=dataset, num_turns=1
    )
    config_lib.check_workdir_architecture(source_config, (28, 28, 1))
    source = models.build(source_config, (28, 28, 1))
    rng = np.random.default_rng(3)
    for variable in source.weights:
        variable.assign(rng.normal(size=variable.shape))
    weights = tmp_path / "source" / workdir_lib.KERAS_BEST_WEIGHTS
    weights.parent.mkdir()
    source.save_weights(str(weights))
    (tmp_path / "source" / workdir_lib.KERAS_BEST_STATE).write_text(
        json.dumps({"negative_elbo": 90.0, "step": 7})
    )
    config, model = _instructed(
        tmp_path / "run", init_from=str(tmp_path / "source"), **tiny
    )
    (tmp_path / "run").mkdir()
    if dataset != "mnist":  # not the digits of instructed_mnist's episodes
        with pytest.raises(
            config_lib.ConfigError, match="dataset='fashion_mnist' there"
        ):
            warm_start.initialize(model, config, (60, 60, 1))
        return
    origin = warm_start.initialize(model, config, (60, 60, 1))
    assert origin["kind"] == "workdir" and origin["steps"] == 7
    assert origin["new_variables"] == [
        "initial_canvas",
        "place_embedding/embeddings",
    ]
    after = _by_path(model)
    for name, value in _by_path(source).items():
        np.testing.assert_array_equal(after[name], value)


def test_train_only_is_refused_by_the_tf_distribute_engine(tmp_path):
    config = tiny_config(tmp_path, train_only="draw_cell/write")
    with pytest.raises(config_lib.ConfigError, match="Keras fit"):
        _experiment(config)
