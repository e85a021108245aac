"""Talks to TensorFlow Serving: REST (row and columnar) and gRPC.

REST request and response bodies follow TF Serving's REST API:

  row:      {"signature_name": S, "instances": [...]}
            -> {"predictions": [...]}
  columnar: {"signature_name": S, "inputs": {...}} -> {"outputs": ...}

In the row format, a signature with one input takes a list of values and
one with several takes a list of objects keyed by input name; predictions
are a list of values when the signature has one output, else a list of
objects keyed by output name. In the columnar format, "outputs" is the
value itself for one output, else an object keyed by output name. Errors
come back as {"error": message}.
"""

import json
import re
import time
import urllib.error
import urllib.request

import numpy as np

REST_FORMATS = ("row", "columnar")
# The places of an instructed model (draw_tf.instructed_mnist.PLACES).
PLACES = ("top-left", "top-right", "bottom-left", "bottom-right")


class ClientError(Exception):
    """A failed request, with a one-line message."""


def rest_request_body(
    signature_name: str, inputs: dict, rest_format: str = "row"
) -> dict:
    """The JSON body of a REST :predict request.

    Args:
      signature_name: the signature to run.
      inputs: input name -> array, each with the batch as its first axis.
      rest_format: "row" (instances) or "columnar" (inputs).

    Returns:
      A JSON-serialisable dict.
    """
    if rest_format not in REST_FORMATS:
        raise ValueError(
            f"rest_format must be one of {REST_FORMATS}; got {rest_format!r}"
        )
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    if rest_format == "columnar":
        return {
            "signature_name": signature_name,
            "inputs": {name: value.tolist() for name, value in arrays.items()},
        }
    if len(arrays) == 1:
        (value,) = arrays.values()
        instances = value.tolist()
    else:
        sizes = {len(value) for value in arrays.values()}
        if len(sizes) != 1:
            raise ValueError("row format needs inputs of one batch size")
        instances = [
            {name: value[index].tolist() for name, value in arrays.items()}
            for index in range(sizes.pop())
        ]
    return {"signature_name": signature_name, "instances": instances}


def parse_rest_response(
    body: dict, output_names: list[str], rest_format: str = "row"
) -> dict:
    """Decodes a REST :predict response into output name -> array.

    Args:
      body: the decoded JSON response.
      output_names: the signature's output names (needed when it has one
        output, which the response does not name).
      rest_format: the request's format.

    Returns:
      output name -> numpy array.

    Raises:
      ClientError: if the body is an error or malformed.
    """
    if "error" in body:
        raise ClientError(f"server error: {_one_line(body['error'])}")
    if rest_format == "row":
        if "predictions" not in body:
            raise ClientError("response has no 'predictions'")
        predictions = body["predictions"]
        if predictions and isinstance(predictions[0], dict):
            return {
                name: np.array([row[name] for row in predictions])
                for name in predictions[0]
            }
        return {_single(output_names): np.array(predictions)}
    if "outputs" not in body:
        raise ClientError("response has no 'outputs'")
    outputs = body["outputs"]
    if isinstance(outputs, dict):
        return {name: np.array(value) for name, value in outputs.items()}
    return {_single(output_names): np.array(outputs)}


def rest_predict(
    server: str,
    model_name: str,
    signature_name: str,
    inputs: dict,
    output_names: list[str],
    rest_format: str = "row",
    timeout: float = 30.0,
) -> dict:
    """POSTs a :predict request to http://SERVER/v1/models/MODEL:predict.

    Raises:
      ClientError: on connection, HTTP or server errors.
    """
    body = rest_request_body(signature_name, inputs, rest_format)
    url = f"http://{server}/v1/models/{model_name}:predict"
    response = _http(url, json.dumps(body).encode(), timeout)
    return parse_rest_response(response, output_names, rest_format)


def rest_metadata(server: str, model_name: str, timeout: float = 30.0) -> dict:
    """GETs http://SERVER/v1/models/MODEL/metadata."""
    return _http(
        f"http://{server}/v1/models/{model_name}/metadata", None, timeout
    )


def grpc_predict(
    server: str,
    model_name: str,
    signature_name: str,
    inputs: dict,
    timeout: float = 30.0,
) -> dict:
    """Calls PredictionService.Predict over gRPC.

    Raises:
      ClientError: on connection or server errors.
    """
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (
        model_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(
            name=model_name, signature_name=signature_name
        )
    )
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.Predict(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ClientError(_grpc_message(server, error)) from None
    return {
        name: tf.make_ndarray(tensor)
        for name, tensor in response.outputs.items()
    }


def grpc_metadata(server: str, model_name: str, timeout: float = 30.0) -> dict:
    """Calls PredictionService.GetModelMetadata (signature_def) over gRPC."""
    import grpc
    from google.protobuf import json_format
    from tensorflow_serving.apis import (
        get_model_metadata_pb2,
        model_pb2,
        prediction_service_pb2_grpc,
    )

    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name=model_name),
        metadata_field=["signature_def"],
    )
    with grpc.insecure_channel(server) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        try:
            response = stub.GetModelMetadata(request, timeout=timeout)
        except grpc.RpcError as error:
            raise ClientError(_grpc_message(server, error)) from None
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return {
        "model_spec": json_format.MessageToDict(response.model_spec),
        "metadata": {"signature_def": json_format.MessageToDict(signatures)},
    }


