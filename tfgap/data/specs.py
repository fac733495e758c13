"""Static descriptions of the datasets tfgap knows.

A `DatasetSpec` says what the model sees (`input_shape`, float32) and what a
serving signature receives (`raw_shape`, `raw_dtype`), plus the split names
and sizes. It is pure data: building a spec reads no file.
"""

import dataclasses

# Per-channel statistics of the training sets, in [0, 1] pixel units.
# CIFAR: population std over all training pixels (not the often-copied
# 0.2023/0.1994/0.2010, which is a mean of per-image stds).
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# ImageNet geometry: train crops and eval crops are IMAGENET_SIZE square; eval
# first resizes the shorter side to IMAGENET_RESIZE.
IMAGENET_SIZE = 224
IMAGENET_RESIZE = 256

# MNIST-1D generator defaults (the package's own: 5000 samples, 80% train).
MNIST1D_NUM_SAMPLES = 5000
MNIST1D_TRAIN_FRACTION = 0.8
MNIST1D_SEED = 42


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a dataset looks like to the model, to serving and to the trainer.

    Args:
        name: tfgap name (`"cifar10"`, ...).
        tfds_name: tensorflow-datasets name, or `None` for embedded data.
        num_classes: number of labels.
        input_shape: shape of one preprocessed float32 example (model input).
        raw_shape: shape of one raw example as served (`serving_default`).
            For ImageNet this is the chosen serving size (256, 256, 3);
            `preprocess_for_eval` accepts any height and width.
        raw_dtype: dtype name of raw examples (`"uint8"` or `"float32"`).
        train_split: tfds split used for `split="train"`.
        eval_split: tfds split used for `split="test"`.
        num_train_examples: size of the training split.
        num_eval_examples: size of the evaluation split.
        mean: per-channel normalization mean in [0, 1] units, or `None`.
        std: per-channel normalization std in [0, 1] units, or `None`.

    Example:

    >>> spec = get_spec("cifar10")
    >>> spec.input_shape, spec.raw_dtype, spec.num_train_examples
    ((32, 32, 3), 'uint8', 50000)
    """

    name: str
    tfds_name: str | None
    num_classes: int
    input_shape: tuple
    raw_shape: tuple
    raw_dtype: str
    train_split: str
    eval_split: str
    num_train_examples: int
    num_eval_examples: int
    mean: tuple | None = None
    std: tuple | None = None


_SPECS = {
    "mnist": DatasetSpec(
        "mnist", "mnist", 10, (28, 28, 1), (28, 28, 1), "uint8", "train", "test",
        60000, 10000, MNIST_MEAN, MNIST_STD),
    "cifar10": DatasetSpec(
        "cifar10", "cifar10", 10, (32, 32, 3), (32, 32, 3), "uint8", "train", "test",
        50000, 10000, CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": DatasetSpec(
        "cifar100", "cifar100", 100, (32, 32, 3), (32, 32, 3), "uint8", "train", "test",
        50000, 10000, CIFAR100_MEAN, CIFAR100_STD),
    "imagenet2012": DatasetSpec(
        "imagenet2012", "imagenet2012", 1000, (IMAGENET_SIZE, IMAGENET_SIZE, 3),
        (IMAGENET_RESIZE, IMAGENET_RESIZE, 3), "uint8", "train", "validation",
        1281167, 50000, IMAGENET_MEAN, IMAGENET_STD),
    "mnist1d": DatasetSpec(
        "mnist1d", None, 10, (40,), (40,), "float32", "train", "test",
        int(MNIST1D_NUM_SAMPLES * MNIST1D_TRAIN_FRACTION),
        MNIST1D_NUM_SAMPLES - int(MNIST1D_NUM_SAMPLES * MNIST1D_TRAIN_FRACTION)),
}


def available_datasets():
    """Names accepted by `get_spec` and `build_dataset`, sorted.

    Example:

    >>> available_datasets()
    ['cifar10', 'cifar100', 'imagenet2012', 'mnist', 'mnist1d']
    """
    return sorted(_SPECS)


def get_spec(name):
    """Returns the `DatasetSpec` of a dataset.

    Args:
        name: one of `available_datasets()`.

    Returns:
        The frozen `DatasetSpec`.

    Raises:
        ValueError: for an unknown name.

    Example:

    >>> get_spec("imagenet2012").input_shape
    (224, 224, 3)
    """
    if name not in _SPECS:
        raise ValueError(
            f"Unknown dataset name: received {name!r}, expected one of "
            f"{available_datasets()}."
        )
    return _SPECS[name]
