"""The gradient noise scale with its standard error, and a callback that tracks it."""

import dataclasses
import math

import keras
import numpy as np

from tfgap import _validation

DEFAULT_NUM_CHUNKS = 8


class NoiseScaleError(ValueError):
    """A noise-scale measurement that cannot be used (negative or not finite)."""


@dataclasses.dataclass(frozen=True)
class NoiseScaleEstimate:
    """`B_simple` measured on disjoint chunks of data, with its standard error.

    Attributes:
        b_simple: `trace_covariance / gradient_norm_sq` (a ratio of means over
            the chunks, as `tfgap.diagnostics.gradient_noise_scale` computes).
        b_simple_stderr: its standard error, from the spread of the chunks
            (delta method for a ratio of means).
        trace_covariance: the mean over chunks of the estimates of
            `tr(Sigma)`.
        gradient_norm_sq: the mean over chunks of the estimates of `|G|^2`.
        batch_size: the small batch `B_small` of the estimator.
        num_chunks: the number of disjoint chunks of examples.
        num_examples: the examples used (all chunks together).
        step: the optimizer step at which it was measured (`None`: unknown).
    """

    b_simple: float
    b_simple_stderr: float
    trace_covariance: float
    gradient_norm_sq: float
    batch_size: int
    num_chunks: int
    num_examples: int
    step: int | None = None

    @property
    def usable(self):
        """Whether `b_simple` is finite and positive (see `check`)."""
        return bool(math.isfinite(self.b_simple) and self.b_simple > 0
                    and self.gradient_norm_sq > 0 and math.isfinite(self.b_simple_stderr))

    def check(self):
        """Returns `self`, or raises `NoiseScaleError` saying what to change."""
        if self.usable:
            return self
        at = "" if self.step is None else f" at step {self.step}"
        raise NoiseScaleError(
            f"The gradient noise scale{at} came out {self.b_simple!r} (|G|^2 estimate "
            f"{self.gradient_norm_sq:.3g}, tr(Sigma) estimate {self.trace_covariance:.3g}, "
            f"from {self.num_examples} examples in {self.num_chunks} chunks of small batches "
            f"of {self.batch_size}): the gradient is too small to separate from its noise "
            "with these examples. Measure on more examples, or earlier in training (before "
            "the loss flattens), or with more chunks; expected a positive, finite value."
        )

    def to_dict(self):
        """A JSON-ready dict of the fields (non-finite floats become strings)."""
        return {k: _json_float(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values):
        """The inverse of `to_dict`."""
        values = dict(values)
        for key in ("b_simple", "b_simple_stderr", "trace_covariance", "gradient_norm_sq"):
            values[key] = float(values[key])
        return cls(**values)


def _json_float(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf": float() reads them back
    return value


def combine_chunks(traces, norms_sq, *, batch_size, num_examples, step=None):
    """`B_simple` and its standard error from per-chunk estimates of its two terms.

    With `K` chunks giving unbiased estimates `T_k` of `tr(Sigma)` and `G_k`
    of `|G|^2`, the estimate is the ratio of means and its standard error
    the delta method's (the chunks are independent):

    ```
    B_simple = mean(T) / mean(G)
    stderr   = std(T_k - B_simple * G_k, ddof=1) / (sqrt(K) * |mean(G)|)
    ```

    Args:
        traces: per-chunk estimates of `tr(Sigma)` (at least two).
        norms_sq: per-chunk estimates of `|G|^2`, as many.
        batch_size: the small batch of the estimator (recorded).
        num_examples: the examples of all chunks together (recorded).
        step: the optimizer step of the measurement (recorded).

    Returns:
        A `NoiseScaleEstimate` (not checked: see `NoiseScaleEstimate.check`).

    Example:

    >>> e = combine_chunks([4.0, 6.0], [0.1, 0.1], batch_size=8, num_examples=64)
    >>> round(e.b_simple, 6), round(e.b_simple_stderr, 6)
    (50.0, 10.0)
    """
    t = np.asarray(traces, np.float64)
    g = np.asarray(norms_sq, np.float64)
    if t.ndim != 1 or t.shape != g.shape or len(t) < 2:
        raise ValueError(
            "Expected two 1-D sequences of the same length >= 2 (one estimate per chunk); "
            f"received {len(np.atleast_1d(t))} traces and {len(np.atleast_1d(g))} norms."
        )
    trace, norm_sq = float(t.mean()), float(g.mean())
    with np.errstate(divide="ignore", invalid="ignore"):
        b_simple = float(np.divide(trace, norm_sq)) if norm_sq != 0 else math.copysign(
            math.inf, trace)
        residual = t - b_simple * g
        stderr = float(residual.std(ddof=1) / (math.sqrt(len(t)) * abs(norm_sq)))
    return NoiseScaleEstimate(
        b_simple=b_simple, b_simple_stderr=stderr, trace_covariance=trace,
        gradient_norm_sq=norm_sq, batch_size=int(batch_size), num_chunks=len(t),
        num_examples=int(num_examples), step=None if step is None else int(step),
    )


def measure_noise_scale(model, x, y, *, batch_size, num_chunks=DEFAULT_NUM_CHUNKS, seed=0,
                        loss=None, step=None):
    """Measures McCandlish et al.'s `B_simple` with a standard error.

    The examples are shuffled with `seed` and cut into `num_chunks` disjoint
    chunks of whole small batches; `tfgap.diagnostics.gradient_noise_scale`
    measures `tr(Sigma)` and `|G|^2` on each chunk (one large batch = the
    chunk), and `combine_chunks` takes their ratio of means and its standard
    error. The estimate is the one `gradient_noise_scale` gives with
    `large_batch_size` = the chunk size; only the error bar is new.

    Gradients are in inference mode (moving normalization statistics) and
    include `model.losses`, as in `gradient_noise_scale`.

    Paper: McCandlish, Kaplan, Amodei & OpenAI Dota Team, "An Empirical Model
    of Large-Batch Training", 2018 (arXiv 1812.06162), Appendix A.

    Args:
        model: a built Keras model, compiled with a loss unless `loss` is given.
        x: input array (or nested arrays).
        y: target array.
        batch_size: the small batch `B_small` (>= 1).
        num_chunks: disjoint chunks (>= 2); each needs >= 2 small batches.
        seed: seed of the shuffle.
        loss: a loss to use instead of the compiled one.
        step: the optimizer step, recorded in the result.

    Returns:
        A `NoiseScaleEstimate`; call `.check()` to refuse an unusable one.

    Example:

    >>> import numpy as np, keras
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(512, 4)).astype("float32")
    >>> y = (x @ np.ones((4, 1)) + rng.normal(size=(512, 1))).astype("float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(loss="mse")
    >>> e = measure_noise_scale(model, x, y, batch_size=8, num_chunks=4)
    >>> e.num_chunks, e.num_examples, e.b_simple > 0, e.b_simple_stderr > 0
    (4, 512, True, True)
    """
    from tfgap.diagnostics import gradient_noise_scale  # noqa: PLC0415 (imports TensorFlow)

    batch_size = _validation.positive_int("batch_size", batch_size)
    num_chunks = _validation.positive_int("num_chunks", num_chunks)
    if num_chunks < 2:
        raise ValueError(f"Expected num_chunks >= 2 (for an error bar); received {num_chunks}.")
    n = _num_examples(x)
    per_chunk = (n // num_chunks) // batch_size * batch_size
    if per_chunk < 2 * batch_size:
        raise ValueError(
            f"Expected at least {2 * batch_size * num_chunks} examples (num_chunks={num_chunks} "
            f"chunks of two small batches of {batch_size}); received {n}. Give more examples "
            "or a smaller batch_size or num_chunks."
        )
    order = np.random.default_rng(seed).permutation(n)
    traces, norms = [], []
    for k in range(num_chunks):
        index = order[k * per_chunk:(k + 1) * per_chunk]
        take = lambda a, index=index: _take(a, index)  # noqa: E731
        part = gradient_noise_scale(model, _map(take, x), take(y), batch_size=batch_size,
                                    large_batch_size=per_chunk, loss=loss)
        traces.append(part.trace_covariance)
        norms.append(part.gradient_norm_sq)
    return combine_chunks(traces, norms, batch_size=batch_size,
                          num_examples=per_chunk * num_chunks, step=step)


def _take(a, index):
    return np.asarray(a)[index]


def _map(fn, x):
    if isinstance(x, dict):
        return {k: fn(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(fn(v) for v in x)
    return fn(x)


def _num_examples(x):
    if isinstance(x, dict):
        x = next(iter(x.values()))
    elif isinstance(x, (list, tuple)):
        x = x[0]
    return int(np.shape(x)[0])



class NoiseScaleTracker(keras.callbacks.Callback):
    """Measures `B_simple` (with its error) at chosen optimizer steps of a run.

    A Keras callback for `model.fit` or `tfgap.training.train`: after the
    optimizer steps listed in `at_steps` (counted from 1 across epochs) it
    calls `measure_noise_scale` on the fixed examples `x, y`. The trainer
    calls `on_train_batch_end` once per step but after each group of
    `steps_per_execution` steps, so run it with `steps_per_execution=1`
    for the weights of exactly those steps. Step 0 (before training) is
    measured at `on_train_begin` when listed.

    Args:
        x, y: the examples to measure on (fixed: the same at every step).
        batch_size: the small batch of the estimator.
        at_steps: the optimizer steps at which to measure.
        num_chunks: see `measure_noise_scale`.
        seed: the chunks' shuffle seed (the same at every step).
        loss: a loss to use instead of the model's compiled one.

    Attributes:
        estimates: the `NoiseScaleEstimate`s measured so far, in step order.

    Example:

    >>> import numpy as np, keras
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(256, 4)).astype("float32")
    >>> y = (x @ np.ones((4, 1)) + rng.normal(size=(256, 1))).astype("float32")
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="sgd", loss="mse")
    >>> tracker = NoiseScaleTracker(x, y, batch_size=8, at_steps=[0, 4, 8], num_chunks=4)
    >>> _ = model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[tracker])
    >>> [e.step for e in tracker.estimates]
    [0, 4, 8]
    """

    def __init__(self, x, y, *, batch_size, at_steps, num_chunks=DEFAULT_NUM_CHUNKS, seed=0,
                 loss=None):
        super().__init__()
        self.x, self.y = x, y
        self.batch_size = _validation.positive_int("batch_size", batch_size)
        steps = sorted({int(s) for s in at_steps})
        if not steps or steps[0] < 0:
            raise ValueError(f"Expected at_steps to be steps >= 0; received {list(at_steps)!r}.")
        self.at_steps = steps
        self.num_chunks = num_chunks
        self.seed = seed
        self.loss = loss
        self.estimates = []
        self._step = 0

    def _measure(self):
        self.estimates.append(measure_noise_scale(
            self.model, self.x, self.y, batch_size=self.batch_size, num_chunks=self.num_chunks,
            seed=self.seed, loss=self.loss, step=self._step))

    def on_train_begin(self, logs=None):
        self._step = 0
        self.estimates = []
        if 0 in self.at_steps:
            self._measure()

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self._step in self.at_steps:
            self._measure()


@dataclasses.dataclass(frozen=True)
class PooledNoiseScale:
    """`B_simple` pooled over the measurements of the later part of a run.

    Attributes:
        b_simple: the mean of the pooled points' `b_simple`.
        b_simple_stderr: its standard error (see `pool_estimates`).
        steps: the steps of the pooled points.
        skipped: the steps of unusable points (negative or not finite).
    """

    b_simple: float
    b_simple_stderr: float
    steps: tuple
    skipped: tuple = ()


def pool_estimates(estimates, *, min_step=0):
    """Pools the usable estimates at steps `>= min_step` into one `B_simple`.

    The noise scale moves along a run (it grows as the loss falls, and
    wobbles with the trajectory), more than one measurement's error bar
    says. The pooled value is the mean of the `m` points' `b_i`; its
    standard error counts both the spread of the points and their own
    errors `e_i`:

    ```
    B_simple = mean(b_i)
    stderr   = max(std(b_i, ddof=1) / sqrt(m), sqrt(sum(e_i^2)) / m)
    ```

    Args:
        estimates: `NoiseScaleEstimate`s with their `step`s.
        min_step: points before this step are not pooled.

    Returns:
        A `PooledNoiseScale`.

    Raises:
        NoiseScaleError: no usable point at or after `min_step` (the message
            of the last unusable one says what to change).

    Example:

    >>> points = [combine_chunks([a, a + 2], [0.01, 0.01], batch_size=8, num_examples=64,
    ...                          step=s) for s, a in ((10, 1.0), (20, 3.0), (30, 5.0))]
    >>> p = pool_estimates(points, min_step=15)
    >>> p.steps, round(p.b_simple, 6), round(p.b_simple_stderr, 6)
    ((20, 30), 500.0, 100.0)
    """
    late = [e for e in estimates if (e.step or 0) >= min_step]
    good = [e for e in late if e.usable]
    skipped = tuple(e.step for e in late if not e.usable)
    if not good:
        if late:
            late[-1].check()
        raise NoiseScaleError(
            f"Expected at least one noise-scale measurement at step >= {min_step}; received "
            f"steps {[e.step for e in estimates]}. Lengthen the measurement run."
        )
    b = np.array([e.b_simple for e in good])
    e = np.array([e.b_simple_stderr for e in good])
    own = float(np.sqrt(np.sum(e**2)) / len(b))
    spread = float(b.std(ddof=1) / math.sqrt(len(b))) if len(b) > 1 else 0.0
    return PooledNoiseScale(b_simple=float(b.mean()), b_simple_stderr=max(own, spread),
                            steps=tuple(x.step for x in good), skipped=skipped)
