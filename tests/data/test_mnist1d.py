import random

import numpy as np
import pytest
import tensorflow as tf

from tfgap import data
from tfgap.data import mnist1d as mnist1d_lib


def test_generated_data_matches_the_package_generator():
    from mnist1d.data import get_dataset_args, make_dataset

    ours = data.load_mnist1d(num_samples=200, seed=3)
    args = get_dataset_args()
    args.num_samples, args.seed = 200, 3
    theirs = make_dataset(args)
    np.testing.assert_allclose(ours["x_train"], theirs["x"], rtol=1e-6)
    np.testing.assert_array_equal(ours["y_test"], theirs["y_test"])
    assert ours["x_train"].shape == (160, 40) and ours["x_test"].shape == (40, 40)
    assert ours["x_train"].dtype == np.float32 and ours["y_train"].dtype == np.int32
    assert set(np.unique(ours["y_train"])) <= set(range(10))


def test_deterministic_cached_and_leaves_global_random_state_alone():
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.rand(), random.random()
    np.random.seed(123)
    random.seed(123)
    a = data.load_mnist1d(num_samples=120, seed=5)
    assert (np.random.rand(), random.random()) == (expected_np, expected_py)
    assert data.load_mnist1d(num_samples=120, seed=5) is a  # cached in memory
    fresh = mnist1d_lib._generate.__wrapped__(120, 5)  # regenerated, not cached
    np.testing.assert_array_equal(fresh["x_train"], a["x_train"])
    other = data.load_mnist1d(num_samples=120, seed=6)
    assert not np.array_equal(other["x_train"], a["x_train"])
    with pytest.raises(ValueError):
        a["x_train"][0, 0] = 1.0  # read-only, so the cache cannot be corrupted


def test_build_dataset_shapes_sizes_and_sharding():
    spec = data.get_spec("mnist1d")
    assert spec.input_shape == (40,) and spec.raw_dtype == "float32" and spec.tfds_name is None
    ds = data.build_dataset("mnist1d", "test", batch_size=32, training=False, num_samples=500)
    x = np.concatenate([x.numpy() for x, _ in ds])
    assert x.shape == (data.num_examples("mnist1d", "test", num_samples=500), 40) == (100, 40)
    expected = data.load_mnist1d(num_samples=500)["x_test"]
    np.testing.assert_array_equal(x, expected)  # eval: unchanged, in order

    shards = []
    for i in range(2):
        ctx = tf.distribute.InputContext(2, i, 2)
        ds = data.build_dataset("mnist1d", "train", batch_size=16, training=True, seed=0,
                                num_samples=500, input_context=ctx)
        shards.append({row.tobytes() for x, _ in ds for row in x.numpy()})
    # 400 training rows less the default 10% validation, in two halves.
    assert len(shards[0]) == len(shards[1]) == 180 and not shards[0] & shards[1]


def test_mock_data_is_small_and_real():
    ds = data.build_dataset("mnist1d", "train", batch_size=8, training=True, mock_data=True,
                            mock_examples=24, seed=1)
    x, y = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    # 24 mock training examples less the mock default validation (10%, 2).
    assert np.concatenate(x).shape == (22, 40) and np.concatenate(y).dtype == np.int32
    assert data.num_examples("mnist1d", "test", mock_data=True, mock_examples=24) == 24


@pytest.mark.slow
def test_default_size_is_the_published_split():
    ds = data.load_mnist1d()
    assert ds["x_train"].shape == (4000, 40) and ds["x_test"].shape == (1000, 40)
    assert data.num_examples("mnist1d", "train", validation_examples=0) == 4000
    assert data.num_examples("mnist1d", "train") == 3600  # less 10% validation
    ds = data.build_dataset("mnist1d", "validation", batch_size=1000, training=False)
    assert sum(int(x.shape[0]) for x, _ in ds) == data.num_examples("mnist1d", "validation") == 400
