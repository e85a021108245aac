"""The model on JAX, with TensorFlow unimportable, from the TensorFlow run.

Keras fixes its backend when it is imported, so the JAX side runs in
subprocesses with `KERAS_BACKEND=jax` and `DRAW_TF_BLOCK_TENSORFLOW=1`
(tests/conftest.py then makes `import tensorflow` fail):

- the backend-portable tests (NumPy transcriptions of the paper's
  equations, closed forms, fast paths against the plain formulation,
  gradients, fit()/evaluate(), callbacks) run again on JAX;
- weights trained on JAX load here, on TensorFlow, and draw the same images
  from the same noise; the shipped pretrained weights draw the same images
  on both.
"""

import json
import os
import pathlib
import re

import numpy as np
import pytest

import draw_tf
from tests.jax_subprocess import run_on_jax

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORTABLE_TESTS = [
    "tests/attention_test.py",
    "tests/bounds_test.py",
    "tests/cell_test.py",
    "tests/conditional_model_test.py",
    "tests/instruct_task_test.py",
    "tests/judge_test.py",
    "tests/keras_engine_test.py",
    "tests/losses_test.py",
    "tests/unrolling_test.py",
    "tests/portable_model_test.py",
]


def _run_on_jax(args, timeout, cwd=ROOT):
    completed = run_on_jax(args, timeout, cwd)
    return completed.stdout + completed.stderr


def test_portable_tests_pass_on_jax_without_tensorflow():
    output = _run_on_jax(
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", *PORTABLE_TESTS],
        timeout=1800,
    )
    assert " passed" in output and "failed" not in output, output[-3000:]


def test_weights_from_jax_generate_the_same_images_on_tensorflow(tmp_path):
    _run_on_jax(["-m", "tests.jax_weights_main", str(tmp_path)], timeout=600)
    names = sorted(os.listdir(tmp_path))
    assert "trained" in names and "mnist_attention" in names, names
    for name in names:
        directory = tmp_path / name
        with open(directory / "config.json") as file:
            model = draw_tf.DrawModel.from_config(json.load(file))
        model.load_weights(str(directory / "model.weights.h5"))
        noise = np.load(directory / "noise.npy")
        on_jax = np.load(directory / "images.npy")
        on_tensorflow = model.generate(noise=noise)["images"].numpy()
        assert on_jax.shape == on_tensorflow.shape
        np.testing.assert_allclose(
            on_tensorflow, on_jax, atol=1e-4, err_msg=name
        )
        if name != "trained":
            # The shipped file itself, loaded here, draws the same images.
            shipped = draw_tf.pretrained.load(name)
            np.testing.assert_allclose(
                shipped.generate(noise=noise)["images"].numpy(),
                on_jax,
                atol=1e-4,
                err_msg=name,
            )


