"""Private helpers shared by the diagnostics: data, loss, flat weights.

Every diagnostic measures the same objective, the training loss of a model at
fixed weights over a fixed data set:

    f(w) = mean over all examples of loss(y, model(x, training=False))
           + sum(model.losses)

The data term is the mean of the per-batch means weighted by batch size (exact
whenever the loss is a mean over examples, as every Keras loss with the default
reduction is), accumulated on the host in float64; the predictions are cast to
float64 before the loss is applied. BatchNormalization runs in inference mode
(moving statistics) and dropout is off, so `f` is a deterministic function of
the weights. `model.losses` (weight-decay penalties) are included, as in
`model.evaluate`.
"""

import keras
import numpy as np
import tensorflow as tf


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


def as_dataset(x, y=None, batch_size=None):
    """A batched `tf.data.Dataset` of `(x, y)` from arrays or a dataset.

    Arrays are batched in order (no shuffling) with `batch_size` (default: the
    whole array up to 1024 examples per batch). A dataset must already be
    batched and yield `(x, y)` or `(x, y, sample_weight)` (the weight is
    ignored); `y` and `batch_size` must then be None.
    """
    if isinstance(x, tf.data.Dataset):
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
        return x.map(lambda *e: (e[0], e[1]))
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
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def num_examples(a):
    return int(np.shape(tf.nest.flatten(a)[0])[0])


def batch_size_of(x):
    return tf.shape(tf.nest.flatten(x)[0])[0]


class LossEvaluator:
    """Loss, gradient and Hessian-vector products of a model over fixed data.

    Args:
        model: a built Keras model.
        loss: a loss callable (see `resolve_loss`).
        dataset: a batched dataset of `(x, y)` (see `as_dataset`).
        variables: the variables to differentiate with respect to (default:
            `model.trainable_variables`).
    """

    def __init__(self, model, loss, dataset, variables=None):
        self.model = model
        self.loss = loss
        self.dataset = dataset
        self.variables = list(model.trainable_variables if variables is None else variables)
        if not self.variables:
            raise ValueError(
                f"Expected a built model with trainable weights; model {model.name!r} has none."
            )
        self.shapes = [tuple(v.shape) for v in self.variables]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.size = int(sum(self.sizes))
        self._loss_sum = tf.function(self._loss_sum_impl, reduce_retracing=True)
        self._loss_grad = tf.function(self._loss_grad_impl, reduce_retracing=True)
        self._hvp = tf.function(self._hvp_impl, reduce_retracing=True)
        self._reg = tf.function(self._reg_impl)

    # -- traced pieces -----------------------------------------------------
    def _batch_mean(self, x, y):
        y_pred = tf.nest.map_structure(
            lambda t: tf.cast(t, tf.float64), self.model(x, training=False)
        )
        if y.dtype.is_floating:
            y = tf.cast(y, tf.float64)
        return tf.reduce_mean(tf.cast(self.loss(y, y_pred), tf.float64))

    def _reg_value(self):
        penalties = [tf.cast(p, tf.float64) for p in self.model.losses]
        return tf.add_n(penalties) if penalties else tf.constant(0.0, tf.float64)

    def _loss_sum_impl(self, x, y):
        n = tf.cast(batch_size_of(x), tf.float64)
        return self._batch_mean(x, y) * n, n

    def _loss_grad_impl(self, x, y):
        n = tf.cast(batch_size_of(x), tf.float64)
        with tf.GradientTape() as tape:
            mean = self._batch_mean(x, y)
        grads = tape.gradient(
            mean, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
        )
        return mean * n, n, grads

    def _hvp_impl(self, x, y, vector):
        n = tf.cast(batch_size_of(x), tf.float64)
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                mean = self._batch_mean(x, y)
            grads = inner.gradient(
                mean, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector)])
        hv = outer.gradient(dot, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return n, hv

    def _reg_impl(self, vector):
        with tf.GradientTape() as outer:
            with tf.GradientTape() as inner:
                value = self._reg_value()
            grads = inner.gradient(
                value, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO
            )
            dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vector)])
        hv = outer.gradient(dot, self.variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return value, grads, hv

    # -- host-side accumulation (float64) -----------------------------------
    def flatten(self, tensors):
        """Concatenates tensors shaped like the variables into one float64 vector."""
        if not tensors:
            return np.zeros(0, np.float64)
        return np.concatenate([np.asarray(t, np.float64).ravel() for t in tensors])

    def unflatten(self, flat):
        """Splits a flat vector into float32 arrays shaped like the variables."""
        flat = np.asarray(flat)
        out, start = [], 0
        for shape, size, v in zip(self.shapes, self.sizes, self.variables):
            out.append(flat[start : start + size].reshape(shape).astype(v.dtype))
            start += size
        return out

    def _regularization(self, vector=None):
        if not self.model.losses:
            return 0.0, np.zeros(self.size), np.zeros(self.size)
        if vector is None:
            vector = [np.zeros(s, v.dtype) for s, v in zip(self.shapes, self.variables)]
        value, grads, hv = self._reg(vector)
        return float(value), self.flatten(grads), self.flatten(hv)

    def value(self):
        """f(w) at the current weights, as a Python float."""
        total, count = 0.0, 0.0
        for x, y in self.dataset:
            s, n = self._loss_sum(x, y)
            total += float(s)
            count += float(n)
        return total / count + self._regularization()[0]

    def value_and_gradient(self):
        """f(w) and its gradient (flat float64 vector) at the current weights."""
        total, count = 0.0, 0.0
        grad = np.zeros(self.size, np.float64)
        for x, y in self.dataset:
            s, n, g = self._loss_grad(x, y)
            total += float(s)
            count += float(n)
            grad += float(n) * self.flatten(g)
        reg_value, reg_grad, _ = self._regularization()
        return total / count + reg_value, grad / count + reg_grad

    def batch_gradients(self):
        """Yields (batch size, flat gradient of the batch mean loss + penalties)."""
        reg_grad = self._regularization()[1]
        for x, y in self.dataset:
            _, n, g = self._loss_grad(x, y)
            yield int(n), self.flatten(g) + reg_grad

    def hvp(self, flat_vector):
        """The Hessian of f times a flat vector, as a flat float64 vector."""
        vector = self.unflatten(flat_vector)
        out = np.zeros(self.size, np.float64)
        count = 0.0
        for x, y in self.dataset:
            n, hv = self._hvp(x, y, vector)
            out += float(n) * self.flatten(hv)
            count += float(n)
        out /= count
        if self.model.losses:
            out += self._regularization(vector)[2]
        return out

    def get_flat(self):
        return self.flatten([v.numpy() for v in self.variables])

    def set_flat(self, flat):
        for v, value in zip(self.variables, self.unflatten(flat)):
            v.assign(value)


def snapshot(variables):
    """Exact host copies of the variables' values."""
    return [np.array(v.numpy(), copy=True) for v in variables]


def restore(variables, values):
    """Assigns the saved values back, bit for bit."""
    for v, value in zip(variables, values):
        v.assign(value)
