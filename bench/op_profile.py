"""Where a training step's time goes: TF op time by op type.

Runs a few steps under `tf.profiler`, reads the host trace it writes
(XSpace protobuf) and sums the durations of the TensorFlow op events by
op type. Executor threads overlap, so the shares are of the summed op
time, not of wall time. Under XLA the compiled program shows up as a few
launch events (Execute, Start, ...), not as the TF ops it fused, unless
XLA was told to trace its own kernels: with `XLA_FLAGS` holding
`XLA_TRACE_FLAG` (set before the first compilation; `enable_xla_tracing`
does it) the thunks of the compiled program (dots, fusions, copies, the
loop's buffers) are summed too, by HLO instruction kind.
"""

import collections
import glob
import os
import re
import tempfile

import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

# Events that wrap other events (the function call, the executor run).
_WRAPPERS = ("Process", "Run")
# XLA:CPU emits a trace event per thunk (HLO instruction) with this flag.
XLA_TRACE_FLAG = "--xla_cpu_enable_xprof_traceme=true"


def enable_xla_tracing() -> None:
    """Adds XLA_TRACE_FLAG to XLA_FLAGS; call before anything compiles."""
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_TRACE_FLAG not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_TRACE_FLAG}".strip()


def _hlo_kind(name: str) -> str | None:
    """'MatMul_1.126' -> 'MatMul', 'copy.3' -> 'copy'; None if not HLO."""
    if "::" in name or name.startswith("end: ") or " " in name:
        return None
    kind = re.sub(r"\.\d+$", "", name)
    return re.sub(r"_\d+$", "", kind)


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
    xla_seconds = collections.Counter()
    xla_counts = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:"):
            continue
        for line in plane.lines:
            # XLA's thunks run on the intra-op (Eigen) threads.
            xla_line = "Eigen" in line.name
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                kind = _hlo_kind(name) if xla_line else None
                if kind and ":" not in name:
                    xla_seconds[kind] += event.duration_ps / 1e12
                    xla_counts[kind] += 1
                    continue
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
    result = _by_kind(seconds, counts, steps, top, "op_type", "op")
    if xla_seconds:
        result.update(
            _by_kind(xla_seconds, xla_counts, steps, top, "xla_kernel", "xla")
        )
    return result


def _by_kind(seconds, counts, steps, top, kind, prefix) -> dict:
    total = sum(seconds.values())
    return {
        f"milliseconds_per_step_by_{kind}": {
            name: {
                "milliseconds": round(value / steps * 1e3, 2),
                "share": round(value / total, 3),
                "per_step": round(counts[name] / steps),
            }
            for name, value in seconds.most_common(top)
        },
        f"total_{prefix}_milliseconds_per_step": round(total / steps * 1e3, 1),
        f"{prefix}_count_per_step": round(sum(counts.values()) / steps),
    }
