"""Serving an instructed model: draw_instructions, generate by class.

A tiny `ConditionalDrawModel` exported (export/instructed_serving.py), run
the way TF Serving runs it (a TF1 Session, by tensor names) and through a
gRPC servicer and a REST server on 127.0.0.1 (tests/serving_fakes.py),
with serving/client.py --instructions.
"""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from draw_tf import config as config_lib
from draw_tf import models
from draw_tf import workdir as workdir_layout
from export import export_saved_model_lib
from serving import client_lib
from serving.session_predictor import PredictError, SessionPredictor
from tests import serving_fakes
from tests.tiny_run import TINY_INSTRUCTED_MODEL

# End to end (exports, servers, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
TINY = TINY_INSTRUCTED_MODEL


def _workdir(directory, **overrides) -> str:
    """A workdir of an untrained tiny instructed model, as fit() writes it."""
    config = config_lib.TrainConfig(
        workdir=str(directory), **dict(TINY, **overrides)
    ).validate()
    image_shape = (60, 60, 1) if config.num_places else (28, 28, 1)
    keras.utils.set_random_seed(0)
    model = models.build(config, image_shape)
    config_lib.check_workdir_architecture(config, image_shape)
    best = workdir_layout.path(str(directory), workdir_layout.BEST)
    os.makedirs(best, exist_ok=True)
    model.save_weights(
        workdir_layout.path(str(directory), workdir_layout.KERAS_BEST_WEIGHTS)
    )
    with open(
        workdir_layout.path(str(directory), workdir_layout.KERAS_BEST_STATE),
        "w",
    ) as file:
        json.dump({"step": 5, "negative_elbo": 1.0}, file)
    return str(directory)


@pytest.fixture(scope="module")
def instructed(tmp_path_factory):
    """(model, SessionPredictor) of a 3-turn model with places, max batch 4.

    With place frames, as the shipped instructed model.
    """
    base = tmp_path_factory.mktemp("instructed")
    workdir = _workdir(
        base / "run",
        dataset="instructed_mnist",
        num_turns=3,
        place_frames=True,
    )
    path = export_saved_model_lib.export(
        workdir, str(base / "export"), "draw", version=1, max_batch_size=4
    )
    model, _, _ = export_saved_model_lib.load_model(workdir)
    predictor = SessionPredictor(path)
    yield model, predictor, path
    predictor.close()


@pytest.fixture(scope="module")
def class_conditional(tmp_path_factory):
    base = tmp_path_factory.mktemp("class_conditional")
    workdir = _workdir(base / "run", dataset="mnist", num_turns=1)
    path = export_saved_model_lib.export(
        workdir, str(base / "export"), "draw", version=1
    )
    model, _, _ = export_saved_model_lib.load_model(workdir)
    predictor = SessionPredictor(path)
    yield model, predictor
    predictor.close()


def _noise(model, seeds):
    shape = [model.num_turns, model.steps_per_turn, model.latent_size]
    return np.stack(
        [
            tf.random.stateless_normal(shape, seed=[seed, 0]).numpy()
            for seed in seeds
        ]
    )


def test_draw_instructions_is_the_models_drawing_turn_by_turn(instructed):
    model, predictor, _ = instructed
    assert set(predictor.signature_defs) == {
        "draw_instructions",
        "serving_default",
    }
    classes = np.array([[7, 3, 1], [0, 9, 4]], np.int64)
    places = np.array([[0, 3, 1], [2, 1, 0]], np.int64)
    seeds = np.array([5, 6], np.int64)
    served = predictor.predict(
        "draw_instructions",
        {"classes": classes, "places": places, "seeds": seeds},
    )
    assert served["images"].shape == (2, 3, 60, 60, 1)
    assert served["write_windows"].shape == (2, 3, 2, 5)
    expected = model.generate(classes, places, noise=_noise(model, seeds))
    np.testing.assert_allclose(
        served["images"],
        keras.ops.convert_to_numpy(expected["images"]),
        atol=1e-5,
    )
    # Fewer turns: the same first turns, for the same seeds.
    two = predictor.predict(
        "",
        {"classes": classes[:, :2], "places": places[:, :2], "seeds": seeds},
    )
    assert two["images"].shape == (2, 2, 60, 60, 1)
    np.testing.assert_allclose(
        two["images"], served["images"][:, :2], atol=1e-5
    )


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (dict(classes=[[10]], places=[[0]]), "classes: digit classes must be"),
        (dict(classes=[[-1]], places=[[0]]), "classes: digit classes must be"),
        (dict(classes=[[1]], places=[[4]]), "places: quadrants must be in 0-3"),
        (
            dict(classes=[[1, 2]], places=[[3, 3]]),
            "places: the places of one episode must be distinct",
        ),
        (
            dict(classes=[[1, 2, 3, 4]], places=[[0, 1, 2, 3]]),
            "classes: at most 3 turns",
        ),
        (dict(classes=[[1, 2]], places=[[0]]), "places: one place per turn"),
        (
            dict(classes=[[1, 2]], places=[[0, 1, 2]]),
            "places: one place per turn",
        ),
        (
            dict(classes=[[1]] * 5, places=[[0]] * 5),
            "classes: the batch is above the maximum of 4",
        ),
        (dict(classes=[[1]], places=[[0]], seeds=[1, 2]), "seeds: one seed"),
    ],
)
def test_bad_requests_are_invalid_argument_naming_the_input(
    instructed, inputs, message
):
    _, predictor, _ = instructed
    arrays = {key: np.array(value, np.int64) for key, value in inputs.items()}
    arrays.setdefault("seeds", np.arange(len(arrays["classes"])))
    with pytest.raises(PredictError, match=message) as error:
        predictor.predict("draw_instructions", arrays)
    assert error.value.code == "INVALID_ARGUMENT"
    assert "\n" not in error.value.message


