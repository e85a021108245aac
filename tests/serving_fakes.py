"""TF Serving's answers without its binary: a gRPC servicer and a REST server.

Both run a SessionPredictor (the TF1 Session path TF Serving takes) on
127.0.0.1 inside a test; tests/serving_test.py and
tests/instructed_serving_test.py talk to them with serving/client_lib.py.
"""

import contextlib
import http.server
import json
import socket
import threading
from concurrent import futures

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from serving.session_predictor import PredictError


class SessionPredictionService(
    prediction_service_pb2_grpc.PredictionServiceServicer
):
    """PredictionService over a SessionPredictor, as TF Serving answers."""

    def __init__(self, predictor, model_name="draw", version=7):
        self.predictor = predictor
        self.model_name = model_name
        self.version = version

    def _check_model(self, model_spec, context):
        if model_spec.name != self.model_name:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Latest({model_spec.name})",
            )

    def Predict(self, request, context):  # noqa: N802 (gRPC method name)
        self._check_model(request.model_spec, context)
        inputs = {
            key: tf.make_ndarray(value) for key, value in request.inputs.items()
        }
        try:
            outputs = self.predictor.predict(
                request.model_spec.signature_name, inputs
            )
        except PredictError as error:
            context.abort(grpc.StatusCode[error.code], error.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = self.version
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):  # noqa: N802
        self._check_model(request.model_spec, context)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in self.predictor.signature_defs.items():
            signatures.signature_def[name].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = self.version
        response.metadata["signature_def"].Pack(signatures)
        return response


class RestHandler(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST :predict and metadata over a SessionPredictor."""

    predictor = None

    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):  # noqa: N802
        if self.path != "/v1/models/draw/metadata":
            return self._reply(404, {"error": "Servable not found"})
        signatures = list(self.predictor.signature_defs)
        self._reply(200, {"metadata": {"signature_def": signatures}})

    def do_POST(self):  # noqa: N802
        if self.path != "/v1/models/draw:predict":
            return self._reply(404, {"error": "Servable not found"})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        try:
            signature = self.predictor.signature(body.get("signature_name", ""))
            names = list(signature.inputs)
            if "instances" in body:
                instances = body["instances"]
                if instances and isinstance(instances[0], dict):
                    raw = {n: [row[n] for row in instances] for n in names}
                else:
                    raw = {names[0]: instances}
            else:
                raw = body["inputs"]
                if not isinstance(raw, dict):
                    raw = {names[0]: raw}
            inputs = {
                name: np.asarray(
                    value,
                    tf.dtypes.as_dtype(
                        signature.inputs[name].dtype
                    ).as_numpy_dtype,
                )
                for name, value in raw.items()
            }
            outputs = self.predictor.predict(
                body.get("signature_name", ""), inputs
            )
        except PredictError as error:
            return self._reply(400, {"error": error.message})
        if "instances" in body:
            if len(outputs) == 1:
                (value,) = outputs.values()
                return self._reply(200, {"predictions": value.tolist()})
            size = len(next(iter(outputs.values())))
            rows = [
                {name: value[index].tolist() for name, value in outputs.items()}
                for index in range(size)
            ]
            return self._reply(200, {"predictions": rows})
        if len(outputs) == 1:
            (value,) = outputs.values()
            return self._reply(200, {"outputs": value.tolist()})
        return self._reply(
            200, {"outputs": {k: v.tolist() for k, v in outputs.items()}}
        )


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def grpc_server(predictor, model_name="draw"):
    """A PredictionService on 127.0.0.1; yields its host:port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        SessionPredictionService(predictor, model_name), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None)


@contextlib.contextmanager
def rest_server(predictor):
    """TF Serving's REST API for model "draw" on 127.0.0.1; its host:port."""
    handler = type("Handler", (RestHandler,), {"predictor": predictor})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
