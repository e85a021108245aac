"""Where a training step's time goes: TF op time by op type.

Runs a few steps under `tf.profiler`, reads the host trace it writes
(XSpace protobuf) and sums the durations of the TensorFlow op events by
op type. Executor threads overlap, so the shares are of the summed op
time, not of wall time. Under XLA the compiled program shows up as a few
launch events (Execute, Start, ...), not as the TF ops it fused; profile an
op-by-op variant to see those.
"""

import collections
import glob
import os
import tempfile

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

# Events that wrap other events (the function call, the executor run).
_WRAPPERS = ("Process", "Run")


def op_time_by_type(run_steps, steps: int, top: int = 15) -> dict:
    """Profiles `run_steps(steps)` and aggregates op time by op type.

    Args:
      run_steps: callable running `steps` training steps and waiting for
        them; it should already be traced (the trace is not profiled).
      steps: steps to profile.
      top: op types to list.

    Returns:
      A dict of milliseconds_per_step_by_op_type (top entries, with
      "ops_per_step"), total_op_milliseconds_per_step and op_count_per_step.
    """
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        try:
            run_steps(steps)
        finally:
            tf.profiler.experimental.stop()
        paths = glob.glob(
            os.path.join(logdir, "**", "*.xplane.pb"), recursive=True
        )
        if not paths:
            raise RuntimeError(f"tf.profiler wrote no trace under {logdir}.")
        space = xplane_pb2.XSpace()
        with open(sorted(paths)[-1], "rb") as file:
            space.ParseFromString(file.read())
    seconds = collections.Counter()
    counts = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # TF op events are named "<op name>:<op type>".
                if ":" not in name:
                    continue
                op_type = name.rsplit(":", 1)[1]
                if op_type in _WRAPPERS or op_type.startswith("__inference"):
                    continue
                if not op_type or op_type.startswith(" "):
                    continue
                seconds[op_type] += event.duration_ps / 1e12
                counts[op_type] += 1
    total = sum(seconds.values())
    return {
        "milliseconds_per_step_by_op_type": {
            op_type: {
                "milliseconds": round(value / steps * 1e3, 2),
                "share": round(value / total, 3),
                "ops_per_step": round(counts[op_type] / steps),
            }
            for op_type, value in seconds.most_common(top)
        },
        "total_op_milliseconds_per_step": round(total / steps * 1e3, 1),
        "op_count_per_step": round(sum(counts.values()) / steps),
    }
