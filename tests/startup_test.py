"""TensorFlow's CPU-only start-up noise does not reach the user."""

import os
import subprocess
import sys

import pytest

from draw_tf import startup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NOISY_MODULE = """
import os
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is "
            b"called are written to STDERR\\n")
os.write(2, b"I0000 00:00:1 1 cudart_stub.cc:31] Could not find cuda "
            b"drivers on your machine, GPU will not be used.\\n")
os.write(2, b"a real problem\\n")
"""


def test_noise_is_dropped_and_other_lines_kept(tmp_path, monkeypatch, capfd):
    (tmp_path / "noisy_module_for_test.py").write_text(NOISY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.delenv("DRAW_TF_VERBOSE_STARTUP", raising=False)
    startup.quiet_import("noisy_module_for_test")
    err = capfd.readouterr().err
    assert "a real problem" in err
    assert "cudart" not in err and "InitializeLog" not in err


def test_verbose_start_up_shows_everything(tmp_path, monkeypatch, capfd):
    (tmp_path / "noisy_module_for_test2.py").write_text(NOISY_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DRAW_TF_VERBOSE_STARTUP", "1")
    startup.quiet_import("noisy_module_for_test2")
    err = capfd.readouterr().err
    assert "cudart_stub.cc" in err and "a real problem" in err


@pytest.mark.slow
def test_import_draw_tf_prints_nothing():
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TF_CPP_MIN_LOG_LEVEL", "DRAW_TF_VERBOSE_STARTUP")
    }
    result = subprocess.run(
        [sys.executable, "-c", "import draw_tf"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


@pytest.mark.slow
def test_import_without_tensorflow_runs_keras_on_jax(tmp_path):
    # As after `pip install draw_tf[jax]`: TensorFlow absent, KERAS_BACKEND
    # unset, and the keras.json Keras wrote with its TensorFlow default.
    keras_home = tmp_path / "keras_home"
    keras_home.mkdir()
    (keras_home / "keras.json").write_text('{"backend": "tensorflow"}')
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KERAS_BACKEND", "DRAW_TF_BLOCK_TENSORFLOW")
    }
    environment["KERAS_HOME"] = str(keras_home)
    script = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import draw_tf, keras\n"
        "print(keras.backend.backend())\n"
        "model = draw_tf.pretrained.load('mnist_attention')\n"
        "print(model.generate(batch_size=2, seed=[1, 2])['images'].shape)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == ["jax", "(2,", "28,", "28,", "1)"]
    # A backend asked for is left alone.
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import draw_tf, keras; print(keras.backend.backend())",
        ],
        cwd=tmp_path,
        env={**environment, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.stdout.split() == ["tensorflow"], completed.stderr[-2000:]
