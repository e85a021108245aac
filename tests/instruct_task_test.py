"""--task=instruct through the run loop: flags, data, episodes, evaluation.

The instructed model (draw_tf/conditional_model.py) trained by train.py:
its config checks, its splits (instructed MNIST episodes, or
class-conditional digits), the training episodes of a step, the episode
bounds and drawing (draw_tf.bounds.EpisodeEvaluator), a tiny run end to
end with the judge, and --mode=draw with --instructions.

Backend-portable: tests/jax_backend_test.py runs this file again on JAX.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from draw_tf import (
    bounds,
    judge,
    keras_engine,
    loading,
    mnist_sample,
    pretrained,
    trainer,
)
from draw_tf import config as config_lib
from draw_tf import data as data_lib
from draw_tf.conditional_model import ConditionalDrawModel, episode_terms
from tests.tiny_run import TINY_INSTRUCTED_MODEL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A conditional DRAW small enough to train in seconds.
TINY = dict(
    TINY_INSTRUCTED_MODEL,
    batch_size=8,
    validation_size=100,
    eval_batch_size=40,
    train_steps=4,
    log_every_steps=2,
    checkpoint_every_steps=2,
    eval_every_steps=4,
    num_pictures=2,
    judge="",
)


def _write_idx(path, array, magic):
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    """MNIST idx files of the package's 500 sample digits: 400 + 100 test."""
    sample = mnist_sample.load()
    directory = tmp_path_factory.mktemp("digits")
    images, labels = sample.images[..., 0], sample.labels
    for split, part in (("train", slice(0, 400)), ("test", slice(400, 500))):
        _write_idx(directory / data_lib.IMAGE_FILES[split], images[part], 2051)
        _write_idx(directory / data_lib.LABEL_FILES[split], labels[part], 2049)
    return str(directory)


def _config(workdir, digits_dir, **overrides):
    values = dict(
        TINY,
        workdir=str(workdir),
        data_dir=digits_dir,
        dataset="instructed_mnist",
        num_turns=3,
    )
    values.update(overrides)
    return config_lib.TrainConfig(**values).validate()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (dict(dataset="cifar10"), "--task=instruct draws instructed_mnist"),
        (dict(num_turns=5), "--num_turns must be 1-4"),
        (dict(dataset="mnist", num_turns=3), "--num_turns must be 1"),
        (dict(binarization="static"), "--binarization=dynamic or none"),
        (dict(engine="distributed"), "--task=instruct trains with Keras fit()"),
        (dict(instructions="7 top-left"), "drawn with --mode=draw"),
        (dict(precision="bf16"), "--task=instruct trains in fp32"),
        (dict(task="generate"), "it needs --task=instruct"),
        (
            dict(dataset="mnist", num_turns=1, place_frames=True),
            "--place_frames .* needs --dataset=instructed_mnist",
        ),
        (dict(place_frames=True, attention=False), "and --noattention"),
    ],
)
def test_bad_instruct_flags_fail_in_one_line_naming_the_flag(
    overrides, expected, tmp_path
):
    values = dict(
        TINY, workdir=str(tmp_path), dataset="instructed_mnist", num_turns=3
    )
    values.update(overrides)
    with pytest.raises(config_lib.ConfigError, match=expected) as error:
        config_lib.TrainConfig(**values).validate()
    assert "\n" not in str(error.value)


def test_place_frames_are_in_the_architecture_only_when_on(tmp_path):
    values = dict(
        TINY, workdir=str(tmp_path), dataset="instructed_mnist", num_turns=3
    )
    off = config_lib.TrainConfig(**values).validate().architecture()
    on = config_lib.TrainConfig(**values, place_frames=True).validate()
    assert "place_frames" not in off  # as the models shipped before it
    assert on.architecture() == dict(off, place_frames=True)
    assert on.model_kwargs((60, 60, 1))["place_frames"] is True
    with pytest.raises(config_lib.ConfigError, match="--place_frames is of"):
        config_lib.TrainConfig(
            workdir=str(tmp_path), place_frames=True
        ).validate()


