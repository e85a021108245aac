"""Tests of the learning-rate schedules against their closed forms."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from draw_tf import config as config_lib
from draw_tf import data, schedules
from draw_tf.tensorflow import distributed_engine, distribution
from tests.tiny_run import tiny_config


def _rate(schedule, step):
    return float(schedule(tf.constant(step, tf.int64)))


def test_cosine_from_peak_to_final_fraction():
    schedule = schedules.LearningRateSchedule(
        1e-3, 50000, kind="cosine", final_fraction=0.01
    )
    assert _rate(schedule, 0) == pytest.approx(1e-3, rel=1e-6)
    # Half way the rate is the mean of peak and final.
    assert _rate(schedule, 25000) == pytest.approx(0.505e-3, rel=1e-5)
    expected_last = 1e-5 + (1e-3 - 1e-5) * 0.5 * (
        1 + math.cos(math.pi * 49999 / 50000)
    )
    assert _rate(schedule, 49999) == pytest.approx(expected_last, rel=1e-4)
    assert _rate(schedule, 50000) == pytest.approx(1e-5, rel=1e-5)
    assert _rate(schedule, 90000) == pytest.approx(1e-5, rel=1e-5)


def test_warmup_then_cosine():
    schedule = schedules.LearningRateSchedule(
        2e-3, 110, kind="cosine", warmup_steps=10, final_fraction=0.0
    )
    for step in range(10):  # linear: peak * (step + 1) / W
        assert _rate(schedule, step) == pytest.approx(2e-3 * (step + 1) / 10)
    # End of warmup: the peak; then a cosine over the remaining 100 steps.
    assert _rate(schedule, 10) == pytest.approx(2e-3, rel=1e-6)
    for step in (35, 60, 109):
        expected = 2e-3 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 100))
        assert _rate(schedule, step) == pytest.approx(expected, abs=1e-9)
    assert _rate(schedule, 110) == pytest.approx(0.0, abs=1e-12)


def test_constant_with_and_without_warmup():
    constant = schedules.LearningRateSchedule(3e-4, 100)
    assert [_rate(constant, s) for s in (0, 50, 99, 1000)] == pytest.approx(
        [3e-4] * 4
    )
    warm = schedules.LearningRateSchedule(3e-4, 100, warmup_steps=4)
    assert [_rate(warm, s) for s in range(6)] == pytest.approx(
        [0.75e-4, 1.5e-4, 2.25e-4, 3e-4, 3e-4, 3e-4]
    )


def test_schedule_round_trips_through_keras_serialization():
    schedule = schedules.LearningRateSchedule(
        1e-3, 500, kind="cosine", warmup_steps=20, final_fraction=0.1
    )
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(schedule)
    )
    steps = np.arange(0, 600, 37)
    np.testing.assert_allclose(
        [_rate(restored, s) for s in steps], [_rate(schedule, s) for s in steps]
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kind="linear"), "kind must be one of"),
        (dict(final_fraction=1.5), "final_fraction"),
        (dict(kind="cosine", warmup_steps=100), "below total_steps"),
    ],
)
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        schedules.LearningRateSchedule(1e-3, 100, **kwargs)


def test_optimizer_follows_the_schedule_through_training(tmp_path):
    config = tiny_config(
        tmp_path,
        train_steps=6,
        learning_rate=1e-2,
        learning_rate_schedule="cosine",
        learning_rate_warmup_steps=2,
        learning_rate_final_fraction=0.0,
    )

    experiment = distributed_engine.make_trainer(
        config, distribution.make_strategy(), data.load_splits(config)
    )
    expected = [5e-3, 1e-2] + [
        1e-2 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)
    ]
    seen = []
    for step in range(6):
        seen.append(float(experiment.engine.optimizer.learning_rate))
        assert experiment.learning_rate_at(step) == pytest.approx(seen[-1])
        experiment.engine.optimizer.iterations.assign_add(1)
    np.testing.assert_allclose(seen, expected, rtol=1e-5, atol=1e-9)


def test_warmup_as_long_as_the_run_is_one_line_error(tmp_path):

    config = tiny_config(
        tmp_path,
        train_steps=6,
        learning_rate_schedule="cosine",
        learning_rate_warmup_steps=6,
    )
    with pytest.raises(config_lib.ConfigError, match="warmup_steps=6"):
        distributed_engine.make_trainer(
            config, distribution.make_strategy(), data.load_splits(config)
        )
