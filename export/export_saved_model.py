"""Exports a DRAW model as a SavedModel for TF Serving.

    python export/export_saved_model.py --workdir=runs/mnist_attention \
        --export_base=exported
    python export/export_saved_model.py --pretrained=mnist_attention \
        --export_base=exported

writes exported/draw/<version>/. Flags only; the work is in
export_saved_model_lib.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

import draw_tf  # noqa: E402, F401  (first: TensorFlow imported quietly)
from draw_tf import cli  # noqa: E402
from draw_tf.config import ConfigError  # noqa: E402
from export import export_saved_model_lib  # noqa: E402

_WORKDIR = flags.DEFINE_string(
    "workdir",
    "",
    "Training workdir (config.json and checkpoints); or --pretrained.",
)
_PRETRAINED = flags.DEFINE_string(
    "pretrained",
    "",
    "A shipped model to export instead of a workdir's (see "
    "draw_tf.pretrained.names()).",
)
_EXPORT_BASE = flags.DEFINE_string(
    "export_base",
    None,
    "Directory holding one directory per model; the "
    "export goes to <export_base>/<model_name>/<version>.",
    required=True,
)
_MODEL_NAME = flags.DEFINE_string(
    "model_name",
    "draw",
    "Model name: its directory and the name clients "
    "ask the server for. Non-empty, no '/'.",
)
_VERSION = flags.DEFINE_integer(
    "version",
    None,
    "Integer version >= 0; default: the current Unix "
    "time, so a newer export is served in place of an older one.",
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint",
    "",
    "Checkpoint prefix to export (e.g. "
    "WORKDIR/checkpoints/ckpt-1000); default: the workdir's best-validation "
    "checkpoint, else its latest.",
)
_MAX_BATCH_SIZE = flags.DEFINE_integer(
    "max_batch_size",
    export_saved_model_lib.DEFAULT_MAX_BATCH_SIZE,
    "The largest batch one request may ask for; larger requests get "
    "INVALID_ARGUMENT. >= 1.",
)


def main(argv):
    """Exports and prints the version directory."""
    del argv
    try:
        path = export_saved_model_lib.export(
            _WORKDIR.value,
            _EXPORT_BASE.value,
            _MODEL_NAME.value,
            _VERSION.value,
            _CHECKPOINT.value,
            pretrained_name=_PRETRAINED.value,
            max_batch_size=_MAX_BATCH_SIZE.value,
        )
    except ConfigError as error:  # bad flags, files or workdir
        cli.fail("export_saved_model.py", error)
    print(path)


if __name__ == "__main__":
    cli.run(main, "export_saved_model.py")
