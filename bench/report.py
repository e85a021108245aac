"""The benchmark report: which measurements to run, targets, the table.

`run(options)` returns a JSON-ready dict; `table(report)` renders it for
people. The targets (issue 5) are checked only for the paper's MNIST
config (T = 64, 256 units, |z| = 100, 28 x 28) and reported, not asserted.
"""

import dataclasses
import os
import tempfile
import time

import numpy as np

from bench import flops as flops_lib
from bench import measurements
from draw_tf import config as config_lib

# Targets of the paper config on the benchmark machine (issue 5), the
# fraction of dense and the ratio to the PyTorch peer as issue 13 raised
# them (ratios measured in the same run, so they hold on any CPU).
TRAINING_TARGET_EXAMPLES_PER_SECOND = 200.0
TRAINING_TARGET_MATMUL_FRACTION = 0.6
PEER_TARGET_RATIO = 2.0
FIRST_STEP_TARGET_SECONDS = 10.0
GENERATION_TARGET_P50_MS = 5.0
GENERATION_TARGET_IMAGES_PER_SECOND = 1000.0
# "Far above" the training rate.
PIPELINE_TARGET_MULTIPLE = 10.0


# Repetition counts past which a value is a mistake (hours of measuring).
_COUNT_LIMITS = {
    "num_steps": 1024,
    "image_size": 1024,
    "windows": 1000,
    "steps_per_window": 10_000,
    "first_step_train_steps": 10_000,
    "pipeline_batches": 100_000,
    "generation_requests": 100_000,
    "generation_batch": 65_536,
    "generation_batch_requests": 100_000,
    "profile_steps": 1000,
    "backend_rounds": 100,
}


@dataclasses.dataclass
class Options:
    """What to measure; the flags of run_benchmarks.py."""

    batch_sizes: list[int]
    variants: list[str]
    sections: list[str]
    num_steps: int = 64
    units: int = 256
    latent_size: int = 100
    image_size: int = 28
    windows: int = 5
    steps_per_window: int = 5
    first_step_train_steps: int = 10
    pipeline_batches: int = 50
    generation_requests: int = 200
    generation_batch: int = 64
    generation_batch_requests: int = 20
    profile_steps: int = 0
    # The PyTorch peer, side by side (all three paths, or none).
    peer_draw: str = ""
    peer_python: str = ""
    peer_script: str = ""
    peer_rounds: int = 3
    # The "backends" section: rounds of the Keras fit() step on each backend.
    backend_rounds: int = 2

    def validate(self, known_sections) -> "Options":
        """Raises ValueError naming the bad option."""
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(
                f"--batch_sizes must be positive integers; got "
                f"{self.batch_sizes}."
            )
        for variant in self.variants:
            if variant not in measurements.VARIANTS:
                raise ValueError(
                    "--variants must be among "
                    f"{', '.join(measurements.VARIANTS)}; got {variant!r}."
                )
        if not self.sections:
            raise ValueError(
                f"--sections must name at least one of "
                f"{', '.join(known_sections)}."
            )
        for section in self.sections:
            if section not in known_sections:
                raise ValueError(
                    f"--sections must be among {', '.join(known_sections)}; "
                    f"got {section!r}."
                )
        # synthetic images hold 512 training examples
        if max(self.batch_sizes) > 512:
            raise ValueError(
                "--batch_sizes must be <= 512 (the synthetic training set); "
                f"got {max(self.batch_sizes)}."
            )
        if self.peer_draw:
            for name in ("peer_draw", "peer_python", "peer_script"):
                path = getattr(self, name)
                if not os.path.isfile(path):
                    raise ValueError(
                        f"--{name}={path!r}: no such file; --peer_draw is the "
                        "draw.py of kamenbliznashki/generative_models, "
                        "--peer_python a Python with torch==2.13.0, "
                        "--peer_script shared/bench/peer_throughput.py."
                    )
            if not 1 <= self.peer_rounds <= 100:
                raise ValueError(
                    f"--peer_rounds must be in 1..100; got {self.peer_rounds}."
                )
        if self.backend_rounds < 1:
            raise ValueError(
                "--backend_rounds must be at least 1; got "
                f"{self.backend_rounds}."
            )
        for name, limit in _COUNT_LIMITS.items():
            if getattr(self, name) > limit:
                raise ValueError(
                    f"--{name} must be at most {limit}; got "
                    f"{getattr(self, name)}."
                )
        model = config_lib.TrainConfig(
            workdir="-",
            num_steps=self.num_steps,
            encoder_units=self.units,
            decoder_units=self.units,
            latent_size=self.latent_size,
            batch_size=max(self.batch_sizes),
            eval_batch_size=self.generation_batch,
            importance_samples=0,
        )
        try:
            model.check_fits_in_memory((self.image_size, self.image_size, 1))
        except config_lib.ConfigError as error:
            raise ValueError(f"{error} (--units, --latent_size)") from None
        return self

    @property
    def is_paper_config(self) -> bool:
        """Whether the targets apply (the paper's MNIST model)."""
        return (self.num_steps, self.units, self.latent_size) == (
            64,
            256,
            100,
        ) and self.image_size == 28


