"""Per-example preprocessing: normalization, augmentation, ImageNet crops.

Every function here is a pure TensorFlow function of its inputs (and, for
augmentation, an explicit stateless `seed` of shape `[2]`), so the pipelines
are reproducible when a seed is given and the same code runs in `tf.data`,
in a `tf.function` and in a SavedModel serving signature.

Formulas (pixels `x` in [0, 255], per-channel `mean`, `std` in [0, 1] units):

```
normalize(x) = (x / 255 - mean) / std
```

- MNIST, CIFAR eval, ImageNet eval: no randomness.
- CIFAR train: zero-pad 4 pixels on each side (40x40), random 32x32 crop,
  random horizontal flip, then normalize.
- ImageNet train (Inception-style): a random box covering a fraction
  `s ~ U(0.08, 1)` of the area with aspect ratio in `(3/4, 4/3)` (the
  `sample_distorted_bounding_box` sampler, 10 attempts, whole image on
  failure), decoded with `decode_and_crop_jpeg`, bilinear resize to 224x224,
  random flip, normalize.
- ImageNet eval: bilinear resize so the shorter side is 256 (the longer side
  is `round(long * 256 / short)`), centre crop 224x224, normalize.
"""

import tensorflow as tf

from tfgap.data import specs as specs_lib

CIFAR_PAD = 4
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)


def normalize(images, mean, std):
    """Scales raw pixels to [0, 1] and standardizes each channel.

    `(x / 255 - mean) / std`, broadcast over the last axis.

    Args:
        images: raw images (any rank, channels last), integer or float in
            [0, 255].
        mean: per-channel means in [0, 1] units.
        std: per-channel standard deviations in [0, 1] units.

    Returns:
        float32 tensor of the same shape.

    Example:

    >>> float(normalize(tf.constant([[255]], tf.uint8), (0.5,), (0.5,))[0, 0])
    1.0
    """
    x = tf.cast(images, tf.float32) / 255.0
    mean = tf.constant(mean, tf.float32)
    std = tf.constant(std, tf.float32)
    return (x - mean) / std


def augment_cifar(image, seed):
    """CIFAR training augmentation on one raw uint8 image (no normalization).

    Zero-pads `CIFAR_PAD` pixels on each side, takes a random 32x32 crop and
    flips it horizontally with probability 1/2, all stateless in `seed`.

    Args:
        image: `[32, 32, 3]` uint8 image.
        seed: `[2]` integer stateless seed.

    Returns:
        `[32, 32, 3]` uint8 image, a (possibly flipped) crop of the padded
        image.

    Example:

    >>> img = tf.zeros([32, 32, 3], tf.uint8)
    >>> augment_cifar(img, tf.constant([1, 2])).shape
    TensorShape([32, 32, 3])
    """
    crop_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    shape = tf.shape(image)
    padded = tf.pad(image, [[CIFAR_PAD, CIFAR_PAD], [CIFAR_PAD, CIFAR_PAD], [0, 0]])
    crop = tf.image.stateless_random_crop(padded, shape, seed=crop_seed)
    return tf.image.stateless_random_flip_left_right(crop, seed=flip_seed)


