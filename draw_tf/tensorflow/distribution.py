"""The tf.distribute strategy a run trains under.

Training always runs under a strategy:
  - MultiWorkerMirroredStrategy when TF_CONFIG is set (one process per
    worker, see the README);
  - otherwise MirroredStrategy over the local GPUs, or over the CPU
    devices. One CPU is one replica; `configure_cpu_devices(n)` splits the
    CPU into n logical devices first, so that n replicas really run.
"""

import json
import os

import tensorflow as tf

from draw_tf.config import ConfigError


def configure_cpu_devices(count: int) -> None:
    """Splits the physical CPU into `count` logical devices.

    Must run before TensorFlow executes any op. 0 or 1 leaves one device.

    Raises:
      ConfigError: if TensorFlow is already initialised.
    """
    if count <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:
        raise ConfigError(
            f"--num_cpu_devices={count} must be set before TensorFlow runs "
            f"any op ({error})."
        ) from None


def make_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy under TF_CONFIG, else MirroredStrategy."""
    if os.environ.get("TF_CONFIG"):
        try:
            json.loads(os.environ["TF_CONFIG"])
        except ValueError as error:
            raise ConfigError(f"TF_CONFIG is not valid JSON: {error}") from None
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes summaries, JSON and pictures."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return (
        not has_chief
        and resolver.task_type == "worker"
        and (resolver.task_id == 0)
    )


def worker_id(strategy: tf.distribute.Strategy) -> int:
    """This worker's index (0 on a single machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_id is None:
        return 0
    return int(resolver.task_id)
