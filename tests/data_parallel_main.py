"""One run of train.py's fit() path on JAX, for tests/data_parallel_test.py.

Run with `KERAS_BACKEND=jax`, TensorFlow blocked, and
`XLA_FLAGS=--xla_force_host_platform_device_count=N`:
`python -m tests.data_parallel_main WORKDIR OUTPUT.npz`. It trains the
tiny model a few steps with the fit() engine (`draw_tf.keras_engine`,
which spreads the batch over every device JAX sees with
`keras.distribution.DataParallel`) and writes the devices it saw and the
weights before and after.
"""

import sys

import jax
import keras
import numpy as np

from draw_tf import config as config_lib
from draw_tf import data, keras_engine
from draw_tf import trainer as trainer_lib
from tests.tiny_run import tiny_config


def main(workdir: str, output: str) -> None:
    """Trains and writes the weights (see the module docstring)."""
    assert keras.backend.backend() == "jax", keras.backend.backend()
    assert sys.modules.get("tensorflow", None) is None, "TensorFlow imported"
    config = tiny_config(
        workdir,
        train_steps=3,
        checkpoint_every_steps=3,
        eval_every_steps=3,
        max_eval_examples=16,
        eval_batch_size=16,
        learning_rate=1e-2,
    )
    splits = data.load_splits(config)
    config_lib.check_workdir_architecture(config, splits.image_shape)
    keras_engine.distribute()
    distribution = keras.distribution.distribution()
    trainer = trainer_lib.Trainer(config, splits, keras_engine.KerasEngine)
    initial = {
        f"initial_w{index}": keras.ops.convert_to_numpy(value)
        for index, value in enumerate(trainer.model.get_weights())
    }
    trainer.train()
    weights = {
        f"w{index}": keras.ops.convert_to_numpy(value)
        for index, value in enumerate(trainer.model.get_weights())
    }
    np.savez(
        output,
        devices=len(jax.devices()),
        data_parallel=distribution is not None,
        **weights,
        **initial,
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
