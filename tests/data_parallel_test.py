"""fit() on several JAX devices: the same update as on one.

The fit() engine (`draw_tf.keras_engine`) spreads each batch over every
device JAX sees (`keras.distribution.DataParallel`). Two CPU devices forced with
`XLA_FLAGS=--xla_force_host_platform_device_count=2` must train to the
same weights as one device, as the TensorFlow two-replica test checks
for tf.distribute.
"""

import numpy as np
import pytest

from tests.jax_subprocess import run_on_jax

pytestmark = pytest.mark.slow


def _train_on(devices, tmp_path):
    output = tmp_path / f"devices_{devices}.npz"
    # conftest.py's block of TensorFlow, outside pytest.
    script = (
        "import sys, runpy; sys.modules['tensorflow'] = None; "
        f"sys.argv = ['x', {str(tmp_path / f'run_{devices}')!r}, "
        f"{str(output)!r}]; "
        "runpy.run_module('tests.data_parallel_main', run_name='__main__')"
    )
    run_on_jax(
        ["-c", script],
        timeout=600,
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    return dict(np.load(output))


def test_two_devices_train_to_the_weights_of_one(tmp_path):
    one = _train_on(1, tmp_path)
    two = _train_on(2, tmp_path)
    assert int(one["devices"]) == 1 and not bool(one["data_parallel"])
    assert int(two["devices"]) == 2 and bool(two["data_parallel"])
    names = sorted(key for key in one if key.startswith("w"))
    assert names
    assert names == sorted(key for key in two if key.startswith("w"))
    for name in names:
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-5)
    # Training moved them: the comparison is of updates, not of inits.
    largest = max(
        np.abs(one[name] - one["initial_" + name]).max() for name in names
    )
    assert largest > 1e-3, largest
