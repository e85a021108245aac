"""What the backend-portable tests need from the running Keras backend.

The model's tests that compare against NumPy transcriptions and closed
forms (attention, cell, losses, portable_model) use only NumPy,
`keras.ops` and these helpers, so the same files run under TensorFlow (the
main pytest run) and under JAX with TensorFlow unimportable
(tests/jax_backend_test.py runs them again in a subprocess).
"""

import keras
import numpy as np
from keras import ops


def tensor(values, dtype="float32"):
    """NumPy-like `values` as a tensor of the backend."""
    return ops.convert_to_tensor(np.asarray(values, dtype=dtype))


def numpy(value) -> np.ndarray:
    """A backend tensor (or variable) as a NumPy array."""
    return np.asarray(ops.convert_to_numpy(value))


def gradient(function, value):
    """The derivative of a scalar-valued `function` at `value`."""
    x = tensor(value)
    if keras.backend.backend() == "jax":
        import jax

        return numpy(jax.grad(function)(x))
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = function(x)
    return numpy(tape.gradient(y, x))


def loss_and_gradients(model, loss_function, *args, **kwargs):
    """`loss_function(model(*args, **kwargs))` and its gradients.

    Args:
      model: a built Keras model.
      loss_function: maps the model's outputs to a scalar.
      *args: the model's call arguments.
      **kwargs: the model's keyword call arguments.

    Returns:
      (loss as a float, [gradient of every trainable variable as NumPy]).
    """
    if keras.backend.backend() == "jax":
        import jax

        trainable = [variable.value for variable in model.trainable_variables]
        non_trainable = [
            variable.value for variable in model.non_trainable_variables
        ]

        def loss_of(values):
            outputs, _ = model.stateless_call(
                values, non_trainable, *args, **kwargs
            )
            return loss_function(outputs)

        loss, grads = jax.jit(jax.value_and_grad(loss_of))(trainable)
        return float(loss), [numpy(g) for g in grads]
    import tensorflow as tf

    with tf.GradientTape() as tape:
        loss = loss_function(model(*args, **kwargs))
    grads = tape.gradient(loss, model.trainable_variables)
    return float(loss), [None if g is None else numpy(g) for g in grads]


def compiled(function):
    """`function` compiled the backend's way (tf.function, jax.jit)."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(function)
    import tensorflow as tf

    return tf.function(function)


def requires_tensorflow(reason: str):
    """A pytest mark skipping a test that is about TensorFlow itself."""
    import pytest

    return pytest.mark.skipif(
        keras.backend.backend() != "tensorflow", reason=reason
    )
