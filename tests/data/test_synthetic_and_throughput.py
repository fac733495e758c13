import numpy as np
import pytest
import tensorflow as tf

from tfgap import data


@pytest.mark.parametrize("name", data.available_datasets())
def test_synthetic_shapes_dtypes_and_repeat(name):
    spec = data.get_spec(name)
    ds = data.build_dataset(name, "train", batch_size=4, training=True, synthetic=True,
                            repeat=True, seed=0, data_dir="/nonexistent")  # reads no file
    batches = list(ds.take(3))
    assert len(batches) == 3
    x, y = batches[0]
    assert x.shape == (4, *spec.input_shape) and x.dtype == tf.float32 and y.dtype == tf.int32
    assert 0 <= int(tf.reduce_min(y)) and int(tf.reduce_max(y)) < spec.num_classes
    assert abs(float(tf.math.reduce_std(x)) - 1.0) < 0.5


def test_synthetic_finite_pass_is_one_epoch_per_worker():
    ctx = tf.distribute.InputContext(2, 1, 2)
    ds = data.build_dataset("mnist", "test", batch_size=100, training=False, synthetic=True,
                            input_context=ctx)
    assert len(list(ds)) == 50  # 10000 / 2 workers / 100


def test_measure_throughput_counts_examples():
    ds = data.build_dataset("cifar10", "train", batch_size=8, training=True, synthetic=True,
                            repeat=True)
    result = data.measure_throughput(ds, num_batches=10, warmup_batches=2)
    assert result["examples"] == 80 and result["batches"] == 10
    assert result["examples_per_second"] > 0
    np.testing.assert_allclose(result["examples_per_second"], 80 / result["seconds"])
    with pytest.raises(ValueError):
        data.measure_throughput(ds, num_batches=0)
