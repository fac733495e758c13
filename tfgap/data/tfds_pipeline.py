"""Reading raw examples from tensorflow-datasets, per worker.

This module only produces the *raw*, unbatched, per-worker `(image, label)`
stream; `tfgap.data.pipeline` shuffles, augments, batches and prefetches it.

Per-worker sharding: on real data each input pipeline reads its own
`tfds.even_splits` sub-split, so workers read disjoint files/records and no
bytes twice (`drop_remainder=True` while training, so every worker has the
same number of examples). Under `tfds.testing.mock_data` every split (and every
sub-split or slice) yields the same fake examples, so there the stream is
sliced with `skip`/`take` and sharded with
`Dataset.shard(num_input_pipelines, input_pipeline_id)` instead.

Slicing (the train/validation carve): on real data a `slice` of positions
becomes tfds split slicing with absolute bounds (`"train[0:45000]"`,
`"train[45000:50000]"`, resolved against the split's size on disk), which
selects records by their position in the prepared files, before any file
shuffling, so the carve does not depend on the seed.
"""

import contextlib
import os

from tfgap.data.errors import DatasetNotPreparedError

IMAGENET_ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


def _tfds():
    # Imported lazily: tensorflow_datasets takes about a second to import.
    import tensorflow_datasets as tfds

    return tfds


def manual_dir(data_dir_root):
    """The manual-download directory tfds uses by default for a data dir."""
    return os.path.join(data_dir_root, "downloads", "manual")


def _not_prepared_message(spec, builder, missing_archives=None):
    root = str(builder.data_dir_root)
    lines = [
        f"Dataset {spec.name!r} (tensorflow-datasets {spec.tfds_name!r}) is not prepared "
        f"in data_dir {root!r} (looked for {str(builder.data_dir)!r}).",
    ]
    if spec.tfds_name == "imagenet2012":
        manual = manual_dir(root)
        lines += [
            "ImageNet cannot be downloaded automatically. Register at "
            "https://image-net.org/download-images, download both "
            f"{IMAGENET_ARCHIVES[0]} and {IMAGENET_ARCHIVES[1]}, put them in the "
            f"manual directory {manual!r}, then run:",
            f"  tfds build imagenet2012 --data_dir={root} --manual_dir={manual}",
            "(or re-run with download=True, which builds from that manual directory).",
        ]
        if missing_archives:
            lines.insert(1, "Missing from the manual directory: " + ", ".join(missing_archives))
    else:
        lines += [
            "Prepare it on a machine with network access with:",
            f"  tfds build {spec.tfds_name} --data_dir={root}",
            "or re-run with download=True to download and prepare it.",
        ]
    return "\n".join(lines)


def prepared_num_examples(spec, tfds_split, data_dir):
    """Examples in `tfds_split` of the data prepared in `data_dir`, or `None`.

    `None` when nothing is prepared there (the caller falls back to the
    published size); reads only the dataset's metadata, not its records.
    """
    tfds = _tfds()
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        return None
    return int(builder.info.splits[tfds_split].num_examples)


def get_builder(spec, data_dir=None, download=False):
    """A tfds builder for `spec` whose data is ready to read.

    Args:
        spec: the `DatasetSpec`.
        data_dir: tfds data directory (`None`: tfds' default,
            `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        download: download and prepare the data if it is missing (ImageNet:
            build from the archives in `<data_dir>/downloads/manual`).

    Returns:
        The `tfds.core.DatasetBuilder`.

    Raises:
        DatasetNotPreparedError: the data is missing and `download` is off,
            or (ImageNet) the manual archives are missing.
    """
    tfds = _tfds()
    builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    if builder.is_prepared():
        return builder
    if spec.tfds_name == "imagenet2012":
        manual = manual_dir(str(builder.data_dir_root))
        missing = [a for a in IMAGENET_ARCHIVES if not os.path.exists(os.path.join(manual, a))]
        if not download or missing:
            raise DatasetNotPreparedError(
                spec.name, str(builder.data_dir_root),
                _not_prepared_message(spec, builder, missing if download else None))
    elif not download:
        raise DatasetNotPreparedError(
            spec.name, str(builder.data_dir_root), _not_prepared_message(spec, builder))
    builder.download_and_prepare()
    return builder


