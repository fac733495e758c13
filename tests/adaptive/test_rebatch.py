"""Re-batching one epoch: every example at most once, in order, resumable at any step."""

import doctest

import numpy as np
import pytest
import tensorflow as tf

from tfgap.adaptive import rebatch as rb


def test_docstring_examples():
    result = doctest.testmod(rb, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def _random_sizes(rng, small_batch, max_multiple, count=10_000):
    return (small_batch * rng.integers(1, max_multiple + 1, size=count)).tolist()


def _expected_end(num_examples, sizes, small_batch, remainder):
    """Where the epoch ends, walked by hand: the examples used."""
    used = 0
    for size in sizes:
        left = num_examples - used
        if size <= left:
            used += size
        else:
            if remainder == "shrink":
                used += left - left % small_batch
            return used
        if num_examples - used < small_batch:
            return used
    return used


@pytest.mark.parametrize("remainder", rb.REMAINDERS)
def test_every_example_once_per_epoch_for_random_batch_sizes(remainder):
    for seed in range(300):
        rng = np.random.default_rng(seed)
        small_batch = int(rng.integers(1, 9))
        num_examples = int(rng.integers(0, 400))
        sizes = _random_sizes(rng, small_batch, int(rng.integers(1, 12)))
        order = rb.epoch_order(num_examples, seed=seed, epoch=int(rng.integers(0, 50)))
        batches = list(rb.epoch_slices(order, iter(sizes), small_batch=small_batch,
                                       remainder=remainder))
        used = np.concatenate(batches) if batches else np.zeros(0, np.int64)
        end = _expected_end(num_examples, sizes, small_batch, remainder)
        # The epoch's order, consecutively, each example once, up to the end.
        np.testing.assert_array_equal(used, order[:end])
        assert len(np.unique(used)) == used.size
        # The batches have the decided sizes (the last one shrunk, under "shrink").
        lengths = [b.size for b in batches]
        if lengths:
            assert lengths[:-1] == sizes[:len(lengths) - 1]
            assert lengths[-1] % small_batch == 0
            assert lengths[-1] == sizes[len(lengths) - 1] or remainder == "shrink"
        # What is dropped is less than the next batch ("drop") or than b ("shrink").
        left = num_examples - end
        if remainder == "shrink":
            assert left < small_batch
        else:
            assert left < small_batch or left < sizes[len(lengths)]


def test_a_constant_batch_gives_the_trainers_epoch():
    # The trainer's epoch at a fixed batch B: floor(N / B) full batches (StepPlan).
    for num_examples, batch in ((100, 8), (96, 32), (31, 32), (1000, 24)):
        ranges = list(rb.batch_ranges(num_examples, [batch] * 1000, small_batch=8))
        assert len(ranges) == num_examples // batch
        assert all(stop - start == batch for start, stop in ranges)


@pytest.mark.parametrize("remainder", rb.REMAINDERS)
def test_resume_mid_epoch_continues_the_uninterrupted_sequence(remainder):
    for seed in range(100):
        rng = np.random.default_rng(1000 + seed)
        small_batch = int(rng.integers(1, 6))
        num_examples = int(rng.integers(1, 300))
        sizes = _random_sizes(rng, small_batch, 9)
        order = rb.epoch_order(num_examples, seed=seed, epoch=3)
        whole = list(rb.epoch_slices(order, iter(sizes), small_batch=small_batch,
                                     remainder=remainder))
        if not whole:
            continue
        # Killed after `k` steps: the checkpoint holds the examples consumed.
        k = int(rng.integers(0, len(whole) + 1))
        consumed = sum(b.size for b in whole[:k])
        resumed = list(rb.epoch_slices(order, iter(sizes[k:]), small_batch=small_batch,
                                       consumed=consumed, remainder=remainder))
        assert len(whole[:k]) + len(resumed) == len(whole)
        for a, b in zip(whole[k:], resumed):
            np.testing.assert_array_equal(a, b)


def test_the_cursor_resumes_from_its_consumed_count():
    sizes = [8, 24, 16, 8, 32, 8]
    cursor = rb.EpochCursor(90, 8)
    first = [cursor.take(s) for s in sizes[:3]]
    again = rb.EpochCursor(90, 8, consumed=cursor.consumed)
    assert [cursor.take(s) for s in sizes[3:]] == [again.take(s) for s in sizes[3:]]
    assert first == [(0, 8), (8, 32), (32, 48)]
    assert cursor.consumed == again.consumed == 88 and cursor.finished


def test_drop_ends_the_epoch_at_the_first_batch_that_does_not_fit():
    cursor = rb.EpochCursor(40, 8)
    assert cursor.take(32) == (0, 32)
    assert cursor.take(16) is None and cursor.finished
    assert cursor.take(8) is None  # smaller would fit, but the epoch is over
    assert cursor.consumed == 32


def test_batch_sizes_are_read_lazily_one_per_step():
    read = []

    def decided():
        for size in (4, 8, 4, 4, 4):
            read.append(size)
            yield size

    ranges = rb.batch_ranges(20, decided(), small_batch=4)
    assert next(ranges) == (0, 4) and read == [4]
    assert next(ranges) == (4, 12) and read == [4, 8]
    assert list(ranges) == [(12, 16), (16, 20)]
    assert read == [4, 8, 4, 4]  # the epoch ended: the fifth size was never asked for


def test_gather_takes_rows_of_arrays_and_structures():
    x = np.arange(30, dtype=np.float32).reshape(10, 3)
    y = np.arange(10) % 3
    order = rb.epoch_order(10, seed=1, epoch=0)
    batches = list(rb.epoch_slices(order, [2, 4, 4], small_batch=2))
    for indices in batches:
        bx, by = rb.gather((x, y), indices)
        np.testing.assert_array_equal(bx, x[indices])
        np.testing.assert_array_equal(by, y[indices])
    d = rb.gather({"x": x, "y": [y, y]}, batches[0])
    np.testing.assert_array_equal(d["y"][1], y[batches[0]])


@pytest.mark.parametrize("remainder", rb.REMAINDERS)
def test_rebatch_of_a_dataset_equals_the_in_memory_slices(remainder):
    num_examples, small_batch = 70, 4
    x = np.arange(num_examples * 2, dtype=np.float32).reshape(num_examples, 2)
    y = np.arange(num_examples, dtype=np.int32)
    order = rb.epoch_order(num_examples, seed=5, epoch=2)
    examples = tf.data.Dataset.from_tensor_slices((x[order], y[order]))
    sizes = [4, 12, 8, 8, 16, 4, 24, 4]
    expected = [rb.gather((x, y), i) for i in
                rb.epoch_slices(order, sizes, small_batch=small_batch, remainder=remainder)]
    for consumed_steps in (0, 3):
        consumed = sum(sizes[:consumed_steps])
        ds = rb.small_batch_dataset(examples, small_batch, consumed=consumed)
        got = list(rb.rebatch(ds, sizes[consumed_steps:], small_batch=small_batch,
                              num_examples=num_examples, consumed=consumed,
                              remainder=remainder))
        assert len(got) == len(expected) - consumed_steps
        for (bx, by), (ex, ey) in zip(got, expected[consumed_steps:]):
            np.testing.assert_array_equal(bx.numpy(), ex)
            np.testing.assert_array_equal(by.numpy(), ey)


def test_rebatch_of_numpy_small_batches():
    data = np.arange(24)
    small = [data[i:i + 4] for i in range(0, 24, 4)]
    got = list(rb.rebatch(small, [8, 4, 12], small_batch=4, num_examples=24))
    assert [g.tolist() for g in got] == [list(range(8)), [8, 9, 10, 11], list(range(12, 24))]


def test_rebatch_says_when_the_small_batches_run_out():
    small = [np.arange(4), np.arange(4, 8)]
    with pytest.raises(ValueError, match="num_examples=16") as info:
        list(rb.rebatch(small, [4, 8], small_batch=4, num_examples=16))
    assert "Received only 8 examples" in str(info.value)


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [12, 0, -8, 8.5, "8", True])
def test_a_bad_batch_size_names_what_was_received_and_expected(size):
    with pytest.raises(ValueError) as info:
        list(rb.batch_ranges(64, [8, size], small_batch=8))
    message = str(info.value)
    assert "positive multiple of small_batch=8" in message
    assert f"batch_size={size!r}" in message