def imagenet_train_crop(encoded_jpeg, seed, size=specs_lib.IMAGENET_SIZE):
    """Inception-style random-resized crop and flip of an encoded JPEG.

    Only the sampled box is decoded (`decode_and_crop_jpeg`), which is what
    makes ImageNet training input fast.

    Args:
        encoded_jpeg: scalar string tensor, a JPEG file's bytes.
        seed: `[2]` integer stateless seed.
        size: output height and width.

    Returns:
        `[size, size, 3]` float32 image in [0, 255] (not normalized).

    Example:

    >>> jpeg = tf.io.encode_jpeg(tf.zeros([40, 60, 3], tf.uint8))
    >>> imagenet_train_crop(jpeg, tf.constant([0, 1])).shape
    TensorShape([224, 224, 3])
    """
    box_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    image_shape = tf.io.extract_jpeg_shape(encoded_jpeg)
    begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4]),
        seed=box_seed,
        min_object_covered=0.1,
        aspect_ratio_range=CROP_ASPECT_RANGE,
        area_range=CROP_AREA_RANGE,
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    offset_y, offset_x, _ = tf.unstack(begin)
    height, width, _ = tf.unstack(crop_size)
    window = tf.stack([offset_y, offset_x, height, width])
    image = tf.io.decode_and_crop_jpeg(encoded_jpeg, window, channels=3)
    image = tf.image.resize(image, [size, size], method="bilinear")
    image = tf.image.stateless_random_flip_left_right(image, seed=flip_seed)
    return tf.ensure_shape(image, [size, size, 3])


def resize_shorter_and_center_crop(
    images, resize=specs_lib.IMAGENET_RESIZE, size=specs_lib.IMAGENET_SIZE
):
    """Resizes the shorter side to `resize`, then takes the central crop.

    Works on one image `[H, W, C]` or a batch `[B, H, W, C]` with dynamic
    `H`, `W` (every image of a batch shares them).

    Args:
        images: uint8 or float images.
        resize: target length of the shorter side.
        size: side of the square centre crop.

    Returns:
        float32 images `[..., size, size, C]` in the input's value range.

    Example:

    >>> resize_shorter_and_center_crop(tf.zeros([300, 500, 3])).shape
    TensorShape([224, 224, 3])
    """
    images = tf.convert_to_tensor(images)
    shape = tf.shape(images)
    height = tf.cast(shape[-3], tf.float32)
    width = tf.cast(shape[-2], tf.float32)
    scale = float(resize) / tf.minimum(height, width)
    new_height = tf.cast(tf.round(height * scale), tf.int32)
    new_width = tf.cast(tf.round(width * scale), tf.int32)
    resized = tf.image.resize(images, tf.stack([new_height, new_width]), method="bilinear")
    top = (new_height - size) // 2
    left = (new_width - size) // 2
    cropped = resized[..., top : top + size, left : left + size, :]
    channels = images.shape[-1]
    return tf.ensure_shape(cropped, [*images.shape[:-3], size, size, channels])


def preprocess_for_eval(name, raw):
    """The evaluation preprocessing of raw inputs, as a TensorFlow function.

    This is exactly what `build_dataset(..., training=False)` applies after
    decoding, so a SavedModel whose serving signature calls it sees the same
    inputs as evaluation. It takes one example or a batch of any size.

    - `"mnist"`, `"cifar10"`, `"cifar100"`: `normalize` with the dataset's
      per-channel mean and std; raw uint8 `[..., 28, 28, 1]` or
      `[..., 32, 32, 3]`.
    - `"imagenet2012"`: resize the shorter side to 256, centre crop 224,
      normalize. Raw uint8 `[..., H, W, 3]` of any `H`, `W` (the spec's
      serving size is 256x256, where the resize is the identity).
    - `"mnist1d"`: cast to float32 (the generator already standardizes).

    Args:
        name: dataset name (see `tfgap.data.get_spec`).
        raw: raw inputs of `get_spec(name).raw_dtype`, with or without a
            leading batch axis.

    Returns:
        float32 tensor, `get_spec(name).input_shape` per example.

    Example:

    >>> raw = tf.fill([2, 32, 32, 3], tf.constant(128, tf.uint8))
    >>> x = preprocess_for_eval("cifar10", raw)
    >>> x.shape, x.dtype.name
    (TensorShape([2, 32, 32, 3]), 'float32')
    """
    spec = specs_lib.get_spec(name)
    raw = tf.convert_to_tensor(raw)
    if name == "mnist1d":
        return tf.cast(raw, tf.float32)
    if name == "imagenet2012":
        raw = resize_shorter_and_center_crop(raw)
    return normalize(raw, spec.mean, spec.std)
