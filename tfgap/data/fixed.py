"""Fixed example sets: the same examples, in file order, for every run that measures on them."""

import numpy as np

from tfgap.data.pipeline import build_dataset


def fixed_examples(name, split, num, **data_options):
    """The first `num` examples of a split, in file order, as NumPy arrays.

    The same examples for every run: what the study measures sharpness and
    the interpolation on, and what the advisor measures the gradient noise on
    (evaluation preprocessing, no shuffle, no augmentation). `"train"` is the
    training split without its validation examples.

    Args:
        name: the dataset.
        split: `"train"`, `"validation"` or `"test"`.
        num: how many examples (fewer if the split is smaller).
        **data_options: `build_dataset`'s data options (`data_dir`,
            `mock_data`, `mock_examples`, `synthetic`, `validation_examples`).

    Returns:
        `(inputs, labels)`, NumPy arrays of `min(num, split size)` examples.

    Example:

    >>> x, y = fixed_examples("mnist1d", "test", 5)
    >>> x.shape, y.shape
    ((5, 40), (5,))
    """
    ds = build_dataset(name, split, batch_size=min(int(num), 1024), training=False,
                       shuffle=False, seed=0, **data_options)
    xs, ys, have = [], [], 0
    for x, y in ds:
        xs.append(x.numpy())
        ys.append(y.numpy())
        have += len(ys[-1])
        if have >= num:
            break
    return np.concatenate(xs)[:num], np.concatenate(ys)[:num]
