"""One epoch's examples in batches whose size changes from step to step.

A batch-size controller (`tfgap.adaptive.goodput.BatchSizeController`)
chooses the global batch online, among multiples of a small batch `b`, and
may change it between any two steps, mid-epoch included. The input side
here takes one epoch's example order (a permutation) and the batch sizes as
they are decided, and hands out consecutive slices of that order, so each
example of the epoch is used at most once, in order, and all but the
dropped tail exactly once; the position in the epoch is one integer, the
examples consumed, from which a resumed run continues exactly.

**The end of an epoch.** The trainer today drops the remainder: at a fixed
batch `B` an epoch is `floor(N / B)` full batches
(`tfgap.training.plan.StepPlan.steps_per_epoch`; the pipeline batches with
`drop_remainder=True`). Here, by default (`remainder="drop"`), the epoch
ends at the first batch that does not fit in the examples left, and those
are dropped: with a constant batch this is exactly the trainer's epoch, and
no batch is ever shorter than decided. `remainder="shrink"` instead shrinks
that last batch to the largest multiple of `b` that fits, dropping fewer
than `b` examples (but giving one batch a size the controller did not
choose, a new shape to trace). Every batch is a multiple of `b` either way,
so ghost batches of `b` tile it.

- `epoch_order(num_examples, seed=, epoch=)`: a reproducible permutation.
- `EpochCursor`: the position in one epoch; `take(batch_size)` gives the
  next `(start, stop)` slice of the order.
- `batch_ranges(...)` / `epoch_slices(...)`: the slices (or the examples'
  indices) for a sequence of batch sizes, read lazily, one per step.
- `gather(examples, indices)`: rows of an in-memory array (or a tuple/dict
  of them).
- `small_batch_dataset(dataset, small_batch, consumed=)` and
  `rebatch(small_batches, batch_sizes, ...)`: the same batches from a
  `tf.data` pipeline, read on the host as small batches of `b` and
  concatenated `B / b` at a time.

NumPy only; TensorFlow is imported only by the `tf.data` helpers, when
called.
"""

import numbers

import numpy as np

from tfgap import _validation

REMAINDERS = ("drop", "shrink")


def epoch_order(num_examples, *, seed, epoch):
    """A permutation of `range(num_examples)`, the same for the same `(seed, epoch)`.

    NumPy's `RandomState` (Mersenne Twister) seeded by `[seed, epoch]`: its
    stream is frozen by NumPy's compatibility policy, so the order is the
    same on every machine and NumPy version.

    Args:
        num_examples: `N` (an integer >= 0).
        seed: the run's seed (an integer in `[0, 2**32)`).
        epoch: the epoch index (an integer in `[0, 2**32)`).

    Returns:
        An int64 array of the `N` indices, shuffled.

    Example:

    >>> order = epoch_order(6, seed=0, epoch=1)
    >>> sorted(order.tolist()), order.tolist() == epoch_order(6, seed=0, epoch=1).tolist()
    ([0, 1, 2, 3, 4, 5], True)
    """
    num_examples = _validation.integer("num_examples", num_examples, minimum=0)
    seed = _validation.integer("seed", seed, minimum=0, maximum=2**32 - 1)
    epoch = _validation.integer("epoch", epoch, minimum=0, maximum=2**32 - 1)
    rng = np.random.RandomState(np.array([seed, epoch], np.uint32))
    return rng.permutation(num_examples).astype(np.int64)


def check_batch_size(batch_size, small_batch):
    """`batch_size` as an int, if it is a positive multiple of `small_batch`.

    Raises:
        ValueError: naming the batch size received and the small batch.

    Example:

    >>> check_batch_size(96, small_batch=32)
    96
    >>> check_batch_size(48, small_batch=32)
    Traceback (most recent call last):
      ...
    ValueError: Expected `batch_size` to be a positive multiple of small_batch=32. Received: \
batch_size=48
    """
    whole = (isinstance(batch_size, numbers.Real) and not isinstance(batch_size, bool)
             and np.isfinite(batch_size) and batch_size == int(batch_size))
    if not whole or int(batch_size) < 1 or int(batch_size) % small_batch:
        raise ValueError(f"Expected `batch_size` to be a positive multiple of "
                         f"small_batch={small_batch}. Received: batch_size={batch_size!r}")
    return int(batch_size)


