"""The real tfds pipelines, run on tensorflow-datasets' own mock data."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.data import reference
from tfgap import data

TFDS_NAMES = ["mnist", "cifar10", "cifar100", "imagenet2012"]
N = 16


def _raw_mock_examples(name, split):
    """The mock examples, read straight from tfds (not through tfgap)."""
    spec = data.get_spec(name)
    if name != "imagenet2012":
        with tfds.testing.mock_data(num_examples=N):
            ds = tfds.load(spec.tfds_name, split=split, as_supervised=True)
            return [(x.numpy(), int(y)) for x, y in ds]
    # ImageNet is read as JPEG bytes (the mock encodes its random images);
    # decode them here to get the known raw images.
    with tfds.testing.mock_data(num_examples=N):
        ds = tfds.load(spec.tfds_name, split=split, as_supervised=True,
                       decoders={"image": tfds.decode.SkipDecoding()})
        return [(tf.io.decode_jpeg(x, channels=3).numpy(), int(y)) for x, y in ds]


def _eval_reference(name, raw):
    if name == "imagenet2012":
        return reference.imagenet_eval(raw)
    return reference.normalize(name, raw)


def _collect(ds):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in ds])
    return np.concatenate(xs), np.concatenate(ys)


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_eval_pipeline_equals_numpy_preprocessing_of_raw_examples(name):
    spec = data.get_spec(name)
    ds = data.build_dataset(name, "test", batch_size=5, training=False,
                            mock_data=True, mock_examples=N)
    assert ds.element_spec[0].shape.as_list() == [None, *spec.input_shape]
    assert ds.element_spec[0].dtype == tf.float32 and ds.element_spec[1].dtype == tf.int32
    x, y = _collect(ds)
    assert x.shape == (N, *spec.input_shape) and y.shape == (N,)
    raw = _raw_mock_examples(name, spec.eval_split)
    atol = 2e-4 if name == "imagenet2012" else 1e-5
    for i, (image, label) in enumerate(raw):  # no shuffling in eval: same order
        assert y[i] == label
        np.testing.assert_allclose(x[i], _eval_reference(name, image), atol=atol)


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_train_pipeline_shapes_dtypes_ranges(name):
    spec = data.get_spec(name)
    ds = data.build_dataset(name, "train", batch_size=8, training=True, seed=0,
                            mock_data=True, mock_examples=N, drop_remainder=True,
                            validation_examples=0)  # the whole mock training split
    assert ds.element_spec[0].shape.as_list() == [8, *spec.input_shape]
    x, y = _collect(ds)
    assert x.shape == (N, *spec.input_shape) and x.dtype == np.float32 and y.dtype == np.int32
    assert y.min() >= 0 and y.max() < spec.num_classes
    mean, std = map(np.array, reference.MEAN_STD[name])
    lo, hi = -mean / std, (1 - mean) / std
    assert np.all(x >= lo - 1e-4) and np.all(x <= hi + 1e-4)
    # Shuffled: the labels are those of the raw split, in another order.
    raw_labels = [label for _, label in _raw_mock_examples(name, spec.train_split)]
    assert sorted(y.tolist()) == sorted(raw_labels) and y.tolist() != raw_labels


@pytest.mark.parametrize("name", TFDS_NAMES)
def test_two_input_pipelines_get_disjoint_shards(name):
    shards = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                         num_replicas_in_sync=2)
        ds = data.build_dataset(name, "test", batch_size=4, training=False,
                                mock_data=True, mock_examples=N, input_context=ctx)
        x, _ = _collect(ds)
        shards.append({xi.tobytes() for xi in x})
    assert len(shards[0]) == len(shards[1]) == N // 2
    assert not shards[0] & shards[1]
    full, _ = _collect(data.build_dataset(name, "test", batch_size=N, training=False,
                                          mock_data=True, mock_examples=N))
    assert shards[0] | shards[1] == {xi.tobytes() for xi in full}


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_train_examples_are_crops_of_the_padded_raw_image(name):
    raw = {label_image[0].tobytes(): label_image[0]
           for label_image in _raw_mock_examples(name, "train")}
    mean, std = map(np.array, reference.MEAN_STD[name])
    ds = data.build_dataset(name, "train", batch_size=N, training=True, shuffle=False,
                            seed=3, mock_data=True, mock_examples=N)
    x, _ = _collect(ds)
    raw_images = list(raw.values())
    flips = set()
    for i, out in enumerate(x):
        # Undo the normalization: back to uint8 pixels (padding is 0).
        pixels = np.round((out * std + mean) * 255).astype(np.int64)
        matches = [key for key, crop in reference.crops_of_padded(raw_images[i])
                   if np.array_equal(crop, pixels)]
        assert matches, f"example {i} is not a crop of its padded raw image"
        flips.update(flip for _, _, flip in matches)
    assert flips == {False, True}


def test_seeded_training_pipeline_is_reproducible_and_epochs_differ():
    def first_epochs(seed):
        ds = data.build_dataset("cifar10", "train", batch_size=N, training=True, seed=seed,
                                mock_data=True, mock_examples=N, repeat=True)
        it = iter(ds)
        return [next(it)[0].numpy() for _ in range(2)]

    a, b, c = first_epochs(1), first_epochs(1), first_epochs(2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[0], a[1])  # new shuffle and augmentation each epoch


def test_drop_remainder_and_repeat():
    ds = data.build_dataset("mnist", "test", batch_size=5, training=False, mock_data=True,
                            mock_examples=N, drop_remainder=True)
    assert [x.shape[0] for x, _ in ds] == [5, 5, 5]
    assert ds.element_spec[0].shape[0] == 5
    ds = data.build_dataset("mnist", "test", batch_size=5, training=False, mock_data=True,
                            mock_examples=N)
    assert [x.shape[0] for x, _ in ds] == [5, 5, 5, 1]
    ds = data.build_dataset("mnist", "train", batch_size=5, training=True, mock_data=True,
                            mock_examples=N, repeat=True)
    assert len(list(ds.take(10))) == 10


def test_num_examples():
    # "train" is the training split less the validation split (tests/data/test_splits.py).
    assert data.num_examples("cifar10", "train", validation_examples=0) == 50000
    assert data.num_examples("cifar10", "train") == 45000
    assert data.num_examples("imagenet2012", "test") == 50000
    assert data.num_examples("imagenet2012", "train", mock_data=True, mock_examples=7,
                             validation_examples=0) == 7
    assert data.num_examples("mnist1d", "train", num_samples=1000, validation_examples=0) == 800
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'validation', 'test'\)"
                                         r", received 'valid'"):
        data.num_examples("mnist", "valid")


def test_bad_arguments():
    with pytest.raises(ValueError, match="Unknown dataset name.*'svhn'"):
        data.get_spec("svhn")
    with pytest.raises(ValueError, match="batch_size"):
        data.build_dataset("mnist", "train", batch_size=0, training=True, mock_data=True)
    with pytest.raises(ValueError, match="shuffle"):
        data.build_dataset("mnist", "train", batch_size=2, training=True, shuffle=-3,
                           mock_data=True)
    with pytest.raises(ValueError, match="num_samples"):
        data.build_dataset("mnist", "train", batch_size=2, training=True, num_samples=10)
