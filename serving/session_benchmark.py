"""Times a SavedModel's `generate` signature through the TF Serving path.

    python serving/session_benchmark.py --export_dir=exported/draw/<version>

Runs the signature by its tensor names in a TF1 Session (what TF Serving's
Predict does) and prints a JSON line: latency p50/p99 at batch 1 and
images/s at batch 64. Flags only; SessionPredictor does the work.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from serving.session_predictor import SessionPredictor  # noqa: E402

_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", None, "A SavedModel version directory.", required=True
)
_REQUESTS = flags.DEFINE_integer(
    "requests", 200, "Timed batch-1 requests; >= 10.", lower_bound=10
)
_LARGE_BATCH = flags.DEFINE_integer(
    "large_batch",
    64,
    "Batch size of the throughput test; >= 1.",
    lower_bound=1,
)
_LARGE_REQUESTS = flags.DEFINE_integer(
    "large_requests", 20, "Timed large-batch requests; >= 1.", lower_bound=1
)


def main(argv):
    """Prints the figures as JSON."""
    del argv
    predictor = SessionPredictor(_EXPORT_DIR.value)
    for _ in range(5):  # warm-up
        predictor.predict("generate", {"seeds": np.array([0], np.int64)})
    latencies = []
    for index in range(_REQUESTS.value):
        seeds = np.array([index], np.int64)
        start = time.perf_counter()
        predictor.predict("generate", {"seeds": seeds})
        latencies.append(time.perf_counter() - start)
    batch = _LARGE_BATCH.value
    seeds = np.arange(batch, dtype=np.int64)
    predictor.predict("generate", {"seeds": seeds})
    start = time.perf_counter()
    for _ in range(_LARGE_REQUESTS.value):
        predictor.predict("generate", {"seeds": seeds})
    seconds = time.perf_counter() - start
    latencies_ms = np.asarray(latencies) * 1000.0
    print(
        json.dumps(
            {
                "export_dir": _EXPORT_DIR.value,
                "batch_1_p50_ms": round(
                    float(np.percentile(latencies_ms, 50)), 3
                ),
                "batch_1_p99_ms": round(
                    float(np.percentile(latencies_ms, 99)), 3
                ),
                "batch_1_requests": len(latencies),
                f"batch_{batch}_images_per_second": round(
                    batch * _LARGE_REQUESTS.value / seconds, 1
                ),
            }
        )
    )


if __name__ == "__main__":
    app.run(main)
