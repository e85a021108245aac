"""Trains the digit judge on MNIST and ships it (draw_tf.pretrained).

    python export/ship_judge.py --data_dir=../shared/data/mnist

trains `draw_tf.judge.DigitJudge` on the 50,000 training digits (the last
10,000 of the training file are its validation digits, as train.py's
split), each in a 30 x 30 crop shifted by 0-2 pixels, new crops every
epoch, and writes draw_tf/pretrained_models/digit_judge/ (model.weights.h5,
record.json with its validation and test accuracy, the CPU kind and the
command). The instructed models are judged with it (`draw_tf.judge`).
Flags only; the work is in draw_tf.judge and export/ship_judge_lib.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from draw_tf import cli, pretrained  # noqa: E402
from draw_tf.config import ConfigError  # noqa: E402
from export import ship_judge_lib  # noqa: E402

_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST idx directory; default: found locally."
)
_EPOCHS = flags.DEFINE_integer(
    "epochs", 8, "Passes over the training digits; >= 1.", lower_bound=1
)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of weights, crops and order.")
_NAME = flags.DEFINE_string("name", "digit_judge", "Name of the shipped judge.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", pretrained.DIRECTORY, "Directory of the shipped models."
)


def main(argv):
    """Trains, measures and ships the judge; prints its accuracies."""
    del argv
    try:
        record = ship_judge_lib.ship(
            data_dir=_DATA_DIR.value,
            epochs=_EPOCHS.value,
            seed=_SEED.value,
            name=_NAME.value,
            output_dir=_OUTPUT_DIR.value,
            command=" ".join(["python export/ship_judge.py", *sys.argv[1:]]),
        )
    except ConfigError as error:  # bad flags or data
        cli.fail("ship_judge.py", error)
    print(json.dumps({k: record[k] for k in ("name", "validation", "test")}))


if __name__ == "__main__":
    cli.run(main, "ship_judge.py")
