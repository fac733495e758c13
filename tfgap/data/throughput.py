"""Input-pipeline throughput, for the benchmarks."""

import time


def measure_throughput(dataset, num_batches=50, warmup_batches=5):
    """Examples per second that a dataset delivers, iterated eagerly.

    The first `warmup_batches` (filling shuffle and prefetch buffers, tracing)
    are not timed; then `num_batches` batches are pulled and counted by their
    leading dimension.

    Args:
        dataset: a batched `tf.data.Dataset` whose elements are `(x, y)` or
            `x` with a batch axis.
        num_batches: timed batches (must be available after the warm-up).
        warmup_batches: untimed batches first.

    Returns:
        A dict: `examples_per_second`, `batches_per_second`, `examples`,
        `batches`, `seconds`.

    Raises:
        ValueError: if `num_batches < 1` or the dataset ends before
            `warmup_batches + 1` batches.

    Example:

    >>> import tensorflow as tf
    >>> ds = tf.data.Dataset.from_tensors(tf.zeros([8, 2])).repeat()
    >>> measure_throughput(ds, num_batches=3, warmup_batches=1)["examples"]
    24
    """
    if int(num_batches) < 1:
        raise ValueError(f"num_batches must be >= 1, received {num_batches}.")
    iterator = iter(dataset)
    for _ in range(int(warmup_batches)):
        next(iterator)
    examples = batches = 0
    start = time.perf_counter()
    for element in iterator:
        first = element[0] if isinstance(element, (tuple, list)) else element
        examples += int(first.shape[0])
        batches += 1
        if batches >= num_batches:
            break
    seconds = time.perf_counter() - start
    if batches == 0:
        raise ValueError("The dataset ended during the warm-up; nothing was timed.")
    return {
        "examples_per_second": examples / seconds,
        "batches_per_second": batches / seconds,
        "examples": examples,
        "batches": batches,
        "seconds": seconds,
    }
