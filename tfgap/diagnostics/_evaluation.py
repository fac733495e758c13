"""Private helpers shared by the diagnostics: data, loss, flat weights.

Every diagnostic measures the same objective, the training loss of a model at
fixed weights over a fixed data set:

    f(w) = mean over all examples of loss(y, model(x, training=False))
           + sum(model.losses)

The data term is the mean of the per-batch means weighted by batch size (exact
whenever the loss is a mean over examples, as every Keras loss with the default
reduction is), accumulated on the host in float64; the predictions are cast to
float64 before the loss is applied (float32 under JAX unless `jax_enable_x64`
is set). BatchNormalization runs in inference mode (moving statistics) and
dropout is off, so `f` is a deterministic function of the weights.
`model.losses` (weight-decay penalties, activity regularizers) are included,
as in `model.evaluate`.

The model is evaluated statelessly (`model.stateless_call` on the current
values of its variables), so the same code runs on every Keras backend; the
gradients and Hessian-vector products come from `tfgap.backend`.
"""

import keras
import numpy as np
from keras import ops

from tfgap import backend


def resolve_loss(model, loss):
    """The loss callable: `loss` if given, else the model's compiled loss."""
    if loss is None:
        loss = getattr(model, "loss", None)
        if loss is None:
            raise ValueError(
                "Expected a compiled model (model.compile(loss=...)) or a `loss=` "
                f"argument; received model {model.name!r} with no compiled loss and loss=None."
            )
    if isinstance(loss, (list, tuple, dict)):
        raise ValueError(
            "Expected a single loss (string, keras.losses.Loss or callable) for a "
            f"single-output model; received {loss!r}. Pass `loss=` explicitly."
        )
    fn = keras.losses.get(loss) if isinstance(loss, str) else loss
    if not callable(fn):
        raise ValueError(f"Expected `loss` to be a string or a callable; received {loss!r}.")
    return fn


class Batches:
    """A re-iterable sequence of `(x, y)` batches as backend tensors.

    Array batches are converted once; a `tf.data.Dataset` is iterated anew on
    every pass (its elements converted on the fly under JAX and PyTorch).
    """

    def __init__(self, batches=None, dataset=None):
        self._batches = batches
        self._dataset = dataset

    def __iter__(self):
        if self._batches is not None:
            return iter(self._batches)
        return self._from_dataset()

    def _from_dataset(self):
        convert = backend.name() != "tensorflow"
        for element in self._dataset:
            x, y = element[0], element[1]
            if convert:
                x, y = _to_tensors(keras.tree.map_structure(np.asarray, (x, y)))
            yield x, y


def _to_tensors(structure):
    return keras.tree.map_structure(ops.convert_to_tensor, structure)


def as_dataset(x, y=None, batch_size=None):
    """`Batches` of `(x, y)` from arrays or a `tf.data.Dataset`.

    Arrays (NumPy or backend tensors; a dict or list of them for `x`) are
    batched in order (no shuffling) with `batch_size` (default: the whole array
    up to 1024 examples per batch). A dataset must already be batched and
    yield `(x, y)` or `(x, y, sample_weight)` (the weight is ignored); `y` and
    `batch_size` must then be None.
    """
    if backend.is_tf_dataset(x):
        if y is not None:
            raise ValueError(
                "Expected y=None when x is a tf.data.Dataset (it must yield (x, y)); "
                f"received y of type {type(y).__name__}."
            )
        if batch_size is not None:
            raise ValueError(
                "Expected batch_size=None when x is a tf.data.Dataset (batch the dataset "
                f"instead); received batch_size={batch_size!r}."
            )
        spec = x.element_spec
        if not isinstance(spec, tuple) or len(spec) not in (2, 3):
            raise ValueError(
                "Expected a dataset yielding (x, y) or (x, y, sample_weight) batches; "
                f"received element_spec {spec!r}."
            )
        return Batches(dataset=x)
    if y is None:
        raise ValueError(
            "Expected targets `y` with array inputs (or a tf.data.Dataset of (x, y)); "
            "received y=None."
        )
    n = num_examples(x)
    if num_examples(y) != n:
        raise ValueError(
            f"Expected x and y with the same number of examples; received {n} and "
            f"{num_examples(y)}."
        )
    if n == 0:
        raise ValueError("Expected at least one example; received empty arrays.")
    if batch_size is None:
        batch_size = min(n, 1024)
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"Expected batch_size >= 1; received {batch_size}.")
    batches = []
    for start in range(0, n, batch_size):
        piece = keras.tree.map_structure(lambda a: a[start : start + batch_size], (x, y))
        batches.append(_to_tensors(piece))
    return Batches(batches=batches)


def num_examples(a):
    first = keras.tree.flatten(a)[0]
    shape = getattr(first, "shape", None)
    return int((np.shape(first) if shape is None else shape)[0])


def to_numpy(a):
    """A NumPy array of `a` (NumPy arrays pass through uncopied)."""
    return a if isinstance(a, np.ndarray) else ops.convert_to_numpy(a)


