"""Tests of bench/: the FLOP formula, and one tiny end-to-end run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import draw_tf
from bench import flops as flops_lib
from bench import report as report_lib

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_paper_config_flops_by_hand():
    """Table 3's MNIST model, each part counted by hand."""
    shape = flops_lib.DrawShape(image_shape=(28, 28, 1))
    parts = flops_lib.forward_flops_per_step(shape)
    assert parts == {
        "encoder_lstm": 2 * (2 * 2 * 2 + 256 + 256) * 1024,
        "posterior": 2 * 256 * 200,
        "decoder_lstm": 2 * (100 + 256) * 1024,
        "read_window": 2 * 256 * 5,
        "read_filters": 2 * 2 * 28 * 28 * 2 + 2 * 2 * 2 * 28 * 2,
        "write": 2 * 256 * 25 + 2 * 256 * 5 + 2 * 28 * 25 + 2 * 28 * 5 * 28,
    }
    assert flops_lib.training_flops_per_example(shape) == 370_622_976


def _graph_matmul_flops(model, batch=1):
    """2 m k n summed over every (batch) matmul of the forward graph."""
    images = tf.TensorSpec([batch, *model.image_shape], tf.float32)
    noise = tf.TensorSpec(model.noise_shape(batch), tf.float32)
    graph = (
        tf.function(lambda x, e: model(x, noise=e))
        .get_concrete_function(images, noise)
        .graph
    )
    total = 0
    for op in graph.get_operations():
        if op.type not in ("MatMul", "BatchMatMulV2"):
            continue
        a, b = (tensor.shape.as_list() for tensor in op.inputs)
        if op.type == "MatMul":
            rows, inner = a[::-1] if op.get_attr("transpose_a") else a
            columns = b[0] if op.get_attr("transpose_b") else b[1]
            total += 2 * rows * inner * columns
        else:
            rows, inner = a[-2:][::-1] if op.get_attr("adj_x") else a[-2:]
            columns = b[-2] if op.get_attr("adj_y") else b[-1]
            total += 2 * int(np.prod(a[:-2])) * rows * inner * columns
    return total


@pytest.mark.parametrize(
    "image_shape,read,write",
    [((9, 9, 1), 2, 3), ((6, 6, 3), 3, 2), ((7, 7, 1), None, None)],
)
def test_formula_matches_the_matmuls_in_the_graph(image_shape, read, write):
    """The analytic count equals the matmuls TensorFlow actually runs."""
    config = dict(
        num_steps=3,
        encoder_units=6,
        decoder_units=5,
        latent_size=4,
        read_glimpse_size=read,
        write_patch_size=write,
    )
    model = draw_tf.DrawModel(image_shape, implementation="reference", **config)
    shape = flops_lib.DrawShape(image_shape=image_shape, **config)
    per_step = sum(flops_lib.forward_flops_per_step(shape).values())
    assert _graph_matmul_flops(model) == 3 * per_step


