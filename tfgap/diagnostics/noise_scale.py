"""The gradient noise scale of McCandlish et al.: the critical batch size."""

import dataclasses

import keras
import numpy as np

from tfgap import backend
from tfgap.diagnostics import _evaluation


@dataclasses.dataclass(frozen=True)
class NoiseScale:
    """An estimate of the simple gradient noise scale.

    Attributes:
        b_simple: `trace_covariance / gradient_norm_sq`, the critical batch size.
        trace_covariance: the estimate `S` of `tr(Sigma)`, the trace of the
            per-example gradient covariance.
        gradient_norm_sq: the estimate of `|G|^2`, the squared norm of the true
            gradient.
        batch_size: the small batch size `B_small`.
        large_batch_size: the large batch size `B_big`.
        num_groups: how many large batches were averaged.
    """

    b_simple: float
    trace_covariance: float
    gradient_norm_sq: float
    batch_size: int
    large_batch_size: int
    num_groups: int


def gradient_noise_scale(
    model,
    x,
    y=None,
    *,
    batch_size=None,
    large_batch_size=None,
    seed=0,
    loss=None,
):
    """Estimates McCandlish et al.'s simple noise scale `B_simple`.

    The noise scale predicts the critical batch size: below it, doubling the
    batch nearly halves the number of steps; well above it, larger batches buy
    almost nothing. For a gradient estimate `G_B` from a batch of `B` examples,
    `E|G_B|^2 = |G|^2 + tr(Sigma) / B`, so gradient norms at two batch sizes
    `B_small < B_big` give unbiased estimates of both terms (their Appendix A):

    ```
    |G|^2      ~= (B_big |G_big|^2 - B_small |G_small|^2) / (B_big - B_small)
    tr(Sigma)  ~= (|G_small|^2 - |G_big|^2) / (1 / B_small - 1 / B_big)
    B_simple    = tr(Sigma) / |G|^2
    ```

    How it is computed: the examples are split into large batches of
    `large_batch_size` examples, each made of `k = B_big / B_small` small
    batches. Per large batch, `|G_small|^2` is the mean over its `k` small-batch
    gradients and `G_big` their mean (the gradient of the large batch, at no
    extra cost). Both estimates are averaged over the large batches and then
    divided (a ratio of means, as the paper recommends). Array inputs are
    shuffled with `seed` and the remainder that does not fill a large batch is
    dropped; a dataset is used in its order, its batches are the small batches
    (batches of another size are skipped).

    Accuracy: with `batch_size=1` and `large_batch_size` the number of
    examples, the estimate is deterministic and equals the per-example
    statistics exactly (`tr(Sigma)` with the 1/(n-1) sample covariance and
    `|G|^2 = |mean g_i|^2 - tr(Sigma) / n`). For larger batches it is random;
    both terms are unbiased and their relative error shrinks like
    `1 / sqrt(number of small batches)`.

    Gradients are those of the mean loss plus `model.losses` in inference mode
    (BatchNormalization uses its moving statistics, so that the gradient of a
    batch does not depend on the batch size through batch statistics).

    Paper: McCandlish, Kaplan, Amodei & OpenAI Dota Team, "An Empirical Model
    of Large-Batch Training", 2018 (arXiv 1812.06162), section 2.2 and
    Appendix A.

    Args:
        model: a built Keras model; compiled with a loss unless `loss` is given.
        x: inputs, or a batched `tf.data.Dataset` of `(x, y)` whose batch size
            is the small batch size.
        y: targets for array inputs; None for a dataset.
        batch_size: the small batch size `B_small` for array inputs (>= 1;
            default 32); must be None for a dataset.
        large_batch_size: `B_big`, a multiple of the small batch size that is at
            least twice it (default: all the examples, rounded down to a
            multiple of the small batch; for a dataset, all its full batches).
        seed: seed of the shuffle of array inputs.
        loss: a loss to use instead of the compiled one.

    Returns:
        A `NoiseScale` (fields `b_simple`, `trace_covariance`,
        `gradient_norm_sq`, `batch_size`, `large_batch_size`, `num_groups`).

    Example:

    >>> import numpy as np, keras
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 4)).astype("float32")
    >>> y = (x @ np.ones((4, 1)) + rng.normal(size=(256, 1))).astype("float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse")
    >>> result = gradient_noise_scale(model, x, y, batch_size=8)
    >>> result.b_simple > 0
    True
    """
    loss_fn = _evaluation.resolve_loss(model, loss)
    if backend.is_tf_dataset(x):
        dataset = _evaluation.as_dataset(x, y, batch_size)
        small = None
    else:
        small = 32 if batch_size is None else batch_size
        if isinstance(small, bool) or int(small) != small or int(small) < 1:
            raise ValueError(f"Expected batch_size to be an integer >= 1; received {small!r}.")
        small = int(small)
        n = _evaluation.num_examples(x)
        if y is None or _evaluation.num_examples(y) != n:
            # as_dataset raises the precise error.
            _evaluation.as_dataset(x, y, small)
        if large_batch_size is None:
            large = (n // small) * small
        else:
            large = int(large_batch_size)
        _check_sizes(small, large, n)
        order = np.random.default_rng(seed).permutation(n)[: (n // large) * large]
        x, y = keras.tree.map_structure(lambda a: _evaluation.to_numpy(a)[order], (x, y))
        dataset = _evaluation.as_dataset(x, y, small)
    evaluator = _evaluation.LossEvaluator(model, loss_fn, dataset)

    s_sum, g_sum, groups = 0.0, 0.0, 0
    sq_sum, vec_sum, count = 0.0, 0.0, 0
    k = None if small is None else large // small

    def close(count, sq_sum, vec_sum):
        small_sq = sq_sum / count
        big = vec_sum / count
        big_sq = float(big @ big)
        b_big = small * count
        trace = (small_sq - big_sq) / (1.0 / small - 1.0 / b_big)
        norm_sq = (b_big * big_sq - small * small_sq) / (b_big - small)
        return trace, norm_sq

    for n_batch, grad in evaluator.batch_gradients():
        if small is None:
            small = n_batch
            if large_batch_size is not None:
                _check_sizes(small, int(large_batch_size), None)
                k = int(large_batch_size) // small
        if n_batch != small:
            continue
        sq_sum += float(grad @ grad)
        vec_sum = vec_sum + grad
        count += 1
        if count == k:
            trace, norm_sq = close(count, sq_sum, vec_sum)
            s_sum, g_sum, groups = s_sum + trace, g_sum + norm_sq, groups + 1
            sq_sum, vec_sum, count = 0.0, 0.0, 0
    if k is None and count >= 2:  # a dataset used whole as one large batch
        trace, norm_sq = close(count, sq_sum, vec_sum)
        s_sum, g_sum, groups, k = trace, norm_sq, 1, count
    if groups == 0:
        raise ValueError(
            "Expected at least one full large batch (two or more small batches of "
            f"{small} examples) in the data; received fewer."
        )
    large = small * k
    trace, norm_sq = s_sum / groups, g_sum / groups
    return NoiseScale(
        b_simple=trace / norm_sq,
        trace_covariance=trace,
        gradient_norm_sq=norm_sq,
        batch_size=small,
        large_batch_size=large,
        num_groups=groups,
    )


def _check_sizes(small, large, n):
    if large < 2 * small or large % small:
        raise ValueError(
            "Expected large_batch_size to be a multiple of batch_size and at least twice "
            f"it; received batch_size={small}, large_batch_size={large}."
        )
    if n is not None and large > n:
        raise ValueError(
            f"Expected large_batch_size <= the number of examples ({n}); received {large}."
        )


class GradientNoiseScale(keras.callbacks.Callback):
    """Logs the gradient noise scale `B_simple` at the end of epochs.

    A Keras callback that calls `gradient_noise_scale` on a fixed data set
    (e.g. a few thousand training examples) every `every_n_epochs` epochs and
    adds `gradient_noise_scale` (= `B_simple`) to the epoch logs, so that it
    lands in `History` and TensorBoard. The noise scale typically grows during
    training (McCandlish et al. 2018): it tells when a larger batch starts to
    pay, and whether the batch in use is beyond the critical batch size.

    Args:
        x: inputs, or a batched `tf.data.Dataset` of `(x, y)`.
        y: targets for array inputs; None for a dataset.
        batch_size: the small batch size (see `gradient_noise_scale`).
        large_batch_size: the large batch size (see `gradient_noise_scale`).
        every_n_epochs: how often to measure (>= 1).
        seed: shuffle seed; epoch `e` uses `seed + e`.
        loss: a loss to use instead of the compiled one.

    Attributes:
        history: list of `(epoch, NoiseScale)` pairs.

    Example:

    >>> import numpy as np, keras
    >>> x = np.random.default_rng(0).normal(size=(128, 4)).astype("float32")
    >>> y = x.sum(axis=1, keepdims=True) + 1.0
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> cb = GradientNoiseScale(x, y, batch_size=8)
    >>> logs = model.fit(x, y, epochs=1, verbose=0, callbacks=[cb]).history
    >>> "gradient_noise_scale" in logs
    True
    """

    def __init__(
        self,
        x,
        y=None,
        *,
        batch_size=None,
        large_batch_size=None,
        every_n_epochs=1,
        seed=0,
        loss=None,
    ):
        super().__init__()
        every_n_epochs = int(every_n_epochs)
        if every_n_epochs < 1:
            raise ValueError(f"Expected every_n_epochs >= 1; received {every_n_epochs}.")
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.large_batch_size = large_batch_size
        self.every_n_epochs = every_n_epochs
        self.seed = int(seed)
        self.loss = loss
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_n_epochs:
            return
        result = gradient_noise_scale(
            self.model,
            self.x,
            self.y,
            batch_size=self.batch_size,
            large_batch_size=self.large_batch_size,
            seed=self.seed + epoch,
            loss=self.loss,
        )
        self.history.append((epoch, result))
        if logs is not None:
            logs["gradient_noise_scale"] = result.b_simple
