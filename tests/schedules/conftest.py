"""One `MirroredStrategy` for every test of this folder.

The root `two_cpus` fixture builds a new strategy per test. Two
`MirroredStrategy` objects in one process reuse the same collective instance
keys, so the second one's all-reduce aborts with "Shape mismatch in the
collective instance 100" (tensorflow/tensorflow#62790). Until the root fixture
is session-scoped, this override shares one strategy.
"""

import pytest
import tensorflow as tf


@pytest.fixture(scope="session")
def two_cpus():
    """A `MirroredStrategy` over the two logical CPUs, shared by the session."""
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert len(devices) >= 2, f"expected 2 logical CPUs, got {devices}"
    return tf.distribute.MirroredStrategy(devices[:2])
