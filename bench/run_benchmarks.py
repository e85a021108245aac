r"""Benchmarks draw_tf on this machine; prints a table and a JSON report.

    python bench/run_benchmarks.py                # paper MNIST config
    python bench/run_benchmarks.py --output=report.json

In one run, on synthetic 28 x 28 images (no data files needed):
  - training throughput (examples/s, median of timed windows after
    warm-up) at each --batch_sizes, with and without attention;
  - analytic training FLOPs per example (bench/flops.py), the achieved
    GFLOP/s, and this machine's dense matmul GFLOP/s (2048^3, and at the
    encoder LSTM's shape), with the ratios;
  - time from process start to the first completed training step of
    train.py, and that run's peak resident memory;
  - input pipeline throughput alone;
  - generation through an exported SavedModel run as TF Serving runs it:
    p50/p99 latency at batch 1, images/s at batch 64;
  - optionally (--profile_steps) op time by type of a training step;
  - optionally (--sections=...,backends) Keras' fit() training step
    (bench/keras_throughput.py) under TensorFlow and under JAX, each in a
    process of its own, alternated with draw_tf's tf.distribute step over
    --backend_rounds, and their ratios to it;
  - optionally (--peer_draw, --peer_python) the PyTorch peer
    (kamenbliznashki/generative_models draw.py, run by
    shared/bench/peer_throughput.py in a venv with torch) side by side
    with draw_tf's compiled training step, alternated over --peer_rounds,
    and the ratio of the medians.
The JSON goes to stdout (and --output); the table to stderr. The device
(CPU model, GPUs) is in the report's "device" section.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags, logging  # noqa: E402

import draw_tf  # noqa: E402, F401  (first: TensorFlow imported quietly)
from bench import op_profile  # noqa: E402
from bench import report as report_lib  # noqa: E402
from draw_tf import cli  # noqa: E402

REPOSITORY_PARENT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
SECTIONS = (
    "matmul",
    "training",
    "first_step",
    "input_pipeline",
    "generation",
)

_BATCH_SIZES = flags.DEFINE_list(
    "batch_sizes",
    ["100", "400"],
    "Training batch sizes; the first is the one the targets use.",
)
_VARIANTS = flags.DEFINE_list(
    "variants",
    ["compiled"],
    "Training variants to time: compiled (the tf.while_loop under XLA, "
    "train.py's default), loop (the while loop op by op), reference (the "
    "cell called T times from Python, op by op: the plain formulation; "
    "also times its generation).",
)
# Not run unless named: needs JAX, and times three training steps.
OPTIONAL_SECTIONS = ("backends",)
_SECTIONS = flags.DEFINE_list(
    "sections",
    list(SECTIONS),
    f"What to measure, of {', '.join(SECTIONS + OPTIONAL_SECTIONS)} "
    "(backends: draw_tf's tf.distribute step beside Keras' fit() step on "
    "TensorFlow and on JAX, alternated; not in the default).",
)
_NUM_STEPS = flags.DEFINE_integer("num_steps", 64, "T.", lower_bound=1)
_UNITS = flags.DEFINE_integer(
    "units", 256, "Encoder and decoder LSTM units.", lower_bound=1
)
_LATENT_SIZE = flags.DEFINE_integer("latent_size", 100, "|z|.", lower_bound=1)
_IMAGE_SIZE = flags.DEFINE_integer(
    "image_size", 28, "Side of the square synthetic images.", lower_bound=5
)
_WINDOWS = flags.DEFINE_integer(
    "windows", 5, "Timed training windows.", lower_bound=1
)
_STEPS_PER_WINDOW = flags.DEFINE_integer(
    "steps_per_window", 5, "Training steps per window.", lower_bound=1
)
_FIRST_STEP_TRAIN_STEPS = flags.DEFINE_integer(
    "first_step_train_steps",
    10,
    "Steps of the train.py run timed to its first step.",
    lower_bound=1,
)
_PIPELINE_BATCHES = flags.DEFINE_integer(
    "pipeline_batches", 50, "Input pipeline batches timed.", lower_bound=1
)
_GENERATION_REQUESTS = flags.DEFINE_integer(
    "generation_requests", 200, "Timed batch-1 requests.", lower_bound=1
)
_GENERATION_BATCH = flags.DEFINE_integer(
    "generation_batch", 64, "Batch of the generation throughput test.", 1
)
_GENERATION_BATCH_REQUESTS = flags.DEFINE_integer(
    "generation_batch_requests", 20, "Timed requests at that batch.", 1
)
_PROFILE_STEPS = flags.DEFINE_integer(
    "profile_steps",
    0,
    "If > 0, profile that many training steps of each variant (first "
    "batch size, with attention) and report op time by type.",
    lower_bound=0,
)
_OUTPUT = flags.DEFINE_string("output", "", "Also write the JSON here.")
_PEER_DRAW = flags.DEFINE_string(
    "peer_draw",
    "",
    "The PyTorch peer's draw.py (kamenbliznashki/generative_models): times "
    "it side by side with draw_tf, alternated, and reports the ratio.",
)
_PEER_PYTHON = flags.DEFINE_string(
    "peer_python", "", "A Python with torch==2.13.0 (a separate venv)."
)
_PEER_SCRIPT = flags.DEFINE_string(
    "peer_script",
    os.path.join(REPOSITORY_PARENT, "shared", "bench", "peer_throughput.py"),
    "The peer's timing script (shared/bench/peer_throughput.py).",
)
_PEER_ROUNDS = flags.DEFINE_integer(
    "peer_rounds", 3, "Alternated rounds of draw_tf and the peer; 1..100."
)
_BACKEND_ROUNDS = flags.DEFINE_integer(
    "backend_rounds",
    2,
    "With --sections=...,backends: alternated rounds of draw_tf's "
    "tf.distribute step and Keras' fit() step on TensorFlow and JAX; "
    "1..100.",
)


def main(argv):
    """Runs the sections and prints the report."""
    logging.set_verbosity(logging.WARNING)  # the export's INFO lines
    try:
        output_error = cli.output_path_error("output", _OUTPUT.value)
        if output_error:
            raise ValueError(output_error)
        if _PROFILE_STEPS.value:
            # XLA's own kernels in the profile of the compiled variant.
            op_profile.enable_xla_tracing()
        options = report_lib.Options(
            batch_sizes=_integers("batch_sizes", _BATCH_SIZES.value),
            variants=list(_VARIANTS.value),
            sections=list(_SECTIONS.value),
            num_steps=_NUM_STEPS.value,
            units=_UNITS.value,
            latent_size=_LATENT_SIZE.value,
            image_size=_IMAGE_SIZE.value,
            windows=_WINDOWS.value,
            steps_per_window=_STEPS_PER_WINDOW.value,
            first_step_train_steps=_FIRST_STEP_TRAIN_STEPS.value,
            pipeline_batches=_PIPELINE_BATCHES.value,
            generation_requests=_GENERATION_REQUESTS.value,
            generation_batch=_GENERATION_BATCH.value,
            generation_batch_requests=_GENERATION_BATCH_REQUESTS.value,
            profile_steps=_PROFILE_STEPS.value,
            peer_draw=_PEER_DRAW.value,
            peer_python=_PEER_PYTHON.value,
            peer_script=_PEER_SCRIPT.value,
            peer_rounds=_PEER_ROUNDS.value,
            backend_rounds=_BACKEND_ROUNDS.value,
        ).validate(SECTIONS + OPTIONAL_SECTIONS)
        peer_flags = (_PEER_PYTHON, _PEER_SCRIPT, _PEER_ROUNDS)
        if not _PEER_DRAW.value and any(flag.present for flag in peer_flags):
            raise ValueError(
                "--peer_python, --peer_script and --peer_rounds need "
                "--peer_draw (the PyTorch peer's draw.py)."
            )
    except ValueError as error:
        print(f"run_benchmarks.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    report = report_lib.run(options)
    print(report_lib.table(report), file=sys.stderr)
    cli.print_json(report, _OUTPUT.value)


def _integers(name: str, values: list[str]) -> list[int]:
    """A list flag's values as ints; ValueError naming the flag."""
    try:
        return [int(value) for value in values]
    except ValueError:
        raise ValueError(
            f"--{name} must be a comma-separated list of integers; got "
            f"{','.join(values)!r}."
        ) from None


if __name__ == "__main__":
    cli.run(main, "run_benchmarks.py")