def test_instructed_splits_are_fixed_episodes_binarized_alike_each_turn(
    tmp_path, digits_dir
):
    config = _config(tmp_path, digits_dir)
    splits = data_lib.load_splits(config)
    assert splits.episodic and splits.image_shape == (60, 60, 1)
    assert splits.train.shape == (300, 28, 28, 1)
    for targets, classes, places in (
        (splits.validation, splits.validation_labels, splits.validation_places),
        (splits.test, splits.test_labels, splits.test_places),
    ):
        assert targets.shape == (100, 3, 60, 60, 1)
        assert classes.shape == places.shape == (100, 3)
        assert set(np.unique(targets)) <= {0, 255}
        # What a turn drew stays as it was in every later turn.
        for turn in (1, 2):
            earlier = targets[:, turn - 1] > 0
            assert (targets[:, turn][earlier] == 255).all()
        assert all(len(set(row)) == 3 for row in places.tolist())
    again = data_lib.load_splits(config)
    np.testing.assert_array_equal(again.test, splits.test)
    np.testing.assert_array_equal(again.test_places, splits.test_places)


def test_class_conditional_splits_are_the_digits_with_their_labels(
    tmp_path, digits_dir
):
    config = _config(tmp_path, digits_dir, dataset="mnist", num_turns=1)
    splits = data_lib.load_splits(config)
    plain = data_lib.load_splits(
        config_lib.TrainConfig(
            workdir=str(tmp_path), data_dir=digits_dir, validation_size=100
        )
    )
    assert splits.test.shape == (100, 1, 28, 28, 1)
    assert splits.test_places is None and config.num_places == 0
    # The unconditional model's test images, told their labels.
    np.testing.assert_array_equal(splits.test[:, 0], plain.test)
    np.testing.assert_array_equal(splits.validation[:, 0], plain.validation)
    np.testing.assert_array_equal(
        splits.test_labels[:, 0], mnist_sample.load().labels[400:]
    )


def test_training_episodes_are_a_function_of_seed_and_step(
    tmp_path, digits_dir
):
    config = _config(tmp_path, digits_dir)
    splits = data_lib.load_splits(config)
    first = keras_engine.training_episodes(splits, config, 3, 5)
    again = keras_engine.training_episodes(splits, config, 4, 5)
    assert first["targets"].shape == (16, 3, 60, 60, 1)
    assert first["classes"].shape == first["places"].shape == (16, 3)
    for key in first:
        np.testing.assert_array_equal(first[key][8:], again[key])
    assert set(np.unique(first["targets"])) <= {0.0, 1.0}
    other = keras_engine.training_episodes(splits, config, 5, 6)
    assert not np.array_equal(other["targets"], again["targets"])


def _tiny_model(places=4):
    keras.utils.set_random_seed(0)
    return ConditionalDrawModel(
        (60, 60, 1) if places else (28, 28, 1),
        num_turns=3 if places else 1,
        num_places=places,
        steps_per_turn=2,
        encoder_units=8,
        decoder_units=8,
        latent_size=3,
        read_glimpse_size=2,
        write_patch_size=3,
        condition_size=4,
    )


def test_episode_bounds_are_the_loss_of_each_episode_whatever_the_batch(
    tmp_path, digits_dir
):
    splits = data_lib.load_splits(_config(tmp_path, digits_dir))
    model = _tiny_model()
    targets = splits.test[:12]
    classes, places = splits.test_labels[:12], splits.test_places[:12]
    small = bounds.EpisodeEvaluator(model, batch_size=5, seed=3)(
        targets, classes, places
    )
    large = bounds.EpisodeEvaluator(model, batch_size=12, seed=3)
    results = large(targets, classes, places)
    for key in ("negative_elbo", "reconstruction_loss", "latent_loss"):
        np.testing.assert_allclose(small[key], results[key], rtol=1e-5)
    np.testing.assert_allclose(
        np.sum(results["negative_elbo_per_turn"]),
        results["negative_elbo"],
        rtol=1e-6,
    )
    # The same numbers from the model's own loss, with the same noise.
    noise = large._noise(0, 0, 12, 3)
    outputs = model(
        {
            "targets": targets.astype(np.float32) / 255.0,
            "classes": classes,
            "places": places,
        },
        noise=noise,
    )
    terms = episode_terms(targets.astype(np.float32) / 255.0, outputs)
    np.testing.assert_allclose(
        results["negative_elbo"],
        float(np.mean(keras.ops.convert_to_numpy(terms["negative_elbo"]))),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        results["latent_loss_per_turn"],
        np.mean(keras.ops.convert_to_numpy(terms["latent_loss_per_turn"]), 0),
        rtol=1e-4,
    )


