"""A quiet TensorFlow import: its CPU-only start-up noise is dropped.

On a machine without a GPU, importing TensorFlow prints lines such as

    WARNING: All log messages before absl::InitializeLog() is called ...
    I0000 ... cudart_stub.cc:31] Could not find cuda drivers on your machine

from C++, before logging is set up, so `TF_CPP_MIN_LOG_LEVEL` does not
stop them. `quiet_tensorflow_import()` imports TensorFlow with the
process's stderr (file descriptor 2) sent to a temporary file, then writes
back every line that is not such known noise. Setting
`TF_CPP_MIN_LOG_LEVEL=0` (or `DRAW_TF_VERBOSE_STARTUP=1`) shows them all.
Pure Python; `draw_tf/__init__.py` uses it, so `import draw_tf` first
keeps a binary's output its own.
"""

import importlib
import os
import re
import sys
import tempfile

# TensorFlow's start-up lines on a machine without a GPU.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog\(\)"
    r"|cudart_stub\.cc|Could not find cuda drivers"
    r"|cuda_(dnn|fft|blas)\.cc.*Unable to register"
    r"|computation_placer\.cc.*already registered"
    r"|cpu_feature_guard\.cc|To enable the following instructions"
    r"|oneDNN custom operations are on|TF-TRT Warning"
)


def _verbose() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0" or os.environ.get(
        "DRAW_TF_VERBOSE_STARTUP", ""
    ) not in ("", "0")


def quiet_tensorflow_import():
    """Imports and returns `tensorflow`, dropping its start-up noise."""
    return quiet_import("tensorflow")


def quiet_import(name: str):
    """Imports and returns module `name`, dropping TensorFlow's noise.

    Lines the import writes to file descriptor 2 that are not known
    start-up noise are written back to stderr after it.
    """
    if name in sys.modules or _verbose():
        return importlib.import_module(name)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 (e.g. some embedded runtimes)
        return importlib.import_module(name)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            module = importlib.import_module(name)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [
                line
                for line in captured.read()
                .decode(errors="replace")
                .splitlines()
                if line.strip() and not _NOISE.search(line)
            ]
            if kept:
                print("\n".join(kept), file=sys.stderr, flush=True)
    return module


def keep_tensorflow_unimported() -> None:
    """For a binary off TensorFlow: Keras does not import it behind its back.

    Keras imports TensorFlow whenever it is installed, on any backend, to
    ask `isinstance(x, tf.TensorShape)` while serializing or to seed it:
    seconds of start-up and TensorFlow's probe lines in a JAX run that
    uses nothing of it. A binary that knows it will not use TensorFlow
    (train.py on JAX) calls this first; Keras then takes TensorFlow as
    absent, as on a machine without it. Nothing changes where TensorFlow
    is imported already. Also quiets JAX's own start-up line about
    absent TPU libraries, unless `DRAW_TF_VERBOSE_STARTUP` is set.
    """
    if _verbose():
        return
    import logging

    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)
    if "tensorflow" in sys.modules:
        return
    from keras.src.utils import module_utils

    module_utils.tensorflow._available = False


def default_to_an_installed_backend() -> None:
    """JAX as Keras's backend where TensorFlow is not installed.

    Keras defaults to TensorFlow (and writes that default into
    `~/.keras/keras.json` the first time it runs) and then fails to import
    without it; after `pip install draw_tf[jax]` a user expects
    `import draw_tf` to work. So when `KERAS_BACKEND` is not set, the
    backend Keras would take is TensorFlow, TensorFlow is not installed
    and JAX is, this sets `KERAS_BACKEND=jax`. Nothing changes when Keras
    is imported already, or when `KERAS_BACKEND` or keras.json names
    another backend.
    """
    import importlib.util
    import json

    if "KERAS_BACKEND" in os.environ or "keras" in sys.modules:
        return
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(
        os.path.expanduser("~"), ".keras"
    )
    configured = "tensorflow"
    try:
        with open(os.path.join(keras_home, "keras.json")) as file:
            configured = json.load(file).get("backend", configured)
    except (OSError, ValueError, AttributeError):
        pass
    if configured != "tensorflow":
        return
    if importlib.util.find_spec("tensorflow") is not None:
        return
    if importlib.util.find_spec("jax") is not None:
        os.environ["KERAS_BACKEND"] = "jax"
