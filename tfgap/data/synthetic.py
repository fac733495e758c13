"""Synthetic data: random tensors of the right shapes, for throughput runs.

One batch of random preprocessed inputs (float32, standard normal) and labels
(int32, uniform over the classes) is generated once and repeated, so the
input pipeline costs nothing and a training run measures the model alone.
"""

import math

import tensorflow as tf


def synthetic_dataset(spec, *, batch_size, num_examples, repeat=True, seed=None):
    """A dataset of one random batch, repeated.

    Args:
        spec: the `DatasetSpec` (shapes and number of classes).
        batch_size: examples per batch (static in the element spec).
        num_examples: examples in one pass when `repeat` is false; the
            dataset then has `ceil(num_examples / batch_size)` batches.
        repeat: repeat forever.
        seed: seed of the random batch (`None`: 0).

    Returns:
        `tf.data.Dataset` of `(float32 [batch_size, *input_shape],
        int32 [batch_size])`.

    Example:

    >>> from tfgap.data import get_spec
    >>> ds = synthetic_dataset(get_spec("mnist"), batch_size=4, num_examples=8, repeat=False)
    >>> [tuple(x.shape) for x, _ in ds]
    [(4, 28, 28, 1), (4, 28, 28, 1)]
    """
    rng_seed = [0 if seed is None else int(seed), 0]
    inputs = tf.random.stateless_normal([batch_size, *spec.input_shape], seed=rng_seed)
    labels = tf.random.stateless_uniform(
        [batch_size], seed=[rng_seed[0], 1], minval=0, maxval=spec.num_classes, dtype=tf.int32
    )
    ds = tf.data.Dataset.from_tensors((inputs, labels))
    if repeat:
        return ds.repeat()
    return ds.repeat(max(1, math.ceil(num_examples / batch_size)))
