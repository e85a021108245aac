"""Every flag of every binary, given bad values, ends in one line.

Each binary's flags are walked in one process (tests/flag_walk.py): every
flag the binary defines must have bad values here, and each must end the
program with `<binary>: error: ...` as its last stderr line, exit status
2, and no traceback.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from draw_tf import config as config_lib
from tests.tiny_run import tiny_flags

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOT_INT = ["x", "1.5"]
HUGE = "1000000000"


def _train_cases(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a directory")
    base = [
        *tiny_flags(),
        f"--workdir={tmp_path / 'run'}",
        "--train_steps=2",
        "--num_pictures=0",
        "--importance_samples=0",
        "--max_eval_examples=16",
    ]
    bad = {
        "workdir": [str(a_file), "/proc/no_such_dir/run", ""],
        "mode": ["bogus"],
        "task": ["bogus"],
        "dataset": ["bogus"],
        "data_dir": [str(a_file), str(tmp_path / "missing")],
        "tfds_data_dir": [str(a_file)],  # on cifar10: TFDS only
        "binarization": ["bogus"],
        "resample_composites": ["maybe"],
        "validation_size": ["-1", *NOT_INT, HUGE],
        "synthetic_image_size": ["0", *NOT_INT, HUGE],
        "num_steps": ["0", *NOT_INT, HUGE],
        "encoder_units": ["0", *NOT_INT, HUGE],
        "decoder_units": ["0", *NOT_INT, HUGE],
        "latent_size": ["0", *NOT_INT, HUGE],
        "attention": ["maybe"],
        "read_glimpse_size": ["0", *NOT_INT, "9"],
        "write_patch_size": ["0", *NOT_INT, "9"],
        "batch_size": ["0", *NOT_INT, HUGE],
        "learning_rate": ["0", "-1", "nan", "inf", "x"],
        "learning_rate_schedule": ["bogus"],
        "learning_rate_warmup_steps": ["-1", *NOT_INT],
        "learning_rate_final_fraction": ["-0.5", "2", "nan", "x"],
        "gradient_clip_norm": ["-1", "nan", "inf", "x"],
        "jit_compile": ["maybe"],
        "precision": ["bogus"],
        "num_epochs": ["-1", *NOT_INT],
        "train_steps": ["-1", *NOT_INT],
        "seed": ["-1", "99999999999999999999", *NOT_INT],
        "log_every_steps": ["0", *NOT_INT],
        "checkpoint_every_steps": ["0", *NOT_INT],
        "eval_every_steps": ["-1", *NOT_INT],
        "eval_batch_size": ["0", *NOT_INT, HUGE],
        "max_eval_examples": ["-1", *NOT_INT],
        "importance_samples": ["-1", *NOT_INT, HUGE],
        "num_cpu_devices": ["-1", *NOT_INT, "100000"],
        "num_pictures": ["-1", *NOT_INT],
        "pretrained": ["no_such_model"],
        "init_from": ["no_such_model_or_dir"],
        "engine": ["bogus"],
        "num_turns": ["0", *NOT_INT, "5"],
        "condition_size": ["0", *NOT_INT],
        "carry_states": ["maybe"],
        "place_frames": ["maybe", "true"],  # true: not --task=instruct
        "train_only": ["no_such_layer"],
        "instructions": ["7 top-left"],  # --mode=train
        "judge": ["no_such_judge", str(tmp_path / "missing.weights.h5")],
    }
    # Flags that synthetic data ignores are tried on MNIST; those of
    # instructed drawing on instructed MNIST.
    on_mnist = {"data_dir", "validation_size"}
    instructed = {"num_turns", "condition_size", "carry_states", "judge"}
    cases = [
        [
            *base,
            *(["--dataset=mnist"] if name in on_mnist else []),
            *(
                ["--task=instruct", "--dataset=instructed_mnist"]
                if name in instructed
                else []
            ),
            *(["--dataset=cifar10"] if name == "tfds_data_dir" else []),
            f"--{name}={value}",
        ]
        for name, values in bad.items()
        for value in values
    ]
    # Combinations and odd arguments.
    cases += [
        [*base, "--mode=evaluate", "--pretrained=no_such_model"],
        [*base, "--pretrained=mnist_attention"],  # --mode=train
        [*base, "--init_from=mnist_attention"],  # 28 x 28, not 8 x 8
        [*base, "--mode=evaluate", "--init_from=mnist_attention"],
        [*base, "--num_epochs=0", "--train_steps=0"],
        [
            *base,
            "--learning_rate_schedule=cosine",
            "--learning_rate_warmup_steps=2",
        ],
        [*base, "--mode=evaluate"],  # nothing trained in the workdir
        [*base, "--resample_composites"],  # synthetic: no composites
        [
            *base,
            "--dataset=two_digit_mnist",
            "--binarization=static",
            "--resample_composites",
        ],
        [*base, "--engine=keras", "--num_cpu_devices=2"],
        [*base, "stray_argument"],
        [*base, "--no_such_flag=1"],
        [*base, f"--flagfile={tmp_path / 'missing.flags'}"],
    ]
    # Every case in a workdir of its own.
    cases = [
        [
            *(
                f"--workdir={tmp_path / f'run{index}'}"
                if arg == f"--workdir={tmp_path / 'run'}"
                else arg
                for arg in case
            )
        ]
        for index, case in enumerate(cases)
    ]
    return bad, cases


def _walk(binary, cases, **environment):
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "flag_walk.py"), str(binary)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **environment),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [
        json.loads(line)
        for line in result.stdout.splitlines()
        if line.startswith('{"')
    ]
    # A case that trained prints its results too: keep the walk's lines.
    results = [line for line in lines if "args" in line]
    return set(lines[0]["flags"]), results


def _assert_one_line_errors(results, program):
    failures = []
    for result in results:
        last = result["stderr"][-1] if result["stderr"] else ""
        if (
            result["status"] != 2
            or not last.startswith(f"{program}: error: ")
            or any("Traceback" in line for line in result["stderr"])
        ):
            failures.append((result["args"][-1], result["status"], last[:200]))
    assert not failures, "\n".join(map(str, failures))


@pytest.mark.parametrize("keras_backend", ["tensorflow", "jax"])
def test_every_train_flag_with_bad_values_is_one_line(tmp_path, keras_backend):
    bad, cases = _train_cases(tmp_path)
    if keras_backend != "tensorflow":
        # What needs TensorFlow is refused in one line too.
        cases.append([*cases[0][:-1], "--engine=distributed"])
    defined, results = _walk(
        ROOT / "train.py", cases, KERAS_BACKEND=keras_backend
    )
    assert len(defined) > 30 and len(results) == len(cases)
    assert {name for name in defined if not bad.get(name)} == set()
    # One flag per TrainConfig field, no more: a new field cannot lack its
    # flag, nor (above) its bad values.
    fields = set(config_lib.TrainConfig.__dataclass_fields__)
    assert set(defined) == fields, set(defined) ^ fields
    _assert_one_line_errors(results, "train.py")


def _cases(base, bad):
    return [
        [*base, f"--{name}={value}"]
        for name, values in bad.items()
        for value in values
    ]


def test_every_flag_of_the_other_binaries_is_one_line(
    trained_workdir, tmp_path
):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    missing = tmp_path / "missing"
    workdir = str(trained_workdir)
    binaries = {
        "export/export_saved_model.py": (
            [
                f"--workdir={workdir}",
                f"--export_base={tmp_path / 'e'}",
                "--version=1",
            ],
            {
                "workdir": [str(missing), str(a_file)],
                "export_base": [str(a_file), "/proc/no_such_dir", ""],
                "model_name": ["", "a/b", ".."],
                "version": ["-1", *NOT_INT],
                "checkpoint": [str(missing)],
                "pretrained": ["no_such_model"],
                "max_batch_size": ["0", "-5", *NOT_INT],
            },
        ),
        "export/ship_pretrained.py": (
            [
                f"--workdir={workdir}",
                "--name=tiny",
                f"--output_dir={tmp_path / 's'}",
            ],
            {
                "workdir": [str(missing), str(a_file), ""],
                "remeasure": ["maybe"],
                "name": ["", "a/b", ".hidden"],
                "data_dir": [str(missing)],
                "checkpoint": [str(missing)],
                "importance_samples": ["-1", *NOT_INT, HUGE],
                "subset_size": ["0", *NOT_INT],
                "output_dir": [str(a_file), "/proc/no_such_dir"],
                "train_command": [],
                "description": [],
                "float16": ["maybe"],
            },
        ),
        "serving/client.py": (
            [
                "--server=127.0.0.1:1",
                "--timeout=2",
                f"--output={tmp_path / 'g.png'}",
            ],
            {
                "server": ["nohost", "host:port", "host:99999", ""],
                "protocol": ["bogus"],
                "rest_format": ["bogus"],
                "model_name": ["", "a/b"],
                "num_samples": ["0", *NOT_INT, HUGE],
                "seed": ["-1", *NOT_INT],
                "requests": ["0", *NOT_INT, HUGE],
                "timeout": ["0", "-1", "nan", "inf", "x"],
                "output": [str(tmp_path), str(missing / "g.png")],
                "metadata": ["maybe"],
                "instructions": ["7 middle", "1 top-left; x"],
            },
        ),
        "serving/session_benchmark.py": (
            [f"--export_dir={missing}"],
            {
                "export_dir": [str(missing), str(a_file), ""],
                "requests": ["0", *NOT_INT, HUGE],
                "large_batch": ["0", *NOT_INT, HUGE],
                "large_requests": ["0", *NOT_INT, HUGE],
            },
        ),
        "bench/run_benchmarks.py": (
            [
                "--sections=matmul",
                "--num_steps=2",
                "--units=8",
                "--latent_size=2",
            ],
            {
                "batch_sizes": ["x", "0", "-1", HUGE],
                "variants": ["bogus"],
                "sections": ["bogus", ""],
                "num_steps": ["0", *NOT_INT, HUGE],
                "units": ["0", *NOT_INT, HUGE],
                "latent_size": ["0", *NOT_INT, HUGE],
                "image_size": ["4", *NOT_INT, HUGE],
                "windows": ["0", *NOT_INT, HUGE],
                "steps_per_window": ["0", *NOT_INT, HUGE],
                "first_step_train_steps": ["0", *NOT_INT, HUGE],
                "pipeline_batches": ["0", *NOT_INT, HUGE],
                "generation_requests": ["0", *NOT_INT, HUGE],
                "generation_batch": ["0", *NOT_INT, HUGE],
                "generation_batch_requests": ["0", *NOT_INT, HUGE],
                "profile_steps": ["-1", *NOT_INT, HUGE],
                "output": [str(missing / "r.json"), str(tmp_path)],
                "peer_draw": [str(missing)],
                "peer_python": [sys.executable],  # without --peer_draw
                "peer_script": [str(missing)],
                "peer_rounds": ["0", *NOT_INT, HUGE],
                "backend_rounds": ["0", *NOT_INT, HUGE],
            },
        ),
    }
    failures = []
    for binary, (base, bad) in binaries.items():
        program = pathlib.Path(binary).name
        defined, results = _walk(ROOT / binary, _cases(base, bad))
        free_text = {"train_command", "description"}
        unwalked = {n for n in defined if not bad.get(n)} - free_text
        assert unwalked == set(), (binary, unwalked)
        try:
            _assert_one_line_errors(results, program)
        except AssertionError as error:
            failures.append(f"{binary}: {error}")
    assert not failures, "\n".join(failures)
