"""MNIST-1D (Greydanus 2020), generated locally by the `mnist1d` package.

MNIST-1D is a 10-class benchmark of 40-sample 1-D signals built from ten
digit-like templates by random padding, translation, shear, scaling and
correlated plus i.i.d. noise. It is small enough to show deep-learning
phenomena (here, the large-batch generalization gap) on a CPU in minutes.

We always call the package's *generator* (`mnist1d.data.make_dataset`) with a
fixed seed, never its download path, so nothing touches the network and the
data are identical on every machine. With the package defaults (5000 samples,
seed 42) this is the published MNIST-1D: 4000 train, 1000 test examples. The
generator centres and scales the whole data set to mean 0, std 1, so the
pipelines feed the signals unchanged.
"""

import functools
import random

import numpy as np

from tfgap.data import specs as specs_lib


@functools.lru_cache(maxsize=8)
def _generate(num_samples, seed):
    # Imported lazily: `mnist1d` imports matplotlib, which is slow.
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    # The generator seeds Python's and NumPy's global generators; restore
    # them so that loading data never changes the caller's random state.
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    arrays = {
        "x_train": data["x"].astype(np.float32),
        "y_train": data["y"].astype(np.int32),
        "x_test": data["x_test"].astype(np.float32),
        "y_test": data["y_test"].astype(np.int32),
    }
    for value in arrays.values():
        value.setflags(write=False)
    return arrays


def load_mnist1d(num_samples=specs_lib.MNIST1D_NUM_SAMPLES, seed=specs_lib.MNIST1D_SEED):
    """Generates MNIST-1D, cached in memory per process.

    Args:
        num_samples: total number of examples (train + test); 80% go to the
            training split. Multiples of 10 keep the classes balanced.
        seed: generator seed (42 gives the published data set).

    Returns:
        A dict of read-only NumPy arrays: `x_train` `[n_train, 40]` float32,
        `y_train` `[n_train]` int32, `x_test`, `y_test`.

    Example:

    >>> data = load_mnist1d(num_samples=100, seed=0)
    >>> data["x_train"].shape, data["y_test"].dtype.name
    ((80, 40), 'int32')
    """
    num_samples = int(num_samples)
    if num_samples < 10:
        raise ValueError(
            f"num_samples must be an integer >= 10 (one per class), received {num_samples}."
        )
    return _generate(num_samples, int(seed))


def num_mnist1d_examples(split, num_samples=specs_lib.MNIST1D_NUM_SAMPLES):
    """Size of an MNIST-1D split without generating it.

    Example:

    >>> num_mnist1d_examples("train"), num_mnist1d_examples("test", 1000)
    (4000, 200)
    """
    per_class = int(num_samples) // 10
    total = per_class * 10
    num_train = int(total * specs_lib.MNIST1D_TRAIN_FRACTION)
    return num_train if split == "train" else total - num_train


def mnist1d_arrays(split, *, num_samples=None, seed=None, mock_data=False, mock_examples=256):
    """The `(x, y)` arrays of one MNIST-1D split.

    Args:
        split: `"train"` or `"test"`.
        num_samples: generator size (default 5000).
        seed: generator seed (default 42).
        mock_data: if true, generate a small data set (`5 * mock_examples`
            samples, so the test split is large enough) and return its first
            `mock_examples` examples: real MNIST-1D signals, quickly.
        mock_examples: examples per split with `mock_data`.

    Returns:
        `(x, y)`: float32 `[n, 40]` and int32 `[n]` arrays.
    """
    seed = specs_lib.MNIST1D_SEED if seed is None else seed
    if mock_data:
        mock_examples = int(mock_examples)
        data = load_mnist1d(num_samples=10 * -(-5 * mock_examples // 10), seed=seed)
        return data[f"x_{split}"][:mock_examples], data[f"y_{split}"][:mock_examples]
    num_samples = specs_lib.MNIST1D_NUM_SAMPLES if num_samples is None else num_samples
    data = load_mnist1d(num_samples=num_samples, seed=seed)
    return data[f"x_{split}"], data[f"y_{split}"]
