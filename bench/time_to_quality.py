r"""Minutes of training to a validation -ELBO, draw_tf beside the PyTorch peer.

    python bench/time_to_quality.py --workdir=$HOME/runs/ttq \
        --peer_draw=PATH/generative_models/draw.py \
        --peer_python=peer_venv/bin/python --output=ttq.json

Runs the main command (`python train.py
--flagfile=configs/mnist_attention.flags --importance_samples=0`, in
WORKDIR/draw_tf) and, with the peer's paths,
the peer (kamenbliznashki/generative_models' draw.py, trained by
bench/peer_training.py on the same training and validation images, in
WORKDIR/peer), taking turns on this machine (bench/time_to_quality_lib.py):
each one's clock counts its own turns only, so the minutes compare as if
each had had the machine alone. Prints, for each of --thresholds (nats of
validation -ELBO), the minutes and step (the peer's epoch too) at which
each first got there, the ratio of the minutes, and the CPU's kind.
Without --peer_draw, draw_tf runs alone. Hours long on CPU: 100 nats needs
about 5,500 steps of the paper config.

The race's clock is written down as it goes (WORKDIR/race_clock.jsonl):
draw_tf alone, stopped by anything, resumes with the same command, from its
last checkpoint and the minutes at which that checkpoint was written (the
steps after it are lost and not counted, the restart is). A race beside
the peer cannot resume (the peer's trainer keeps no checkpoints).
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from bench import time_to_quality_lib  # noqa: E402
from draw_tf import cli, machine  # noqa: E402
from draw_tf import config as config_lib  # noqa: E402
from draw_tf import data as data_lib  # noqa: E402
from draw_tf import workdir as workdir_layout  # noqa: E402

_WORKDIR = flags.DEFINE_string(
    "workdir",
    None,
    "A new or empty directory for both runs, or a race's to resume it.",
    required=True,
)
CLOCK_LOG = "race_clock.jsonl"
_FLAGFILE = flags.DEFINE_string(
    "train_flagfile",
    os.path.join(REPOSITORY, "configs", "mnist_attention.flags"),
    "draw_tf's config (train.py --flagfile).",
)
_TRAIN_FLAGS = flags.DEFINE_list(
    "train_flags",
    [],
    "More train.py flags, e.g. --eval_every_steps=250 (comma-separated).",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "MNIST idx files (default: where train.py finds them)."
)
_THRESHOLDS = flags.DEFINE_list(
    "thresholds", ["100", "90"], "Validation -ELBO values to time, in nats."
)
_WINDOW_SECONDS = flags.DEFINE_float(
    "window_seconds", 120.0, "Length of a turn.", lower_bound=1.0
)
_MAX_MINUTES = flags.DEFINE_float(
    "max_minutes",
    600.0,
    "Each trainer's budget of its own minutes.",
    lower_bound=0.01,
)
_EVAL_EVERY_STEPS = flags.DEFINE_integer(
    "eval_every_steps",
    500,
    "Validation interval of both trainers, in steps.",
    lower_bound=1,
)
_PEER_DRAW = flags.DEFINE_string(
    "peer_draw",
    "",
    "The PyTorch peer's draw.py (kamenbliznashki/generative_models).",
)
_PEER_PYTHON = flags.DEFINE_string(
    "peer_python", "", "A Python with torch==2.13.0 (a separate venv)."
)
_PEER_FLAGS = flags.DEFINE_list(
    "peer_flags",
    [],
    "More bench/peer_training.py flags, e.g. --time_steps=8 (comma-separated).",
)
_OUTPUT = flags.DEFINE_string("output", "", "Also write the JSON report here.")


def _thresholds() -> list[float]:
    try:
        values = [float(value) for value in _THRESHOLDS.value]
    except ValueError:
        raise config_lib.ConfigError(
            f"--thresholds must be comma-separated numbers (nats); got "
            f"{','.join(_THRESHOLDS.value)!r}."
        ) from None
    if not values:
        raise config_lib.ConfigError("--thresholds needs at least one value.")
    return values


def _validation_size() -> str:
    """draw_tf's --validation_size as given (the last one wins), or ''."""
    given = flags.FLAGS.read_flags_from_files(  # absl's flagfile expansion
        [f"--flagfile={_FLAGFILE.value}", *_TRAIN_FLAGS.value], force_gnu=False
    )
    values = [
        flag.split("=", 1)[1]
        for flag in given
        if flag.startswith("--validation_size=")
    ]
    return values[-1].strip() if values else ""


def _check_paths():
    output_error = cli.output_path_error("output", _OUTPUT.value)
    if output_error:  # found now, not after hours of racing
        raise config_lib.ConfigError(output_error)
    workdir = _WORKDIR.value
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise config_lib.ConfigError(
            f"--workdir={workdir} is a file; expected a new or empty directory."
        )
    resuming = os.path.isfile(os.path.join(workdir, CLOCK_LOG))
    if resuming and _PEER_DRAW.value:
        raise config_lib.ConfigError(
            f"--workdir={workdir} holds a race, and a race beside the peer "
            "cannot resume (the peer keeps no checkpoints); expected a new "
            "or empty directory."
        )
    if os.path.isdir(workdir) and os.listdir(workdir) and not resuming:
        raise config_lib.ConfigError(
            f"--workdir={workdir} is not empty and holds no race to resume "
            f"({CLOCK_LOG}); expected a new or empty directory."
        )
    if not os.path.isfile(_FLAGFILE.value):
        raise config_lib.ConfigError(
            f"--train_flagfile={_FLAGFILE.value}: no such file."
        )
    if _validation_size() == "0":  # the race reads validation records
        raise config_lib.ConfigError(
            "--validation_size=0 (in --train_flags or --train_flagfile): the "
            "race times the validation -ELBO; expected a run with validation."
        )
    if (_PEER_PYTHON.value or _PEER_FLAGS.value) and not _PEER_DRAW.value:
        raise config_lib.ConfigError(
            "--peer_python and --peer_flags need --peer_draw (the PyTorch "
            "peer's draw.py)."
        )
    if _PEER_DRAW.value:
        if not os.path.isfile(_PEER_DRAW.value):
            raise config_lib.ConfigError(
                f"--peer_draw={_PEER_DRAW.value}: no such file (the peer's "
                "draw.py from kamenbliznashki/generative_models)."
            )
        if not _PEER_PYTHON.value or not os.access(_PEER_PYTHON.value, os.X_OK):
            raise config_lib.ConfigError(
                f"--peer_python={_PEER_PYTHON.value!r}: not an executable; "
                "expected the Python of a venv with torch==2.13.0."
            )


