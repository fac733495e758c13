"""The few pieces of tfgap that differ between Keras backends.

Keras 3 runs on TensorFlow, JAX and PyTorch; everything in tfgap that can be
written with `keras.ops` is. What cannot is differentiation and compilation,
which each backend does its own way (as Keras' own trainers are split per
backend). They live here, one small module per backend, behind three
functions of a pure function `fn(params, *args) -> scalar` of a list of
tensors `params`:

- `function(fn)`: `fn` compiled for evaluation only (no gradient).
- `value_and_gradient(fn)`: a compiled `(params, *args) -> (value, grads)`,
  `grads` a list shaped like `params` (zeros where `fn` does not depend on a
  tensor).
- `hessian_vector_product(fn)`: a compiled
  `(params, vector, *args) -> H(params) @ vector`, the Hessian of `fn` with
  respect to `params` times `vector` (a list shaped like `params`), exact by
  double differentiation, never forming the Hessian.

| backend      | compiled with                   | gradient              | Hessian-vector product |
| ------------ | ------------------------------- | --------------------- | ---------------------- |
| `tensorflow` | `tf.function(reduce_retracing)` | `tf.GradientTape`     | nested tapes           |
| `jax`        | `jax.jit`                       | `jax.value_and_grad`  | `jax.jvp` of `jax.grad`|
| `torch`      | eager (no compilation)          | `torch.autograd.grad` | double backward        |

The backend is the one Keras runs on (`keras.backend.backend()`, chosen by
`KERAS_BACKEND` before Keras is imported); its module is imported on first
use, so importing `tfgap.backend` imports nothing beyond Keras (which
imports its own backend only; never TensorFlow under JAX or PyTorch).

Example:

>>> import numpy as np
>>> from keras import ops
>>> def f(params, x):
...     (w,) = params
...     return ops.sum(x * w * w)          # f = sum x_i w_i^2
>>> w = ops.convert_to_tensor(np.array([1.0, 2.0], "float32"))
>>> x = ops.convert_to_tensor(np.array([3.0, 5.0], "float32"))
>>> value, (grad,) = value_and_gradient(f)([w], x)
>>> float(value), ops.convert_to_numpy(grad).tolist()   # 3 + 20; 2 x w
(23.0, [6.0, 20.0])
>>> (hv,) = hessian_vector_product(f)([w], [ops.ones_like(w)], x)
>>> ops.convert_to_numpy(hv).tolist()                   # diag(2 x) @ 1
[6.0, 10.0]
"""

import importlib
import sys

import keras

_MODULES = {"tensorflow": "_tensorflow", "jax": "_jax", "torch": "_torch"}

__all__ = [
    "function",
    "hessian_vector_product",
    "is_tf_dataset",
    "module",
    "name",
    "require_tensorflow",
    "supports_x64",
    "value_and_gradient",
]


def name():
    """The name of the Keras backend in use: "tensorflow", "jax" or "torch"."""
    return keras.backend.backend()


def module():
    """The tfgap module of the current backend (imported on first use).

    Raises:
        ValueError: on a Keras backend tfgap does not support (e.g. "numpy",
            which cannot differentiate).
    """
    backend = name()
    if backend not in _MODULES:
        raise ValueError(
            f"Expected the Keras backend to be one of {sorted(_MODULES)} (KERAS_BACKEND); "
            f"received {backend!r}, which tfgap's gradients do not support."
        )
    return importlib.import_module(f"tfgap.backend.{_MODULES[backend]}")


def require_tensorflow(what):
    """Raises `ImportError` unless Keras runs on TensorFlow.

    For the parts of tfgap built on `tf.distribute` or `tf.GradientTape` (the
    trainer, the recipes, SAM): call it before importing TensorFlow.

    Args:
        what: the name of the part, for the message (e.g. "tfgap.training").

    Example:

    >>> import keras
    >>> if keras.backend.backend() == "tensorflow":
    ...     require_tensorflow("tfgap.training")   # passes
    """
    if name() != "tensorflow":
        raise ImportError(
            f"{what} needs the TensorFlow backend of Keras (it is built on tf.distribute and "
            f"tf.GradientTape); KERAS_BACKEND is {name()!r}. Set KERAS_BACKEND=tensorflow "
            "before importing Keras, or use the parts of tfgap that run on every backend "
            "(schedules, optimizers, diagnostics; see docs/backends.md)."
        )


def function(fn):
    """`fn(*args)` compiled for evaluation (no gradient is recorded)."""
    return module().function(fn)


def value_and_gradient(fn):
    """A compiled `(params, *args) -> (fn(params, *args), d fn / d params)`."""
    return module().value_and_gradient(fn)


def hessian_vector_product(fn):
    """A compiled `(params, vector, *args) -> (d^2 fn / d params^2) @ vector`."""
    return module().hessian_vector_product(fn)


def supports_x64():
    """Whether 64-bit tensors (float64, int64) are available.

    True on TensorFlow and PyTorch; on JAX only with `jax_enable_x64` (JAX
    otherwise truncates them to 32 bits, with a warning).
    """
    if name() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


def is_tf_dataset(x):
    """Whether `x` is a `tf.data.Dataset`, without importing TensorFlow.

    A dataset can only exist if TensorFlow was imported by someone, so this
    looks at the already imported module and never imports it.
    """
    tf = sys.modules.get("tensorflow")
    data = getattr(tf, "data", None)
    dataset = getattr(data, "Dataset", None)
    return dataset is not None and isinstance(x, dataset)
