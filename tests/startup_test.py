"""TensorFlow's CPU-only start-up noise does not reach the user."""

import os
import subprocess
import sys

from draw_tf import startup

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
