"""Tests of draw_tf.learning_curves and export/plot_curves.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from draw_tf import learning_curves, pretrained

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _record(metric="negative_elbo", scale=1.0):
    """A two-stage record: 2 epochs of 10 steps, then 4 of 20 steps."""
    return {
        "name": "toy",
        "shipped": "2026-12-01",
        "steps": 20,
        "epochs": 4.0,
        "training_wall_hours": 1.5,
        "untimed_steps": [[5, 15]],
        "paper": {metric: 80.0 / scale},
        "validation_curve": [
            {"step": 10, metric: 90.0 / scale},
            {"step": 20, metric: 85.0 / scale},
        ],
        "history": [
            {
                "source": "shipped first (2026-11-01)",
                "steps": 10,
                "epochs": 2.0,
                "training_wall_hours": 0.5,
                "validation_curve": [
                    {"step": 1, metric: 200.0 / scale},
                    {"step": 10, metric: 100.0 / scale},
                ],
            }
        ],
    }


def test_stages_lie_end_to_end_in_epochs():
    first, second = learning_curves.stages(_record())
    np.testing.assert_allclose(first.epochs, [0.2, 2.0])
    # The second run's steps are its own: 20 steps are its 4 epochs.
    np.testing.assert_allclose(second.epochs, [2.0 + 2.0, 2.0 + 4.0])
    np.testing.assert_allclose(second.values, [90.0, 85.0])
    assert first.label == "shipped first (2026-11-01)"
    assert second.label == "toy (shipped 2026-12-01)"
    assert learning_curves.total_wall_hours(_record()) == 2.0
    assert second.untimed_steps == 10
    assert "(+ 10 untimed steps)" in second.describe()
    assert second.describe().endswith("best 85.00")


def test_a_stage_of_another_dataset_keeps_its_hours_off_the_axis():
    # An instructed model started from a class-conditional one: that
    # model's -ELBO is of another task, not on this curve.
    record = dict(_record(), config={"dataset": "instructed_mnist"})
    record["history"][0]["dataset"] = "mnist"
    first, second = learning_curves.stages(record)
    assert first.epochs.size == first.values.size == 0
    assert first.label == "shipped first (2026-11-01), on mnist"
    np.testing.assert_allclose(second.epochs, [2.0, 4.0])
    assert learning_curves.total_wall_hours(record) == 2.0
    picture, _ = learning_curves.plot(record)
    assert picture.size == (800, 480)


def test_a_curve_of_one_point_gets_a_readable_range():
    record = dict(_record(), history=[])
    record["validation_curve"] = [{"step": 20, "negative_elbo": 516.9}]
    low, high = learning_curves.value_range(
        learning_curves.stages(record), None
    )
    assert low < 516.9 - 0.5 and high > 516.9 + 0.5


def test_error_rates_are_shown_in_percent():
    record = _record("error_rate", scale=100.0)
    assert learning_curves.metric_of(record) == "error_rate"
    _, second = learning_curves.stages(record)
    np.testing.assert_allclose(second.values, [90.0, 85.0])
    assert learning_curves.paper_value(record) == pytest.approx(80.0)


def test_the_range_cuts_the_first_epochs_and_keeps_the_paper():
    low, high = learning_curves.value_range(
        learning_curves.stages(_record()), paper=80.0
    )
    # 200 nats at epoch 0.2 (before a tenth of the 6 epochs) is left out.
    assert low < 80.0 < 100.0 < high < 200.0


def test_the_plot_draws_each_point_where_its_axes_say():
    picture, axes = learning_curves.plot(_record())
    pixels = np.asarray(picture)
    stages = learning_curves.stages(_record())
    for index, stage in enumerate(stages):
        colour = learning_curves._STAGE_COLOURS[index]
        column, row = axes.to_pixel(stage.epochs[-1], stage.values[-1])
        assert tuple(pixels[round(row), round(column)]) == colour
    # The paper's dashed line, in its colour, at 80 nats.
    _, row = axes.to_pixel(0.0, 80.0)
    line = pixels[round(row), axes.left : axes.right]
    grey = np.all(line == learning_curves._PAPER_COLOUR, axis=-1)
    assert 0.3 < grey.mean() < 0.7
    # Nothing of a curve is drawn outside the frame: the 200 nats of the
    # first evaluation are cut at the top.
    above = pixels[: axes.top]
    assert not np.any(np.all(above == learning_curves._STAGE_COLOURS[0], -1))


def test_a_record_without_a_curve_is_refused():
    with pytest.raises(ValueError, match="no validation curve"):
        learning_curves.metric_of({"name": "x", "validation_curve": []})


def test_every_shipped_curve_plots():
    for name in pretrained.names():
        record = pretrained.record(name)
        if record.get("validation_curve"):
            picture, _ = learning_curves.plot(record)
            assert picture.size == (800, 480)


def _plot_curves(*arguments):
    return subprocess.run(
        [sys.executable, os.path.join(REPO, "export", "plot_curves.py")]
        + list(arguments),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_binary_writes_a_png_per_model_and_refuses_bad_names(tmp_path):
    name = pretrained.names_of_task("generate")[0]
    result = _plot_curves(f"--names={name}", f"--output_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    path = tmp_path / f"{name}_curve.png"
    assert result.stdout.split() == [str(path)]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = _plot_curves("--names=no_such_model", f"--output_dir={tmp_path}")
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert "no_such_model" in line and "expected one of" in line
    result = _plot_curves(f"--names={name}", f"--output_dir={tmp_path}/no")
    assert result.returncode == 2 and "--output_dir" in result.stderr


def test_the_shipped_conditional_model_keeps_its_first_run():
    # A warm restart's record keeps the run it started from.
    record = pretrained.record("conditional_mnist")
    (first,) = record["history"]
    assert first["source"] == "workdir conditional_mnist"
    assert first["steps"] == 10000 and first["epochs"] == 20.0
    assert len(first["validation_curve"]) == 20
    json.dumps(record)  # no numpy values