def test_warmup_requests_run_on_every_signature(instructed):
    from tensorflow_serving.apis import prediction_log_pb2

    _, predictor, path = instructed
    warmup = os.path.join(
        path, "assets.extra", export_saved_model_lib.WARMUP_FILE
    )
    signatures = []
    for record in tf.data.TFRecordDataset(warmup):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = predictor.predict(request.model_spec.signature_name, inputs)
        assert outputs["images"].shape[:2] == (2, 3)
        signatures.append(request.model_spec.signature_name)
    assert sorted(signatures) == sorted(predictor.signature_defs)


def test_an_export_of_batch_one_warms_up_with_batch_one(tmp_path):
    # Warmup requests above --max_batch_size would be refused, and the
    # server would not load the model.
    from tensorflow_serving.apis import prediction_log_pb2

    workdir = _workdir(tmp_path / "run", dataset="mnist", num_turns=1)
    path = export_saved_model_lib.export(
        workdir, str(tmp_path / "export"), "draw", version=1, max_batch_size=1
    )
    predictor = SessionPredictor(path)
    warmup = os.path.join(
        path, "assets.extra", export_saved_model_lib.WARMUP_FILE
    )
    try:
        for record in tf.data.TFRecordDataset(warmup):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = log.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            assert all(len(value) == 1 for value in inputs.values())
            predictor.predict(request.model_spec.signature_name, inputs)
    finally:
        predictor.close()
    shape = (28, 28, 1)
    for inputs in export_saved_model_lib.warmup_inputs(
        4, 3, shape, batch_size=1
    ).values():
        assert all(len(value) == 1 for value in inputs.values())


def test_class_conditional_generate_takes_classes(class_conditional):
    model, predictor = class_conditional
    assert set(predictor.signature_defs) == {
        "draw_instructions",
        "generate",
        "serving_default",
    }
    classes, seeds = np.array([7, 3], np.int64), np.array([1, 2], np.int64)
    served = predictor.predict("", {"classes": classes, "seeds": seeds})
    assert served["images"].shape == (2, 28, 28, 1)
    expected = model.generate(
        classes[:, None], None, noise=_noise(model, seeds)
    )["images"][:, 0]
    np.testing.assert_allclose(
        served["images"], keras.ops.convert_to_numpy(expected), atol=1e-5
    )
    episodes = predictor.predict(
        "draw_instructions", {"classes": classes[:, None], "seeds": seeds}
    )
    np.testing.assert_allclose(
        episodes["images"][:, 0], served["images"], atol=1e-6
    )
    with pytest.raises(PredictError, match="classes: digit classes") as error:
        predictor.predict(
            "generate", {"classes": np.array([11]), "seeds": np.array([0])}
        )
    assert error.value.code == "INVALID_ARGUMENT"


def _client(*args):
    return subprocess.run(
        [sys.executable, str(ROOT / "serving" / "client.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def test_client_draws_instructions_over_grpc_and_rest(instructed, tmp_path):
    from PIL import Image

    model, predictor, _ = instructed
    with (
        serving_fakes.grpc_server(predictor) as grpc_address,
        serving_fakes.rest_server(predictor) as rest_address,
    ):
        for protocol, address in (
            ("grpc", grpc_address),
            ("rest", rest_address),
        ):
            output = tmp_path / f"{protocol}.png"
            result = _client(
                f"--server={address}",
                f"--protocol={protocol}",
                "--instructions=7 top-left; 3 bottom-right",
                "--num_samples=3",
                f"--output={output}",
            )
            assert result.returncode == 0, result.stderr[-2000:]
            width, height = Image.open(output).size
            # A row per episode, a column per turn, 60 pixels scaled x 2.
            assert (width, height) == (2 * 120, 3 * 120)
        # A ";" after the last turn is allowed; an empty turn is not.
        assert client_lib.instruction_request("7 top-left;", 1)[2] == 1
        with pytest.raises(client_lib.ClientError, match="empty turn"):
            client_lib.instruction_request("7 top-left;; 3 top-right", 1)
        # The server names what the model can't draw.
        inputs = client_lib.instruction_request(
            "1 top-left; 2 top-left", count=1
        )[1]
        with pytest.raises(client_lib.ClientError, match="distinct") as error:
            client_lib.grpc_predict(
                grpc_address, "draw", "draw_instructions", inputs
            )
        assert "INVALID_ARGUMENT" in str(error.value)
    bad = _client("--server=127.0.0.1:1", "--instructions=7 middle")
    assert bad.returncode == 2
    assert bad.stderr.strip().startswith(
        "client.py: error: --instructions: '7 middle' is not an instruction"
    )
