"""Tests of serving: gRPC and REST clients, config files, the real server.

No tensorflow_model_server here: a PredictionService servicer on 127.0.0.1
serves the export through the TF1 Session path (SessionPredictor) and a
loopback HTTP server speaks TF Serving's REST API over the same path. If
the real binary is on PATH, test_real_model_server uses it.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from serving import client_lib
from tests import serving_fakes

# End to end (binaries, subprocesses): not in the quick loop.
pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grpc_server(predictor):
    with serving_fakes.grpc_server(predictor) as address:
        yield address


@pytest.fixture(scope="module")
def rest_server(predictor):
    with serving_fakes.rest_server(predictor) as address:
        yield address


def _client(*args, timeout=120):
    return subprocess.run(
        [sys.executable, str(ROOT / "serving" / "client.py"), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def test_client_binary_over_grpc_writes_a_grid(grpc_server, tmp_path):
    output = tmp_path / "grid.png"
    result = _client(
        f"--server={grpc_server}",
        "--protocol=grpc",
        "--num_samples=5",
        "--requests=3",
        f"--output={output}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3 request(s) of 5 images via grpc: p50" in result.stdout
    assert output.stat().st_size > 100
    metadata = _client(f"--server={grpc_server}", "--metadata")
    assert metadata.returncode == 0, metadata.stderr[-2000:]
    signatures = json.loads(metadata.stdout)["metadata"]["signature_def"]
    assert "generate" in signatures["signatureDef"]


def test_client_needs_no_model_code(tmp_path):
    # draw_tf made unimportable: the client and its PNG grid still work.
    code = (
        "import sys; sys.modules['draw_tf'] = None\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "import numpy as np\n"
        "from serving import client, client_lib\n"
        "images = np.random.default_rng(0).uniform(size=(10, 6, 5, 1))\n"
        f"client_lib.png_grid(images, {str(tmp_path / 'g.png')!r}, columns=4)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    picture = np.asarray(Image.open(tmp_path / "g.png"))
    assert picture.shape == (3 * 6 * 2, 4 * 5 * 2, 3)  # 3 rows, 4 columns


def test_grpc_predict_matches_the_session_path(grpc_server, predictor):
    seeds = np.array([3, 1, 4], np.int64)
    outputs = client_lib.grpc_predict(
        grpc_server, "draw", "canvas_sequence", {"seeds": seeds}
    )
    expected = predictor.predict("canvas_sequence", {"seeds": seeds})
    assert set(outputs) == {"canvases", "write_windows"}
    for key in outputs:
        np.testing.assert_array_equal(outputs[key], expected[key])


def test_grpc_errors_are_one_line(grpc_server):
    for model, signature, inputs, message in (
        (
            "draw",
            "generate",
            {"seeds": np.array([], np.int64)},
            "INVALID_ARGUMENT: seeds: the batch is empty",
        ),
        (
            "draw",
            "generate",
            {"seeds": np.array([0.5])},
            "INVALID_ARGUMENT: Expects arg 'seeds' to be int64",
        ),
        (
            "draw",
            "sample",
            {"seeds": np.array([1])},
            'INVALID_ARGUMENT: Serving signature name: "sample" not found',
        ),
        ("other", "generate", {"seeds": np.array([1])}, "NOT_FOUND"),
        (
            "draw",
            "generate",
            {"seeds": np.arange(200_000)},
            "INVALID_ARGUMENT: seeds: the batch is above the maximum of "
            "1024 examples",
        ),
        (
            "draw",
            "generate_from_noise",
            {"noise": np.full([1, 3, 3], np.nan, np.float32)},
            "INVALID_ARGUMENT: noise: every value must be finite",
        ),
    ):
        with pytest.raises(client_lib.ClientError, match=message) as error:
            client_lib.grpc_predict(grpc_server, model, signature, inputs)
        assert "\n" not in str(error.value)
    closed = f"127.0.0.1:{serving_fakes.free_port()}"
    with pytest.raises(client_lib.ClientError, match="cannot reach the gRPC"):
        client_lib.grpc_predict(
            closed, "draw", "generate", {"seeds": np.array([1])}, timeout=5
        )
    result = _client(f"--server={closed}", "--timeout=5")
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("client.py: error: cannot reach the gRPC server")
    )


def test_rest_bodies_follow_the_tf_serving_rules():
    seeds = np.array([1, 2], np.int64)
    assert client_lib.rest_request_body("generate", {"seeds": seeds}) == {
        "signature_name": "generate",
        "instances": [1, 2],
    }
    assert client_lib.rest_request_body(
        "generate", {"seeds": seeds}, "columnar"
    ) == {"signature_name": "generate", "inputs": {"seeds": [1, 2]}}
    images = np.zeros([2, 1, 1, 1])
    body = client_lib.rest_request_body(
        "reconstruct", {"images": images, "seeds": seeds}
    )
    assert body["instances"] == [
        {"images": [[[0.0]]], "seeds": 1},
        {"images": [[[0.0]]], "seeds": 2},
    ]
    # Responses: one output is unnamed, several are keyed by name.
    one = client_lib.parse_rest_response(
        {"predictions": [[0.5], [0.25]]}, ["images"]
    )
    np.testing.assert_array_equal(one["images"], [[0.5], [0.25]])
    several = client_lib.parse_rest_response(
        {"predictions": [{"a": 1, "b": [2]}, {"a": 3, "b": [4]}]}, ["a", "b"]
    )
    np.testing.assert_array_equal(several["b"], [[2], [4]])
    columnar = client_lib.parse_rest_response(
        {"outputs": [[1.0]]}, ["images"], "columnar"
    )
    np.testing.assert_array_equal(columnar["images"], [[1.0]])
    named = client_lib.parse_rest_response(
        {"outputs": {"a": [1], "b": [2]}}, ["a", "b"], "columnar"
    )
    assert set(named) == {"a", "b"}
    with pytest.raises(client_lib.ClientError, match="server error: bad"):
        client_lib.parse_rest_response({"error": "bad\nthing"}, ["images"])
    with pytest.raises(ValueError, match="rest_format"):
        client_lib.rest_request_body("generate", {"seeds": seeds}, "rows")


@pytest.mark.parametrize("rest_format", ["row", "columnar"])
def test_rest_client_end_to_end(rest_server, predictor, tmp_path, rest_format):
    seeds = np.array([7, 8], np.int64)
    expected = predictor.predict("generate", {"seeds": seeds})["images"]
    outputs = client_lib.rest_predict(
        rest_server,
        "draw",
        "generate",
        {"seeds": seeds},
        ["images"],
        rest_format,
    )
    np.testing.assert_allclose(outputs["images"], expected, rtol=1e-6)
    images = np.zeros([2, 8, 8, 1], np.float32)
    reconstructed = client_lib.rest_predict(
        rest_server,
        "draw",
        "reconstruct",
        {"images": images, "seeds": seeds},
        ["reconstructions", "nll_bound"],
        rest_format,
    )
    assert reconstructed["nll_bound"].shape == (2,)
    with pytest.raises(client_lib.ClientError, match="server error 400"):
        client_lib.rest_predict(
            rest_server,
            "draw",
            "generate",
            {"seeds": np.array([], np.int64)},
            ["images"],
            rest_format,
        )
    result = _client(
        f"--server={rest_server}",
        "--protocol=rest",
        f"--rest_format={rest_format}",
        f"--output={tmp_path / 'g.png'}",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "g.png").stat().st_size > 100
    metadata = client_lib.rest_metadata(rest_server, "draw")
    assert "generate" in metadata["metadata"]["signature_def"]


def test_rest_connection_error_is_one_line():
    with pytest.raises(client_lib.ClientError, match="cannot reach http://"):
        client_lib.rest_predict(
            f"127.0.0.1:{serving_fakes.free_port()}",
            "draw",
            "generate",
            {"seeds": np.array([1])},
            ["images"],
            timeout=5,
        )


def test_models_config_parses_with_the_serving_protos():
    config = text_format.Parse(
        (ROOT / "serving" / "models.config").read_text(),
        model_server_config_pb2.ModelServerConfig(),
    )
    (model,) = config.model_config_list.config
    assert model.name == "draw" and model.model_platform == "tensorflow"
    assert model.base_path == "/models/draw"


def test_batching_parameters_name_known_fields():
    known = {
        "max_batch_size",
        "batch_timeout_micros",
        "max_enqueued_batches",
        "num_batch_threads",
        "allowed_batch_sizes",
        "pad_variable_length_inputs",
    }
    text = (ROOT / "serving" / "batching_parameters.txt").read_text()
    fields = [
        line.split()[0].rstrip(":")
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert fields and set(fields) <= known


@pytest.mark.skipif(
    shutil.which("tensorflow_model_server") is None,
    reason="tensorflow_model_server is not on PATH",
)
def test_real_model_server(exported_model, tmp_path):
    grpc_port, rest_port = serving_fakes.free_port(), serving_fakes.free_port()
    base = pathlib.Path(exported_model[1]).parent
    server = subprocess.Popen(
        [
            "tensorflow_model_server",
            f"--port={grpc_port}",
            f"--rest_api_port={rest_port}",
            "--model_name=draw",
            f"--model_base_path={base}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client_lib.rest_metadata(f"127.0.0.1:{rest_port}", "draw", 2)
                break
            except client_lib.ClientError:
                assert time.monotonic() < deadline, "server not ready in 60 s"
                time.sleep(0.5)
        seeds = {"seeds": np.array([1, 2], np.int64)}
        by_rest = client_lib.rest_predict(
            f"127.0.0.1:{rest_port}", "draw", "generate", seeds, ["images"]
        )
        by_grpc = client_lib.grpc_predict(
            f"127.0.0.1:{grpc_port}", "draw", "generate", seeds
        )
        np.testing.assert_allclose(by_rest["images"], by_grpc["images"], 1e-6)
    finally:
        server.terminate()
        server.wait(timeout=30)
