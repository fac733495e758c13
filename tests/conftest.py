"""Shared test setup: split the host CPU into two logical devices.

This must happen before TensorFlow initializes its devices, so it runs at
import time of this conftest (pytest imports it before any test module).
Distribution tests then use a real `MirroredStrategy` over `/cpu:0` and
`/cpu:1`.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
except RuntimeError:
    # Devices were already initialized (e.g. a plugin touched TF first); the
    # distribution tests check for two logical CPUs and fail loudly if absent.
    pass

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def two_cpus():
    """A `MirroredStrategy` over the two logical CPUs, shared by the session.

    One strategy per process: a second MirroredStrategy that runs collectives
    in the same process aborts with a collective shape mismatch
    (tensorflow/tensorflow#62790).
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, f"expected 2 logical CPUs, got {devices}"
    return tf.distribute.MirroredStrategy(devices[:2])
