"""Runs a SavedModel's signatures the way TF Serving's Predict does.

TF Serving loads a SavedModel with the TF1 loader into a Session and runs a
request's signature_def by the tensor names it lists, after checking the
request against the signature: a known signature name, exactly its input
keys, each input of the signature's dtype and of a compatible shape. This
class does the same, so the serving path can be tested and timed on a
machine without `tensorflow_model_server`. Errors carry the gRPC status
name TF Serving would return (INVALID_ARGUMENT for a bad request).
"""

import numpy as np
import tensorflow as tf

PREDICT_METHOD = "tensorflow/serving/predict"
DEFAULT_SIGNATURE = "serving_default"


class PredictError(Exception):
    """A failed request: `code` is a gRPC status name, e.g. INVALID_ARGUMENT.

    Args:
      code: the status name.
      message: what was wrong.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class SessionPredictor:
    """A SavedModel loaded into a TF1 Session, run by signature_def.

    Args:
      export_dir: a SavedModel version directory.
    """

    def __init__(self, export_dir: str):
        self.export_dir = export_dir
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(
                self.session, [tf.saved_model.SERVING], export_dir
            )
        self.signature_defs = {
            name: signature
            for name, signature in meta_graph.signature_def.items()
            if signature.method_name == PREDICT_METHOD
        }

    def predict(self, signature_name: str, inputs: dict) -> dict:
        """Runs one request.

        Args:
          signature_name: the signature; empty means serving_default.
          inputs: input key -> numpy array.

        Returns:
          output key -> numpy array.

        Raises:
          PredictError: INVALID_ARGUMENT for a bad request (as TF Serving).
        """
        signature = self.signature(signature_name)
        expected = set(signature.inputs)
        if set(inputs) != expected:
            raise PredictError(
                "INVALID_ARGUMENT",
                f"input keys {sorted(inputs)} do not match the signature's "
                f"{sorted(expected)}",
            )
        feeds = {}
        for key, value in inputs.items():
            info = signature.inputs[key]
            value = np.asarray(value)
            dtype = tf.dtypes.as_dtype(info.dtype)
            if value.dtype != dtype.as_numpy_dtype:
                raise PredictError(
                    "INVALID_ARGUMENT",
                    f"Expects arg '{key}' to be {dtype.name} but "
                    f"{tf.dtypes.as_dtype(value.dtype).name} is provided",
                )
            shape = tf.TensorShape(info.tensor_shape)
            if not shape.is_compatible_with(value.shape):
                raise PredictError(
                    "INVALID_ARGUMENT",
                    f"arg '{key}' has shape {list(value.shape)}, the "
                    f"signature expects {shape.as_list()} (None: any size)",
                )
            feeds[info.name] = value
        fetches = {key: info.name for key, info in signature.outputs.items()}
        try:
            return self.session.run(fetches, feeds)
        except tf.errors.OpError as error:
            raise PredictError(
                _status_name(error), _first_reason(error.message)
            ) from None

    def signature(self, signature_name: str):
        """The SignatureDef of a name; raises INVALID_ARGUMENT if unknown."""
        name = signature_name or DEFAULT_SIGNATURE
        if name not in self.signature_defs:
            raise PredictError(
                "INVALID_ARGUMENT",
                f'Serving signature name: "{name}" not found in signature def',
            )
        return self.signature_defs[name]

    def close(self) -> None:
        """Releases the Session."""
        self.session.close()


def _status_name(error: tf.errors.OpError) -> str:
    names = {
        tf.errors.INVALID_ARGUMENT: "INVALID_ARGUMENT",
        tf.errors.FAILED_PRECONDITION: "FAILED_PRECONDITION",
        tf.errors.OUT_OF_RANGE: "OUT_OF_RANGE",
        tf.errors.RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
    }
    return names.get(error.error_code, "INTERNAL")


def _first_reason(message: str) -> str:
    """The informative line of a TF runtime error message."""
    for line in message.strip().splitlines():
        line = line.strip()
        if (
            line
            and line != "Graph execution error:"
            and not line.startswith("[[")
        ):
            if line.startswith("assertion failed: ["):
                # "assertion failed: [message] [Condition ...] [x ...]"
                return line[len("assertion failed: [") :].split("] [")[0]
            return line
    return message.strip()
