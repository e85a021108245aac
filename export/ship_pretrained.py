"""Ships a training workdir's model with the package (draw_tf.pretrained).

    python export/ship_pretrained.py --workdir=runs/mnist_attention \
        --name=mnist_attention --importance_samples=100 \
        --train_command="python train.py --flagfile=..."

evaluates the best checkpoint on the whole test split and writes
draw_tf/pretrained_models/<name>/ (model.weights.h5, record.json).

    python export/ship_pretrained.py --remeasure --name=mnist_attention \
        --importance_samples=100

measures a shipped model's test bounds again from its own weights (which
stay as they are) and rewrites its record. Flags only; the work is in
ship_pretrained_lib.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from draw_tf import (
    cli,  # noqa: E402
    pretrained,  # noqa: E402
)
from draw_tf.config import ConfigError  # noqa: E402
from export import ship_pretrained_lib  # noqa: E402

_WORKDIR = flags.DEFINE_string(
    "workdir", "", "Training workdir to ship (not with --remeasure)."
)
_REMEASURE = flags.DEFINE_bool(
    "remeasure",
    False,
    "Measure the shipped model --name's test bounds again from its shipped "
    "weights and rewrite its record, instead of shipping a workdir.",
)
_NAME = flags.DEFINE_string(
    "name",
    None,
    "Name of the shipped model, e.g. mnist_attention.",
    required=True,
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST idx directory, if not the workdir config's."
)
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", "", "Checkpoint prefix; default: best, else latest."
)
_IMPORTANCE_SAMPLES = flags.DEFINE_integer(
    "importance_samples",
    100,
    "k of the importance-weighted test bound; >= 0.",
    lower_bound=0,
)
_SUBSET_SIZE = flags.DEFINE_integer(
    "subset_size",
    200,
    "The first this many test images: the subset the tests check; >= 1.",
    lower_bound=1,
)
_TRAIN_COMMAND = flags.DEFINE_string(
    "train_command", "", "The command that trained it, for the record."
)
_DESCRIPTION = flags.DEFINE_string(
    "description", "", "One line on what the model is."
)
_FLOAT16 = flags.DEFINE_bool(
    "float16",
    False,
    "Store the weights in float16 (half the bytes), measured with the "
    "rounded weights; refused if the test bound moves by more than "
    f"{ship_pretrained_lib.FLOAT16_TOLERANCE}.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", pretrained.DIRECTORY, "Directory of the shipped models."
)


def main(argv):
    """Ships (or measures again) and prints the record."""
    if _REMEASURE.value == bool(_WORKDIR.value):
        cli.fail(
            "ship_pretrained.py",
            "expected either --workdir (to ship it) or --remeasure (to "
            f"measure a shipped model again); got --workdir={_WORKDIR.value!r}"
            f" and --remeasure={_REMEASURE.value}.",
        )
    try:
        if _REMEASURE.value:
            record = ship_pretrained_lib.remeasure(
                _NAME.value,
                data_dir=_DATA_DIR.value,
                importance_samples=_IMPORTANCE_SAMPLES.value,
                output_dir=_OUTPUT_DIR.value,
            )
        else:
            record = ship_pretrained_lib.ship(
                _WORKDIR.value,
                _NAME.value,
                data_dir=_DATA_DIR.value,
                checkpoint=_CHECKPOINT.value,
                importance_samples=_IMPORTANCE_SAMPLES.value,
                subset_size=_SUBSET_SIZE.value,
                train_command=_TRAIN_COMMAND.value,
                description=_DESCRIPTION.value,
                output_dir=_OUTPUT_DIR.value,
                float16=_FLOAT16.value,
            )
    except ConfigError as error:  # bad flags, files or workdir
        cli.fail("ship_pretrained.py", error)
    print(json.dumps({k: record[k] for k in ("name", "steps", "test")}))


if __name__ == "__main__":
    cli.run(main, "ship_pretrained.py")