def instruction_request(text: str, count: int, seed: int = 0) -> tuple:
    """The request of text instructions: (signature, inputs, columns).

    "7 top-left; 3 bottom-right" (a turn per ";") asks draw_instructions
    for `count` episodes of these turns (seeds seed..seed+count-1), drawn
    a row each, a column per turn; "7, 3" asks a class-conditional model's
    generate for `count` digits of each class, a row per class. The
    client checks the syntax only; the server refuses what the model
    can't draw (INVALID_ARGUMENT naming the input).

    Raises:
      ClientError: for text of neither form (one line).
    """
    seeds = np.arange(seed, seed + count, dtype=np.int64)
    if re.fullmatch(r"\s*\d(\s*,\s*\d)*\s*", text):
        digits = [int(part) for part in text.split(",")]
        return (
            "generate",
            {
                "classes": np.repeat(np.array(digits, np.int64), count),
                "seeds": np.tile(seeds, len(digits)),
            },
            count,
        )
    turns = []
    # A ";" after the last turn is allowed: "7 top-left;".
    for part in text.strip().removesuffix(";").split(";"):
        if not part.strip():
            raise ClientError(
                f"--instructions: {text.strip()!r} has an empty turn "
                "between two ';'; expected e.g. '7 top-left; 3 bottom-right'"
            )
        match = re.fullmatch(r"\s*(\d)\s+([a-z-]+)\s*", part.lower())
        if not match or match.group(2) not in PLACES:
            raise ClientError(
                f"--instructions: {part.strip()!r} is not an instruction; "
                f"expected '<digit 0-9> <place>' with a place of "
                f"{', '.join(PLACES)}, turns separated by ';' (or digits "
                "'7, 3' for a class-conditional model)"
            )
        turns.append((int(match.group(1)), PLACES.index(match.group(2))))
    classes = np.array([[digit for digit, _ in turns]] * count, np.int64)
    places = np.array([[place for _, place in turns]] * count, np.int64)
    return (
        "draw_instructions",
        {"classes": classes, "places": places, "seeds": seeds},
        len(turns),
    )


def timed(function, *args, **kwargs):
    """(result, seconds) of one call."""
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def percentile_ms(seconds: list[float], percent: float) -> float:
    """The percentile of durations, in milliseconds."""
    return float(np.percentile(np.asarray(seconds) * 1000.0, percent))


def _single(output_names):
    if len(output_names) != 1:
        raise ClientError(
            "response has one unnamed output; expected outputs "
            f"{list(output_names)}"
        )
    return output_names[0]


def _http(url: str, data: bytes | None, timeout: float) -> dict:
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read()).get("error", error.reason)
        except ValueError:
            message = error.reason
        raise ClientError(
            f"server error {error.code} from {url}: {_one_line(message)}"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise ClientError(f"cannot reach {url}: {reason}") from None
    except ValueError as error:
        raise ClientError(f"{url} did not answer JSON: {error}") from None


def _grpc_message(server, error) -> str:
    code = error.code()
    details = _one_line(error.details() or "")
    if code.name == "UNAVAILABLE":
        return f"cannot reach the gRPC server at {server}: {details}"
    return f"server error {code.name}: {details}"


def _one_line(text) -> str:
    return " ".join(str(text).split())


def png_grid(images: np.ndarray, path: str, columns: int = 8, scale: int = 2):
    """Writes [n, height, width, 1 or 3] images in [0, 1] as one PNG grid.

    Pillow and NumPy only: a client needs no model code.
    """
    from PIL import Image

    images = np.clip(np.asarray(images, np.float32), 0.0, 1.0)
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    padded = np.zeros([rows * columns, height, width, channels], np.float32)
    padded[:count] = images
    # [rows, columns, H, W, C] -> [rows * H, columns * W, C], then enlarged.
    tiled = padded.reshape(rows, columns, height, width, channels)
    tiled = tiled.transpose(0, 2, 1, 3, 4).reshape(
        rows * height, columns * width, channels
    )
    tiled = np.repeat(np.repeat(tiled, scale, axis=0), scale, axis=1)
    pixels = (255 * tiled + 0.5).astype(np.uint8)
    if channels == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    Image.fromarray(pixels).save(path)
    return path
