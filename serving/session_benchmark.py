"""Times a SavedModel's `generate` signature through the TF Serving path.

    python serving/session_benchmark.py --export_dir=exported/draw/<version>

Runs the signature by its tensor names in a TF1 Session (what TF Serving's
Predict does) and prints a JSON line: latency p50/p99 at batch 1 and
images/s at batch 64. Flags only; SessionPredictor does the work.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

import draw_tf  # noqa: E402, F401  (first: TensorFlow imported quietly)
from draw_tf import cli  # noqa: E402
from serving.generation_timing import time_generation  # noqa: E402
from serving.session_predictor import SessionPredictor  # noqa: E402

_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "A SavedModel version directory.", required=True
)
_REQUESTS = flags.DEFINE_integer(
    "requests",
    200,
    "Timed batch-1 requests; 10..1,000,000.",
    lower_bound=10,
    upper_bound=1_000_000,
)
_LARGE_BATCH = flags.DEFINE_integer(
    "large_batch",
    64,
    "Batch size of the throughput test; 1..1024 (the export's default "
    "maximum).",
    lower_bound=1,
    upper_bound=1024,
)
_LARGE_REQUESTS = flags.DEFINE_integer(
    "large_requests",
    20,
    "Timed large-batch requests; 1..100,000.",
    lower_bound=1,
    upper_bound=100_000,
)


def main(argv):
    """Prints the figures as JSON."""
    del argv
    export_dir = _EXPORT_DIR.value
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
        cli.fail(
            "session_benchmark.py",
            f"--export_dir={export_dir!r} holds no saved_model.pb; expected "
            "a SavedModel version directory, e.g. exported/draw/1.",
        )
    predictor = SessionPredictor(export_dir)
    figures = time_generation(
        predictor,
        requests=_REQUESTS.value,
        large_batch=_LARGE_BATCH.value,
        large_requests=_LARGE_REQUESTS.value,
    )
    batch = figures.pop("large_batch")
    figures[f"batch_{batch}_images_per_second"] = figures.pop(
        "large_batch_images_per_second"
    )
    print(json.dumps({"export_dir": _EXPORT_DIR.value, **figures}))


if __name__ == "__main__":
    cli.run(main, "session_benchmark.py")