def test_backends_page_example_runs_on_jax(tmp_path):
    page = pathlib.Path(ROOT, "docs", "backends.md").read_text()
    section = page[page.index("## The Keras way") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    assert 'os.environ["KERAS_BACKEND"] = "jax"' in code
    script = tmp_path / "example.py"
    script.write_text(
        "import sys\n"
        "sys.modules['tensorflow'] = None  # as on a machine without it\n"
        + code
    )
    output = _run_on_jax([str(script)], timeout=600, cwd=tmp_path)
    printed = [
        line for line in output.splitlines() if line.startswith("{'")
    ]  # the evaluate() dict the example prints
    assert len(printed) == 1, output[-3000:]
    results = json.loads(printed[0].replace("'", '"'))
    assert sorted(results) == ["latent_loss", "loss", "reconstruction_loss"]
    # Near a blank canvas after 2 steps: about 784 log 2 = 543 nats.
    assert 300 < results["loss"] < 800, results
    assert (tmp_path / "draw.weights.h5").exists()


def test_train_py_on_jax_then_tensorflow_evaluates_draws_and_exports(tmp_path):
    from draw_tf.tensorflow import distributed_engine
    from export import export_saved_model_lib
    from serving.session_predictor import SessionPredictor
    from tests.tiny_run import tiny_config, tiny_flags

    workdir = tmp_path / "run"
    # train.py itself, with TensorFlow unimportable.
    _run_on_jax(
        [
            "-c",
            "import runpy, sys; sys.modules['tensorflow'] = None; "
            "sys.argv = sys.argv[1:]; "
            "runpy.run_path('train.py', run_name='__main__')",
            "train.py",
            *tiny_flags(),
            f"--workdir={workdir}",
            "--train_steps=4",
            "--checkpoint_every_steps=2",
            "--eval_every_steps=2",
            "--max_eval_examples=32",
            "--importance_samples=2",
            "--num_pictures=4",
        ],
        timeout=600,
    )
    on_jax = json.loads((workdir / "eval" / "test.json").read_text())
    assert on_jax["backend"] == "jax" and on_jax["step"] in (2, 4)
    assert (workdir / "pictures" / "generation.gif").exists()
    # TensorFlow evaluates and draws from the same workdir...
    config = tiny_config(
        workdir, mode="evaluate", max_eval_examples=32, importance_samples=2
    )
    on_tensorflow = distributed_engine.run(config)
    assert on_tensorflow["step"] == on_jax["step"]
    # (other noise: TensorFlow's generator; same weights, close bounds)
    np.testing.assert_allclose(
        on_tensorflow["negative_elbo"], on_jax["negative_elbo"], rtol=0.05
    )
    paths = distributed_engine.run(
        tiny_config(workdir, mode="draw", num_pictures=4)
    )
    assert os.path.exists(paths["samples"])
    # ... and exports it for TF Serving.
    path = export_saved_model_lib.export(
        str(workdir), str(tmp_path / "export"), "draw", version=1
    )
    model, _, step = export_saved_model_lib.load_model(str(workdir))
    assert step == on_jax["step"]
    noise = np.random.default_rng(0).normal(size=(2, 3, 3)).astype(np.float32)
    predictor = SessionPredictor(path)
    try:
        served = predictor.predict("generate_from_noise", {"noise": noise})
    finally:
        predictor.close()
    np.testing.assert_allclose(
        served["images"],
        model.generate(noise=noise)["images"].numpy(),
        atol=1e-5,
    )
    # ... and ships it, with the JAX run's machine and training time.
    from export import ship_pretrained_lib

    record = ship_pretrained_lib.ship(
        str(workdir),
        "from_jax",
        importance_samples=2,
        subset_size=8,
        output_dir=str(tmp_path / "shipped"),
    )
    assert record["steps"] == on_jax["step"]
    assert record["machines"][0]["backend"] == "jax"
    state = json.loads(
        (workdir / "keras_checkpoints" / "state.json").read_text()
    )
    assert state["train_seconds"] > 0
    assert record["training_wall_hours"] == round(
        state["train_seconds"] / 3600, 2
    )


def test_train_py_on_jax_prints_only_its_own_lines(tmp_path):
    # TensorFlow installed but not blocked, as on a user's machine with
    # both: nothing imports it, and neither its probe lines nor JAX's TPU
    # line reach the output.
    script = (
        "import atexit, runpy, sys\n"
        "atexit.register(lambda: print('tensorflow imported:', "
        "'tensorflow' in sys.modules))\n"
        f"sys.argv = ['train.py', '--dataset=synthetic', "
        f"'--workdir={tmp_path / 'run'}', '--train_steps=2', "
        "'--num_steps=2', '--encoder_units=4', '--decoder_units=4', "
        "'--latent_size=2', '--batch_size=4', '--num_pictures=2', "
        "'--importance_samples=2', '--synthetic_image_size=8', "
        "'--read_glimpse_size=2', '--write_patch_size=2']\n"
        "runpy.run_path('train.py', run_name='__main__')\n"
    )
    completed = run_on_jax(["-c", script], timeout=300, block_tensorflow=False)
    output = completed.stdout + completed.stderr
    assert "tensorflow imported: False" in completed.stdout, output[-4000:]
    for noise in ("cuda", "InitializeLog", "oneDNN", "libtpu"):
        assert noise not in output, (noise, output[-4000:])
    assert re.search(r"step 2/2 .*-ELBO", output), output[-4000:]
    assert '"split": "test"' in completed.stdout
