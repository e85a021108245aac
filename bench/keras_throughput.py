r"""Training throughput of DrawModel's Keras training step, on any backend.

    KERAS_BACKEND=jax python bench/keras_throughput.py --batch_size=100
    KERAS_BACKEND=tensorflow python bench/keras_throughput.py

Times `model.train_on_batch` (the step `fit()` runs: the model, the
negative ELBO, Adam with gradient clipping, compiled by the backend: XLA
through `jax.jit`, or `tf.function(jit_compile=True)`) on synthetic
binary 28 x 28 images (--image_size) at the paper's MNIST config, and
prints one JSON line: examples/s (the median of --windows timed windows
of --steps_per_window steps, after --warmup_steps), the time of the
first step (tracing and compiling), the backend and its devices. Needs
neither TensorFlow (on JAX) nor data files, so it also runs on a GPU
machine that has only JAX; `bench/run_benchmarks.py --sections=backends`
runs it on each backend beside draw_tf's tf.distribute training step,
alternated.
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PROGRAM = "keras_throughput.py"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(
            f"expected an integer in [1, 100000]; got {text!r}"
        )
    return value


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage dump)."""

    def error(self, message):
        print(
            f"{PROGRAM}: error: {message} (see --help)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)


def parse_args(argv):
    """The command line; a bad value exits 2 with one line."""
    parser = _OneLineParser(
        prog=PROGRAM,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch_size", type=_positive, default=100)
    parser.add_argument("--num_steps", type=_positive, default=64, help="T")
    parser.add_argument("--units", type=_positive, default=256)
    parser.add_argument("--latent_size", type=_positive, default=100)
    parser.add_argument(
        "--image_size", type=_positive, default=28, help="square images"
    )
    parser.add_argument("--warmup_steps", type=_positive, default=3)
    parser.add_argument("--steps_per_window", type=_positive, default=5)
    parser.add_argument("--windows", type=_positive, default=5)
    parser.add_argument(
        "--no_attention",
        action="store_true",
        help="the model without attention (default: 2 x 2 read, 5 x 5 write)",
    )
    return parser.parse_args(argv)


def measure(args) -> dict:
    """Builds the model and times its training step; returns the report."""
    import keras
    import numpy as np

    import draw_tf

    attention = not args.no_attention
    draw_tf.backend.set_random_seed(0)
    model = draw_tf.DrawModel(
        (args.image_size, args.image_size, 1),
        num_steps=args.num_steps,
        encoder_units=args.units,
        decoder_units=args.units,
        latent_size=args.latent_size,
        read_glimpse_size=2 if attention else None,
        write_patch_size=5 if attention else None,
        seed=0,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=10.0),
        jit_compile=True,
    )
    rng = np.random.default_rng(0)
    batches = [
        (
            rng.uniform(
                size=(args.batch_size, args.image_size, args.image_size, 1)
            )
            < 0.13
        ).astype(np.float32)
        for _ in range(4)
    ]
    start = time.perf_counter()
    loss = model.train_on_batch(batches[0], return_dict=True)["loss"]
    first_step = time.perf_counter() - start
    for step in range(1, args.warmup_steps):
        loss = model.train_on_batch(batches[step % 4], return_dict=True)["loss"]
    rates = []
    for _ in range(args.windows):
        start = time.perf_counter()
        for step in range(args.steps_per_window):
            loss = model.train_on_batch(batches[step % 4], return_dict=True)[
                "loss"
            ]
        float(np.asarray(loss))  # wait for the last step
        elapsed = time.perf_counter() - start
        rates.append(args.batch_size * args.steps_per_window / elapsed)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = [str(device) for device in jax.devices()]
    else:
        devices = ["tensorflow default devices"]
    return {
        "backend": backend,
        "devices": devices,
        "batch_size": args.batch_size,
        "attention": attention,
        "num_steps": args.num_steps,
        "units": args.units,
        "latent_size": args.latent_size,
        "image_size": args.image_size,
        "examples_per_second": statistics.median(rates),
        "window_examples_per_second": rates,
        "first_step_seconds": first_step,
        "final_loss": float(np.asarray(loss)),
    }


def main(argv=None):
    """Prints the JSON report on one line."""
    print(json.dumps(measure(parse_args(argv))), flush=True)


if __name__ == "__main__":
    main()
