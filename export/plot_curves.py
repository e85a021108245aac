"""Draws the learning curves of shipped models (draw_tf.learning_curves).

    python export/plot_curves.py --names=mnist_attention,cluttered_mnist \
        --output_dir=docs/images

writes <output_dir>/<name>_curve.png for each: the validation curve of
every stage of its training (a warm restart's earlier runs included, on
one epoch axis), each stage's training hours, and the paper's number.
Without --names, every shipped model with a validation curve. Flags only;
the work is in draw_tf.learning_curves.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from draw_tf import (
    cli,  # noqa: E402
    learning_curves,  # noqa: E402
    pretrained,  # noqa: E402
)

_NAMES = flags.DEFINE_list(
    "names",
    [],
    "Shipped models to plot; default: every one with a validation curve.",
)
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", "docs/images", "Directory the PNGs are written to."
)


def main(argv):
    """Writes one PNG per model and prints each path."""
    shipped = pretrained.names()
    names = _NAMES.value or [
        name
        for name in shipped
        if pretrained.record(name).get("validation_curve")
    ]
    for name in names:
        if name not in shipped:
            cli.fail(
                "plot_curves.py",
                f"--names: {name!r} is not a shipped model; expected one "
                f"of {', '.join(shipped)}.",
            )
    if not os.path.isdir(_OUTPUT_DIR.value):
        cli.fail(
            "plot_curves.py",
            f"--output_dir={_OUTPUT_DIR.value} is not a directory.",
        )
    for name in names:
        try:
            picture, _ = learning_curves.plot(pretrained.record(name))
        except ValueError as error:  # a record without a curve
            cli.fail("plot_curves.py", error)
        path = os.path.join(_OUTPUT_DIR.value, f"{name}_curve.png")
        picture.save(path)
        print(path)


if __name__ == "__main__":
    cli.run(main, "plot_curves.py")
