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