def test_drawn_episodes_depend_on_the_episode_not_the_batch():
    model = _tiny_model()
    classes = np.array([[7, 3, 1], [0, 2, 4], [9, 9, 9]])
    places = np.array([[0, 3, 1], [1, 2, 0], [3, 0, 2]])
    evaluator = bounds.EpisodeEvaluator(model, batch_size=2, seed=1)
    drawn = evaluator.draw(classes, places, canvases=True)
    assert drawn["images"].shape == (3, 3, 60, 60, 1)
    assert drawn["canvases"].shape == (3, 3, 2, 60, 60, 1)
    assert drawn["write_windows"].shape == (3, 3, 2, 5)
    np.testing.assert_allclose(
        drawn["images"], drawn["canvases"][:, :, -1], atol=1e-6
    )
    alone = bounds.EpisodeEvaluator(model, batch_size=1, seed=1).draw(
        classes, places
    )
    assert "canvases" not in alone
    np.testing.assert_allclose(alone["images"], drawn["images"], atol=1e-5)
    other = bounds.EpisodeEvaluator(model, batch_size=2, seed=2).draw(
        classes, places
    )
    assert np.abs(other["images"] - drawn["images"]).max() > 1e-3


def _train(arguments, timeout=900):
    environment = dict(os.environ)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=ROOT,
    )


def _flags(config: config_lib.TrainConfig) -> list[str]:
    defaults = config_lib.TrainConfig(workdir="")
    flags = []
    for name in config_lib.TrainConfig.__dataclass_fields__:
        value = getattr(config, name)
        if value != getattr(defaults, name) or name == "workdir":
            if isinstance(value, bool):
                flags.append(f"--{name}" if value else f"--no{name}")
            else:
                flags.append(f"--{name}={value}")
    return flags


@pytest.mark.slow
def test_train_evaluate_and_draw_an_instructed_model_with_a_judge(
    tmp_path, digits_dir
):
    # A judge trained in seconds on the sample digits, as a weights file.
    sample = mnist_sample.load()
    small_judge = judge.train_judge(
        sample.images[:400], sample.labels[:400], epochs=1, batch_size=50
    )
    judge_path = str(tmp_path / "judge.weights.h5")
    small_judge.save_weights(judge_path)
    workdir = tmp_path / "run"
    config = _config(workdir, digits_dir, judge=judge_path)
    completed = _train(_flags(config))
    assert completed.returncode == 0, completed.stderr[-3000:]
    with open(workdir / "eval" / "test.json") as file:
        results = json.load(file)
    assert results["num_examples"] == 100
    assert len(results["negative_elbo_per_turn"]) == 3
    assert len(results["instruction_accuracy"]) == 3
    assert results["preservation"][0] == 1.0
    for value in (*results["instruction_accuracy"], *results["preservation"]):
        assert 0.0 <= value <= 1.0
    for name in ("episodes.png", "episode.png", "episode.gif"):
        assert (workdir / "pictures" / name).is_file(), name
    # Each validation has the judge's scores of the validation episodes.
    with open(workdir / "eval" / "validation.jsonl") as file:
        (validation,) = [json.loads(line) for line in file]
    assert len(validation["instruction_accuracy"]) == 3
    assert validation["preservation"][0] == 1.0
    # Resumed, it is already done; drawn from text instructions.
    draw = _train(
        [
            *_flags(config),
            "--mode=draw",
            "--instructions=7 top-left; 3 bottom-right",
        ]
    )
    assert draw.returncode == 0, draw.stderr[-3000:]
    assert "drew 2 episodes: 7 top-left; 3 bottom-right" in draw.stderr
    bad = _train([*_flags(config), "--mode=draw", "--instructions=7 middle"])
    assert bad.returncode == 2
    last = bad.stderr.strip().splitlines()[-1]
    assert last.startswith("train.py: error: --instructions: '7 middle'"), last


