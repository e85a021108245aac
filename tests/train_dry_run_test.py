"""Dry run: the real train binary for a few steps on tiny synthetic data.

Under Bazel the binary is the //:train py_binary (TRAIN_BINARY, set in
tests/BUILD); under pytest it is `python train.py`.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train_command():
    binary = os.environ.get("TRAIN_BINARY")
    if os.environ.get("TEST_SRCDIR"):  # under Bazel: the py_binary
        assert binary and pathlib.Path(binary).is_file(), binary
        return [str(pathlib.Path(binary).resolve())]
    return [sys.executable, str(ROOT / "train.py")]


def test_train_binary_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [
            *_train_command(),
            f"--workdir={tmp_path}",
            "--dataset=synthetic",
            "--synthetic_image_size=8",
            "--num_steps=2",
            "--encoder_units=4",
            "--decoder_units=4",
            "--latent_size=2",
            "--read_glimpse_size=2",
            "--write_patch_size=2",
            "--batch_size=8",
            "--train_steps=3",
            "--max_eval_examples=8",
            "--importance_samples=2",
            "--num_pictures=2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    test = json.loads((tmp_path / "eval" / "test.json").read_text())
    assert test["step"] == 3 and test["num_examples"] == 8
    assert (tmp_path / "pictures" / "samples.png").exists()
