"""Which Keras backend runs the model, for the few places that care.

The model (`attention`, `cell`, `model`, `losses`, `unrolling`) is written
in `keras.ops` and runs on every Keras 3 backend; draw_tf tests it on
TensorFlow and JAX. Where TensorFlow has something faster (a fused LSTM
kernel, `tf.while_loop` with TensorArrays) or something only it has
(TFP distributions, `tf.distribute` replicas), the model asks here and
takes that path; the other backends take the portable one. Training under
`tf.distribute`, the SavedModel export and serving belong to TensorFlow.
"""

from typing import Any

import keras

# A tensor of the running backend: a tf.Tensor, a jax.Array, ...
Tensor = Any


def name() -> str:
    """The Keras backend: "tensorflow", "jax", ... (`KERAS_BACKEND`)."""
    return keras.backend.backend()


def is_tensorflow() -> bool:
    """Whether Keras runs on TensorFlow."""
    return name() == "tensorflow"


def set_random_seed(seed: int) -> None:
    """`keras.utils.set_random_seed`, without importing TensorFlow off it.

    Keras's own seeds TensorFlow too whenever TensorFlow is installed,
    importing it (seconds, and its start-up lines) on JAX where nothing
    of it is used. Off TensorFlow this sets what it sets for the running
    backend: Python's and NumPy's seeds and Keras's global seed generator.
    """
    if is_tensorflow():
        keras.utils.set_random_seed(seed)
        return
    import random

    import numpy as np
    from keras.src.backend.common import global_state
    from keras.src.random import seed_generator

    global_state.set_global_attribute("global_random_seed", seed)
    global_state.set_global_attribute(
        seed_generator.GLOBAL_SEED_GENERATOR, None
    )
    random.seed(seed)
    np.random.seed(seed)