def _run_benchmarks(*flags):
    return subprocess.run(
        [sys.executable, os.path.join(REPOSITORY, "bench", "run_benchmarks.py")]
        + list(flags),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tiny_benchmark_reports_every_section(tmp_path):
    output = tmp_path / "report.json"
    result = _run_benchmarks(
        "--num_steps=3",
        "--units=8",
        "--latent_size=3",
        "--image_size=10",
        "--batch_sizes=8,16",
        "--variants=compiled,loop,reference",
        "--windows=2",
        "--steps_per_window=2",
        "--first_step_train_steps=2",
        "--pipeline_batches=3",
        "--generation_requests=3",
        "--generation_batch=4",
        "--generation_batch_requests=2",
        "--profile_steps=1",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert json.loads(output.read_text()) == report
    assert report["device"]["device"] in ("CPU", "GPU")
    assert report["matmul_gflops"]["dense_2048"] > 0
    runs = report["training"]
    assert len(runs) == 3 * 2 * 2  # variants x attention x batches
    for run in runs:
        assert run["examples_per_second"] > 0
        assert np.isfinite(run["negative_elbo"])
        assert run["achieved_gflops"] >= 0
    for run in runs:
        if "profile" not in run:
            continue
        profile = run["profile"]["milliseconds_per_step_by_op_type"]
        assert profile and all(
            entry["milliseconds"] >= 0 for entry in profile.values()
        )
        if run["variant"] == "compiled":  # XLA's kernels, traced
            kernels = run["profile"]["milliseconds_per_step_by_xla_kernel"]
            assert any("MatMul" in name or "dot" in name for name in kernels)
            assert run["profile"]["total_xla_milliseconds_per_step"] > 0
    first = report["first_step"]
    assert 0 < first["imports_seconds"] < first["first_step_seconds"]
    assert first["peak_rss_mib"] > 100
    assert report["input_pipeline"]["examples_per_second"] > 0
    for figures in report["generation"].values():
        assert 0 < figures["batch_1_p50_ms"] <= figures["batch_1_p99_ms"]
        assert figures["large_batch_images_per_second"] > 0
    assert report["targets"] == {
        "note": "targets apply to the paper config only"
    }
    assert "Generation (fast" in result.stderr
    assert "examples/s" in result.stderr


@pytest.mark.parametrize(
    "flag,message",
    [
        (
            "--variants=xla",
            "--variants must be among compiled, loop, reference; got 'xla'.",
        ),
        (
            "--batch_sizes=100,abc",
            "--batch_sizes must be a comma-separated list of integers; got "
            "'100,abc'.",
        ),
        (
            "--output=/no/such/dir/report.json",
            "--output=/no/such/dir/report.json: directory /no/such/dir does "
            "not exist.",
        ),
    ],
)
def test_bad_options_exit_with_one_line(flag, message):
    result = _run_benchmarks(flag, "--sections=matmul")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"run_benchmarks.py: error: {message}"
    )


def test_side_by_side_with_the_peer_alternates_and_reports_the_ratio(
    tmp_path,
):
    # A stand-in for shared/bench/peer_throughput.py: it checks its
    # arguments as the real one takes them and logs each call.
    calls = tmp_path / "calls.txt"
    peer_script = tmp_path / "peer_throughput.py"
    peer_script.write_text(
        "import json, sys\n"
        f"open({str(calls)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "assert sys.argv[1].endswith('draw.py') and '--batch=8' in sys.argv\n"
        "print(json.dumps({'peer_examples_per_s': 50.0, 'all': [50.0]}))\n"
    )
    peer_draw = tmp_path / "draw.py"
    peer_draw.write_text("# the peer's model")
    result = _run_benchmarks(
        "--num_steps=3",
        "--units=8",
        "--latent_size=3",
        "--image_size=10",
        "--batch_sizes=8",
        "--sections=matmul",
        "--windows=2",
        "--steps_per_window=2",
        f"--peer_draw={peer_draw}",
        f"--peer_python={sys.executable}",
        f"--peer_script={peer_script}",
        "--peer_rounds=2",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    side = json.loads(result.stdout)["side_by_side"]
    assert side["peer_examples_per_second"] == [50.0, 50.0]
    assert len(side["draw_tf_examples_per_second"]) == 2
    assert side["ratio"] == pytest.approx(side["draw_tf_median"] / 50.0, 1e-2)
    assert len(calls.read_text().splitlines()) == 2
    assert "ratio" in result.stderr and "CPUs (" in result.stderr
    assert json.loads(result.stdout)["device"]["vector_extensions"]


def test_backends_section_times_fit_on_tensorflow_and_jax():
    result = _run_benchmarks(
        "--num_steps=3",
        "--units=8",
        "--latent_size=3",
        "--image_size=10",
        "--batch_sizes=8",
        "--sections=backends",
        "--windows=2",
        "--steps_per_window=2",
        "--backend_rounds=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    backends = json.loads(result.stdout)["backends"]
    rates = backends["examples_per_second"]
    assert sorted(rates) == ["keras_jax", "keras_tensorflow", "tf_distribute"]
    assert all(len(values) == 1 and values[0] > 0 for values in rates.values())
    assert set(backends["ratios_to_tf_distribute"]) == {
        "keras_jax",
        "keras_tensorflow",
    }
    assert "fit() on TensorFlow" in result.stderr


@pytest.mark.parametrize(
    "argument", ["--batch_size=0", "--windows=x", "--bogus=1", "extra"]
)
def test_keras_throughput_bad_arguments_are_one_line(argument):
    result = subprocess.run(
        [sys.executable, "bench/keras_throughput.py", argument],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPOSITORY,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "keras_throughput.py: error: "
    ), lines


def test_compare_checkouts_interleaves_two_workers():
    result = subprocess.run(
        [
            sys.executable,
            "bench/compare_checkouts.py",
            f"--before={REPOSITORY}",
            "--num_steps=2",
            "--units=8",
            "--batch_size=16",
            "--windows=3",
            "--steps_per_window=1",
            '--after_config={"precision": "bf16"}',
            "--after_env=DRAW_TF_BENCH_MARK=1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPOSITORY,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["settings"]["before"]["num_steps"] == 2
    assert "precision" not in report["settings"]["before"]
    assert report["settings"]["after"]["precision"] == "bf16"
    assert report["environments"] == {
        "before": {},
        "after": {"DRAW_TF_BENCH_MARK": "1"},
    }
    for side in ("before", "after"):
        rates = report["examples_per_second"][side]
        assert len(rates) == 3 and min(rates) > 0
    assert report["ratio_of_medians"] == pytest.approx(
        report["medians"]["after"] / report["medians"]["before"]
    )
    assert report["cpu"]["vector_extensions"]


@pytest.mark.parametrize(
    "arguments",
    [
        [],
        ["--before=/no/such/checkout"],
        ["--before=.", "--windows=0"],
        ["--before=.", "--after_config=[1]"],
        ["--before=.", '--after_config={"precision": "fp16"}'],
        ["--before=.", '--before_config={"no_such_field": 1}'],
        ["--before=.", "--after_env=NO_EQUALS_SIGN"],
    ],
)
def test_compare_checkouts_bad_arguments_are_one_line(arguments):
    result = subprocess.run(
        [sys.executable, "bench/compare_checkouts.py", *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPOSITORY,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "compare_checkouts.py: error: "
    ), lines


@pytest.mark.parametrize("ratio, met", [(1.33, False), (2.0, True)])
def test_targets_judge_the_ratio_to_the_peer_and_the_dense_fraction(ratio, met):
    class PaperOptions:
        is_paper_config = True

    measured = {
        "training": [
            {
                "variant": "compiled",
                "attention": True,
                "batch_size": 100,
                "examples_per_second": 175.0,
                "fraction_of_dense_matmul": 0.59 if not met else 0.6,
            }
        ],
        "side_by_side": {"ratio": ratio},
    }
    targets = report_lib._targets(PaperOptions(), measured)
    assert targets["training_ratio_to_the_peer"] == {
        "value": ratio,
        "threshold": 2.0,
        "met": met,
    }
    assert targets["training_fraction_of_dense_matmul"]["met"] is met
    assert targets["training_examples_per_second"]["met"] is False
    assert "training_ratio_to_the_peer" not in report_lib._targets(
        PaperOptions(), {"training": measured["training"]}
    )
