r"""draw_tf's training step in two checkouts, interleaved window by window.

    python bench/compare_checkouts.py --before=/path/to/old/checkout
    python bench/compare_checkouts.py --before=OLD --after=NEW --no_attention
    python bench/compare_checkouts.py --before=. \
        --after_config='{"precision": "bf16"}'
    python bench/compare_checkouts.py --before=. \
        --after_env=XLA_FLAGS=--xla_cpu_use_onednn=true

Is a change faster or slower? On a shared CPU the speed drifts by 10-20%
within minutes, so timing one checkout and then the other measures the
drift. This starts one worker process per checkout (each imports its own
draw_tf and builds its tf.distribute training step at the paper's MNIST
config on synthetic images: `DistributedEngine`, or
`training.Experiment` in a checkout from before the run loop was
shared), warms both up, then alternates them window by window (before,
after, after, before, ...): only one runs at a time, on all the cores.
It prints one JSON line: each side's examples/s per window and median,
the ratio of the medians (after / before) and the median of the
per-window ratios, and the CPU kind. `--before_config` /
`--after_config` (TrainConfig fields as JSON) and `--before_env` /
`--after_env` (NAME=VALUE, repeatable) set one side apart, so that one
checkout can be compared with itself under other settings.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

PROGRAM = "compare_checkouts.py"
HERE = os.path.dirname(os.path.abspath(__file__))


class _OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage dump)."""

    def error(self, message):
        print(f"{PROGRAM}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError(
            f"expected an integer in [1, 10000]; got {text!r}"
        )
    return value


def _checkout(text: str) -> str:
    path = os.path.abspath(text)
    if not any(
        os.path.isfile(os.path.join(path, "draw_tf", *name))
        for name in (
            ("tensorflow", "distributed_engine.py"),
            ("training.py",),  # before the run loop was shared
        )
    ):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a draw_tf checkout (no "
            "draw_tf/tensorflow/distributed_engine.py)"
        )
    return path


def _config(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object of TrainConfig fields; got {text!r}"
        )
    return value


def _environment(text: str) -> tuple:
    name, equals, value = text.partition("=")
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE; got {text!r}")
    return name, value


def parse_args(argv):
    """The command line; a bad value exits 2 with one line."""
    parser = _OneLineParser(
        prog=PROGRAM,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--before", type=_checkout, required=True)
    parser.add_argument(
        "--after", type=_checkout, default=os.path.dirname(HERE)
    )
    parser.add_argument("--batch_size", type=_count, default=100)
    parser.add_argument("--windows", type=_count, default=16)
    parser.add_argument("--steps_per_window", type=_count, default=6)
    parser.add_argument("--num_steps", type=_count, default=64, help="T")
    parser.add_argument("--units", type=_count, default=256)
    parser.add_argument("--no_attention", action="store_true")
    for side in ("before", "after"):
        parser.add_argument(
            f"--{side}_config",
            type=_config,
            default={},
            help=f"TrainConfig fields of the {side} side, as JSON",
        )
        parser.add_argument(
            f"--{side}_env",
            type=_environment,
            action="append",
            default=[],
            help=f"NAME=VALUE in the {side} worker's environment",
        )
    return parser.parse_args(argv)


def worker(checkout: str, settings: dict) -> None:
    """Builds the checkout's training step; times windows on request.

    Reads a step count per line from stdin, answers the seconds it took.
    """
    sys.path.insert(0, checkout)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tempfile

    import tensorflow as tf

    from draw_tf import config as config_lib
    from draw_tf import data

    try:
        config = config_lib.TrainConfig(
            **{
                **dict(
                    dataset="synthetic",
                    synthetic_image_size=28,
                    num_pictures=0,
                    train_steps=1000,
                ),
                **settings,
                "workdir": tempfile.mkdtemp(prefix="compare_checkouts_"),
            }
        ).validate()
    except (TypeError, config_lib.ConfigError) as error:
        print(f"{PROGRAM}: error: {error}", file=sys.stderr, flush=True)
        sys.exit(2)
    splits = data.load_splits(config)
    try:
        from draw_tf.tensorflow import distributed_engine
    except ImportError:  # a checkout from before the shared run loop
        from draw_tf import training

        experiment = training.Experiment(
            config, tf.distribute.get_strategy(), splits
        )
    else:
        experiment = distributed_engine.make_trainer(
            config, tf.distribute.get_strategy(), splits
        ).engine
    batches = list(
        data.train_dataset(
            splits.train,
            config.batch_size,
            (config.num_steps, config.latent_size),
            config.seed,
            0,
            4,
            splits.dynamic_binarization,
            # Only where set: a checkout from before the option has none.
            **(
                {"composite": splits.composite}
                if getattr(splits, "composite", "")
                else {}
            ),
        )
    )
    import time

    for step in range(3):
        float(experiment.train_step(batches[step % 4])["negative_elbo"])
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        for step in range(int(line)):
            metrics = experiment.train_step(batches[step % 4])
        float(metrics["negative_elbo"])
        print(time.perf_counter() - start, flush=True)


def main(argv=None):
    """Prints the JSON comparison."""
    args = parse_args(argv)
    settings = dict(
        batch_size=args.batch_size,
        num_steps=args.num_steps,
        encoder_units=args.units,
        decoder_units=args.units,
        attention=not args.no_attention,
    )
    sides = {"before": args.before, "after": args.after}
    side_settings = {
        "before": {**settings, **args.before_config},
        "after": {**settings, **args.after_config},
    }
    side_environments = {
        "before": dict(args.before_env),
        "after": dict(args.after_env),
    }
    sys.path.insert(0, os.path.dirname(HERE))
    from draw_tf import config as config_lib

    for name, values in side_settings.items():  # before any worker starts
        try:
            config_lib.TrainConfig(
                **{**values, "workdir": "unused", "dataset": "synthetic"}
            ).validate()
        except (TypeError, config_lib.ConfigError) as error:
            print(
                f"{PROGRAM}: error: --{name}_config: {error}", file=sys.stderr
            )
            sys.exit(2)
    workers = {}
    for name, checkout in sides.items():
        workers[name] = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                checkout,
                json.dumps(side_settings[name]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=checkout,
            env={**os.environ, **side_environments[name]},
        )
        # One at a time: the second builds after the first is ready.
        ready = workers[name].stdout.readline().strip()
        if ready != "ready":
            code = workers[name].wait()
            print(
                f"{PROGRAM}: error: the {name} worker failed (exit {code}; "
                "its error is above)",
                file=sys.stderr,
            )
            sys.exit(2 if code == 2 else 1)
    rates = {name: [] for name in sides}
    for window in range(args.windows):
        order = ["before", "after"] if window % 2 == 0 else ["after", "before"]
        for name in order:
            workers[name].stdin.write(f"{args.steps_per_window}\n")
            workers[name].stdin.flush()
            seconds = float(workers[name].stdout.readline())
            rates[name].append(
                args.batch_size * args.steps_per_window / seconds
            )
    for process in workers.values():
        process.stdin.close()
        process.wait()
    from draw_tf import machine

    medians = {
        name: statistics.median(values) for name, values in rates.items()
    }
    print(
        json.dumps(
            {
                "settings": side_settings,
                "environments": side_environments,
                "checkouts": sides,
                "examples_per_second": rates,
                "medians": medians,
                "ratio_of_medians": medians["after"] / medians["before"],
                "median_of_window_ratios": statistics.median(
                    after / before
                    for after, before in zip(
                        rates["after"], rates["before"], strict=True
                    )
                ),
                "cpu": machine.cpu_description(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], json.loads(sys.argv[3]))
    else:
        main()
