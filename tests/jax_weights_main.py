"""Writes JAX-side results for tests/jax_backend_test.py to compare.

Run with `KERAS_BACKEND=jax` and TensorFlow blocked:
`python -m tests.jax_weights_main OUTPUT_DIR`. It trains a small DrawModel
with `fit()` for a few steps on JAX and writes its config, its weights
(`model.weights.h5`), a noise array and the images `generate()` draws from
that noise; and, for every shipped pretrained model, the images it draws
on JAX from a noise array written beside them.
"""

import json
import os
import sys

import keras
import numpy as np

import draw_tf
from tests.portable_model_test import SMALL, block_images


def main(output_dir: str) -> None:
    """Writes the files described in the module docstring."""
    assert keras.backend.backend() == "jax", keras.backend.backend()
    assert sys.modules.get("tensorflow", None) is None, "TensorFlow imported"
    keras.utils.set_random_seed(0)
    model = draw_tf.DrawModel((8, 8, 1), **SMALL, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    model.fit(block_images(16, seed=1), batch_size=8, epochs=3, verbose=0)
    _write(output_dir, "trained", model, np.random.default_rng(1))
    for name in draw_tf.pretrained.names():
        loaded = draw_tf.pretrained.load(name)
        if isinstance(loaded, draw_tf.DrawModel):
            _write(output_dir, name, loaded, np.random.default_rng(2))


def _write(output_dir, name, model, rng):
    directory = os.path.join(output_dir, name)
    os.makedirs(directory)
    with open(os.path.join(directory, "config.json"), "w") as file:
        json.dump(model.get_config(), file)
    model.save_weights(os.path.join(directory, "model.weights.h5"))
    noise = rng.normal(size=model.noise_shape(4)).astype(np.float32)
    images = keras.ops.convert_to_numpy(model.generate(noise=noise)["images"])
    np.save(os.path.join(directory, "noise.npy"), noise)
    np.save(os.path.join(directory, "images.npy"), images)


if __name__ == "__main__":
    main(sys.argv[1])