class EpochCursor:
    """The position in one epoch of `num_examples` examples, taken in multiples of `b`.

    `take(batch_size)` returns the next slice `(start, stop)` of the epoch's
    order, `stop - start == batch_size`, and advances `consumed` to `stop`;
    it returns `None` once the epoch is over (see the module docstring for
    `remainder`). Under `"drop"`, the first batch that does not fit ends the
    epoch: later calls return `None` too, whatever their size.

    A run resumes mid-epoch with `EpochCursor(N, b, consumed=c)`, `c` the
    examples consumed before (checkpointed with the step): given the same
    batch sizes from there, it hands out the same slices.

    Args:
        num_examples: `N`, examples in the epoch (>= 0).
        small_batch: `b` (>= 1); every batch is a multiple of it.
        consumed: examples already consumed, a multiple of `b` in `[0, N]`.
        remainder: `"drop"` or `"shrink"`.

    Example:

    >>> cursor = EpochCursor(100, small_batch=8)
    >>> cursor.take(16), cursor.take(64), cursor.take(32), cursor.consumed
    ((0, 16), (16, 80), None, 80)
    >>> shrink = EpochCursor(100, small_batch=8, consumed=80, remainder="shrink")
    >>> shrink.take(32), shrink.take(8), shrink.consumed
    ((80, 96), None, 96)
    """

    def __init__(self, num_examples, small_batch, *, consumed=0, remainder="drop"):
        self.num_examples = _validation.integer("num_examples", num_examples, minimum=0)
        self.small_batch = _validation.integer("small_batch", small_batch, minimum=1)
        self.remainder = _validation.choice("remainder", remainder, REMAINDERS)
        consumed = _validation.integer("consumed", consumed, minimum=0,
                                       maximum=self.num_examples)
        if consumed % self.small_batch:
            raise ValueError(
                f"Expected `consumed` to be a multiple of small_batch={self.small_batch} (every "
                f"batch is). Received: consumed={consumed}")
        self.consumed = consumed
        self._ended = False

    @property
    def remaining(self):
        """Examples of the epoch not consumed yet (the last `< b` are never used)."""
        return self.num_examples - self.consumed

    @property
    def finished(self):
        """`True` once no batch can be taken: fewer than `b` left, or a batch was dropped."""
        return self._ended or self.remaining < self.small_batch

    def take(self, batch_size):
        """The next `(start, stop)` slice of `batch_size` examples, or `None` at the end.

        Raises:
            ValueError: `batch_size` not a positive multiple of `small_batch`.
        """
        batch_size = check_batch_size(batch_size, self.small_batch)
        if self.finished:
            return None
        if batch_size > self.remaining:
            if self.remainder == "drop":
                self._ended = True
                return None
            batch_size = self.remaining - self.remaining % self.small_batch
        start = self.consumed
        self.consumed += batch_size
        return start, self.consumed

    def __repr__(self):
        return (f"EpochCursor(num_examples={self.num_examples}, small_batch={self.small_batch}, "
                f"consumed={self.consumed}, remainder={self.remainder!r})")


def batch_ranges(num_examples, batch_sizes, *, small_batch, consumed=0, remainder="drop"):
    """Yields the `(start, stop)` slices of one epoch for the given batch sizes.

    `batch_sizes` is read one entry per slice, only when that slice is
    asked for, so it may be a generator whose values are decided online
    (e.g. one that reads a controller's current batch). The slices stop at
    the end of the epoch (`EpochCursor`) or of `batch_sizes`, whichever
    comes first.

    Args:
        num_examples: `N`, examples in the epoch.
        batch_sizes: an iterable of batch sizes, positive multiples of `b`.
        small_batch: `b`.
        consumed: where to start (a resume; see `EpochCursor`).
        remainder: `"drop"` or `"shrink"`.

    Yields:
        `(start, stop)` pairs of ints, consecutive from `consumed`.

    Raises:
        ValueError: a bad batch size (when it is read) or argument.

    Example:

    >>> list(batch_ranges(40, [8, 16, 8, 16], small_batch=8))
    [(0, 8), (8, 24), (24, 32)]
    >>> list(batch_ranges(40, [16, 8], small_batch=8, consumed=24))
    [(24, 40)]
    """
    cursor = EpochCursor(num_examples, small_batch, consumed=consumed, remainder=remainder)
    for batch_size in batch_sizes:
        span = cursor.take(batch_size)
        if span is None:
            return
        yield span
        if cursor.finished:
            return


