"""Latency and throughput of a SavedModel's `generate` signature.

Used by serving/session_benchmark.py and bench/run_benchmarks.py. The
predictor runs the signature by its tensor names in a TF1 Session, as TF
Serving's Predict does.
"""

import time

import numpy as np

from serving.session_predictor import SessionPredictor


def time_generation(
    predictor: SessionPredictor,
    requests: int = 200,
    large_batch: int = 64,
    large_requests: int = 20,
) -> dict:
    """Times `generate` at batch 1 and at `large_batch`.

    Args:
      predictor: a loaded SavedModel.
      requests: timed batch-1 requests (after 5 warm-up ones), >= 1.
      large_batch: batch size of the throughput test, >= 1.
      large_requests: timed requests at `large_batch` (after one warm-up).

    Returns:
      A dict of batch_1_p50_ms, batch_1_p99_ms, batch_1_requests,
      large_batch, large_batch_images_per_second.
    """
    for seed in range(5):  # warm-up
        predictor.predict("generate", {"seeds": np.array([seed], np.int64)})
    latencies = []
    for index in range(requests):
        seeds = np.array([index], np.int64)
        start = time.perf_counter()
        predictor.predict("generate", {"seeds": seeds})
        latencies.append(time.perf_counter() - start)
    seeds = np.arange(large_batch, dtype=np.int64)
    predictor.predict("generate", {"seeds": seeds})
    start = time.perf_counter()
    for _ in range(large_requests):
        predictor.predict("generate", {"seeds": seeds})
    seconds = time.perf_counter() - start
    latencies_ms = np.asarray(latencies) * 1000.0
    return {
        "batch_1_p50_ms": round(float(np.percentile(latencies_ms, 50)), 3),
        "batch_1_p99_ms": round(float(np.percentile(latencies_ms, 99)), 3),
        "batch_1_requests": len(latencies),
        "large_batch": large_batch,
        "large_batch_images_per_second": round(
            large_batch * large_requests / seconds, 1
        ),
    }