def mock_context(mock_data, mock_examples):
    """`tfds.testing.mock_data(num_examples=mock_examples)` or a no-op."""
    if not mock_data:
        return contextlib.nullcontext()
    return _tfds().testing.mock_data(num_examples=int(mock_examples))


def split_string(tfds_split, rows, num_examples):
    """tfds slicing syntax for `rows` (a `slice` of positions) of a split.

    Negative bounds (counted from the end) are resolved against
    `num_examples`, the split's size on disk, so the string names exactly
    the records read, with absolute bounds.

    Example:

    >>> split_string("train", slice(None, -500), 50000)
    'train[0:49500]'
    >>> split_string("train", slice(-500, None), 50000)
    'train[49500:50000]'
    >>> split_string("test", None, 10000)
    'test'
    """
    if rows is None:
        return tfds_split
    if rows.step not in (None, 1):
        raise ValueError(f"rows must be a contiguous slice, received {rows!r}.")
    start, stop, _ = rows.indices(int(num_examples))
    return f"{tfds_split}[{start}:{max(start, stop)}]"


def read_raw(spec, tfds_split, *, data_dir, download, mock_data, training, shuffle_files,
             seed, input_context, skip_image_decoding, rows=None):
    """The raw per-worker `(image, label)` stream of one tfds split.

    Must run inside `mock_context(...)` when `mock_data` is true.

    Args:
        spec: the `DatasetSpec`.
        tfds_split: the tfds split name (`spec.train_split` or
            `spec.eval_split`).
        data_dir, download: see `get_builder`.
        mock_data: the data is mocked (skip the prepared check, shard by
            `Dataset.shard`).
        training: equalize the per-worker shard sizes.
        shuffle_files: shuffle the order of files (training).
        seed: file-shuffle seed (`None`: random).
        input_context: a `tf.distribute.InputContext` or `None`.
        skip_image_decoding: yield the encoded image bytes (ImageNet, so the
            training crop decodes only the crop).
        rows: `None` (the whole split) or a `slice` of example positions
            (negative bounds count from the end), read before sharding.

    Returns:
        An unbatched `tf.data.Dataset` of `(image, int64 label)`.
    """
    tfds = _tfds()
    if mock_data:
        builder = tfds.builder(spec.tfds_name, data_dir=data_dir)
    else:
        builder = get_builder(spec, data_dir=data_dir, download=download)
    num_pipelines = input_context.num_input_pipelines if input_context else 1
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    split = tfds_split
    if rows is not None and not mock_data:
        split = split_string(tfds_split, rows, builder.info.splits[tfds_split].num_examples)
    if num_pipelines > 1 and not mock_data:
        split = tfds.even_splits(split, num_pipelines, drop_remainder=training)[pipeline_id]
    decoders = {"image": tfds.decode.SkipDecoding()} if skip_image_decoding else None
    read_config = tfds.ReadConfig(shuffle_seed=seed, try_autocache=False)
    ds = builder.as_dataset(
        split=split,
        shuffle_files=shuffle_files,
        as_supervised=True,
        decoders=decoders,
        read_config=read_config,
    )
    if mock_data and rows is not None:
        # The mock ignores slicing: cut the one deterministic mock stream here.
        total = int(ds.cardinality())
        if total < 0:
            raise ValueError(f"Cannot slice a mock split of unknown size ({total}).")
        start, stop, _ = rows.indices(total)
        ds = ds.skip(start).take(max(0, stop - start))
    if num_pipelines > 1 and mock_data:
        ds = ds.shard(num_pipelines, pipeline_id)
    return ds
