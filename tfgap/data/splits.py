"""The three splits, and how the validation split is carved from the training split.

Every choice a run makes (early stopping, learning rate, the best checkpoint)
must be made on data the final number is not measured on. tfgap therefore
has three splits:

- `"validation"`: the LAST `V` examples of the dataset's training split;
- `"train"`: the other `N - V` examples of the training split;
- `"test"`: the dataset's evaluation split, unchanged (for ImageNet, its
  tfds `validation` split: the labelled test set is not public, so
  ILSVRC-2012 validation is the number every paper reports).

The carve is by position in the stored order, so it is the same on every run
and machine whatever the seed (the seed only shuffles within a split).
tfds writes its records in a hashed (pseudo-random) order and MNIST-1D's
generator shuffles its examples, so the last `V` are a random-like,
roughly class-balanced subset.
"""

import numbers

from tfgap.data import specs as specs_lib

SPLITS = ("train", "validation", "test")

# The customary CIFAR hold-out: 5,000 of the 50,000 training images (10%).
CIFAR_VALIDATION_EXAMPLES = 5000
# Default validation size as a fraction 1 / divisor of the training split.
_DIVISORS = {"mnist": 10, "mnist1d": 10, "imagenet2012": 100, "cifar10": 10, "cifar100": 10}
MOCK_DIVISOR = 10


def check_split(split):
    """Raises a `ValueError` unless `split` is one of `SPLITS`."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, received {split!r}.")


def default_validation_examples(name, num_train_examples, *, mock_data=False):
    """Default size of the validation split carved from a training split.

    - `cifar10`, `cifar100`: 5,000 (10% of a smaller, partial build);
    - `mnist`, `mnist1d`: 10% of the training split (floor);
    - `imagenet2012`: 1% (a "minival"; its tfds `validation` split is what
      tfgap calls `"test"`);
    - `mock_data` (and synthetic data): 10% for every dataset, since 5,000
      would exceed a mock split.

    The result is then kept in `[1, N - 1]` so that both `"train"` and
    `"validation"` are non-empty; a training split of fewer than 2 examples
    gets 0 (no validation split).

    Args:
        name: dataset name.
        num_train_examples: `N`, the size of the whole training split (mock
            or prepared-on-disk size where that applies).
        mock_data: use the mock-data rule.

    Returns:
        int in `[0, N - 1]`.

    Example:

    >>> (default_validation_examples("cifar10", 50000), default_validation_examples("mnist", 60000),
    ...  default_validation_examples("imagenet2012", 1281167))
    (5000, 6000, 12811)
    >>> default_validation_examples("cifar10", 256, mock_data=True)
    25
    """
    specs_lib.get_spec(name)  # validates the name
    n = _check_count(num_train_examples)
    if n < 2:
        return 0
    if mock_data:
        v = n // MOCK_DIVISOR
    else:
        v = n // _DIVISORS[name]
        if name in ("cifar10", "cifar100"):
            v = min(CIFAR_VALIDATION_EXAMPLES, v)
    return min(max(1, v), n - 1)


def resolve_validation_examples(name, validation_examples, num_train_examples, *,
                                mock_data=False):
    """The number of validation examples `V` a run uses, checked.

    Args:
        name: dataset name.
        validation_examples: `None` (the default of
            `default_validation_examples`), `0` (no validation split) or an
            integer in `[0, N - 1]`.
        num_train_examples: `N`, the size of the whole training split.
        mock_data: the split is mock (or synthetic) data; only changes the
            default and the wording of errors.

    Returns:
        int `V` in `[0, N - 1]`.

    Raises:
        ValueError: a bool, a non-integer, a negative value or one `>= N`.
    """
    n = _check_count(num_train_examples)
    if validation_examples is None:
        return default_validation_examples(name, n, mock_data=mock_data)
    if (isinstance(validation_examples, bool)
            or not isinstance(validation_examples, numbers.Integral)
            or not 0 <= validation_examples < max(n, 1)):
        where = " under mock_data" if mock_data else ""
        raise ValueError(
            f"validation_examples must be an integer in [0, {max(n - 1, 0)}] (the training "
            f"split of {name!r} has {n} examples{where}); received {validation_examples!r}."
        )
    return int(validation_examples)


def rows(split, num_validation):
    """The positions of `split` in its source split, as a Python `slice`.

    `"train"`: all but the last `num_validation` of the training split;
    `"validation"`: the last `num_validation`; `"test"`: everything.

    Example:

    >>> list(range(10))[rows("train", 3)], list(range(10))[rows("validation", 3)]
    ([0, 1, 2, 3, 4, 5, 6], [7, 8, 9])
    """
    check_split(split)
    if split == "test" or (split == "train" and num_validation == 0):
        return slice(None)
    if num_validation < 1:
        raise ValueError(f"num_validation must be >= 1 for {split!r}, received {num_validation}.")
    return slice(None, -num_validation) if split == "train" else slice(-num_validation, None)


def _check_count(num_train_examples):
    if (isinstance(num_train_examples, bool)
            or not isinstance(num_train_examples, numbers.Integral) or num_train_examples < 0):
        raise ValueError(
            f"num_train_examples must be a non-negative integer, received {num_train_examples!r}."
        )
    return int(num_train_examples)
