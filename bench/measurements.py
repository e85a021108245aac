"""The measurements of bench/run_benchmarks.py, one function each.

Every function returns plain Python numbers (JSON-ready). Rates are medians
of several timed windows after warm-up; nothing here asserts a speed.
"""

import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time

import keras
import numpy as np
import tensorflow as tf

import draw_tf
from bench import op_profile
from draw_tf import config as config_lib
from draw_tf import data as data_lib
from draw_tf import machine
from draw_tf.tensorflow import distributed_engine, distribution

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def device_report() -> dict:
    """What the figures were measured on."""
    gpus = tf.config.list_physical_devices("GPU")
    threads = tf.config.threading
    cpu_model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            names = re.findall(r"model name\s*:\s*(.*)", file.read())
        cpu_model = names[0] if names else cpu_model
    except OSError:
        pass
    if hasattr(os, "sched_getaffinity"):
        usable_cpus = len(os.sched_getaffinity(0))
    else:
        usable_cpus = os.cpu_count()
    return {
        "device": "GPU" if gpus else "CPU",
        "vector_extensions": machine.cpu_description()["vector_extensions"],
        "gpus": [
            tf.config.experimental.get_device_details(gpu).get(
                "device_name", gpu.name
            )
            for gpu in gpus
        ],
        "cpu_model": cpu_model,
        "usable_cpus": usable_cpus,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default"),
        # 0 means TensorFlow's default (the number of cores).
        "intra_op_threads": threads.get_intra_op_parallelism_threads(),
        "inter_op_threads": threads.get_inter_op_parallelism_threads(),
    }


def dense_matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Median GFLOP/s of a float32 [size, size] x [size, size] matmul."""
    a = tf.random.normal([size, size])
    b = tf.random.normal([size, size])
    for _ in range(3):
        tf.matmul(a, b).numpy()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, b).numpy()
        seconds.append(time.perf_counter() - start)
    return 2 * size**3 / float(np.median(seconds)) / 1e9


def shaped_matmul_gflops(
    rows: int, inner: int, columns: int, iterations: int = 200
) -> float:
    """GFLOP/s of [rows, inner] x [inner, columns], best of 3 loops.

    The matmuls run in a tf.while_loop, each on a different left operand,
    so that no graph optimisation can merge them.
    """
    a = tf.random.normal([rows, inner])
    b = tf.random.normal([inner, columns])

    @tf.function
    def loop(a, b):
        def body(i, total):
            shifted = a + tf.cast(i, tf.float32)
            return i + 1, total + tf.matmul(shifted, b)

        return tf.while_loop(
            lambda i, _: i < iterations,
            body,
            (tf.constant(0), tf.zeros([rows, columns])),
        )[1]

    loop(a, b).numpy()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        loop(a, b).numpy()
        best = min(best, time.perf_counter() - start)
    return 2 * rows * inner * columns * iterations / best / 1e9


def paper_config(workdir: str, **overrides) -> config_lib.TrainConfig:
    """The paper's MNIST model (Table 3) on synthetic 28 x 28 images."""
    values = dict(
        workdir=workdir,
        dataset="synthetic",
        synthetic_image_size=28,
        num_steps=64,
        encoder_units=256,
        decoder_units=256,
        latent_size=100,
        read_glimpse_size=2,
        write_patch_size=5,
        batch_size=100,
        train_steps=1,
        num_pictures=0,
        importance_samples=0,
    )
    values.update(overrides)
    return config_lib.TrainConfig(**values).validate()


# Training variants: (model implementation, XLA for the forward/backward).
VARIANTS = {
    "compiled": ("fast", True),  # train.py's default
    "loop": ("fast", False),
    "reference": ("reference", False),  # the plain formulation
}


