"""Tests of bench/cluttered_errors: the analysis by hand, the binary."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench import cluttered_errors_lib
from draw_tf import pretrained

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BINARY = os.path.join(REPOSITORY, "bench", "cluttered_errors.py")
_MNIST = os.path.join(os.path.dirname(REPOSITORY), "shared", "data", "mnist")


def _window(center_x, center_y, variance=0.25, stride=2.0):
    return [center_x, center_y, variance, stride, 1.0]


def test_analysis_by_hand():
    # 60 x 60 images, 28 x 28 digits: a digit at (top, left) is centred at
    # (top + 14.5, left + 14.5) in the attention's 1-based pixels.
    positions = np.array([[0, 0], [16, 16], [27, 5], [10, 20]])
    centers_x = positions[:, 1] + 14.5
    centers_y = positions[:, 0] + 14.5
    # Two glimpses: the first 20 pixels to the right of every digit; the
    # last on digits 0 and 1, 3 and 4 pixels off (found), and 30 and 11
    # pixels off digits 2 and 3 (not found).
    first = [
        _window(x + 20, y) for x, y in zip(centers_x, centers_y, strict=True)
    ]
    last = [
        _window(centers_x[0], centers_y[0]),
        _window(centers_x[1] + 3, centers_y[1], variance=1.0, stride=4.0),
        _window(centers_x[2], centers_y[2] - 30),
        _window(centers_x[3] + 6.6, centers_y[3] + 8.8),  # 11 pixels
    ]
    windows = np.stack([first, last], axis=1)
    labels = np.array([3, 5, 7, 1])
    logits = np.zeros((4, 10))
    logits[[0, 1, 2, 3], [3, 2, 1, 1]] = 1.0  # right, wrong, wrong, right
    results = cluttered_errors_lib.analyze(
        logits, windows, labels, positions, image_size=60
    )
    assert results["num_examples"] == 4
    assert results["error_rate"] == 0.5
    assert results["not_found_fraction"] == 0.5
    assert results["error_rate_found"] == 0.5  # digit 1 misread
    assert results["error_rate_not_found"] == 0.5  # digit 2
    assert results["error_from_not_found"] == 0.25
    np.testing.assert_allclose(
        results["median_distance_per_glimpse"], [20.0, 7.0]
    )  # last: 0, 3, 30, 11
    assert results["last_window_median_stride"] == 2.0
    assert results["last_window_median_filter_stddev"] == 0.5
    # Distances from the border (of 60 - 28 = 32 free pixels): 0, 16, 5, 10.
    assert [
        (entry["pixels"], entry["fraction"], entry["error_rate"])
        for entry in results["error_by_border_distance"]
    ] == [([0, 3], 0.25, 0.0), ([3, 10], 0.25, 1.0), ([10, None], 0.5, 0.5)]
    assert results["confusions"] == [
        {"true": 5, "predicted": 2, "count": 1},
        {"true": 7, "predicted": 1, "count": 1},
    ]
    # A wider radius finds digit 3 too.
    wider = cluttered_errors_lib.analyze(
        logits, windows, labels, positions, image_size=60, found_radius=12
    )
    assert wider["not_found_fraction"] == 0.25
    assert wider["error_rate_not_found"] == 1.0


def test_analysis_rejects_shapes_that_disagree():
    with pytest.raises(ValueError, match=r"windows \[n, T, 5\]"):
        cluttered_errors_lib.analyze(
            np.zeros((3, 10)),
            np.zeros((3, 8, 4)),
            np.zeros(3),
            np.zeros((3, 2)),
            image_size=100,
        )


def _run(*flags):
    return subprocess.run(
        [sys.executable, _BINARY, *flags],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(
    not os.path.isdir(_MNIST), reason="needs the MNIST idx files"
)
def test_binary_on_the_shipped_classifier_agrees_with_its_record():
    result = _run(
        "--pretrained=cluttered_mnist",
        f"--data_dir={_MNIST}",
        "--max_examples=200",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    subset = pretrained.record("cluttered_mnist")["subset"]
    assert report["num_examples"] == subset["num_examples"] == 200
    assert report["error_rate"] == pytest.approx(subset["error_rate"], abs=1e-9)
    assert len(report["median_distance_per_glimpse"]) == 8
    assert report["model"] == "pretrained:cluttered_mnist"


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "Give one of --pretrained=NAME"),
        (
            ["--pretrained=cluttered_mnist", "--workdir=/tmp"],
            "Give one of --pretrained=NAME",
        ),
        (
            ["--pretrained=mnist_attention"],
            "is a generate model of mnist; expected a classifier",
        ),
        (["--pretrained=no_such_model"], "no_such_model"),
        (["--max_examples=-1"], "--max_examples"),
        (
            ["--pretrained=cluttered_mnist", "--output=/tmp"],
            "--output=/tmp is a directory; expected a JSON file path",
        ),
    ],
)
def test_binary_bad_input_is_one_line(flags, message):
    result = _run(*flags)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "cluttered_errors.py: error: "
    ), lines
    assert message in lines[0]
