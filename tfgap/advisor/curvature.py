"""`B_noise` and `eps_max` of a Keras model: gradients and curvature products on its data.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", arXiv
1812.06162) predict the critical batch by `B_noise = tr(H Sigma) / (G^T H G)`,
which equals `B_simple = tr(Sigma) / |G|^2` only when the Hessian `H` is a
multiple of the identity. `measure_noise_scales` measures both on a model's
own data, in training mode, and hands the arithmetic to
`tfgap.advisor.gradient_statistics` (`curvature_draw`, `estimate_noise_scales`).

Each draw takes `k + 1` independent batches of `b` examples:

- `k` small-batch gradients in **training mode** (dropout on, batch
  normalization with the batch's own statistics, `model.losses` included):
  the gradients the optimizer sees;
- one more batch for the curvature: `k` Hessian-vector products `H g_i`, by
  double differentiation (`tfgap.backend.hessian_vector_product`), and, for
  the fallback where `G^T H G` is not positive, `k` Gauss-Newton products.

The Gauss-Newton product of a loss `l(z(w))` with outputs `z` is
`J^T H_z J v` (`J = dz/dw`, `H_z` the Hessian of the loss in the outputs),
plus the Hessian of `model.losses` (weight decay). It is built from the three
primitives of `tfgap.backend`, so it runs on every Keras backend:

```
J v      = the u-block of Hess_{(w,u)} [sum(z(w) * u)] (v, 0)    (forward over reverse)
H_z J v  = Hess_z [loss(y, z)] (J v)
J^T r    = grad_w [sum(z(w) * r)]
```

For softmax cross-entropy on a linear model (softmax regression) the
Gauss-Newton matrix is the Hessian exactly.

The model is evaluated statelessly (`model.stateless_call`): its weights,
normalization statistics and random-seed state are not changed.
"""


import keras
import numpy as np
from keras import ops

from tfgap import _validation, backend
from tfgap.advisor.gradient_statistics import GradientStatisticsError, estimate_noise_scales
from tfgap.diagnostics import _evaluation

DEFAULT_NUM_DRAWS = 16
DEFAULT_SMALL_BATCHES = 4
_SEED_STATE = "seed_generator_state"


class _Products:
    """Training-mode gradients, Hessian- and Gauss-Newton-vector products of `model`."""

    def __init__(self, model, loss):
        self.model, self.loss = model, loss
        self.evaluator = _evaluation.LossEvaluator(model, loss, None)  # flatten / unflatten
        self.params = [ops.convert_to_tensor(v) for v in self.evaluator.variables]
        self.non_trainable = [ops.convert_to_tensor(v) for v in model.non_trainable_variables]
        self.seeds = [i for i, v in enumerate(model.non_trainable_variables)
                      if v.path.endswith(_SEED_STATE)]
        self._wide = "float64" if backend.supports_x64() else "float32"
        self._gradient = backend.value_and_gradient(self._objective)
        self._hvp = backend.hessian_vector_product(self._objective)
        self._jvp = backend.hessian_vector_product(self._output_dot)
        self._output_hvp = backend.hessian_vector_product(self._loss_of_outputs)
        self._vjp = backend.value_and_gradient(self._output_dot)
        self._penalty_hvp = backend.hessian_vector_product(self._penalty)
        self._outputs = backend.function(self._forward)
        self._calls = 0

    # -- pure functions -----------------------------------------------------
    def _call(self, params, non_trainable, x):
        return self.model.stateless_call(params, non_trainable, x, training=True,
                                         return_losses=True)

    def _mean_loss(self, y, y_pred):
        y_pred = keras.tree.map_structure(lambda t: ops.cast(t, self._wide), y_pred)
        if "float" in keras.backend.standardize_dtype(y.dtype):
            y = ops.cast(y, self._wide)
        return ops.mean(ops.cast(self.loss(y, y_pred), self._wide))

    def _penalties(self, losses):
        return sum((ops.cast(p, self._wide) for p in losses), ops.cast(0.0, self._wide))

    def _objective(self, params, non_trainable, x, y):
        y_pred, _, losses = self._call(params, non_trainable, x)
        return self._mean_loss(y, y_pred) + self._penalties(losses)

    def _output_dot(self, params, non_trainable, x, count):
        """`sum(z(w) * u)` over a list `params = w + [u]` (`count`: the weights in it)."""
        weights, u = params[:count], params[count:]
        y_pred, _, _ = self._call(weights, non_trainable, x)
        outputs = keras.tree.flatten(y_pred)
        return sum(ops.sum(ops.cast(z, self._wide) * ops.cast(a, self._wide))
                   for z, a in zip(outputs, u))

    def _loss_of_outputs(self, outputs, y, structure):
        return self._mean_loss(y, keras.tree.pack_sequence_as(structure, list(outputs)))

    def _penalty(self, params, non_trainable, x):
        return self._penalties(self._call(params, non_trainable, x)[2])

    def _forward(self, params, non_trainable, x):
        y_pred, _, losses = self._call(params, non_trainable, x)
        return y_pred, len(losses)

    # -- host side -------------------------------------------------------------
    def state(self, seed):
        """The non-trainable values with the random-seed states moved to a fresh stream.

        Every call gets its own dropout masks (as successive training steps
        do), reproducibly from `seed`, without touching the model's state.
        """
        self._calls += 1
        values = list(self.non_trainable)
        for i in self.seeds:
            offset = np.array([seed, self._calls], keras.backend.standardize_dtype(
                values[i].dtype))
            values[i] = values[i] + ops.convert_to_tensor(offset)
        return values

    def gradient(self, x, y, seed):
        _, grads = self._gradient(self.params, self.state(seed), x, y)
        return self.evaluator.flatten(grads)

    def curvature(self, x, y, seed):
        """`(hvp, gauss_newton)`: functions of flat vectors on the batch `(x, y)`.

        Both use one random-seed state (one dropout mask): the same matrix
        for every vector of a draw.
        """
        state = self.state(seed)
        unflatten = self.evaluator.unflatten

        def hvp(v):
            vector = [ops.convert_to_tensor(t) for t in unflatten(v)]
            return self.evaluator.flatten(self._hvp(self.params, vector, state, x, y))

        y_pred, num_penalties = self._outputs(self.params, state, x)
        structure = y_pred
        outputs = [ops.convert_to_tensor(z) for z in keras.tree.flatten(y_pred)]
        zeros = [ops.zeros_like(z) for z in outputs]
        count = len(self.params)

        def gauss_newton(v):
            vector = [ops.convert_to_tensor(t) for t in unflatten(v)]
            mixed = self._jvp(self.params + zeros, vector + zeros, state, x, count)
            jv = mixed[count:]
            r = self._output_hvp(outputs, jv, y, structure)
            _, back = self._vjp(self.params + [ops.cast(t, z.dtype) for t, z in
                                               zip(r, outputs)], state, x, count)
            out = self.evaluator.flatten(back[:count])
            if int(num_penalties):
                out = out + self.evaluator.flatten(
                    self._penalty_hvp(self.params, vector, state, x))
            return out

        return hvp, gauss_newton