def write_peer_data(path: str, data_dir: str):
    """The images draw_tf's mnist_attention config trains and validates on.

    train: the training file less its last 10,000 images, grey levels;
    validation: those 10,000, binarized once (draw_tf's static
    binarization). Both [count, 784] uint8.
    """
    config = config_lib.TrainConfig(
        workdir="", dataset="mnist", data_dir=data_dir, binarization="dynamic"
    )
    splits = data_lib.load_splits(config)
    if splits.train.shape[1:] != (28, 28, 1):
        raise config_lib.ConfigError(
            f"the peer trains on 28 x 28 MNIST; got images of shape "
            f"{list(splits.train.shape[1:])}."
        )
    with open(path, "wb") as file:
        np.savez(
            file,
            train=splits.train.reshape(len(splits.train), -1),
            validation=splits.validation.reshape(len(splits.validation), -1),
        )


def checkpoint_step(directory: str) -> int:
    """The step of train.py's latest checkpoint in `directory` (0: none)."""
    path = tf.train.latest_checkpoint(directory)  # ".../ckpt-STEP"
    return int(path.rsplit("-", 1)[1]) if path else 0


def contenders(workdir: str) -> list:
    """draw_tf's main command and, with --peer_draw, the peer's trainer."""
    draw_workdir = os.path.join(workdir, "draw_tf")
    command = [
        sys.executable,
        os.path.join(REPOSITORY, "train.py"),
        f"--flagfile={_FLAGFILE.value}",
        f"--workdir={draw_workdir}",
        "--importance_samples=0",
        f"--eval_every_steps={_EVAL_EVERY_STEPS.value}",
        *([f"--data_dir={_DATA_DIR.value}"] if _DATA_DIR.value else []),
        *_TRAIN_FLAGS.value,
    ]
    validation = workdir_layout.path(draw_workdir, workdir_layout.VALIDATION)
    racing = [
        time_to_quality_lib.Contender(
            name="draw_tf",
            command=command,
            read_records=lambda: time_to_quality_lib.json_lines(
                validation, split="validation"
            ),
            output_path=os.path.join(workdir, "draw_tf.log"),
            checkpoint_step=lambda: checkpoint_step(
                workdir_layout.path(draw_workdir, workdir_layout.CHECKPOINTS)
            ),
        )
    ]
    if _PEER_DRAW.value:
        peer_directory = os.path.join(workdir, "peer")
        os.makedirs(peer_directory)
        data_path = os.path.join(peer_directory, "mnist.npz")
        write_peer_data(data_path, _DATA_DIR.value)
        peer_log = os.path.join(peer_directory, "validation.jsonl")
        racing.append(
            time_to_quality_lib.Contender(
                name="peer",
                command=[
                    _PEER_PYTHON.value,
                    os.path.join(REPOSITORY, "bench", "peer_training.py"),
                    _PEER_DRAW.value,
                    f"--data={data_path}",
                    f"--log={peer_log}",
                    f"--eval_every_steps={_EVAL_EVERY_STEPS.value}",
                    f"--threads={machine.cpu_description()['usable_cpus']}",
                    *_PEER_FLAGS.value,
                ],
                read_records=lambda: time_to_quality_lib.json_lines(peer_log),
                output_path=os.path.join(workdir, "peer.log"),
            )
        )
    return racing


def main(argv):
    """Races the trainers and prints the JSON report."""
    del argv
    # Stopped by SIGTERM (a session's end, `kill`), the race ends its
    # trainers, as on Ctrl-C, and can then resume.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(143))
    try:
        thresholds = _thresholds()
        _check_paths()
        os.makedirs(_WORKDIR.value, exist_ok=True)
        racing = contenders(_WORKDIR.value)
        results = time_to_quality_lib.race(
            racing,
            thresholds,
            window_seconds=_WINDOW_SECONDS.value,
            max_minutes=_MAX_MINUTES.value,
            clock_log=os.path.join(_WORKDIR.value, CLOCK_LOG),
        )
    except (
        config_lib.ConfigError,
        data_lib.DataError,
        time_to_quality_lib.ResumeError,
    ) as error:
        cli.fail("time_to_quality.py", error)
    report = {
        "device": machine.cpu_description(),
        "thresholds_nats": thresholds,
        "window_seconds": _WINDOW_SECONDS.value,
        "results": results,
    }
    if "peer" in results:
        report["peer_minutes_over_draw_tf"] = time_to_quality_lib.ratios(
            results, "draw_tf", "peer"
        )
    else:
        report["peer"] = "not run: --peer_draw not given"
    cli.print_json(report, _OUTPUT.value)


if __name__ == "__main__":
    cli.run(main, "time_to_quality.py")
