"""`build_dataset` and `num_examples`: the one entry point of the input pipelines.

Every dataset goes through the same stages, in this order:

```
source (per worker)  ->  cache (small datasets)  ->  shuffle  ->  repeat
  ->  parallel map (decode, augment, normalize)  ->  batch  ->  prefetch
```

The source of `"train"` and `"validation"` is a fixed slice of the dataset's
training split (`tfgap.data.splits`): the last `validation_examples` are
validation, the rest train, the same examples whatever the seed.

Augmentation is stateless: each example gets its own `[2]` seed from
`tf.data.Dataset.random(seed, rerandomize_each_iteration=True)` zipped in
before the map, so with a `seed` the whole stream (file order, shuffle,
crops, flips) is reproducible and each epoch still sees new augmentations;
without a seed the pipeline is allowed to be non-deterministic (faster).
"""

import tensorflow as tf

from tfgap.data import mnist1d as mnist1d_lib
from tfgap.data import preprocessing
from tfgap.data import specs as specs_lib
from tfgap.data import splits as splits_lib
from tfgap.data import synthetic as synthetic_lib
from tfgap.data import tfds_pipeline
from tfgap.data.splits import SPLITS

SMALL_SHUFFLE_BUFFER = 10_000


def _source_size(spec, source, *, mock_data, mock_examples, num_samples, data_dir):
    """Size of the dataset's whole `source` split (`"train"` or `"test"`)."""
    if mock_data:
        return int(mock_examples)
    if spec.name == "mnist1d" and num_samples is not None:
        return mnist1d_lib.num_mnist1d_examples(source, num_samples)
    if data_dir is not None and spec.tfds_name:
        counted = tfds_pipeline.prepared_num_examples(
            spec, spec.train_split if source == "train" else spec.eval_split, data_dir)
        if counted is not None:
            return counted
    return spec.num_train_examples if source == "train" else spec.num_eval_examples


def _num_validation(spec, validation_examples, *, mock_data, synthetic, mock_examples,
                    num_samples, data_dir):
    """`(N, V)`: the whole training split's size and the validation size, checked."""
    num_train = _source_size(spec, "train", mock_data=mock_data, mock_examples=mock_examples,
                             num_samples=num_samples, data_dir=None if synthetic else data_dir)
    if synthetic and validation_examples is None:
        # Synthetic splits keep the real training length, but a throughput run
        # needs no real-size validation: the mock default (10% of mock_examples).
        validation_examples = min(
            splits_lib.default_validation_examples(spec.name, int(mock_examples), mock_data=True),
            max(num_train - 1, 0))
    num_validation = splits_lib.resolve_validation_examples(
        spec.name, validation_examples, num_train, mock_data=mock_data or synthetic)
    return num_train, num_validation


def num_examples(name, split, *, mock_data=False, mock_examples=256, num_samples=None,
                 data_dir=None, validation_examples=None, synthetic=False):
    """Number of examples in a split (all workers together).

    `"validation"` is carved from the training split (see
    `tfgap.data.splits`): with `N` training examples and `V` validation
    examples, `"train"` has `N - V` and `"validation"` `V`.

    Args:
        name: dataset name.
        split: `"train"`, `"validation"` or `"test"`.
        mock_data: count the mock data instead (`mock_examples` in the whole
            training split and in the test split).
        mock_examples: examples per split under `mock_data`.
        num_samples: MNIST-1D generator size (default 5000); must be `None`
            for the other datasets.
        data_dir: when given, and the tensorflow-datasets data is prepared
            there, the count is read from that data's metadata (so a partial
            or custom build is counted as it is on disk); otherwise the
            published size of the split.
        validation_examples: `V`: `None` (the default,
            `default_validation_examples`), `0` (no validation split) or an
            integer in `[0, N - 1]`.
        synthetic: count as `build_dataset(synthetic=True)` does: the
            default validation size is the mock one (10% of
            `mock_examples`, at least 1), the training split keeps its
            (mock or published) size, and `data_dir` is not read.

    Returns:
        int.

    Raises:
        ValueError: bad `name`, `split`, `num_samples` or
            `validation_examples`.

    Example:

    >>> num_examples("cifar10", "test"), num_examples("cifar10", "validation")
    (10000, 5000)
    >>> num_examples("cifar10", "train"), num_examples("cifar10", "train", validation_examples=0)
    (45000, 50000)
    >>> [num_examples("mnist", s, mock_data=True) for s in ("train", "validation", "test")]
    [231, 25, 256]
    """
    spec = specs_lib.get_spec(name)
    splits_lib.check_split(split)
    _check_num_samples(name, num_samples)
    kwargs = dict(mock_data=mock_data, mock_examples=mock_examples, num_samples=num_samples,
                  data_dir=None if synthetic else data_dir)
    num_train, num_validation = _num_validation(
        spec, validation_examples, synthetic=synthetic, **kwargs)
    if split == "test":
        return _source_size(spec, "test", **kwargs)
    return num_validation if split == "validation" else num_train - num_validation


