"""Learning-rate schedules: pure functions of the optimizer step.

`LearningRateSchedule(peak, total_steps, kind, warmup_steps,
final_fraction)` gives, at step s (the number of updates already applied,
the optimizer's `iterations`):

    warmup (s < W):  peak * (s + 1) / W
    constant:        peak
    cosine:          final + (peak - final) * (1 + cos(pi * p)) / 2,
                     p = min(1, (s - W) / (total_steps - W)),
                     final = final_fraction * peak

so the first update after warmup uses the peak rate and the last update
of a cosine run (s = total_steps - 1) uses just above `final`, which it
reaches at s = total_steps. The rate depends on nothing but s, which the
checkpoint holds, so a resumed run takes the same rates as an
uninterrupted one. Written with `keras.ops`: it runs on every Keras
backend.
"""

import math

import keras
from keras import ops

SCHEDULES = ("constant", "cosine")


@keras.saving.register_keras_serializable(package="draw_tf")
class LearningRateSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup, then a constant rate or a cosine decay.

    Args:
      peak_learning_rate: the rate after warmup (> 0).
      total_steps: the step the run ends at; the cosine reaches
        `final_fraction * peak_learning_rate` there.
      kind: "constant" or "cosine".
      warmup_steps: steps of linear warmup from peak / W to the peak
        (0 for none); must be below `total_steps` for a cosine.
      final_fraction: the cosine's final rate as a fraction of the peak,
        in [0, 1].
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        kind: str = "constant",
        warmup_steps: int = 0,
        final_fraction: float = 0.0,
    ):
        if kind not in SCHEDULES:
            raise ValueError(
                f"kind must be one of {', '.join(SCHEDULES)}; got {kind!r}."
            )
        if not peak_learning_rate > 0:
            raise ValueError(
                f"peak_learning_rate must be > 0; got {peak_learning_rate}."
            )
        if not 0 <= final_fraction <= 1:
            raise ValueError(
                f"final_fraction must be in [0, 1]; got {final_fraction}."
            )
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(
                "warmup_steps must be >= 0 and total_steps >= 1; got "
                f"{warmup_steps} and {total_steps}."
            )
        if kind == "cosine" and warmup_steps >= total_steps:
            raise ValueError(
                f"warmup_steps ({warmup_steps}) must be below total_steps "
                f"({total_steps}) for a cosine decay."
            )
        self.peak_learning_rate = float(peak_learning_rate)
        self.total_steps = int(total_steps)
        self.kind = kind
        self.warmup_steps = int(warmup_steps)
        self.final_fraction = float(final_fraction)

    def __call__(self, step):
        """The rate of the update at `step` (a scalar, any numeric dtype)."""
        step = ops.cast(step, "float32")
        peak = self.peak_learning_rate
        if self.kind == "cosine":
            decay_steps = float(self.total_steps - self.warmup_steps)
            progress = ops.clip((step - self.warmup_steps) / decay_steps, 0, 1)
            final = self.final_fraction * peak
            rate = final + (peak - final) * 0.5 * (
                1.0 + ops.cos(math.pi * progress)
            )
        else:
            rate = ops.convert_to_tensor(peak, "float32") + 0.0 * step
        if self.warmup_steps:
            warmup = peak * (step + 1.0) / self.warmup_steps
            rate = ops.where(step < self.warmup_steps, warmup, rate)
        return rate

    def get_config(self) -> dict:
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "kind": self.kind,
            "warmup_steps": self.warmup_steps,
            "final_fraction": self.final_fraction,
        }
