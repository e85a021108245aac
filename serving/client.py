"""Asks a running TF Serving for DRAW samples and writes a PNG grid.

    python serving/client.py --server=localhost:8500 --protocol=grpc
    python serving/client.py --server=localhost:8501 --protocol=rest \
        --rest_format=columnar --num_samples=64 --requests=20

Prints the latency of each request (p50 and p99 over --requests), writes
the samples of the last one to --output; --metadata prints the model's
signatures instead. Flags only; the work is in client_lib.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from serving import client_lib  # noqa: E402

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
_METADATA = flags.DEFINE_bool(
    "metadata", False, "Print the model metadata and exit."
)


def main(argv):
    """Runs the requests, or the metadata call."""
    del argv
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
        seeds = np.arange(
            _SEED.value, _SEED.value + _NUM_SAMPLES.value, dtype=np.int64
        )
        durations = []
        for _ in range(_REQUESTS.value):
            if _PROTOCOL.value == "grpc":
                outputs, seconds = client_lib.timed(
                    client_lib.grpc_predict,
                    _SERVER.value,
                    _MODEL_NAME.value,
                    "generate",
                    {"seeds": seeds},
                    _TIMEOUT.value,
                )
            else:
                outputs, seconds = client_lib.timed(
                    client_lib.rest_predict,
                    _SERVER.value,
                    _MODEL_NAME.value,
                    "generate",
                    {"seeds": seeds},
                    ["images"],
                    _REST_FORMAT.value,
                    _TIMEOUT.value,
                )
            durations.append(seconds)
    except client_lib.ClientError as error:
        print(f"client.py: error: {error}", file=sys.stderr)
        sys.exit(1)
    images = outputs["images"]
    client_lib.png_grid(images, _OUTPUT.value, columns=8)
    print(
        f"{len(durations)} request(s) of {len(seeds)} images via "
        f"{_PROTOCOL.value}: p50 {client_lib.percentile_ms(durations, 50):.1f}"
        f" ms, p99 {client_lib.percentile_ms(durations, 99):.1f} ms; wrote "
        f"{_OUTPUT.value}"
    )


if __name__ == "__main__":
    app.run(main)