def run(options: Options) -> dict:
    """Runs every section of `options`; returns the report."""
    started = time.perf_counter()
    report = {
        "device": measurements.device_report(),
        "model": {
            "num_steps": options.num_steps,
            "units": options.units,
            "latent_size": options.latent_size,
            "image_size": options.image_size,
            "read_glimpse_size": 2,
            "write_patch_size": 5,
            "dtype": "float32",
        },
    }
    workdir = tempfile.mkdtemp(prefix="draw_bench_")

    def config(attention=True, batch_size=None, name="run"):
        return measurements.paper_config(
            os.path.join(workdir, name),
            synthetic_image_size=options.image_size,
            num_steps=options.num_steps,
            encoder_units=options.units,
            decoder_units=options.units,
            latent_size=options.latent_size,
            attention=attention,
            batch_size=batch_size or options.batch_sizes[0],
        )

    report["flops"] = {
        name: flops_lib.training_flops_per_example(
            flops_lib.DrawShape(
                image_shape=(options.image_size, options.image_size, 1),
                num_steps=options.num_steps,
                encoder_units=options.units,
                decoder_units=options.units,
                latent_size=options.latent_size,
                read_glimpse_size=2 if attention else None,
                write_patch_size=5 if attention else None,
            )
        )
        for name, attention in (("attention", True), ("no_attention", False))
    }
    if "matmul" in options.sections:
        report["matmul_gflops"] = {
            "dense_2048": round(measurements.dense_matmul_gflops(), 1),
            # The encoder LSTM's matmul at the first batch size.
            "encoder_shape": round(
                measurements.shaped_matmul_gflops(
                    options.batch_sizes[0],
                    8 + 2 * options.units,
                    4 * options.units,
                ),
                1,
            ),
        }
    if "first_step" in options.sections:  # while this process is small
        report["first_step"] = measurements.first_training_step(
            config(), options.first_step_train_steps
        )
    if "training" in options.sections:
        report["training"] = _training(options, config, report)
    if "input_pipeline" in options.sections:
        report["input_pipeline"] = measurements.input_pipeline_throughput(
            config(), options.pipeline_batches
        )
    if "generation" in options.sections:
        # draw_tf's generation, and the plain one when reference is asked.
        implementations = ["fast"]
        if "reference" in options.variants:
            implementations.append("reference")
        report["generation"] = {
            implementation: measurements.generation_latency(
                config(),
                implementation,
                options.generation_requests,
                options.generation_batch,
                options.generation_batch_requests,
            )
            for implementation in implementations
        }
    if options.peer_draw:
        report["side_by_side"] = _side_by_side(options, config)
    if "backends" in options.sections:
        report["backends"] = _backends(options, config)
    report["targets"] = _targets(options, report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def _training(options, config, report) -> list[dict]:
    runs = []
    for variant in options.variants:
        for attention in (True, False):
            for batch_size in options.batch_sizes:
                # Op by op variants show TF ops; under XLA the profile
                # shows the compiled program's launches instead.
                profile = (
                    options.profile_steps
                    if attention and batch_size == options.batch_sizes[0]
                    else 0
                )
                name = f"{variant}_{attention}_{batch_size}"
                result = measurements.training_throughput(
                    config(attention, batch_size, name),
                    variant,
                    windows=options.windows,
                    steps_per_window=options.steps_per_window,
                    profile_steps=profile,
                )
                flops = report["flops"][
                    "attention" if attention else "no_attention"
                ]
                gflops = flops * result["examples_per_second"] / 1e9
                entry = {
                    "variant": variant,
                    "attention": attention,
                    "batch_size": batch_size,
                    **result,
                    "achieved_gflops": round(gflops, 1),
                }
                matmul = report.get("matmul_gflops")
                if matmul:
                    entry["fraction_of_dense_matmul"] = round(
                        gflops / matmul["dense_2048"], 3
                    )
                    entry["fraction_of_encoder_shape_matmul"] = round(
                        gflops / matmul["encoder_shape"], 3
                    )
                runs.append(entry)
    return runs


def _side_by_side(options, config) -> dict:
    """draw_tf (compiled) and the PyTorch peer, alternated, same batch.

    Each round times draw_tf, then the peer (a process of its own, on the
    same cores); the ratio is of the medians over rounds.
    """
    batch_size = options.batch_sizes[0]
    ours, peers = [], []
    for round_index in range(options.peer_rounds):
        ours.append(
            measurements.training_throughput(
                config(batch_size=batch_size, name=f"side_{round_index}"),
                "compiled",
                options.windows,
                options.steps_per_window,
            )["examples_per_second"]
        )
        peers.append(
            measurements.peer_throughput(
                options.peer_python,
                options.peer_script,
                options.peer_draw,
                batch_size,
                options.windows,
                options.steps_per_window,
            )["examples_per_second"]
        )
    draw_tf_rate = float(np.median(ours))
    peer_rate = float(np.median(peers))
    return {
        "batch_size": batch_size,
        "rounds": options.peer_rounds,
        "draw_tf_examples_per_second": ours,
        "peer_examples_per_second": peers,
        "draw_tf_median": round(draw_tf_rate, 1),
        "peer_median": round(peer_rate, 1),
        "ratio": round(draw_tf_rate / peer_rate, 3),
    }


def _backends(options, config) -> dict:
    """draw_tf's tf.distribute step and Keras' fit() step on each backend.

    Each round times draw_tf's compiled training step (this process), then
    `bench/keras_throughput.py` (the step `fit()` runs) in a process of its
    own under KERAS_BACKEND=tensorflow and under KERAS_BACKEND=jax, same
    model and batch; the ratios are of the medians over rounds, against
    the tf.distribute step.
    """
    batch_size = options.batch_sizes[0]
    rates = {"tf_distribute": [], "keras_tensorflow": [], "keras_jax": []}
    first_steps = {"keras_tensorflow": [], "keras_jax": []}
    for round_index in range(options.backend_rounds):
        rates["tf_distribute"].append(
            measurements.training_throughput(
                config(batch_size=batch_size, name=f"backends_{round_index}"),
                "compiled",
                options.windows,
                options.steps_per_window,
            )["examples_per_second"]
        )
        for backend in ("tensorflow", "jax"):
            result = measurements.keras_throughput(
                backend,
                batch_size,
                options.num_steps,
                options.units,
                options.latent_size,
                options.image_size,
                options.windows,
                options.steps_per_window,
            )
            rates[f"keras_{backend}"].append(result["examples_per_second"])
            first_steps[f"keras_{backend}"].append(result["first_step_seconds"])
    medians = {name: float(np.median(values)) for name, values in rates.items()}
    return {
        "batch_size": batch_size,
        "rounds": options.backend_rounds,
        "examples_per_second": rates,
        "first_step_seconds": first_steps,
        "medians": {name: round(value, 1) for name, value in medians.items()},
        "ratios_to_tf_distribute": {
            name: round(value / medians["tf_distribute"], 3)
            for name, value in medians.items()
            if name != "tf_distribute"
        },
    }


def _targets(options, report) -> dict:
    """Each target: the figure, the threshold and whether it is met."""
    if not options.is_paper_config:
        return {"note": "targets apply to the paper config only"}
    targets = {}

    def add(name, value, threshold, at_least=True):
        met = value >= threshold if at_least else value <= threshold
        targets[name] = {
            "value": value,
            "threshold": threshold,
            "met": bool(met),
        }

    main_run = next(
        (
            run
            for run in report.get("training", [])
            if run["attention"]
            and run["batch_size"] == 100
            and run["variant"] == "compiled"
        ),
        None,
    )
    if main_run:
        add(
            "training_examples_per_second",
            main_run["examples_per_second"],
            TRAINING_TARGET_EXAMPLES_PER_SECOND,
        )
        if "fraction_of_dense_matmul" in main_run:
            add(
                "training_fraction_of_dense_matmul",
                main_run["fraction_of_dense_matmul"],
                TRAINING_TARGET_MATMUL_FRACTION,
            )
    side_by_side = report.get("side_by_side")
    if side_by_side:
        add(
            "training_ratio_to_the_peer",
            side_by_side["ratio"],
            PEER_TARGET_RATIO,
        )
    if "first_step" in report:
        add(
            "first_step_after_imports_seconds",
            report["first_step"]["first_step_after_imports_seconds"],
            FIRST_STEP_TARGET_SECONDS,
            at_least=False,
        )
    generation = report.get("generation", {}).get("fast")
    if generation:
        add(
            "generation_batch_1_p50_ms",
            generation["batch_1_p50_ms"],
            GENERATION_TARGET_P50_MS,
            at_least=False,
        )
        if generation["large_batch"] == 64:
            add(
                "generation_batch_64_images_per_second",
                generation["large_batch_images_per_second"],
                GENERATION_TARGET_IMAGES_PER_SECOND,
            )
    if "input_pipeline" in report and main_run:
        add(
            "input_pipeline_multiple_of_training",
            round(
                report["input_pipeline"]["examples_per_second"]
                / main_run["examples_per_second"],
                1,
            ),
            PIPELINE_TARGET_MULTIPLE,
        )
    return targets


def table(report: dict) -> str:
    """The report as aligned text for a terminal."""
    device = report["device"]
    lines = [
        f"draw_tf benchmark on {device['device']}: {device['cpu_model']}, "
        f"{device['usable_cpus']} CPUs ({device['vector_extensions']})"
        + (f", GPUs {device['gpus']}" if device["gpus"] else "")
        + f"; TensorFlow {device['tensorflow']}",
        "FLOPs per training example: "
        + ", ".join(
            f"{name} {value / 1e6:.1f} M"
            for name, value in report["flops"].items()
        ),
    ]
    if "matmul_gflops" in report:
        matmul = report["matmul_gflops"]
        lines.append(
            f"Dense matmul: {matmul['dense_2048']} GFLOP/s at 2048^3, "
            f"{matmul['encoder_shape']} GFLOP/s at the encoder's shape"
        )
    if "side_by_side" in report:
        side = report["side_by_side"]
        lines.append(
            f"Side by side, batch {side['batch_size']}, {side['rounds']} "
            f"alternated rounds: draw_tf {side['draw_tf_median']} examples/s, "
            f"PyTorch peer {side['peer_median']}: ratio {side['ratio']}"
        )
    if "backends" in report:
        backends = report["backends"]
        medians, ratios = (
            backends["medians"],
            backends["ratios_to_tf_distribute"],
        )
        lines.append(
            f"Backends, batch {backends['batch_size']}, {backends['rounds']} "
            f"alternated rounds: tf.distribute step "
            f"{medians['tf_distribute']} examples/s; fit() on TensorFlow "
            f"{medians['keras_tensorflow']} ({ratios['keras_tensorflow']}x), "
            f"on JAX {medians['keras_jax']} ({ratios['keras_jax']}x)"
        )
    if "training" in report:
        lines.append("")
        lines.append(
            f"{'variant':<15}{'attention':<10}{'batch':>6}"
            f"{'examples/s':>12}{'GFLOP/s':>9}{'of dense':>9}"
            f"{'1st step s':>11}"
        )
        for run in report["training"]:
            lines.append(
                f"{run['variant']:<15}{str(run['attention']):<10}"
                f"{run['batch_size']:>6}{run['examples_per_second']:>12}"
                f"{run['achieved_gflops']:>9}"
                f"{run.get('fraction_of_dense_matmul', ''):>9}"
                f"{run['first_step_seconds']:>11}"
            )
            for key, title in (
                ("milliseconds_per_step_by_op_type", "TF op time by type"),
                ("milliseconds_per_step_by_xla_kernel", "XLA kernel time"),
            ):
                entries = run.get("profile", {}).get(key)
                if not entries:
                    continue
                lines.append(f"  {title} (ms per step, share, per step):")
                for name, entry in entries.items():
                    lines.append(
                        f"    {name:<36}{entry['milliseconds']:>9}"
                        f"{entry['share']:>7}{entry['per_step']:>7}"
                    )
    if "first_step" in report:
        first = report["first_step"]
        lines.append(
            f"\ntrain.py: imports {first['imports_seconds']} s, first step "
            f"{first['first_step_seconds']} s after start "
            f"({first['first_step_after_imports_seconds']} s after imports)"
            f", peak RSS {first['peak_rss_mib']} MiB"
        )
    if "input_pipeline" in report:
        lines.append(
            "Input pipeline alone: "
            f"{report['input_pipeline']['examples_per_second']} examples/s"
        )
    for implementation, figures in report.get("generation", {}).items():
        lines.append(
            f"Generation ({implementation}, SavedModel via Session): batch 1 "
            f"p50 {figures['batch_1_p50_ms']} ms, p99 "
            f"{figures['batch_1_p99_ms']} ms; batch "
            f"{figures['large_batch']}: "
            f"{figures['large_batch_images_per_second']} images/s"
        )
    targets = report.get("targets", {})
    if targets and "note" not in targets:
        lines.append("\nTargets:")
        for name, target in targets.items():
            mark = "met" if target["met"] else "NOT met"
            lines.append(
                f"  {name:<42}{target['value']:>10} "
                f"(target {target['threshold']}) {mark}"
            )
    return "\n".join(lines)