class LossEvaluator:
    """Loss, gradient and Hessian-vector products of a model over fixed data.

    Args:
        model: a built Keras model.
        loss: a loss callable (see `resolve_loss`).
        dataset: `Batches` of `(x, y)` (see `as_dataset`).
    """

    def __init__(self, model, loss, dataset):
        self.model = model
        self.loss = loss
        self.dataset = dataset
        self.variables = list(model.trainable_variables)
        if not self.variables:
            raise ValueError(
                f"Expected a built model with trainable weights; model {model.name!r} has none."
            )
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = int(sum(self.sizes))
        self._wide = "float64" if backend.supports_x64() else "float32"
        self._value = backend.function(self._objective)
        self._value_and_grad = backend.value_and_gradient(self._objective)
        self._hvp = backend.hessian_vector_product(self._objective)
        self._predict = backend.function(self._outputs)

    # -- pure functions of the weights (compiled by tfgap.backend) ----------
    def _objective(self, params, non_trainable, x, y):
        """Mean loss of the batch plus `model.losses`, in the wide float type."""
        y_pred, _, losses = self.model.stateless_call(
            params, non_trainable, x, training=False, return_losses=True
        )
        y_pred = keras.tree.map_structure(lambda t: ops.cast(t, self._wide), y_pred)
        if "float" in keras.backend.standardize_dtype(y.dtype):
            y = ops.cast(y, self._wide)
        value = ops.mean(ops.cast(self.loss(y, y_pred), self._wide))
        for penalty in losses:
            value = value + ops.cast(penalty, self._wide)
        return value

    def _outputs(self, params, non_trainable, x):
        return self.model.stateless_call(params, non_trainable, x, training=False)[0]

    def _state(self):
        params = [ops.convert_to_tensor(v) for v in self.variables]
        non_trainable = [ops.convert_to_tensor(v) for v in self.model.non_trainable_variables]
        return params, non_trainable

    # -- host-side accumulation (float64) -----------------------------------
    def flatten(self, tensors):
        """Concatenates tensors shaped like the variables into one float64 vector."""
        if not tensors:
            return np.zeros(0, np.float64)
        return np.concatenate([np.asarray(to_numpy(t), np.float64).ravel() for t in tensors])

    def unflatten(self, flat):
        """Splits a flat vector into float32 arrays shaped like the variables."""
        flat = np.asarray(flat)
        out, start = [], 0
        for shape, size, v in zip(self.shapes, self.sizes, self.variables):
            out.append(flat[start : start + size].reshape(shape).astype(v.dtype))
            start += size
        return out

    def value(self):
        """f(w) at the current weights, as a Python float."""
        params, non_trainable = self._state()
        total, count = 0.0, 0
        for x, y in self.dataset:
            n = num_examples(x)
            total += n * float(self._value(params, non_trainable, x, y))
            count += n
        return total / count

    def value_and_gradient(self):
        """f(w) and its gradient (flat float64 vector) at the current weights."""
        total, count = 0.0, 0
        grad = np.zeros(self.size, np.float64)
        for n, value, g in self._batch_values_and_gradients():
            total += n * value
            grad += n * g
            count += n
        return total / count, grad / count

    def batch_gradients(self):
        """Yields (batch size, flat gradient of the batch mean loss + penalties)."""
        for n, _, g in self._batch_values_and_gradients():
            yield n, g

    def _batch_values_and_gradients(self):
        params, non_trainable = self._state()
        for x, y in self.dataset:
            value, grads = self._value_and_grad(params, non_trainable, x, y)
            yield num_examples(x), float(value), self.flatten(grads)

    def hvp(self, flat_vector):
        """The Hessian of f times a flat vector, as a flat float64 vector."""
        params, non_trainable = self._state()
        vector = [ops.convert_to_tensor(v) for v in self.unflatten(flat_vector)]
        out = np.zeros(self.size, np.float64)
        count = 0
        for x, y in self.dataset:
            n = num_examples(x)
            out += n * self.flatten(self._hvp(params, vector, non_trainable, x, y))
            count += n
        return out / count

    def predictions(self):
        """Yields `(outputs, y)` per batch at the current weights, as NumPy."""
        params, non_trainable = self._state()
        for x, y in self.dataset:
            outputs = self._predict(params, non_trainable, x)
            yield keras.tree.map_structure(to_numpy, outputs), to_numpy(y)

    def get_flat(self):
        return self.flatten(snapshot(self.variables))

    def set_flat(self, flat):
        for v, value in zip(self.variables, self.unflatten(flat)):
            v.assign(value)


def snapshot(variables):
    """Exact host copies of the variables' values."""
    return [np.array(ops.convert_to_numpy(v), copy=True) for v in variables]


def restore(variables, values):
    """Assigns the saved values back, bit for bit."""
    for v, value in zip(variables, values):
        v.assign(value)