def check_order(order, num_examples=None):
    """`order` as an int64 array, if it is a permutation of `range(len(order))`.

    Args:
        order: the epoch's example order (a 1-D sequence of indices).
        num_examples: the expected length, if known.

    Raises:
        ValueError: not 1-D, of another length, or not a permutation.

    Example:

    >>> check_order([2, 0, 1]).tolist()
    [2, 0, 1]
    """
    array = np.asarray(order)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise ValueError(f"Expected `order` to be a 1-D array of integer indices. Received "
                         f"dtype {array.dtype}, shape {array.shape}.")
    if num_examples is not None and array.size != num_examples:
        raise ValueError(f"Expected `order` to have num_examples={num_examples} entries. "
                         f"Received {array.size}.")
    array = array.astype(np.int64)
    n = array.size
    if n and (array.min() < 0 or array.max() >= n
              or not np.all(np.bincount(array, minlength=n) == 1)):
        raise ValueError(f"Expected `order` to be a permutation of range({n}) (each example "
                         f"once). Received: order={array.tolist()!r}"[:300])
    return array


def epoch_slices(order, batch_sizes, *, small_batch, consumed=0, remainder="drop"):
    """Yields the example indices of each batch: consecutive slices of `order`.

    `order[start:stop]` for each `(start, stop)` of `batch_ranges(len(order),
    batch_sizes, ...)`: every example of the epoch at most once, in the
    epoch's order, the batch size changing whenever `batch_sizes` does.

    Args:
        order: the epoch's example order, a permutation (e.g. `epoch_order`).
        batch_sizes: an iterable of batch sizes, read lazily (see
            `batch_ranges`).
        small_batch: `b`.
        consumed: examples of this order already consumed (a resume).
        remainder: `"drop"` or `"shrink"`.

    Yields:
        int64 arrays of indices, one per batch.

    Raises:
        ValueError: `order` not a permutation, or a bad batch size.

    Example:

    >>> order = [5, 3, 0, 1, 4, 2, 7, 6]
    >>> [s.tolist() for s in epoch_slices(order, [2, 4, 4], small_batch=2)]
    [[5, 3], [0, 1, 4, 2]]
    >>> [s.tolist() for s in epoch_slices(order, [4], small_batch=2, consumed=6)]
    []
    """
    order = check_order(order)
    for start, stop in batch_ranges(order.size, batch_sizes, small_batch=small_batch,
                                    consumed=consumed, remainder=remainder):
        yield order[start:stop]


def _map(fn, structure):
    if isinstance(structure, dict):
        return {key: _map(fn, value) for key, value in structure.items()}
    if isinstance(structure, tuple) and hasattr(structure, "_fields"):
        return type(structure)(*(_map(fn, value) for value in structure))
    if isinstance(structure, (tuple, list)):
        return type(structure)(_map(fn, value) for value in structure)
    return fn(structure)


def gather(examples, indices):
    """The rows `indices` of an array, or of each array of a tuple, list or dict.

    Args:
        examples: an array (NumPy, or anything `np.asarray` reads) or a
            nested tuple/list/dict of them, rows along the first axis.
        indices: the rows to take (e.g. one batch of `epoch_slices`).

    Returns:
        The same structure of NumPy arrays.

    Example:

    >>> x, y = np.arange(10).reshape(5, 2), np.array([0, 1, 0, 1, 1])
    >>> bx, by = gather((x, y), [3, 0])
    >>> bx.tolist(), by.tolist()
    ([[6, 7], [0, 1]], [1, 0])
    """
    indices = np.asarray(indices, np.int64)
    return _map(lambda array: np.asarray(array)[indices], examples)