@pytest.mark.parametrize("kwargs, fragment", [
    ({"num_examples": 64, "small_batch": 8, "consumed": 12}, "consumed=12"),
    ({"num_examples": 64, "small_batch": 8, "consumed": 72}, "consumed=72"),
    ({"num_examples": 64, "small_batch": 8, "consumed": -8}, "consumed=-8"),
    ({"num_examples": 64, "small_batch": 0}, "small_batch=0"),
    ({"num_examples": -1, "small_batch": 8}, "num_examples=-1"),
    ({"num_examples": 64, "small_batch": 8, "remainder": "keep"}, "remainder='keep'"),
])
def test_the_cursor_rejects_bad_arguments(kwargs, fragment):
    with pytest.raises(ValueError, match="Expected") as info:
        rb.EpochCursor(**kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize("order, fragment", [
    ([0, 1, 1], "permutation of range(3)"),
    ([0, 1, 3], "permutation of range(3)"),
    ([[0, 1]], "1-D"),
    ([0.0, 1.0], "integer"),
])
def test_an_order_that_is_not_a_permutation_is_rejected(order, fragment):
    with pytest.raises(ValueError, match="Expected") as info:
        list(rb.epoch_slices(order, [1], small_batch=1))
    assert fragment in str(info.value)


def test_small_batch_dataset_rejects_a_consumed_count_off_the_small_batches():
    with pytest.raises(ValueError, match="consumed=6"):
        rb.small_batch_dataset(tf.data.Dataset.range(10), 4, consumed=6)


def test_epoch_order_is_reproducible_and_differs_between_epochs():
    a = rb.epoch_order(50, seed=3, epoch=0)
    assert np.array_equal(a, rb.epoch_order(50, seed=3, epoch=0))
    assert not np.array_equal(a, rb.epoch_order(50, seed=3, epoch=1))
    assert sorted(a.tolist()) == list(range(50))
    # NumPy's RandomState stream is frozen: this order is the same on every version.
    assert rb.epoch_order(8, seed=0, epoch=0).tolist() == [3, 7, 4, 0, 2, 6, 5, 1]
