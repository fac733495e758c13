"""Input pipelines: tensorflow-datasets and the embedded MNIST-1D.

Public API:

- `get_spec(name) -> DatasetSpec`, `available_datasets()`.
- `build_dataset(name, split, *, batch_size, training, ...)`: batched
  `(float32 inputs, int32 labels)`, sharded per worker, parallel and
  prefetched; `mock_data=True` (tfds' own mock) and `synthetic=True`.
- `preprocess_for_eval(name, raw)`: the evaluation transform of raw inputs,
  usable inside a serving signature.
- `num_examples(name, split, ...)`.
- `fixed_examples(name, split, num, ...)`: the first `num` examples of a split, in
  file order, as NumPy arrays (the same for every run that measures on them).
- `SPLITS = ("train", "validation", "test")`: "validation" is the last
  `validation_examples` of the training split, "train" the rest (disjoint,
  the same on every run); `default_validation_examples(name, n)` gives the
  default size (CIFAR 5000, MNIST/MNIST-1D 10%, ImageNet 1%).
- `DatasetNotPreparedError`: data not on disk and downloading off.
- `load_mnist1d(num_samples=5000, seed=42)`: the generated MNIST-1D arrays.
- `measure_throughput(dataset, num_batches)`: examples per second.

Datasets: "mnist", "cifar10", "cifar100", "imagenet2012", "mnist1d".
Importing this package imports neither tensorflow_datasets nor mnist1d.
"""

from tfgap.data.errors import DatasetNotPreparedError
from tfgap.data.fixed import fixed_examples
from tfgap.data.mnist1d import load_mnist1d
from tfgap.data.pipeline import build_dataset, num_examples
from tfgap.data.preprocessing import preprocess_for_eval
from tfgap.data.specs import DatasetSpec, available_datasets, get_spec
from tfgap.data.splits import SPLITS, default_validation_examples
from tfgap.data.throughput import measure_throughput

__all__ = [
    "DatasetNotPreparedError",
    "DatasetSpec",
    "SPLITS",
    "available_datasets",
    "build_dataset",
    "default_validation_examples",
    "fixed_examples",
    "get_spec",
    "load_mnist1d",
    "measure_throughput",
    "num_examples",
    "preprocess_for_eval",
]
