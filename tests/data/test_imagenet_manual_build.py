"""The real tensorflow-datasets ImageNet build path, offline, on a tiny fake manual dir.

We write a few tiny JPEGs in the layout the imagenet2012 builder reads
(tensorflow_datasets/datasets/imagenet2012/imagenet2012_dataset_builder.py):

- `ILSVRC2012_img_train.tar`: one tar per synset, `n01440764.tar`, holding
  `n01440764_<k>.JPEG`; the label is the sub-archive's name.
- `ILSVRC2012_img_val.tar`: flat `ILSVRC2012_val_%08d.JPEG`; labels come from
  tfds' bundled `validation_labels.txt`, line i for the i-th sorted name.

Then the real builder's `download_and_prepare` runs (through
`build_dataset(download=True)`) and `build_dataset` reads it back.
"""

import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from tfgap import data

SYNSETS = ("n01440764", "n01443537")  # the first two classes of labels.txt
PER_CLASS = 3
NUM_VAL = 4


def _jpeg(rng, height, width):
    image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return tf.io.encode_jpeg(image).numpy()


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def _write_manual_dir(manual):
    rng = np.random.default_rng(0)
    os.makedirs(manual)
    with tarfile.open(os.path.join(manual, "ILSVRC2012_img_train.tar"), "w") as train:
        for synset in SYNSETS:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as sub:
                for k in range(PER_CLASS):
                    _add(sub, f"{synset}_{k}.JPEG", _jpeg(rng, 20 + 3 * k, 30))
            _add(train, f"{synset}.tar", buffer.getvalue())
    with tarfile.open(os.path.join(manual, "ILSVRC2012_img_val.tar"), "w") as val:
        for i in range(1, NUM_VAL + 1):
            _add(val, f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg(rng, 24, 18 + i))


def _expected_val_labels():
    import tensorflow_datasets as tfds

    path = tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt")
    names = tfds.core.tfds_path("datasets/imagenet2012/labels.txt").read_text().split()
    synsets = path.read_text().split()[:NUM_VAL]
    return sorted(names.index(s) for s in synsets)


def test_imagenet_builds_from_manual_dir_and_reads(tmp_path):
    data_dir = str(tmp_path / "tfds")
    manual = os.path.join(data_dir, "downloads", "manual")

    with pytest.raises(data.DatasetNotPreparedError, match="ILSVRC2012_img_val.tar"):
        data.build_dataset("imagenet2012", "train", batch_size=2, training=True,
                           data_dir=data_dir, download=True)

    _write_manual_dir(manual)
    train = data.build_dataset("imagenet2012", "train", batch_size=4, training=True,
                               data_dir=data_dir, download=True, seed=0,
                               validation_examples=0)  # the whole training split
    labels = []
    for x, y in train:
        assert x.shape[1:] == (224, 224, 3) and x.dtype == tf.float32
        labels += y.numpy().tolist()
    assert sorted(labels) == [0] * PER_CLASS + [1] * PER_CLASS
    # Counted as prepared on disk, not as the published 1,281,167 / 50,000.
    assert data.num_examples("imagenet2012", "train", data_dir=data_dir,
                             validation_examples=0) == 2 * PER_CLASS
    # Default validation: 1% of 6 is 0, raised to 1 so that the split exists.
    assert data.num_examples("imagenet2012", "validation", data_dir=data_dir) == 1
    assert data.num_examples("imagenet2012", "train", data_dir=data_dir) == 2 * PER_CLASS - 1
    assert data.num_examples("imagenet2012", "test", data_dir=data_dir) == NUM_VAL
    assert data.num_examples("imagenet2012", "train", validation_examples=0) == 1281167

    # Prepared now: download=False reads it, and the eval split is the validation tar.
    val = data.build_dataset("imagenet2012", "test", batch_size=NUM_VAL, training=False,
                             data_dir=data_dir)
    (x, y), = list(val)
    assert x.shape == (NUM_VAL, 224, 224, 3)
    assert sorted(y.numpy().tolist()) == _expected_val_labels()

    # Two input pipelines read disjoint halves of the real split.
    seen = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(2, pipeline_id, 1)
        ds = data.build_dataset("imagenet2012", "test", batch_size=8, training=False,
                                data_dir=data_dir, input_context=ctx)
        seen.append([tuple(np.round(v, 4).ravel()[:64]) for v in np.concatenate(
            [x.numpy() for x, _ in ds])])
    assert len(seen[0]) == len(seen[1]) == NUM_VAL // 2
    assert not set(seen[0]) & set(seen[1])


def _eval_hashes(ds):
    """One identity per example: its eval-preprocessed pixels, rounded (deterministic)."""
    return [np.round(v, 3).tobytes() for x, _ in ds for v in x.numpy()]


def test_real_tfds_slicing_carves_validation_from_train(tmp_path):
    """Real records (not the mock): "train[:-2]" and "train[-2:]" of the 6 built images."""
    data_dir = str(tmp_path / "tfds")
    _write_manual_dir(os.path.join(data_dir, "downloads", "manual"))
    kwargs = dict(data_dir=data_dir, training=False, batch_size=4)  # eval: in order with a seed
    everything = _eval_hashes(data.build_dataset("imagenet2012", "train", download=True,
                                                 seed=0, validation_examples=0, **kwargs))
    assert len(set(everything)) == 2 * PER_CLASS
    train = _eval_hashes(data.build_dataset("imagenet2012", "train", shuffle=True, seed=0,
                                            validation_examples=2, **kwargs))
    validation = _eval_hashes(data.build_dataset("imagenet2012", "validation", seed=0,
                                                 validation_examples=2, **kwargs))
    assert len(train) == 4 and len(validation) == 2
    assert not set(train) & set(validation)
    assert set(train) | set(validation) == set(everything)
    assert validation == everything[-2:]  # the last 2 records of the prepared split
    for seed in (1, 2):  # file shuffling and shuffling never move the carve
        assert set(_eval_hashes(data.build_dataset(
            "imagenet2012", "train", shuffle=True, seed=seed, validation_examples=2,
            **kwargs))) == set(train)
    # Per-worker tfds.even_splits of the sliced split: disjoint, covering validation.
    shards = [_eval_hashes(data.build_dataset(
        "imagenet2012", "validation", validation_examples=2,
        input_context=tf.distribute.InputContext(2, i, 1), **kwargs)) for i in range(2)]
    assert len(shards[0]) == len(shards[1]) == 1 and shards[0] != shards[1]
    assert set(shards[0]) | set(shards[1]) == set(validation)
    with pytest.raises(ValueError, match=r"\[0, 5\].*has 6 examples.*received 6"):
        data.build_dataset("imagenet2012", "validation", validation_examples=6, **kwargs)