def measure_noise_scales(model, x, y=None, *, batch_size=None,
                         num_draws=DEFAULT_NUM_DRAWS, small_batches=DEFAULT_SMALL_BATCHES,
                         seed=0, loss=None):
    """`B_simple`, `B_noise`, their ratio and `eps_max` of a model on its data, with errors.

    Each of `num_draws` independent draws takes `small_batches + 1`
    independent batches of `b` examples: the first `k = small_batches` give
    training-mode gradients (dropout, batch statistics and `model.losses` as
    in a training step; `B = k b` is their mean), the last one the
    Hessian-vector products `H g_i` (and Gauss-Newton products for the
    fallback). `tfgap.advisor.estimate_noise_scales` turns them into the
    unbiased two-batch estimates of `|G|^2`, `tr(Sigma)`, `G^T H G` and
    `tr(H Sigma)`, and their ratios with delta-method standard errors from
    the spread of the draws; where the mean `G^T H G` is not positive it
    uses the Gauss-Newton product instead (the result's `product` says so).

    Arrays: each draw samples its `(k + 1) b` examples with replacement, so
    the draws are independent and the statistics are those of the data set
    itself (the empirical distribution). A `tf.data.Dataset`: its batches, in
    the order it yields them, are the small batches (shuffle it); batches of
    another size than the first are skipped, and one pass must hold at least
    two draws' worth.

    Paper: McCandlish et al. 2018, "An Empirical Model of Large-Batch
    Training" (arXiv 1812.06162), section 2.2 and Appendix A.

    Args:
        model: a built Keras model, compiled with a loss unless `loss` is given.
        x: input array (or a dict/list of them), or a batched
            `tf.data.Dataset` yielding `(x, y)` or `(x, y, sample_weight)`
            (weights are ignored).
        y: targets for array inputs; `None` with a dataset.
        batch_size: `b`, the small batch (arrays; `None` with a dataset).
        num_draws: independent draws (>= 2, for the standard errors).
        small_batches: `k >= 2` small gradients per draw.
        seed: the seed of the sampling and of the dropout masks.
        loss: a loss to use instead of the compiled one.

    Returns:
        A `tfgap.advisor.NoiseScales`.

    Raises:
        ValueError: bad input (named with what was received).
        GradientStatisticsError: `G^T H G` and the Gauss-Newton curvature both
            not positive.

    Example:

    >>> import numpy as np, keras
    >>> rng = np.random.default_rng(0)
    >>> x = (rng.normal(size=(512, 4)) * [3.0, 1.0, 0.3, 0.1]).astype("float32")
    >>> y = rng.integers(0, 3, size=512)
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> s = measure_noise_scales(model, x, y, batch_size=8, num_draws=4)
    >>> s.num_draws, s.small_batch, s.big_batch, s.product, s.b_noise > 0
    (4, 8.0, 32.0, 'hessian', True)
    """
    if not isinstance(model, keras.Model):
        raise ValueError(f"Expected a keras.Model. Received: model={model!r} of type "
                         f"{type(model).__name__}.")
    if not model.built:
        raise ValueError(f"Expected a built model (call it once or give it an Input). "
                         f"Received model {model.name!r}, not built.")
    num_draws = _validation.integer("num_draws", num_draws, minimum=2)
    k = _validation.integer("small_batches", small_batches, minimum=2)
    loss_fn = _evaluation.resolve_loss(model, loss)
    products = _Products(model, loss_fn)
    batches = _draw_batches(x, y, batch_size, num_draws, k, seed, model)
    draw_gradients, hvps, gauss_newtons = [], [], []
    for d, (small, (hx, hy)) in enumerate(batches):
        draw_gradients.append(np.stack([products.gradient(bx, by, seed) for bx, by in small]))
        hvp, gauss_newton = products.curvature(hx, hy, seed)
        hvps.append(hvp)
        gauss_newtons.append(gauss_newton)
    b = _evaluation.num_examples(batches[0][0][0][0])
    return estimate_noise_scales(draw_gradients, hvps, small_batch=b,
                                 gauss_newton=gauss_newtons)


