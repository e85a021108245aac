"""Test set-up: quiet TensorFlow, and two logical CPU devices.

With `KERAS_BACKEND=jax` (tests/jax_backend_test.py) TensorFlow is not
imported, and `DRAW_TF_BLOCK_TENSORFLOW=1` makes it unimportable.

The logical devices must be configured before any TensorFlow op runs, so
this happens when pytest imports this file, before any test module.
Two devices let `tf.distribute.MirroredStrategy` run two real replicas on
one CPU.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

if os.environ.get("DRAW_TF_BLOCK_TENSORFLOW") == "1":
    # tests/jax_backend_test.py: the portable tests on JAX with TensorFlow
    # unimportable, as on a machine without it.
    sys.modules["tensorflow"] = None

if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )

import pytest  # noqa: E402


@pytest.fixture
def tfds_mock_reachable(monkeypatch):
    """With `tfds.testing.mock_data`: nothing is downloaded, no probe."""
    from draw_tf import data

    monkeypatch.setattr(data, "download_host_reachable", lambda: True)


@pytest.fixture(scope="session")
def trained_workdir(tmp_path_factory):
    """A training workdir of a tiny model trained for a few steps."""
    import tensorflow as tf

    from draw_tf import config as config_lib
    from draw_tf import data
    from draw_tf.tensorflow import distributed_engine
    from tests.tiny_run import tiny_config

    workdir = tmp_path_factory.mktemp("trained")
    config = tiny_config(
        workdir,
        train_steps=4,
        eval_every_steps=4,
        checkpoint_every_steps=2,
        max_eval_examples=16,
    )
    splits = data.load_splits(config)
    config_lib.check_workdir_architecture(config, splits.image_shape)
    distributed_engine.make_trainer(
        config, tf.distribute.get_strategy(), splits
    ).train()
    return workdir


@pytest.fixture(scope="session")
def exported_model(trained_workdir, tmp_path_factory):
    """(workdir, version directory) of the tiny model exported."""
    from export import export_saved_model_lib

    export_base = tmp_path_factory.mktemp("exported")
    path = export_saved_model_lib.export(
        str(trained_workdir), str(export_base), "draw", version=7
    )
    return trained_workdir, path


@pytest.fixture(scope="session")
def predictor(exported_model):
    """The export loaded the way TF Serving loads it (a TF1 Session)."""
    from serving.session_predictor import SessionPredictor

    predictor = SessionPredictor(exported_model[1])
    yield predictor
    predictor.close()
