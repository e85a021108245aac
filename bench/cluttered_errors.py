r"""Where a cluttered-MNIST classifier's test errors come from.

    python bench/cluttered_errors.py --pretrained=cluttered_mnist \
        --data_dir=../shared/data/mnist
    python bench/cluttered_errors.py --workdir=runs/cluttered_mnist

Rebuilds the test composites that training evaluates (100 x 100, one digit
over clutter), with each digit's position from the generator, runs the
classifier (a shipped one, or a training workdir's best checkpoint) and
prints a JSON report (bench/cluttered_errors_lib.py): the error rate split
into the digit not found (the last read window's centre more than
--found_radius pixels from the digit's centre) and the digit misread where
it was found, the windows' distance to the digit at every glimpse, the last
windows' stride and filter width, the error by the digit's distance from
the border, and the commonest confusions.
"""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from bench import cluttered_errors_lib  # noqa: E402
from draw_tf import (  # noqa: E402
    cli,
    composite_mnist,
    data,
    loading,
    machine,
    pretrained,
)
from draw_tf import config as config_lib  # noqa: E402
from export import ship_pretrained_lib  # noqa: E402

_PROGRAM = "cluttered_errors.py"
_PRETRAINED = flags.DEFINE_string(
    "pretrained", "", "A shipped classifier, e.g. cluttered_mnist."
)
_WORKDIR = flags.DEFINE_string(
    "workdir",
    "",
    "Or a --task=classify training workdir (its best checkpoint).",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST idx files (default: where train.py finds them)."
)
_MAX_EXAMPLES = flags.DEFINE_integer(
    "max_examples",
    0,
    "The first this many test images; 0 for all.",
    lower_bound=0,
)
_FOUND_RADIUS = flags.DEFINE_float(
    "found_radius",
    10.0,
    "Pixels from the digit's centre within which the last window finds it.",
    lower_bound=0.0,
)
_OUTPUT = flags.DEFINE_string("output", "", "Also write the JSON here.")

# The index of the test split in the composite generator's seed
# [config.seed, index] (draw_tf.data.load_splits); checked below.
_TEST_SEED_INDEX = 2


def _config(scratch: str) -> config_lib.TrainConfig:
    """The classifier's TrainConfig, for evaluation."""
    if bool(_PRETRAINED.value) == bool(_WORKDIR.value):
        raise config_lib.ConfigError(
            "Give one of --pretrained=NAME (a shipped classifier) or "
            "--workdir=DIR (a training workdir)."
        )
    overrides = {"mode": "evaluate", "max_eval_examples": 0}
    if _DATA_DIR.value:
        overrides["data_dir"] = _DATA_DIR.value
    if _PRETRAINED.value:
        config = pretrained.train_config(
            _PRETRAINED.value,
            workdir=scratch,
            pretrained=_PRETRAINED.value,
            **overrides,
        )
        what = f"--pretrained={_PRETRAINED.value}"
    else:
        config = ship_pretrained_lib.read_workdir_config(
            _WORKDIR.value, **overrides
        )
        what = f"--workdir={_WORKDIR.value}"
    if config.task != "classify" or config.dataset != "cluttered_mnist":
        raise config_lib.ConfigError(
            f"{what} is a {config.task} model of {config.dataset}; expected "
            "a classifier of cluttered_mnist."
        )
    return config


def _test_digits(config: config_lib.TrainConfig):
    """The MNIST test digits [n, 28, 28] and labels [n] behind the split."""
    directory = config.data_dir or data.find_local_mnist()
    digits = data.read_idx(
        data.find_idx_file(directory, "t10k-images-idx3-ubyte")
    )
    labels = data.read_idx(
        data.find_idx_file(directory, "t10k-labels-idx1-ubyte"),
        expected_magic=2049,
    )
    return digits.reshape(-1, 28, 28), labels


def report(max_examples: int, found_radius: float) -> dict:
    """Loads the model and the data, runs it, returns the analysis."""
    with tempfile.TemporaryDirectory() as scratch:
        config = _config(scratch)
        splits = data.load_splits(config)
        if _PRETRAINED.value:
            model = loading.load_shipped(
                config, splits.image_shape, _PRETRAINED.value
            ).model
            source = f"pretrained:{_PRETRAINED.value}"
        else:
            loaded = loading.load_workdir(
                config, splits.image_shape, _WORKDIR.value
            )
            model, source = loaded.model, loaded.path
    digits, labels = _test_digits(config)
    images, composite_labels, info = composite_mnist.cluttered_mnist(
        digits, labels, len(digits), seed=[config.seed, _TEST_SEED_INDEX]
    )
    if not (
        np.array_equal(images, splits.test)
        and np.array_equal(composite_labels, splits.test_labels)
    ):
        raise data.DataError(
            "The test composites rebuilt with their positions differ from "
            "those draw_tf.data evaluates on (has its seeding changed?)."
        )
    count = min(max_examples, len(images)) if max_examples else len(images)
    logits, windows = [], []
    for start in range(0, count, config.eval_batch_size):
        stop = min(start + config.eval_batch_size, count)
        outputs = model(images[start:stop].astype(np.float32) / 255.0)
        logits.append(np.asarray(outputs["logits"]))
        windows.append(np.asarray(outputs["read_windows"]))
    results = cluttered_errors_lib.analyze(
        np.concatenate(logits),
        np.concatenate(windows),
        composite_labels[:count],
        info["positions"][:count],
        image_size=images.shape[1],
        found_radius=found_radius,
    )
    return {"model": source, "device": machine.cpu_description(), **results}


def main(argv):
    """Prints the JSON report."""
    del argv
    try:
        output_error = cli.output_path_error("output", _OUTPUT.value)
        if output_error:
            raise config_lib.ConfigError(output_error)
        results = report(_MAX_EXAMPLES.value, _FOUND_RADIUS.value)
    except (config_lib.ConfigError, pretrained.UnknownModelError) as error:
        cli.fail(_PROGRAM, error)
    cli.print_json(results, _OUTPUT.value)


if __name__ == "__main__":
    cli.run(main, _PROGRAM)