# -- tf.data ---------------------------------------------------------------------------------


def small_batch_dataset(dataset, small_batch, *, consumed=0):
    """An epoch's `tf.data.Dataset` as full small batches of `b`, from example `consumed`.

    Args:
        dataset: the epoch's examples, unbatched, in the epoch's order
            (e.g. shuffled with a fixed seed and
            `reshuffle_each_iteration=False`, or read through `epoch_order`).
        small_batch: `b`.
        consumed: examples already consumed (a multiple of `b`): they are
            skipped.

    Returns:
        `dataset.skip(consumed).batch(small_batch, drop_remainder=True)`, for
        `rebatch`.

    Raises:
        ValueError: `consumed` not a non-negative multiple of `b`.

    Example:

    >>> import tensorflow as tf
    >>> ds = small_batch_dataset(tf.data.Dataset.range(7), 2, consumed=2)
    >>> [b.numpy().tolist() for b in ds]
    [[2, 3], [4, 5]]
    """
    small_batch = _validation.integer("small_batch", small_batch, minimum=1)
    consumed = _validation.integer("consumed", consumed, minimum=0)
    if consumed % small_batch:
        raise ValueError(f"Expected `consumed` to be a multiple of small_batch={small_batch}. "
                         f"Received: consumed={consumed}")
    return dataset.skip(consumed).batch(small_batch, drop_remainder=True)


def _concat(parts):
    first = parts[0]
    if isinstance(first, dict):
        return {key: _concat([part[key] for part in parts]) for key in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(_concat([part[i] for part in parts]) for i in range(len(first))))
    if isinstance(first, (tuple, list)):
        return type(first)(_concat([part[i] for part in parts]) for i in range(len(first)))
    if isinstance(first, np.ndarray):
        return np.concatenate(parts) if len(parts) > 1 else first
    import tensorflow as tf  # only the tf.data helpers need TensorFlow

    return tf.concat(parts, axis=0) if len(parts) > 1 else first


def rebatch(small_batches, batch_sizes, *, small_batch, num_examples, consumed=0,
            remainder="drop"):
    """Yields the epoch's batches of the given sizes from its small batches.

    Each batch of `B` examples (the slices of `batch_ranges`) is the
    concatenation of the next `B / b` small batches, read on the host, so
    the batch size may change at any step and the examples are those of
    `epoch_slices` on the same order.

    Args:
        small_batches: an iterable of the epoch's small batches of exactly `b`
            examples each, starting at example `consumed` (e.g. a
            `small_batch_dataset`, or NumPy arrays); each a tensor, an array,
            or a tuple/list/dict of them.
        batch_sizes: an iterable of batch sizes, read lazily (see
            `batch_ranges`).
        small_batch: `b`.
        num_examples: `N`, examples in the whole epoch (consumed included).
        consumed: examples consumed before `small_batches` starts.
        remainder: `"drop"` or `"shrink"`.

    Yields:
        Batches of the small batches' structure (`tf.concat` of tensors,
        `np.concatenate` of arrays).

    Raises:
        ValueError: a bad batch size, or `small_batches` ending before the
            epoch does (fewer than `N` examples).

    Example:

    >>> import tensorflow as tf
    >>> ds = small_batch_dataset(tf.data.Dataset.range(10), 2)
    >>> [b.numpy().tolist() for b in rebatch(ds, [2, 4, 6], small_batch=2, num_examples=10)]
    [[0, 1], [2, 3, 4, 5]]
    """
    iterator = iter(small_batches)
    for start, stop in batch_ranges(num_examples, batch_sizes, small_batch=small_batch,
                                    consumed=consumed, remainder=remainder):
        parts = []
        for _ in range((stop - start) // small_batch):
            try:
                parts.append(next(iterator))
            except StopIteration:
                raise ValueError(
                    f"Expected `small_batches` to hold the epoch's num_examples={num_examples} "
                    f"examples in batches of {small_batch} from consumed={consumed}. Received "
                    f"only {start + len(parts) * small_batch} examples.") from None
        yield _concat(parts)