@pytest.mark.slow
def test_class_conditional_training_resumes_exactly(tmp_path, digits_dir):
    config = _config(
        tmp_path / "whole", digits_dir, dataset="mnist", num_turns=1
    )
    whole = trainer.Trainer(config, data_lib.load_splits(config))
    whole.train()
    split_config = _config(
        tmp_path / "split",
        digits_dir,
        dataset="mnist",
        num_turns=1,
        train_steps=2,
    )
    splits = data_lib.load_splits(split_config)
    trainer.Trainer(split_config, splits).train()
    resumed = trainer.Trainer(
        _config(tmp_path / "split", digits_dir, dataset="mnist", num_turns=1),
        splits,
    )
    resumed.train()
    for ours, theirs in zip(
        whole.model.get_weights(), resumed.model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_judge_flag_names_a_shipped_judge_or_a_weights_file(tmp_path):
    from draw_tf import warm_start

    assert warm_start.load_judge("") is None
    with pytest.raises(config_lib.ConfigError, match="--judge=nope") as error:
        warm_start.load_judge("nope")
    assert "\n" not in str(error.value)
    model = judge.DigitJudge(filters=4, units=8)
    path = str(tmp_path / "judge.weights.h5")
    model.save_weights(path)
    with pytest.raises(config_lib.ConfigError, match="not a DigitJudge"):
        warm_start.load_judge(path)  # another architecture


INSTRUCTED_MODELS = pretrained.names_of_task("instruct")


@pytest.mark.parametrize("name", INSTRUCTED_MODELS)
@pytest.mark.slow
def test_shipped_instructed_model_reproduces_its_sample_bound(name):
    # Offline, anywhere, on either backend: episodes of the package's own
    # 500 test digits (draw_tf.mnist_sample).
    record = pretrained.record(name)
    config = pretrained.train_config(name, workdir="-", mode="evaluate")
    model = pretrained.load(name)
    assert isinstance(model, ConditionalDrawModel)
    targets, classes, places = mnist_sample.test_images(config)
    results = loading.evaluator(model, config)(targets, classes, places)
    recorded = record["sample_subset"]
    assert results["num_examples"] == recorded["num_examples"] == 500
    for key in ("negative_elbo", "reconstruction_loss", "latent_loss"):
        np.testing.assert_allclose(
            results[key], recorded[key], rtol=1e-4, atol=1e-4
        )
    test = record["test"]
    assert test["num_examples"] == 10000 and test["judge"] == "digit_judge"
    assert len(test["instruction_accuracy"]) == config.num_turns
    assert record["machines"], "no CPU kind recorded"


@pytest.mark.parametrize("name", INSTRUCTED_MODELS)
@pytest.mark.slow
def test_shipped_instructed_model_draws_instructions_through_train(
    name, tmp_path
):
    instructions = (
        "7 top-left; 3 bottom-right"
        if pretrained.record(name)["architecture"]["dataset"]
        == "instructed_mnist"
        else "7, 3"
    )
    completed = _train(
        [
            f"--pretrained={name}",
            "--mode=draw",
            f"--instructions={instructions}",
            f"--workdir={tmp_path}",
            "--num_pictures=2",
        ]
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    # Two pictures of each of two instructions: two rows of two, one row
    # an instruction (a class) or an episode (its turns).
    with Image.open(tmp_path / "pictures" / "episodes.png") as picture:
        width, height = picture.size
    assert width == height
