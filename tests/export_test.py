"""Tests of the SavedModel export, run the way TF Serving runs it."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

import draw_tf
from export import export_saved_model_lib as export_lib
from serving.session_predictor import PredictError

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
IMAGE_SHAPE, T, Z = (8, 8, 1), 3, 3


@pytest.fixture(scope="module")
def in_memory(exported_model):
    model, _, _ = export_lib.load_model(str(exported_model[0]))
    return export_lib.DrawServingModule(model)


def test_layout_is_what_tensorflow_model_server_reads(exported_model):
    path = pathlib.Path(exported_model[1])
    assert path.name == "7" and path.parent.name == "draw"
    assert (path / "saved_model.pb").is_file()
    assert list((path / "variables").glob("variables.index"))
    assert (path / "assets.extra" / export_lib.WARMUP_FILE).is_file()
    info = json.loads((path / "assets.extra" / "export_info.json").read_text())
    assert info["step"] == 4 and "best" in info["checkpoint"]
    assert not list(path.parent.glob(".tmp-*"))


def test_signature_defs_are_as_specified(predictor):
    signatures = predictor.signature_defs
    assert set(signatures) == set(export_lib.SIGNATURES)
    expected = {
        "generate": (
            {"seeds": (tf.int64, [-1])},
            {"images": (tf.float32, [-1, *IMAGE_SHAPE])},
        ),
        "generate_from_noise": (
            {"noise": (tf.float32, [-1, T, Z])},
            {"images": (tf.float32, [-1, *IMAGE_SHAPE])},
        ),
        "canvas_sequence": (
            {"seeds": (tf.int64, [-1])},
            {
                "canvases": (tf.float32, [-1, T, *IMAGE_SHAPE]),
                "write_windows": (tf.float32, [-1, T, 5]),
            },
        ),
        "reconstruct": (
            {
                "images": (tf.float32, [-1, *IMAGE_SHAPE]),
                "seeds": (tf.int64, [-1]),
            },
            {
                "reconstructions": (tf.float32, [-1, *IMAGE_SHAPE]),
                "nll_bound": (tf.float32, [-1]),
            },
        ),
    }
    expected["serving_default"] = expected["generate"]
    for name, (inputs, outputs) in expected.items():
        signature = signatures[name]
        assert signature.method_name == "tensorflow/serving/predict"
        for infos, wanted in (
            (signature.inputs, inputs),
            (signature.outputs, outputs),
        ):
            assert set(infos) == set(wanted), name
            for key, (dtype, shape) in wanted.items():
                assert infos[key].dtype == dtype.as_datatype_enum, (name, key)
                dims = [d.size for d in infos[key].tensor_shape.dim]
                assert dims == shape, (name, key)
        # Named tensors, not auto-generated input names.
        for key, info in signature.inputs.items():
            assert key in info.name


def test_outputs_equal_the_in_memory_model(predictor, in_memory):
    seeds = np.array([5, -3, 2**40], np.int64)
    noise = in_memory.noise_from_seeds(seeds)
    model = in_memory.model
    expected = model.generate(noise=noise)
    served = predictor.predict("generate", {"seeds": seeds})
    np.testing.assert_allclose(served["images"], expected["images"], 1e-5, 1e-6)
    served = predictor.predict("generate_from_noise", {"noise": noise.numpy()})
    np.testing.assert_allclose(served["images"], expected["images"], 1e-5, 1e-6)
    served = predictor.predict("canvas_sequence", {"seeds": seeds})
    np.testing.assert_allclose(
        served["canvases"], expected["canvases"], 1e-5, 1e-6
    )
    np.testing.assert_allclose(
        served["write_windows"], expected["write_windows"], 1e-5, 1e-5
    )
    images = np.random.default_rng(0).uniform(size=(3, *IMAGE_SHAPE)) > 0.5
    images = images.astype(np.float32)
    outputs = model(images, noise=noise)
    served = predictor.predict(
        "reconstruct", {"images": images, "seeds": seeds}
    )
    np.testing.assert_allclose(
        served["reconstructions"],
        tf.sigmoid(outputs["canvas_logits"]),
        1e-5,
        1e-6,
    )
    np.testing.assert_allclose(
        served["nll_bound"],
        draw_tf.negative_elbo(images, outputs)["negative_elbo"],
        rtol=1e-5,
    )


def test_a_seed_gives_the_same_image_in_any_call_and_position(predictor):
    first = predictor.predict("generate", {"seeds": np.array([1, 2, 3])})
    repeated = predictor.predict("generate", {"seeds": np.array([1, 2, 3])})
    again = predictor.predict("generate", {"seeds": np.array([3, 9, 1])})
    # The same request gives the same bits.
    np.testing.assert_array_equal(first["images"], repeated["images"])
    # Another batch position gives the same image up to float rounding: on
    # AVX-512 CPUs the matrix kernels round a row differently by its
    # position in the batch (seen: one pixel in 64 off by 6e-8).
    np.testing.assert_allclose(first["images"][0], again["images"][2], 0, 1e-6)
    np.testing.assert_allclose(first["images"][2], again["images"][0], 0, 1e-6)
    assert not np.allclose(first["images"][0], first["images"][1], 0, 1e-3)


def test_every_warmup_record_replays(predictor, exported_model):
    path = os.path.join(
        exported_model[1], "assets.extra", export_lib.WARMUP_FILE
    )
    signatures = []
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "draw"
        inputs = {
            key: tf.make_ndarray(value) for key, value in request.inputs.items()
        }
        outputs = predictor.predict(request.model_spec.signature_name, inputs)
        assert all(np.all(np.isfinite(v)) for v in outputs.values())
        signatures.append(request.model_spec.signature_name)
    assert sorted(signatures) == sorted(export_lib.SIGNATURES)


@pytest.mark.parametrize(
    "signature,inputs,message",
    [
        ("generate", {"seeds": np.array([1.0, 2.0])}, "to be int64"),
        ("generate", {"seeds": np.array([[1, 2]], np.int64)}, "shape"),
        ("nope", {"seeds": np.array([1], np.int64)}, '"nope" not found'),
        ("generate", {"seeds": np.array([], np.int64)}, "batch is empty"),
        ("generate", {"noise": np.zeros([1, T, Z], np.float32)}, "input keys"),
        (
            "generate_from_noise",
            {"noise": np.zeros([0, T, Z], np.float32)},
            "batch is empty",
        ),
        (
            "reconstruct",
            {
                "images": np.full([1, *IMAGE_SHAPE], 3, np.float32),
                "seeds": np.array([1], np.int64),
            },
            "in [0, 1]",
        ),
        (
            "reconstruct",
            {
                "images": np.zeros([2, *IMAGE_SHAPE], np.float32),
                "seeds": np.array([1], np.int64),
            },
            "same batch size",
        ),
        (
            "reconstruct",
            {
                "images": np.full([1, *IMAGE_SHAPE], np.nan, np.float32),
                "seeds": np.array([1], np.int64),
            },
            "images: every value must be finite",
        ),
        (
            "generate_from_noise",
            {"noise": np.full([1, T, Z], np.nan, np.float32)},
            "noise: every value must be finite",
        ),
        (
            "generate_from_noise",
            {"noise": np.full([2, T, Z], -np.inf, np.float32)},
            "noise: every value must be finite",
        ),
        (
            "generate_from_noise",
            {"noise": np.full([1, T, Z], 1e6, np.float32)},
            "noise: values must be in [-100, 100]",
        ),
        (
            "generate",
            {"seeds": np.arange(1025, dtype=np.int64)},
            "above the maximum of 1024 examples",
        ),
        (
            "canvas_sequence",
            {"seeds": np.arange(200_000, dtype=np.int64)},
            "above the maximum of 1024 examples",
        ),
        (
            "generate_from_noise",
            {"noise": np.zeros([1025, T, Z], np.float32)},
            "above the maximum of 1024 examples",
        ),
    ],
)
def test_bad_requests_are_invalid_argument(
    predictor, signature, inputs, message
):
    with pytest.raises(PredictError, match=re.escape(message)) as error:
        predictor.predict(signature, inputs)
    assert error.value.code == "INVALID_ARGUMENT"
    assert "\n" not in error.value.message


def test_loads_in_other_tensorflow_code(exported_model, predictor):
    seeds = tf.constant([4, 8], tf.int64)
    expected = predictor.predict("generate", {"seeds": seeds.numpy()})["images"]
    loaded = tf.saved_model.load(exported_model[1])
    images = loaded.signatures["generate"](seeds=seeds)["images"]
    np.testing.assert_allclose(images, expected, rtol=1e-6)
    layer = keras.layers.TFSMLayer(exported_model[1], call_endpoint="generate")
    np.testing.assert_allclose(layer(seeds)["images"], expected, rtol=1e-6)


def test_checkpoint_of_another_architecture_is_refused(
    trained_workdir, tmp_path
):
    workdir = tmp_path / "changed"
    shutil.copytree(trained_workdir, workdir)
    config = json.loads((workdir / "config.json").read_text())
    config["architecture"]["encoder_units"] = 9
    (workdir / "config.json").write_text(json.dumps(config))
    with pytest.raises(export_lib.ExportError, match="does not match"):
        export_lib.export(str(workdir), str(tmp_path / "out"), version=1)
    assert not (tmp_path / "out" / "draw" / "1").exists()


def test_export_binary_and_its_errors(trained_workdir, tmp_path):
    binary = [sys.executable, str(ROOT / "export" / "export_saved_model.py")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [
            *binary,
            f"--workdir={trained_workdir}",
            f"--export_base={tmp_path}",
            "--version=3",
            f"--checkpoint={trained_workdir}/checkpoints/ckpt-2",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(os.path.join("draw", "3"))
    for args, message in (
        ([f"--workdir={trained_workdir}", "--version=3"], "exists already"),
        ([f"--workdir={tmp_path}/none"], "config.json not found"),
        (
            [f"--workdir={trained_workdir}", "--checkpoint=/no/ckpt-1"],
            "no such checkpoint",
        ),
    ):
        bad = subprocess.run(
            [*binary, f"--export_base={tmp_path}", *args],
            capture_output=True,
            text=True,
            timeout=240,
            env=env,
        )
        assert bad.returncode == 2, bad.stderr[-2000:]
        last = bad.stderr.strip().splitlines()[-1]
        assert last.startswith("export_saved_model.py: error:"), last
        assert message in last and "Traceback" not in bad.stderr