def _draw_batches(x, y, batch_size, num_draws, k, seed, model):
    """`[(small batches [(x, y)] * k, curvature batch (x, y))] * num_draws` as tensors."""
    if backend.is_tf_dataset(x):
        if y is not None:
            raise ValueError(
                "Expected y=None when x is a tf.data.Dataset (it yields (x, y)). Received y of "
                f"type {type(y).__name__}.")
        if batch_size is not None:
            raise ValueError(
                "Expected batch_size=None with a tf.data.Dataset (its batches are the small "
                f"batches). Received: batch_size={batch_size!r}")
        check_dataset(x, model)
        return _dataset_draws(x, num_draws, k)
    if y is None:
        raise ValueError("Expected targets `y` with array inputs (or a tf.data.Dataset of "
                         "(x, y) batches). Received: y=None")
    b = _validation.integer("batch_size", batch_size, minimum=1)
    n = _evaluation.num_examples(x)
    if _evaluation.num_examples(y) != n:
        raise ValueError(f"Expected x and y with the same number of examples. Received "
                         f"{n} and {_evaluation.num_examples(y)}.")
    if n < 2 * b:
        raise ValueError(f"Expected at least 2 * batch_size = {2 * b} examples. Received {n}.")
    rng = np.random.default_rng(seed)
    host = keras.tree.map_structure(_evaluation.to_numpy, (x, y))
    draws = []
    for _ in range(num_draws):
        index = rng.integers(0, n, size=(k + 1, b))
        pieces = [_evaluation._to_tensors(keras.tree.map_structure(lambda a, i=i: a[i], host))
                  for i in index]
        draws.append((pieces[:k], pieces[k]))
    return draws


def _dataset_draws(dataset, num_draws, k):
    per_draw = k + 1
    pieces, size = [], None
    for element in dataset:
        bx, by = element[0], element[1]
        n = _evaluation.num_examples(bx)
        size = n if size is None else size
        if n != size:
            continue
        if backend.name() != "tensorflow":
            bx, by = _evaluation._to_tensors(keras.tree.map_structure(np.asarray, (bx, by)))
        pieces.append((bx, by))
        if len(pieces) == num_draws * per_draw:
            break
    draws = len(pieces) // per_draw
    if draws < 2:
        raise ValueError(
            f"Expected a dataset of at least {2 * per_draw} batches of one size (two draws of "
            f"{k} small batches and a curvature batch). Received {len(pieces)} batches of "
            f"{size} examples. Batch it smaller or give more data.")
    return [(pieces[d * per_draw:d * per_draw + k], pieces[d * per_draw + k])
            for d in range(draws)]


def check_dataset(dataset, model=None):
    """Raises `ValueError` unless `dataset` yields labelled batches `(x, y[, weight])`.

    Batched means each element holds a batch: with a `model` whose inputs
    are known, the input's rank must be the model input's (an unbatched
    dataset yields single examples, one dimension short).
    """
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) not in (2, 3):
        raise ValueError(
            "Expected a tf.data.Dataset yielding labelled batches (x, y) or (x, y, "
            f"sample_weight). Received one with element_spec {spec!r}.")
    x_spec = keras.tree.flatten(spec[0])[0]
    y_spec = keras.tree.flatten(spec[1])[0]
    rank = len(x_spec.shape) if x_spec.shape.rank is not None else None
    inputs = getattr(model, "inputs", None) if model is not None else None
    want = len(keras.tree.flatten(inputs)[0].shape) if inputs else None
    if (y_spec.shape.rank == 0) or (rank is not None and want is not None and rank < want):
        raise ValueError(
            "Expected a batched tf.data.Dataset (call .batch(batch_size) on it). Received an "
            f"unbatched one: element_spec {spec!r}"
            + (f" against the model's input of rank {want}." if want is not None else "."))


__all__ = ["measure_noise_scales", "check_dataset"]
