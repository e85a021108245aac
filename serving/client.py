"""Asks a running TF Serving for DRAW samples and writes a PNG grid.

    python serving/client.py --server=localhost:8500 --protocol=grpc
    python serving/client.py --server=localhost:8501 --protocol=rest \
        --rest_format=columnar --num_samples=64 --requests=20
    python serving/client.py --model_name=instructed_mnist \
        --instructions="7 top-left; 3 bottom-right" --num_samples=4

Prints the latency of each request (p50 and p99 over --requests), writes
the samples of the last one to --output; --metadata prints the model's
signatures instead. With --instructions, an instructed model's episodes
(the draw_instructions signature): a row per sample, a column per turn.
Flags only; the work is in client_lib.
"""

import json
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from serving import client_lib  # noqa: E402

# Bounds past which a value is a mistake (the server refuses large batches).
MAX_SAMPLES = 100_000
MAX_REQUESTS = 1_000_000

_SERVER = flags.DEFINE_string(
    "server",
    "localhost:8500",
    "host:port of the server (8500 gRPC, 8501 REST with the README's command).",
)
_PROTOCOL = flags.DEFINE_enum("protocol", "grpc", ["grpc", "rest"], "API.")
_REST_FORMAT = flags.DEFINE_enum(
    "rest_format",
    "row",
    list(client_lib.REST_FORMATS),
    "REST body format: row (instances) or columnar (inputs).",
)
_MODEL_NAME = flags.DEFINE_string("model_name", "draw", "Served model name.")
_NUM_SAMPLES = flags.DEFINE_integer(
    "num_samples", 16, "Images per request; >= 1.", lower_bound=1
)
_SEED = flags.DEFINE_integer(
    "seed", 0, "First seed; request images use seeds seed..seed+n-1."
)
_REQUESTS = flags.DEFINE_integer(
    "requests", 1, "Requests to time; >= 1.", lower_bound=1
)
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "Seconds per request; > 0.")
_OUTPUT = flags.DEFINE_string("output", "samples.png", "PNG grid to write.")
_INSTRUCTIONS = flags.DEFINE_string(
    "instructions",
    "",
    'What an instructed model draws: "7 top-left; 3 bottom-right" (a turn '
    'per ";", draw_instructions), or "7, 3" (a class-conditional model\'s '
    "generate); --num_samples of each. Empty: the unconditional generate.",
)
_METADATA = flags.DEFINE_bool(
    "metadata", False, "Print the model metadata and exit."
)


def _fail(message, status=2):
    """One line, `client.py: error: ...`, and exit."""
    print(
        f"client.py: error: {' '.join(str(message).split())}", file=sys.stderr
    )
    sys.exit(status)


def _parse_flags(argv):
    """Parses flags with one-line errors (draw_tf.cli, without draw_tf)."""
    try:
        remaining = flags.FLAGS(argv)
    except flags.Error as error:
        _fail(f"{error} (see --helpfull)")
    if len(remaining) > 1:
        _fail(f"unexpected arguments {' '.join(remaining[1:])!r}")
    return remaining


def _check_flags():
    """Refuses bad values before any request."""
    host, _, port = _SERVER.value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        _fail(
            f"--server={_SERVER.value!r}: expected host:port, "
            "e.g. localhost:8500."
        )
    if not _MODEL_NAME.value or "/" in _MODEL_NAME.value:
        _fail(f"--model_name={_MODEL_NAME.value!r}: expected a non-empty name.")
    if not (math.isfinite(_TIMEOUT.value) and _TIMEOUT.value > 0):
        _fail(
            "--timeout must be a finite number of seconds > 0; "
            f"got {_TIMEOUT.value}."
        )
    if _NUM_SAMPLES.value > MAX_SAMPLES:
        _fail(
            f"--num_samples must be at most {MAX_SAMPLES}; "
            f"got {_NUM_SAMPLES.value}."
        )
    if not 0 <= _SEED.value <= 2**63 - 1 - _NUM_SAMPLES.value:
        _fail(
            "--seed must be in [0, 2**63 - 1 - --num_samples]; "
            f"got {_SEED.value}."
        )
    if _REQUESTS.value > MAX_REQUESTS:
        _fail(
            f"--requests must be at most {MAX_REQUESTS}; got {_REQUESTS.value}."
        )
    directory = os.path.dirname(os.path.abspath(_OUTPUT.value))
    if not _METADATA.value and (
        os.path.isdir(_OUTPUT.value)
        or not os.path.isdir(directory)
        or not os.access(directory, os.W_OK)
    ):
        _fail(
            f"--output={_OUTPUT.value!r}: expected a PNG file path in a "
            "writable directory."
        )


def main(argv):
    """Runs the requests, or the metadata call."""
    del argv
    _check_flags()
    seeds = np.arange(
        _SEED.value, _SEED.value + _NUM_SAMPLES.value, dtype=np.int64
    )
    signature, inputs, columns = "generate", {"seeds": seeds}, 8
    if _INSTRUCTIONS.value:
        try:
            signature, inputs, columns = client_lib.instruction_request(
                _INSTRUCTIONS.value, _NUM_SAMPLES.value, _SEED.value
            )
        except client_lib.ClientError as error:
            _fail(error)
    try:
        if _METADATA.value:
            call = (
                client_lib.grpc_metadata
                if _PROTOCOL.value == "grpc"
                else client_lib.rest_metadata
            )
            metadata = call(_SERVER.value, _MODEL_NAME.value, _TIMEOUT.value)
            print(json.dumps(metadata, indent=2))
            return
        durations = []
        for _ in range(_REQUESTS.value):
            if _PROTOCOL.value == "grpc":
                outputs, seconds = client_lib.timed(
                    client_lib.grpc_predict,
                    _SERVER.value,
                    _MODEL_NAME.value,
                    signature,
                    inputs,
                    _TIMEOUT.value,
                )
            else:
                outputs, seconds = client_lib.timed(
                    client_lib.rest_predict,
                    _SERVER.value,
                    _MODEL_NAME.value,
                    signature,
                    inputs,
                    ["images"],
                    _REST_FORMAT.value,
                    _TIMEOUT.value,
                )
            durations.append(seconds)
    except client_lib.ClientError as error:
        print(f"client.py: error: {error}", file=sys.stderr)
        sys.exit(1)
    images = outputs["images"]
    if images.ndim == 5:  # episodes: [samples, turns, H, W, C]
        images = images.reshape(-1, *images.shape[2:])
    client_lib.png_grid(images, _OUTPUT.value, columns=columns)
    print(
        f"{len(durations)} request(s) of {len(images)} images via "
        f"{_PROTOCOL.value}: p50 {client_lib.percentile_ms(durations, 50):.1f}"
        f" ms, p99 {client_lib.percentile_ms(durations, 99):.1f} ms; wrote "
        f"{_OUTPUT.value}"
    )


if __name__ == "__main__":
    app.run(main, flags_parser=_parse_flags)
