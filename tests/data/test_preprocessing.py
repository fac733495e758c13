import numpy as np
import pytest
import tensorflow as tf

from tests.data import reference
from tfgap import data
from tfgap.data import preprocessing


def _image(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar100"])
def test_eval_is_per_channel_normalization(name):
    spec = data.get_spec(name)
    raw = _image((3, *spec.raw_shape))
    got = data.preprocess_for_eval(name, raw).numpy()
    np.testing.assert_allclose(got, reference.normalize(name, raw), rtol=1e-5, atol=1e-5)
    # Known pixels: black is -mean/std, white is (1 - mean)/std, per channel.
    mean, std = map(np.array, reference.MEAN_STD[name])
    extremes = np.stack([np.zeros(spec.raw_shape, np.uint8), np.full(spec.raw_shape, 255, np.uint8)])
    got = data.preprocess_for_eval(name, extremes).numpy()
    np.testing.assert_allclose(got[0, 0, 0], -mean / std, rtol=1e-5)
    np.testing.assert_allclose(got[1, 0, 0], (1 - mean) / std, rtol=1e-5)


@pytest.mark.parametrize("shape", [(300, 200, 3), (256, 256, 3), (150, 421, 3), (77, 90, 3)])
def test_imagenet_eval_matches_numpy_resize_and_centre_crop(shape):
    raw = _image(shape, seed=sum(shape))
    got = data.preprocess_for_eval("imagenet2012", raw).numpy()
    assert got.shape == (224, 224, 3)
    np.testing.assert_allclose(got, reference.imagenet_eval(raw), atol=2e-4)


def test_imagenet_eval_on_a_ramp_keeps_the_centre():
    # A horizontal ramp 0..255 over 512 columns, 256 rows: no resize, the
    # crop starts at column (512 - 224) // 2 = 144.
    ramp = np.tile((np.arange(512) // 2).astype(np.uint8)[None, :, None], (256, 1, 3))
    got = data.preprocess_for_eval("imagenet2012", ramp).numpy()
    expected = (np.arange(144, 144 + 224) // 2 / 255.0 - 0.485) / 0.229
    np.testing.assert_allclose(got[100, :, 0], expected, atol=1e-5)


@pytest.mark.parametrize("name", data.available_datasets())
def test_eval_inside_a_serving_signature_any_batch_size(name):
    spec = data.get_spec(name)

    @tf.function(input_signature=[tf.TensorSpec([None, *spec.raw_shape], spec.raw_dtype)])
    def serve(raw):
        return data.preprocess_for_eval(name, raw)

    for batch in (1, 3):
        if spec.raw_dtype == "uint8":
            raw = _image((batch, *spec.raw_shape), seed=batch)
        else:
            raw = np.random.default_rng(batch).normal(size=(batch, *spec.raw_shape)).astype("f4")
        out = serve(raw)
        assert out.shape == (batch, *spec.input_shape) and out.dtype == tf.float32
        np.testing.assert_allclose(
            out.numpy(), data.preprocess_for_eval(name, raw).numpy(), rtol=1e-5, atol=1e-5)


def test_imagenet_serving_signature_with_dynamic_image_size():
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
    def serve(raw):
        return data.preprocess_for_eval("imagenet2012", raw)

    raw = _image((2, 240, 320, 3))
    assert serve.get_concrete_function().structured_outputs.shape.as_list() == [None, 224, 224, 3]
    np.testing.assert_allclose(serve(raw).numpy()[1], reference.imagenet_eval(raw[1]), atol=2e-4)


def test_cifar_augmentation_is_a_crop_of_the_padded_image():
    image = _image((32, 32, 3), seed=7)
    choices = set()
    for s in range(40):
        out = preprocessing.augment_cifar(tf.constant(image), tf.constant([s, 0])).numpy()
        assert out.shape == (32, 32, 3) and out.dtype == np.uint8
        matches = [key for key, crop in reference.crops_of_padded(image) if np.array_equal(crop, out)]
        assert matches, f"seed {s}: output is not a crop of the padded image"
        choices.update(matches)
    flips = {flip for _, _, flip in choices}
    offsets = {(dy, dx) for dy, dx, _ in choices}
    assert flips == {False, True} and len(offsets) > 10
    again = preprocessing.augment_cifar(tf.constant(image), tf.constant([3, 0]))
    first = preprocessing.augment_cifar(tf.constant(image), tf.constant([3, 0]))
    np.testing.assert_array_equal(again.numpy(), first.numpy())


def test_imagenet_train_crop_shapes_range_and_content():
    rng = np.random.default_rng(1)
    # Constant-colour image: every crop, resize and flip gives that colour.
    jpeg = tf.io.encode_jpeg(np.full((60, 90, 3), 200, np.uint8), quality=100)
    for s in range(5):
        out = preprocessing.imagenet_train_crop(jpeg, tf.constant([s, 1])).numpy()
        assert out.shape == (224, 224, 3)
        np.testing.assert_allclose(out, 200, atol=2)
    noisy = tf.io.encode_jpeg(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8))
    a = preprocessing.imagenet_train_crop(noisy, tf.constant([5, 5])).numpy()
    b = preprocessing.imagenet_train_crop(noisy, tf.constant([5, 5])).numpy()
    c = preprocessing.imagenet_train_crop(noisy, tf.constant([6, 5])).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.min() >= 0 and a.max() <= 255


def test_imagenet_train_crop_is_a_resized_region():
    # Columns hold their own index (a ramp). Any crop of columns [x0, x0+w)
    # resized to 224 is monotone in x and spans a sub-range of [0, 95];
    # a full-image crop would span the whole range, a small crop far less.
    ramp = np.tile((np.arange(96) * 2).astype(np.uint8)[None, :, None], (64, 1, 3))
    jpeg = tf.io.encode_jpeg(ramp, quality=100)
    spans = []
    for s in range(30):
        out = preprocessing.imagenet_train_crop(jpeg, tf.constant([s, 9])).numpy()[112, :, 0]
        if out[0] > out[-1]:
            out = out[::-1]  # flipped
        assert np.all(np.diff(out) >= -3), "a crop of a ramp must stay monotone"
        spans.append(out[-1] - out[0])
    spans = np.array(spans)
    assert spans.min() < 0.8 * spans.max() and spans.max() <= 192