def _check_num_samples(name, num_samples):
    if num_samples is not None and name != "mnist1d":
        raise ValueError(
            f"num_samples applies to 'mnist1d' only, received num_samples={num_samples} "
            f"for {name!r}."
        )


def _shuffle_buffer(name, shuffle, batch_size, mock_data, mock_examples):
    if not isinstance(shuffle, bool):
        return int(shuffle)
    if mock_data:
        return int(mock_examples)
    if name == "imagenet2012":
        # Encoded JPEGs (~110 kB each); file order is shuffled too.
        return min(SMALL_SHUFFLE_BUFFER, max(1024, 16 * batch_size))
    if name == "mnist1d":
        return 1 << 20  # the whole (tiny) split
    return SMALL_SHUFFLE_BUFFER


def _example_fns(name, spec, training):
    """(decode+preprocess fn taking (raw, label, seed), needs_seed)."""

    def label32(label):
        return tf.cast(label, tf.int32)

    if name == "imagenet2012":
        if training:
            def train_fn(jpeg, label, seed):
                image = preprocessing.imagenet_train_crop(jpeg, seed)
                return preprocessing.normalize(image, spec.mean, spec.std), label32(label)

            return train_fn, True

        def eval_fn(jpeg, label):
            image = tf.io.decode_jpeg(jpeg, channels=3)
            return preprocessing.preprocess_for_eval(name, image), label32(label)

        return eval_fn, False
    if training and name in ("cifar10", "cifar100"):
        def cifar_fn(image, label, seed):
            image = preprocessing.augment_cifar(image, seed)
            return preprocessing.normalize(image, spec.mean, spec.std), label32(label)

        return cifar_fn, True

    def plain_fn(raw, label):
        return preprocessing.preprocess_for_eval(name, raw), label32(label)

    return plain_fn, False


