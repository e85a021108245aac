"""Test set-up: quiet TensorFlow, and two logical CPU devices.

The logical devices must be configured before any TensorFlow op runs, so
this happens when pytest imports this file, before any test module.
Two devices let `tf.distribute.MirroredStrategy` run two real replicas on
one CPU.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration()] * 2,
)
