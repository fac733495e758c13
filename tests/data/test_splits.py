"""The validation split: carved from train, disjoint, deterministic, sized as configured.

Example identities are the raw bytes of each example: for tfds' mock data the
raw images are read straight from tfds (not through tfgap) and the pipeline's
eval outputs are mapped back to raw pixels; for MNIST-1D the rows of the
generated arrays.
"""

import doctest
import hashlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.data import reference
from tfgap import data
from tfgap.data import pipeline, tfds_pipeline
from tfgap.data import splits as splits_lib

N = 20  # mock training split


def _hash(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _raw_mock_train(name):
    """Hashes of the mock training images in tfds' order, read straight from tfds."""
    with tfds.testing.mock_data(num_examples=N):
        ds = tfds.load(data.get_spec(name).tfds_name, split="train", as_supervised=True)
        return [_hash(x.numpy().astype(np.uint8)) for x, _ in ds]


def _pipeline_raw_hashes(name, split, **kwargs):
    """Hashes of the raw images behind an eval-preprocessed tfgap pipeline, in its order."""
    ds = data.build_dataset(name, split, batch_size=7, training=False, mock_data=True,
                            mock_examples=N, **kwargs)
    mean, std = map(np.array, reference.MEAN_STD[name])
    hashes = []
    for x, _ in ds:
        pixels = np.round((x.numpy().astype(np.float64) * std + mean) * 255)
        assert np.all((pixels >= 0) & (pixels <= 255))
        hashes += [_hash(p.astype(np.uint8)) for p in pixels]
    return hashes


def test_splits_and_doctests():
    assert data.SPLITS == ("train", "validation", "test")
    for module in (splits_lib, pipeline, tfds_pipeline):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted >= 3, module.__name__


def test_default_rule_per_dataset():
    # Independent arithmetic: CIFAR 5000, MNIST and MNIST-1D 10%, ImageNet 1% (floors).
    expected = {"cifar10": (50000, 5000), "cifar100": (50000, 5000), "mnist": (60000, 6000),
                "imagenet2012": (1281167, 12811), "mnist1d": (4000, 400)}
    for name, (n, v) in expected.items():
        assert data.default_validation_examples(name, n) == v
        assert data.num_examples(name, "validation") == v
        assert data.num_examples(name, "train") == n - v
        assert data.num_examples(name, "train", validation_examples=0) == n
    assert data.num_examples("cifar10", "test") == 10000  # unchanged
    assert data.num_examples("imagenet2012", "test") == 50000
    assert data.num_examples("mnist1d", "validation", num_samples=1000) == 80
    # A partial CIFAR build gets 10%, never more than 5000.
    assert data.default_validation_examples("cifar10", 20000) == 2000
    # Mock data: 10% for every dataset, at least 1, leaving at least 1 to train on.
    for name in data.available_datasets():
        assert data.default_validation_examples(name, 256, mock_data=True) == 25
        assert data.num_examples(name, "validation", mock_data=True) == 25
        assert data.num_examples(name, "train", mock_data=True) == 231
        assert data.default_validation_examples(name, 5, mock_data=True) == 1
        assert data.default_validation_examples(name, 1, mock_data=True) == 0
    assert data.default_validation_examples("imagenet2012", 6) == 1  # tiny build: at least 1


def test_sizes_none_zero_and_explicit():
    def sizes(v, **kwargs):
        return tuple(data.num_examples("cifar10", s, validation_examples=v, **kwargs)
                     for s in data.SPLITS)

    assert sizes(None) == (45000, 5000, 10000)
    assert sizes(0) == (50000, 0, 10000)
    assert sizes(123) == (49877, 123, 10000)
    assert sizes(np.int64(7), mock_data=True, mock_examples=N) == (13, 7, N)
    assert sizes(None, mock_data=True, mock_examples=N) == (18, 2, N)
    with pytest.raises(ValueError, match=r"disabled \(validation_examples=0\)"):
        data.build_dataset("mnist", "validation", batch_size=2, training=False,
                           mock_data=True, validation_examples=0)
    with pytest.raises(ValueError, match=r"validation_examples=0"):
        data.build_dataset("mnist1d", "validation", batch_size=2, training=False,
                           mock_data=True, validation_examples=0)


@pytest.mark.parametrize("bad", [-3, 2.5, 3.0, True, "5", 50000, 10**6])
def test_bad_values_raise_naming_value_and_range(bad):
    message = (r"validation_examples must be an integer in \[0, 49999\] \(the training split "
               rf"of 'cifar10' has 50000 examples\); received {bad!r}".replace(".", r"\."))
    with pytest.raises(ValueError, match=message):
        data.num_examples("cifar10", "train", validation_examples=bad)
    with pytest.raises(ValueError, match=r"\[0, 19\].*20 examples under mock_data"):
        data.build_dataset("cifar10", "validation", batch_size=2, training=False,
                           mock_data=True, mock_examples=N, validation_examples=bad)


def test_mnist1d_carve_is_disjoint_covers_train_and_ignores_seed():
    x_train = data.load_mnist1d(num_samples=500)["x_train"]  # 400 rows
    everything = [_hash(row) for row in x_train]
    assert len(set(everything)) == 400

    def rows(split, seed, **kwargs):
        ds = data.build_dataset("mnist1d", split, batch_size=64, training=split == "train",
                                seed=seed, num_samples=500, validation_examples=40, **kwargs)
        return [_hash(row) for x, _ in ds for row in x.numpy()]

    train, validation = rows("train", 0), rows("validation", 0)
    assert len(train) == 360 and len(validation) == 40
    assert not set(train) & set(validation)
    assert set(train) | set(validation) == set(everything)
    assert validation == everything[-40:]  # the last 40, in order (eval is not shuffled)
    assert train != everything[:360]  # training shuffles ...
    for seed in (1, None):  # ... but never changes which examples are in each split
        assert set(rows("train", seed)) == set(train)
        assert set(rows("validation", seed)) == set(validation)
    assert rows("validation", 1) == validation  # seeded eval pipelines keep the order
    # Validation shards like test: two pipelines, disjoint halves of it.
    shards = [rows("validation", 0, input_context=tf.distribute.InputContext(2, i, 2))
              for i in range(2)]
    assert len(shards[0]) == len(shards[1]) == 20 and not set(shards[0]) & set(shards[1])
    assert set(shards[0]) | set(shards[1]) == set(validation)


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_tfds_mock_carve_is_disjoint_covers_train_and_ignores_seed(name):
    raw = _raw_mock_train(name)
    assert len(set(raw)) == N  # distinct mock images, so hashes identify examples
    v = 6
    train = _pipeline_raw_hashes(name, "train", shuffle=True, seed=0, validation_examples=v)
    validation = _pipeline_raw_hashes(name, "validation", seed=0, validation_examples=v)
    assert len(train) == N - v and len(validation) == v
    assert not set(train) & set(validation)
    assert set(train) | set(validation) == set(raw)
    assert validation == raw[-v:]  # the last v of the training split, in order
    assert train != raw[:N - v]  # shuffled
    for seed in (1, None):
        assert set(_pipeline_raw_hashes(name, "train", shuffle=True, seed=seed,
                                        validation_examples=v)) == set(train)
        assert set(_pipeline_raw_hashes(name, "validation", seed=seed,
                                        validation_examples=v)) == set(validation)
    assert _pipeline_raw_hashes(name, "validation", seed=1, validation_examples=v) == validation
    # validation_examples=0: train is the whole mock training split.
    assert sorted(_pipeline_raw_hashes(name, "train", validation_examples=0)) == sorted(raw)
    # Sharded validation: disjoint halves whose union is the validation split.
    shards = [set(_pipeline_raw_hashes(
        name, "validation", validation_examples=v,
        input_context=tf.distribute.InputContext(2, i, 2))) for i in range(2)]
    assert len(shards[0]) == len(shards[1]) == v // 2 and not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(validation)


def test_validation_is_evaluated_like_test():
    # CIFAR: no crop or flip on validation even with a seed: exactly the eval transform.
    a = _pipeline_raw_hashes("cifar10", "validation", seed=5, validation_examples=4)
    assert a == _raw_mock_train("cifar10")[-4:]


def _count(ds):
    return sum(int(y.shape[0]) for _, y in ds)


@pytest.mark.parametrize("v", [None, 0, 7])
def test_num_examples_agrees_with_the_pipeline(v):
    cases = [("mnist1d", dict(num_samples=200)), ("mnist1d", dict(mock_data=True, mock_examples=N)),
             ("cifar10", dict(mock_data=True, mock_examples=N)),
             ("mnist", dict(mock_data=True, mock_examples=N)),
             ("mnist", dict(mock_data=True, mock_examples=N, synthetic=True))]
    for name, kwargs in cases:
        for split in data.SPLITS:
            expected = data.num_examples(name, split, validation_examples=v, **kwargs)
            if split == "validation" and v == 0:
                assert expected == 0
                continue
            ds = data.build_dataset(name, split, batch_size=1, training=False,
                                    validation_examples=v, **kwargs)
            assert _count(ds) == expected, (name, kwargs, split)


def test_synthetic_validation_has_the_mock_default_size():
    # The training split keeps the real length; validation is 10% of mock_examples.
    kwargs = dict(synthetic=True, mock_examples=64)
    assert data.num_examples("cifar10", "validation", **kwargs) == 6
    assert data.num_examples("cifar10", "train", **kwargs) == 50000 - 6
    ds = data.build_dataset("cifar10", "validation", batch_size=1, training=False, **kwargs)
    assert _count(ds) == 6
    ds = data.build_dataset("cifar10", "train", batch_size=10, training=True, **kwargs)
    assert int(ds.cardinality()) == -(-(50000 - 6) // 10)
    ds = data.build_dataset("cifar10", "validation", batch_size=1, training=False,
                            validation_examples=9, **kwargs)
    assert _count(ds) == 9
    assert data.num_examples("cifar10", "validation", validation_examples=9, **kwargs) == 9