def build_dataset(
    name,
    split,
    *,
    batch_size,
    training,
    data_dir=None,
    download=False,
    mock_data=False,
    mock_examples=256,
    synthetic=False,
    seed=None,
    input_context=None,
    drop_remainder=False,
    repeat=False,
    shuffle=None,
    num_samples=None,
    validation_examples=None,
):
    """The batched `(float32 inputs, int32 labels)` input pipeline of a dataset.

    Standard preprocessing (see `tfgap.data.preprocessing`): MNIST scale and
    normalize; CIFAR pad-4 random crop and flip for training, per-channel
    normalization; ImageNet Inception-style random-resized crop to 224 and
    flip for training, resize-256 centre-crop-224 for evaluation, ImageNet
    mean/std; MNIST-1D as generated. Evaluation applies exactly
    `preprocess_for_eval(name, raw)`.

    Splits (see `tfgap.data.splits`): `"validation"` is the last `V`
    examples of the dataset's training split and `"train"` the other
    `N - V`; they are disjoint and the same on every run and machine,
    whatever the seed. `"test"` is the dataset's evaluation split. Build
    `"validation"` like `"test"`: `training=False`.

    Args:
        name: one of `tfgap.data.available_datasets()`.
        split: `"train"`, `"validation"` or `"test"` (`"test"` is the
            spec's `eval_split`: ImageNet's `"test"` is its tfds
            `validation` split; our `"validation"` is carved from train).
        batch_size: the batch of THIS pipeline (per replica when the caller
            uses `input_context.get_per_replica_batch_size`).
        training: random augmentation (and, by default, shuffling).
        data_dir: tensorflow-datasets data directory (`None`: tfds' default).
        download: download and prepare missing data (ImageNet: build from
            `<data_dir>/downloads/manual`). Off: missing data raises
            `DatasetNotPreparedError` within seconds.
        mock_data: run the real pipeline on `tfds.testing.mock_data` fake
            examples (`mock_examples` in the whole training split, which
            `"train"` and `"validation"` share, and in `"test"`), no files
            needed. For MNIST-1D, a small real generated data set.
        mock_examples: examples per split with `mock_data`.
        synthetic: one random batch of the right shapes, repeated (for
            throughput); no data, no preprocessing. Every split, validation
            included, has the size `num_examples(..., synthetic=True)` gives.
        seed: makes file order, shuffling and augmentation reproducible and
            the pipeline deterministic; `None`: random and non-deterministic.
        input_context: a `tf.distribute.InputContext`; each input pipeline
            reads a disjoint shard of the split.
        drop_remainder: drop the last partial batch (static batch shape, as
            TPUs need).
        repeat: repeat forever (shuffled anew each pass).
        shuffle: `None` shuffles when `training`; `True`/`False`; or an int
            shuffle-buffer size.
        num_samples: MNIST-1D generator size (default 5000, 80% train).
        validation_examples: `V`, the size of `"validation"`: `None` (the
            default, `default_validation_examples`: CIFAR 5,000, MNIST and
            MNIST-1D 10%, ImageNet 1% of train; 10% under `mock_data` or
            `synthetic`), `0` (no validation split: `"train"` is the whole
            training split and building `"validation"` raises) or an integer
            in `[1, N - 1]`.

    Returns:
        A `tf.data.Dataset` of `(inputs, labels)`: float32
        `[batch, *spec.input_shape]` and int32 `[batch]`.

    Raises:
        ValueError: bad `name`, `split`, `batch_size`, `shuffle` or
            `validation_examples`, or `split="validation"` with
            `validation_examples=0`.
        DatasetNotPreparedError: the data is not on disk and `download` is off.

    Example:

    >>> ds = build_dataset("cifar10", "train", batch_size=8, training=True,
    ...                    mock_data=True, mock_examples=16, seed=0)
    >>> x, y = next(iter(ds))
    >>> x.shape, x.dtype.name, y.dtype.name
    (TensorShape([8, 32, 32, 3]), 'float32', 'int32')
    """
    spec = specs_lib.get_spec(name)
    splits_lib.check_split(split)
    _check_num_samples(name, num_samples)
    if download and spec.tfds_name and not (mock_data or synthetic):
        # Prepare first, so that the carve counts the data as it is on disk.
        tfds_pipeline.get_builder(spec, data_dir=data_dir, download=True)
    _, num_validation = _num_validation(
        spec, validation_examples, mock_data=mock_data, synthetic=synthetic,
        mock_examples=mock_examples, num_samples=num_samples, data_dir=data_dir)
    if split == "validation" and num_validation == 0:
        raise ValueError(
            f"The validation split of {name!r} is disabled (validation_examples=0): pass "
            f"validation_examples=None (the default size) or a positive integer to build it."
        )
    rows = None if split == "test" else splits_lib.rows(split, num_validation)
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, received {batch_size!r}.")
    batch_size = int(batch_size)
    if shuffle is None:
        shuffle = bool(training)
    if not isinstance(shuffle, bool) and (int(shuffle) != shuffle or shuffle < 1):
        raise ValueError(
            f"shuffle must be None, a bool or a positive buffer size, received {shuffle!r}."
        )
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0

    if synthetic:
        total = num_examples(name, split, mock_data=mock_data, mock_examples=mock_examples,
                             num_samples=num_samples, validation_examples=num_validation,
                             synthetic=True)
        ds = synthetic_lib.synthetic_dataset(
            spec, batch_size=batch_size, num_examples=max(1, total // num_pipelines),
            repeat=repeat, seed=None if seed is None else seed + pipeline_id)
        return ds.prefetch(tf.data.AUTOTUNE)

    with tfds_pipeline.mock_context(mock_data and spec.tfds_name is not None, mock_examples):
        if spec.tfds_name is None:  # mnist1d
            x, y = mnist1d_lib.mnist1d_arrays(
                "test" if split == "test" else "train", num_samples=num_samples,
                mock_data=mock_data, mock_examples=mock_examples)
            if rows is not None:
                x, y = x[rows], y[rows]
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if num_pipelines > 1:
                ds = ds.shard(num_pipelines, pipeline_id)
        else:
            tfds_split = spec.eval_split if split == "test" else spec.train_split
            ds = tfds_pipeline.read_raw(
                spec, tfds_split, data_dir=data_dir, download=download, mock_data=mock_data,
                training=training, shuffle_files=bool(shuffle), seed=seed,
                input_context=input_context, skip_image_decoding=name == "imagenet2012",
                rows=rows)
            if name != "imagenet2012":
                ds = ds.cache()
        if shuffle:
            buffer = _shuffle_buffer(name, shuffle, batch_size, mock_data, mock_examples)
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        fn, needs_seed = _example_fns(name, spec, training)
        if needs_seed:
            seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
            ds = tf.data.Dataset.zip((ds, seeds)).map(
                lambda example, s: fn(example[0], example[1], s),
                num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = seed is not None
        if input_context is not None:
            # Already sharded per worker; tf.distribute must not shard again.
            options.experimental_distribute.auto_shard_policy = (
                tf.data.experimental.AutoShardPolicy.OFF)
        return ds.with_options(options)
