"""The errors a run ends with, the same on every backend and engine.

`ConfigError` (a bad flag, file or workdir; `draw_tf.config`) ends a
binary with one line and exit status 2; `TrainingDivergedError` ends
training with one line and exit status 1, the checkpoints written before
it intact.
"""

from draw_tf.config import ConfigError

__all__ = ["ConfigError", "TrainingDivergedError"]


class TrainingDivergedError(RuntimeError):
    """The loss or the weights became NaN or infinite; training stopped."""