def training_throughput(
    config: config_lib.TrainConfig,
    variant: str = "compiled",
    windows: int = 5,
    steps_per_window: int = 5,
    warmup_steps: int = 2,
    profile_steps: int = 0,
    strategy: tf.distribute.Strategy | None = None,
) -> dict:
    """Examples/s of `DistributedEngine.train_step`, what train.py runs.

    Batches come from the real input pipeline but are fetched before the
    clock starts (the pipeline is timed on its own by
    `input_pipeline_throughput`).

    Args:
      config: the run (model, batch size); its workdir is written to.
      variant: a key of `VARIANTS`: "compiled" (the while loop under
        XLA, train.py's default), "loop" (the while loop op by op) or
        "reference" (the cell called T times from Python, op by op).
      windows: timed windows; the figure is their median.
      steps_per_window: training steps per window.
      warmup_steps: untimed steps after the first (which traces).
      profile_steps: if > 0, also profile that many steps
        (`op_profile.op_time_by_type`) after the timing.
      strategy: defaults to `distribution.make_strategy()`.

    Returns:
      A dict of examples_per_second (median), window_examples_per_second,
      first_step_seconds (trace and first step in this process) and
      negative_elbo (the last step's loss, a sanity check); with
      profile_steps, profile.
    """
    implementation, jit_compile = VARIANTS[variant]
    config = dataclasses.replace(config, jit_compile=jit_compile)
    strategy = strategy or distribution.make_strategy()
    splits = data_lib.load_splits(config)
    experiment = distributed_engine.make_trainer(config, strategy, splits)
    experiment.model.implementation = implementation  # before any trace
    batches = list(_training_batches(config, splits, 4))
    start = time.perf_counter()
    metrics = experiment.engine.train_step(batches[0])
    loss = float(metrics["negative_elbo"])
    first_step_seconds = time.perf_counter() - start
    for step in range(warmup_steps):
        loss = float(
            experiment.engine.train_step(batches[step % len(batches)])[
                "negative_elbo"
            ]
        )
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for step in range(steps_per_window):
            metrics = experiment.engine.train_step(batches[step % len(batches)])
        loss = float(metrics["negative_elbo"])  # waits for the steps
        seconds = time.perf_counter() - start
        rates.append(steps_per_window * config.batch_size / seconds)
    result = {
        "examples_per_second": round(float(np.median(rates)), 1),
        "window_examples_per_second": [round(rate, 1) for rate in rates],
        "first_step_seconds": round(first_step_seconds, 2),
        "negative_elbo": round(loss, 3),
    }
    if profile_steps:

        def run_steps(count):
            for step in range(count):
                metrics = experiment.engine.train_step(
                    batches[step % len(batches)]
                )
            float(metrics["negative_elbo"])

        result["profile"] = op_profile.op_time_by_type(run_steps, profile_steps)
    return result


def input_pipeline_throughput(
    config: config_lib.TrainConfig, batches: int = 50
) -> dict:
    """Examples/s of `data.train_dataset` alone (binarization and noise)."""
    splits = data_lib.load_splits(config)
    iterator = iter(_training_batches(config, splits, batches + 5))
    for _ in range(5):  # warm-up, and the prefetch buffer fills
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        batch = next(iterator)
    batch["noise"].numpy()
    seconds = time.perf_counter() - start
    return {
        "examples_per_second": round(batches * config.batch_size / seconds, 1)
    }


def _training_batches(config, splits, count) -> tf.data.Dataset:
    """The first `count` global batches train.py would train on."""
    return data_lib.train_dataset(
        splits.train,
        config.batch_size,
        (config.num_steps, config.latent_size),
        config.seed,
        0,
        count,
        splits.dynamic_binarization,
        composite=splits.composite,
    )


def generation_latency(
    config: config_lib.TrainConfig,
    implementation: str = "fast",
    requests: int = 200,
    large_batch: int = 64,
    large_requests: int = 20,
) -> dict:
    """Exports a SavedModel of `config`'s model and times `generate`.

    The weights are a fresh initialisation: the time does not depend on
    them. Timed through serving.session_predictor, as TF Serving runs it.
    """
    from export.export_saved_model_lib import DrawServingModule
    from serving.generation_timing import time_generation
    from serving.session_predictor import SessionPredictor

    image_shape = (config.synthetic_image_size,) * 2 + (1,)
    model = draw_tf.DrawModel(
        **config.model_kwargs(image_shape), implementation=implementation
    )
    module = DrawServingModule(model)
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        tf.saved_model.save(module, directory, signatures=module.signatures())
        export_seconds = time.perf_counter() - start
        predictor = SessionPredictor(directory)
        figures = time_generation(
            predictor, requests, large_batch, large_requests
        )
        predictor.close()
    figures["export_seconds"] = round(export_seconds, 2)
    return figures


# The fields of a `paper_config` that `first_training_step` passes to
# train.py as flags.
_TRAIN_FLAGS = (
    "workdir",
    "dataset",
    "synthetic_image_size",
    "num_steps",
    "encoder_units",
    "decoder_units",
    "latent_size",
    "attention",
    "read_glimpse_size",
    "write_patch_size",
    "batch_size",
    "jit_compile",
    "train_steps",
    "log_every_steps",
    "eval_every_steps",
    "checkpoint_every_steps",
    "importance_samples",
    "num_pictures",
    "max_eval_examples",
)


