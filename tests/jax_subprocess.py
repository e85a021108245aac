"""Python in a subprocess with Keras on JAX, for the tests that need one.

Keras fixes its backend when it is imported, so a test of the TensorFlow
run that needs JAX runs it in a subprocess: `KERAS_BACKEND=jax`, the
checkout on `PYTHONPATH`, and (by default) `DRAW_TF_BLOCK_TENSORFLOW=1`,
which makes tests/conftest.py block `import tensorflow` in a pytest child.
"""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_on_jax(
    args,
    timeout: float,
    cwd: str = ROOT,
    block_tensorflow: bool = True,
    **environment,
) -> subprocess.CompletedProcess:
    """Runs `python *args` on JAX; asserts it exits 0.

    Args:
      args: the interpreter's arguments ("-m", "pytest", ... or "-c", ...).
      timeout: seconds.
      cwd: its working directory.
      block_tensorflow: set DRAW_TF_BLOCK_TENSORFLOW=1; False also drops
        TF_CPP_MIN_LOG_LEVEL, as on a user's machine with TensorFlow.
      **environment: more variables (e.g. XLA_FLAGS).

    Returns:
      The finished process, stdout and stderr captured as text.
    """
    variables = dict(os.environ)
    if block_tensorflow:
        variables["DRAW_TF_BLOCK_TENSORFLOW"] = "1"
    else:
        for name in ("TF_CPP_MIN_LOG_LEVEL", "DRAW_TF_BLOCK_TENSORFLOW"):
            variables.pop(name, None)
    variables.update(
        environment,
        KERAS_BACKEND="jax",
        PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
    )
    completed = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=variables,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    return completed