def first_training_step(
    config: config_lib.TrainConfig, train_steps: int = 10
) -> dict:
    """Runs train.py in a new process; times its first step, and its RSS.

    Args:
      config: the model and batch size to train (on synthetic images).
      train_steps: steps to run; the peak memory is that of the whole run
        (training, the test evaluation and the final checkpoint).

    Returns:
      A dict of imports_seconds (process start to the end of imports),
      first_step_seconds (process start to the first completed step),
      first_step_after_imports_seconds, and peak_rss_mib.
    """
    with tempfile.TemporaryDirectory() as workdir:
        run = dataclasses.replace(
            config,
            workdir=workdir,
            train_steps=train_steps,
            log_every_steps=1,
            eval_every_steps=train_steps,
            checkpoint_every_steps=train_steps,
            importance_samples=0,
            num_pictures=0,
            max_eval_examples=128,
        )
        flags = [f"--{name}={getattr(run, name)}" for name in _TRAIN_FLAGS]
        environment = dict(os.environ, PYTHONUNBUFFERED="1")
        start = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, os.path.join(REPOSITORY, "train.py"), *flags],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        peak = _PeakMemory(process.pid)
        imports = first_step = None
        lines = []
        for line in process.stderr:
            lines.append(line)
            now = time.perf_counter() - start
            if imports is None and "Imports done" in line:
                imports = now
            if first_step is None and re.search(r"\bstep 1/\d+", line):
                first_step = now
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        peak_mib = peak.stop(usage)
    if process.returncode != 0 or imports is None or first_step is None:
        raise RuntimeError(
            "train.py failed in the first-step benchmark (exit "
            f"{process.returncode}):\n{''.join(lines[-20:])}"
        )
    return {
        "imports_seconds": round(imports, 2),
        "first_step_seconds": round(first_step, 2),
        "first_step_after_imports_seconds": round(first_step - imports, 2),
        "peak_rss_mib": round(peak_mib, 1),
    }


class _PeakMemory:
    """The peak RSS of a child process, from /proc/<pid>/status VmHWM.

    Polled every 20 ms while the child runs: getrusage's ru_maxrss of a
    child survives exec on Linux, so it would count the benchmark's own
    memory at the time of the fork. Without /proc, ru_maxrss it is.
    """

    def __init__(self, pid: int):
        self._path = f"/proc/{pid}/status"
        self._peak_kib = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._done.wait(0.02):
            try:
                with open(self._path) as file:
                    match = re.search(r"VmHWM:\s*(\d+) kB", file.read())
            except OSError:
                return
            if match:
                self._peak_kib = max(self._peak_kib, int(match.group(1)))

    def stop(self, usage) -> float:
        """The peak in MiB; `usage` is the child's rusage (the fallback)."""
        self._done.set()
        self._thread.join()
        if self._peak_kib:
            return self._peak_kib / 1024
        # ru_maxrss is in KiB on Linux, bytes on macOS.
        scale = 1024 * 1024 if sys.platform == "darwin" else 1024
        return usage.ru_maxrss / scale


def peer_throughput(
    peer_python: str,
    peer_script: str,
    peer_draw: str,
    batch_size: int,
    windows: int,
    steps_per_window: int,
) -> dict:
    """Training examples/s of the PyTorch peer, in a process of its own.

    Runs `peer_script` (shared/bench/peer_throughput.py) with the peer's
    draw.py under `peer_python` (a venv with torch), on this machine's
    usable CPUs, the paper config at `batch_size`.

    Returns:
      {"examples_per_second": median, "window_examples_per_second": [...]}.

    Raises:
      ValueError: if the peer fails, with its last line of output.
    """
    threads = (
        len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count()
    )
    command = [
        peer_python,
        peer_script,
        peer_draw,
        f"--batch={batch_size}",
        f"--steps={steps_per_window}",
        f"--windows={windows}",
        f"--threads={threads}",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=3600
    )
    lines = (result.stdout + result.stderr).strip().splitlines()
    try:
        figures = json.loads(result.stdout.strip().splitlines()[-1])
        rate = float(figures["peer_examples_per_s"])
    except (IndexError, KeyError, TypeError, ValueError):
        raise ValueError(
            f"the peer ({' '.join(command)}) failed: "
            f"{lines[-1] if lines else 'no output'}"
        ) from None
    return {
        "examples_per_second": round(rate, 1),
        "window_examples_per_second": figures.get("all", []),
    }


def keras_throughput(
    backend: str,
    batch_size: int,
    num_steps: int,
    units: int,
    latent_size: int,
    image_size: int,
    windows: int,
    steps_per_window: int,
) -> dict:
    """Examples/s of Keras' fit() step on `backend`, in a process of its own.

    Runs bench/keras_throughput.py with KERAS_BACKEND=`backend`.

    Returns:
      Its JSON report (examples_per_second, first_step_seconds, ...).

    Raises:
      ValueError: if it fails, with its last line of output.
    """
    script = os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "keras_throughput.py"
    )
    command = [
        sys.executable,
        script,
        f"--batch_size={batch_size}",
        f"--num_steps={num_steps}",
        f"--units={units}",
        f"--latent_size={latent_size}",
        f"--image_size={image_size}",
        f"--windows={windows}",
        f"--steps_per_window={steps_per_window}",
    ]
    environment = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=3600, env=environment
    )
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        lines = (result.stdout + result.stderr).strip().splitlines()
        raise ValueError(
            f"keras_throughput.py on {backend} failed: "
            f"{lines[-1] if lines else 'no output'}"
        ) from None
