"""Gradient noise statistics from two batch sizes: `B_simple`, `B_noise` and `eps_opt`.

The arithmetic of McCandlish et al. 2018 ("An Empirical Model of Large-Batch
Training", arXiv 1812.06162, section 2 and Appendix A), in NumPy only (no
TensorFlow, no Keras): the trainer and the Keras wrapper compute squared
gradient norms and hand them here.

Notation. The loss is `L(w) = E_x l(x; w)`; `G = grad L` the true gradient;
`Sigma` the covariance of the per-example gradients; `H` the Hessian of `L`.
A gradient `g_b` averaged over `b` independent examples has mean `G` and
covariance `Sigma / b`, so for any fixed symmetric `M`

```
E[g_b^T M g_b] = G^T M G + tr(M Sigma) / b.
```

With two batch sizes `b < B` the two unknowns separate (Appendix A):

```
|G|^2      = (B |G_B|^2 - b |G_b|^2) / (B - b)          (M = I)
tr(Sigma)  = (|G_b|^2 - |G_B|^2) / (1/b - 1/B)
G^T H G    = (B q_B - b q_b) / (B - b)                   (M = H, q = g^T H g)
tr(H Sigma) = (q_b - q_B) / (1/b - 1/B)
```

each unbiased when `|G_b|^2` is a mean over small batches of `b` and
`|G_B|^2` the squared norm of one batch of `B` (e.g. the mean of `k = B/b`
small gradients); for the `H` terms, `H` must come from a batch independent
of the gradients (then `E[H_batch] = H` and the expectations factor).

- `two_batch_estimates(small_sq, big_sq, small_batch, big_batch)`: the first
  two lines.
- `NoiseStatistics`: separate bias-corrected exponential moving averages of
  the `|G|^2` and `tr(Sigma)` estimates along a run, `B_simple` their ratio,
  with a standard error; plain serializable state (a dict of floats).
- `curvature_draw(small_gradients, hvp, small_batch=...)` and
  `noise_scales(draws)`: `B_simple`, `B_noise = tr(H Sigma) / G^T H G`, their
  ratio and `eps_max = |G|^2 / G^T H G`, each with a standard error.
- `eps_opt(batch_size, eps_max, b_noise, momentum=0)`: the learning rate.
"""

import dataclasses
import math
import numbers

import numpy as np

DEFAULT_DECAY = 0.99


class GradientStatisticsError(ValueError):
    """Inputs the gradient-statistics estimators cannot use (named with what was received)."""


# -- the two-batch-size estimates ------------------------------------------------------------


def two_batch_estimates(small_sq, big_sq, small_batch, big_batch):
    """Unbiased estimates of `|G|^2` and `tr(Sigma)` from squared norms at two batch sizes.

    ```
    |G|^2     = (B |G_B|^2 - b |G_b|^2) / (B - b)
    tr(Sigma) = (|G_b|^2 - |G_B|^2) / (1/b - 1/B)
    ```

    Paper: McCandlish et al. 2018 (arXiv 1812.06162), Appendix A.1.

    Args:
        small_sq: `|G_b|^2`, the mean over small batches of their squared
            gradient norms (a number or an array of them).
        big_sq: `|G_B|^2`, the squared norm of the big batch's gradient.
        small_batch: `b`, examples per small batch.
        big_batch: `B > b`, examples of the big batch.

    Returns:
        `(norm_sq, trace)`: floats (arrays for array inputs). Either may be
        negative for one draw (they are unbiased, not positive).

    Example:

    >>> two_batch_estimates(small_sq=3.0, big_sq=1.5, small_batch=2, big_batch=4)
    (0.0, 6.0)
    """
    b, big = _batch_pair(small_batch, big_batch)
    small_sq, big_sq = np.asarray(small_sq, np.float64), np.asarray(big_sq, np.float64)
    norm_sq, trace = two_batch_formulas(small_sq, big_sq, b, big)
    if norm_sq.ndim == 0:
        return float(norm_sq), float(trace)
    return norm_sq, trace


def two_batch_formulas(small_sq, big_sq, small_batch, big_batch):
    """`two_batch_estimates`' arithmetic alone, on any array type (NumPy, TensorFlow).

    No checks and no conversion: for callers that hold tensors in a graph
    (`tfgap.advisor.GradientStatisticsModel`) and guard the batch sizes
    themselves.
    """
    b, big = small_batch, big_batch
    return (big * big_sq - b * small_sq) / (big - b), (small_sq - big_sq) / (1.0 / b - 1.0 / big)


def _batch_pair(small_batch, big_batch):
    b = _positive("small_batch", small_batch)
    big = _positive("big_batch", big_batch)
    if not big > b:
        raise GradientStatisticsError(
            "Expected big_batch > small_batch (two different batch sizes). Received: "
            f"small_batch={small_batch!r}, big_batch={big_batch!r}")
    return b, big


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        raise GradientStatisticsError(
            f"Expected `{name}` to be a positive finite number. Received: {name}={value!r}")
    return float(value)


# -- moving averages along a run ------------------------------------------------------------


STATE_KEYS = ("decay", "count", "norm_sq", "trace", "norm_sq_sq", "trace_sq", "cross",
               "small_batch", "big_batch")


class NoiseStatistics:
    """Moving averages of `|G|^2` and `tr(Sigma)` along a run, and `B_simple` from them.

    Each `update(small_sq, big_sq)` turns one step's squared norms into the
    unbiased estimates of `two_batch_estimates` and folds them into separate
    exponential moving averages (as gpt-neox, AdaScale and Pollux do: a ratio
    of averages, not an average of ratios, which would be biased and
    unstable when the `|G|^2` estimate of one step is near zero or negative):

    ```
    m_t = decay m_{t-1} + (1 - decay) x_t,       mean_t = m_t / (1 - decay^t)
    B_simple = mean(tr(Sigma)) / mean(|G|^2)
    ```

    with Adam's bias correction (Kingma & Ba 2015), so the first steps are
    not pulled towards zero. The default `decay = 0.99` averages about the
    last `(1 + decay) / (1 - decay) = 199` steps' worth of independent
    estimates: one step's `|G|^2` estimate has a relative standard deviation
    of order `B_simple / B` or more (often several times its mean), which
    ~200 steps bring to a few percent, while the statistics themselves drift
    over thousands of steps. Lower it (e.g. 0.95) on runs of a few hundred
    steps.

    The standard error of `B_simple` treats the steps' estimates as
    independent given the (slowly moving) weights: the delta method for a
    ratio of weighted means, `sqrt(sum w_i^2 var(z)) / mean(|G|^2)` with
    `z = T - B_simple N` and `w_i` the normalized weights of the average
    (their sum of squares is `(1 - d)(1 + d^t) / ((1 + d)(1 - d^t))`).

    Non-finite step values (a step skipped by loss scaling) are ignored.
    The state is a dict of floats (`state()` / `from_state`), so a trainer
    can checkpoint it and resume bit for bit.

    Args:
        small_batch: `b`, examples per small gradient.
        big_batch: `B > b`, examples of the big gradient.
        decay: the moving averages' decay in [0, 1).

    Example:

    >>> stats = NoiseStatistics(small_batch=2, big_batch=4, decay=0.5)
    >>> stats.update(small_sq=3.0, big_sq=1.5)         # |G|^2 = 0, tr(Sigma) = 6
    >>> stats.update(small_sq=5.0, big_sq=3.0)         # |G|^2 = 1, tr(Sigma) = 8
    >>> stats.norm_sq, stats.trace, stats.b_simple     # weights 1/3, 2/3
    (0.6666666666666666, 7.333333333333333, 11.0)
    >>> NoiseStatistics.from_state(stats.state()).b_simple
    11.0
    """

    def __init__(self, small_batch, big_batch, decay=DEFAULT_DECAY):
        self.small_batch, self.big_batch = _batch_pair(small_batch, big_batch)
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not (
                0.0 <= decay < 1.0):
            raise GradientStatisticsError(
                f"Expected `decay` in [0, 1). Received: decay={decay!r}")
        self.decay = float(decay)
        self.count = 0.0
        self._m = dict.fromkeys(("norm_sq", "trace", "norm_sq_sq", "trace_sq", "cross"), 0.0)

    def update(self, small_sq, big_sq):
        """Folds one step's `|G_b|^2` (mean over small gradients) and `|G_B|^2` in."""
        norm_sq, trace = two_batch_estimates(small_sq, big_sq, self.small_batch,
                                             self.big_batch)
        if not (math.isfinite(norm_sq) and math.isfinite(trace)):
            return
        d = self.decay
        values = {"norm_sq": norm_sq, "trace": trace, "norm_sq_sq": norm_sq * norm_sq,
                  "trace_sq": trace * trace, "cross": norm_sq * trace}
        for key, value in values.items():
            self._m[key] = d * self._m[key] + (1.0 - d) * value
        self.count += 1.0

    def _mean(self, key):
        if not self.count:
            return None
        return self._m[key] / (1.0 - self.decay ** self.count)

    @property
    def norm_sq(self):
        """The bias-corrected moving average of the `|G|^2` estimates (`None` before any)."""
        return self._mean("norm_sq")

    @property
    def trace(self):
        """The bias-corrected moving average of the `tr(Sigma)` estimates."""
        return self._mean("trace")

    @property
    def b_simple(self):
        """`trace / norm_sq`; `None` before any step, `nan` when `norm_sq <= 0`."""
        if not self.count:
            return None
        norm_sq = self.norm_sq
        return self.trace / norm_sq if norm_sq > 0 else math.nan

    @property
    def b_simple_stderr(self):
        """The delta-method standard error of `b_simple` (`nan` below two steps)."""
        if self.count < 2 or not self.norm_sq > 0:
            return None if not self.count else math.nan
        d, t = self.decay, self.count
        sum_w2 = 1.0 if d == 0 else (1 - d) * (1 + d ** t) / ((1 + d) * (1 - d ** t))
        if sum_w2 >= 1.0:
            return math.nan
        ratio = self.b_simple
        second = (self._mean("trace_sq") - 2 * ratio * self._mean("cross")
                  + ratio * ratio * self._mean("norm_sq_sq"))
        first = self.trace - ratio * self.norm_sq  # 0 up to rounding
        variance = max(second - first * first, 0.0) / (1.0 - sum_w2)
        return math.sqrt(variance * sum_w2) / self.norm_sq

    def values(self):
        """`{"grad_norm_sq", "trace_sigma", "b_simple", "b_simple_stderr"}` (logs' names).

        A value that is not defined yet (before any step; `b_simple` while the
        `|G|^2` average is not positive; the error below two steps) is `None`,
        so the logs stay valid JSON.
        """
        values = {"grad_norm_sq": self.norm_sq, "trace_sigma": self.trace,
                  "b_simple": self.b_simple, "b_simple_stderr": self.b_simple_stderr}
        return {k: v if v is not None and math.isfinite(v) else None for k, v in values.items()}

    def state(self):
        """The whole state as a dict of floats (`from_state` inverts it exactly)."""
        return {"decay": self.decay, "count": self.count, **self._m,
                "small_batch": self.small_batch, "big_batch": self.big_batch}

    def load_state(self, state):
        """Sets the state from `state()` output (same batches and decay, or an error)."""
        missing = sorted(set(STATE_KEYS) - set(state))
        if missing:
            raise GradientStatisticsError(
                f"Expected a NoiseStatistics state with keys {list(STATE_KEYS)}. Received "
                f"one without {missing}.")
        for key in ("decay", "small_batch", "big_batch"):
            if float(state[key]) != getattr(self, key):
                raise GradientStatisticsError(
                    f"Expected a state with {key}={getattr(self, key)!r} (this object's). "
                    f"Received: {key}={state[key]!r}")
        self.count = float(state["count"])
        self._m = {key: float(state[key]) for key in self._m}

    @classmethod
    def from_state(cls, state):
        """A `NoiseStatistics` with the state `state()` returned."""
        stats = cls(float(state["small_batch"]), float(state["big_batch"]),
                    float(state["decay"]))
        stats.load_state(state)
        return stats

    def __repr__(self):
        return (f"NoiseStatistics(small_batch={self.small_batch:g}, "
                f"big_batch={self.big_batch:g}, decay={self.decay}, steps={int(self.count)}, "
                f"b_simple={self.b_simple})")


# -- the Hessian-weighted statistics: B_noise ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CurvatureDraw:
    """One independent draw of the four unbiased estimates (see `curvature_draw`).

    Attributes:
        norm_sq, trace: estimates of `|G|^2` and `tr(Sigma)`.
        curvature, trace_curvature: estimates of `G^T M G` and `tr(M Sigma)`
            for the product `M` used (`H`, or its Gauss-Newton part).
        small_batch, big_batch: `b` and `B = k b`.
    """

    norm_sq: float
    trace: float
    curvature: float
    trace_curvature: float
    small_batch: float
    big_batch: float


def curvature_draw(small_gradients, hvp, *, small_batch):
    """Unbiased estimates of `|G|^2`, `tr(Sigma)`, `G^T H G`, `tr(H Sigma)` from one draw.

    `small_gradients` are `k >= 2` gradients of independent small batches of
    `b` examples each; their mean is the gradient of a big batch of
    `B = k b`. `hvp(v)` multiplies by a Hessian (or Gauss-Newton matrix)
    taken on a batch independent of all of them. With `q(g) = g^T H g`:

    ```
    |G_b|^2 = mean_i |g_i|^2,  |G_B|^2 = |mean_i g_i|^2
    q_b = mean_i g_i^T H g_i,  q_B = (mean_i g_i)^T (mean_i H g_i)
    ```

    and `two_batch_estimates` of each pair. The `k` products `H g_i` give
    both `q`s (`H` is linear), so a draw costs `k` Hessian-vector products.

    Args:
        small_gradients: array `[k, n]`, one flat gradient per row (the mean
            loss over its `b` examples, plus any regularization).
        hvp: a function `v -> M v` on flat vectors of length `n`.
        small_batch: `b`.

    Returns:
        A `CurvatureDraw`.

    Example:

    >>> import numpy as np
    >>> g = np.array([[1.0, 0.0], [0.0, 1.0]])          # two small gradients, b = 1
    >>> d = curvature_draw(g, lambda v: np.array([2.0, 0.0]) * v, small_batch=1)
    >>> d.norm_sq, d.trace, d.curvature, d.trace_curvature
    (0.0, 1.0, 0.0, 1.0)
    """
    g = np.asarray(small_gradients, np.float64)
    if g.ndim != 2 or g.shape[0] < 2 or g.shape[1] < 1:
        raise GradientStatisticsError(
            "Expected `small_gradients` of shape [k, n] with k >= 2 small gradients. "
            f"Received shape {g.shape}.")
    if not np.all(np.isfinite(g)):
        raise GradientStatisticsError("Expected finite gradients. Received some NaN or inf.")
    k = g.shape[0]
    b = _positive("small_batch", small_batch)
    hg = np.stack([np.asarray(hvp(row), np.float64).reshape(-1) for row in g])
    if hg.shape != g.shape:
        raise GradientStatisticsError(
            f"Expected `hvp` to return vectors of length {g.shape[1]}. Received shape "
            f"{hg.shape[1:]}.")
    mean = g.mean(axis=0)
    small_sq, big_sq = float(np.mean(np.sum(g * g, axis=1))), float(mean @ mean)
    small_q, big_q = float(np.mean(np.sum(g * hg, axis=1))), float(mean @ hg.mean(axis=0))
    norm_sq, trace = two_batch_estimates(small_sq, big_sq, b, k * b)
    curvature, trace_curvature = two_batch_estimates(small_q, big_q, b, k * b)
    return CurvatureDraw(norm_sq=norm_sq, trace=trace, curvature=curvature,
                         trace_curvature=trace_curvature, small_batch=b, big_batch=k * b)


@dataclasses.dataclass(frozen=True)
class NoiseScales:
    """`B_simple`, `B_noise` and the optimal step, from independent draws, with errors.

    Attributes:
        b_simple: `tr(Sigma) / |G|^2` (ratio of the draws' means).
        b_noise: `tr(H Sigma) / (G^T H G)`.
        ratio: `b_noise / b_simple` (1 when `H` is a multiple of `I`).
        eps_max: `|G|^2 / (G^T H G)`, the best step of a noiseless gradient.
        norm_sq, trace, curvature, trace_curvature: the draws' means.
        b_simple_stderr, b_noise_stderr, ratio_stderr, eps_max_stderr: standard
            errors by the delta method from the spread of the draws (`nan` with
            one draw).
        product: `"hessian"`, or `"gauss_newton"` when the curvature along `G`
            (`G^T H G`) was not positive and the Gauss-Newton product was used.
        num_draws: the independent draws averaged.
        small_batch, big_batch: the two batch sizes of each draw.
    """

    b_simple: float
    b_noise: float
    ratio: float
    eps_max: float
    b_simple_stderr: float
    b_noise_stderr: float
    ratio_stderr: float
    eps_max_stderr: float
    norm_sq: float
    trace: float
    curvature: float
    trace_curvature: float
    product: str
    num_draws: int
    small_batch: float
    big_batch: float

    def eps_opt(self, batch_size, momentum=0.0):
        """`eps_opt(batch_size, self.eps_max, self.b_noise, momentum)` (see `eps_opt`)."""
        return eps_opt(batch_size, self.eps_max, self.b_noise, momentum=momentum)

    def to_dict(self):
        return dataclasses.asdict(self)


def noise_scales(draws, *, product="hessian"):
    """`B_simple`, `B_noise`, their ratio and `eps_max` from independent `CurvatureDraw`s.

    Each is a ratio of the draws' means; its standard error is the delta
    method's from the spread of the draws. For `R = mean(a) / mean(c)` over
    `K` draws, `se(R) = std(a_k - R c_k, ddof=1) / (sqrt(K) |mean(c)|)`. For
    `B_noise / B_simple = (T_H N) / (C T)` (means of `tr(H Sigma)`, `|G|^2`,
    `G^T H G`, `tr(Sigma)`) the linearized residual of draw `k` is
    `R (T_H,k / T_H - C_k / C - T_k / T + N_k / N)`.

    Args:
        draws: `CurvatureDraw`s (at least one; two or more for errors).
        product: the name of the product the draws used (`"hessian"` or
            `"gauss_newton"`), recorded.

    Returns:
        A `NoiseScales`.

    Example:

    >>> d1 = CurvatureDraw(1.0, 10.0, 2.0, 40.0, 8, 32)
    >>> d2 = CurvatureDraw(1.0, 10.0, 2.0, 40.0, 8, 32)
    >>> s = noise_scales([d1, d2])
    >>> s.b_simple, s.b_noise, s.ratio, s.eps_max, s.b_noise_stderr
    (10.0, 20.0, 2.0, 0.5, 0.0)
    """
    draws = list(draws)
    if not draws or not all(isinstance(d, CurvatureDraw) for d in draws):
        raise GradientStatisticsError(
            f"Expected one or more CurvatureDraw. Received: {draws!r}"[:300])
    if product not in ("hessian", "gauss_newton"):
        raise GradientStatisticsError(
            f"Expected product 'hessian' or 'gauss_newton'. Received: product={product!r}")
    a = {key: np.array([getattr(d, key) for d in draws], np.float64)
         for key in ("norm_sq", "trace", "curvature", "trace_curvature")}
    means = {key: float(v.mean()) for key, v in a.items()}
    n, t, c, th = (means[k] for k in ("norm_sq", "trace", "curvature", "trace_curvature"))
    b_simple, b_noise = _divide(t, n), _divide(th, c)
    ratio, eps_max = _divide(b_noise, b_simple), _divide(n, c)
    count = len(draws)

    def stderr(residual, denominator):
        if count < 2 or not math.isfinite(denominator) or denominator == 0:
            return math.nan
        return float(np.std(residual, ddof=1) / (math.sqrt(count) * abs(denominator)))

    # Linearized residuals (delta method): for R = f(means), R_k - R ~ grad f . (a_k - means).
    ratio_residual = (a["trace_curvature"] / th - a["curvature"] / c - a["trace"] / t
                      + a["norm_sq"] / n) * ratio if all(v != 0 for v in (th, c, t, n)) \
        else np.full(count, np.nan)
    return NoiseScales(
        b_simple=b_simple, b_noise=b_noise, ratio=ratio, eps_max=eps_max,
        b_simple_stderr=stderr(a["trace"] - b_simple * a["norm_sq"], n),
        b_noise_stderr=stderr(a["trace_curvature"] - b_noise * a["curvature"], c),
        ratio_stderr=(float(np.std(ratio_residual, ddof=1) / math.sqrt(count))
                      if count >= 2 else math.nan),
        eps_max_stderr=stderr(a["norm_sq"] - eps_max * a["curvature"], c),
        norm_sq=n, trace=t, curvature=c, trace_curvature=th, product=product,
        num_draws=count, small_batch=draws[0].small_batch, big_batch=draws[0].big_batch)


def _divide(a, b):
    if b == 0 or not (math.isfinite(a) and math.isfinite(b)):
        return math.nan
    return a / b


def estimate_noise_scales(draw_gradients, hvp, *, small_batch, gauss_newton=None):
    """`noise_scales` over independent draws, falling back to Gauss-Newton if needed.

    Args:
        draw_gradients: a sequence of `[k, n]` arrays, one per independent
            draw (see `curvature_draw`).
        hvp: `v -> H v` (the Hessian on an independent batch), or a
            sequence of them, one per draw (each on its own independent
            batch: then the draws are independent, curvature included, and
            the standard errors count the Hessian batches' spread too).
        small_batch: `b`.
        gauss_newton: optional `v -> GN v` (the Gauss-Newton product on the
            same independent batch; a sequence for a sequence of `hvp`).
            Used instead of `hvp` when the mean
            estimate of `G^T H G` is not positive (curvature along `G`
            negative or too small to measure), where `eps_max` and `B_noise`
            are not defined; the result's `product` says which was used.

    Returns:
        A `NoiseScales`.

    Raises:
        GradientStatisticsError: `G^T H G <= 0` and no `gauss_newton` given.

    Example:

    >>> import numpy as np
    >>> g = [np.array([[2.0, 1.0], [2.0, -1.0]])] * 2      # |G|^2 = 3, tr(Sigma) = 2
    >>> s = estimate_noise_scales(g, lambda v: -v, small_batch=1, gauss_newton=lambda v: v)
    >>> s.product, s.b_noise == s.b_simple
    ('gauss_newton', True)
    """
    draw_gradients = list(draw_gradients)
    if not draw_gradients:
        raise GradientStatisticsError("Expected at least one draw of gradients. Received none.")
    products = _per_draw("hvp", hvp, len(draw_gradients))
    draws = [curvature_draw(g, h, small_batch=small_batch)
             for g, h in zip(draw_gradients, products)]
    scales = noise_scales(draws, product="hessian")
    if scales.curvature > 0:
        return scales
    if gauss_newton is None:
        raise GradientStatisticsError(
            f"The curvature along the gradient G^T H G came out {scales.curvature:.3g} (not "
            "positive): B_noise and eps_max are undefined there. Expected a positive value; "
            "pass `gauss_newton=` (a positive semi-definite product) to fall back to it.")
    products = _per_draw("gauss_newton", gauss_newton, len(draw_gradients))
    draws = [curvature_draw(g, h, small_batch=small_batch)
             for g, h in zip(draw_gradients, products)]
    return noise_scales(draws, product="gauss_newton")


def _per_draw(name, product, count):
    """`product` repeated `count` times, or the sequence itself when it has one per draw."""
    if callable(product):
        return [product] * count
    products = list(product)
    if len(products) != count or not all(callable(p) for p in products):
        raise GradientStatisticsError(
            f"Expected `{name}` to be a function or a sequence of {count} functions (one per "
            f"draw). Received {len(products)} items.")
    return products


# -- the learning rate -----------------------------------------------------------------------


def eps_opt(batch_size, eps_max, b_noise, momentum=0.0):
    """The learning rate that most reduces the loss in one step at batch `batch_size`.

    To second order, a step `w - eps g` with `g` a batch-`B` gradient
    (`E g = G`, `Cov g = Sigma / B`) changes the loss in expectation by

    ```
    E[dL] = -eps |G|^2 + eps^2 / 2 (G^T H G + tr(H Sigma) / B),
    ```

    minimized at (McCandlish et al. 2018, section 2.2, eq. 2.6-2.7)

    ```
    eps_opt(B) = eps_max / (1 + B_noise / B),   eps_max = |G|^2 / (G^T H G),
    B_noise = tr(H Sigma) / (G^T H G).
    ```

    **Momentum.** SGD with momentum `beta` (`v <- beta v + g; w <- w - lr v`)
    moves, once the velocity has settled on a slowly varying gradient, by
    `lr / (1 - beta)` per unit of gradient: its effective step is
    `eps = lr / (1 - beta)`. The quadratic model above is for that effective
    step, so the momentum optimizer's rate is `lr = (1 - beta) eps_opt(B)`.
    This is the usual correspondence (e.g. Smith & Le 2018's noise scale
    `eps / (1 - beta)`); it ignores momentum's transient and its averaging
    of noise over about `1 / (1 - beta)` steps, so read it as the rate to
    centre a sweep on, not a tuned value.

    Args:
        batch_size: `B` (> 0; a number or array).
        eps_max: `|G|^2 / G^T H G` (> 0).
        b_noise: `B_noise` (>= 0).
        momentum: `beta` in [0, 1); the returned rate is `(1 - beta) eps_opt`.

    Returns:
        The learning rate (a float, or an array for an array `batch_size`).

    Example:

    >>> eps_opt(100, eps_max=0.5, b_noise=100)              # half of eps_max at B = B_noise
    0.25
    >>> round(eps_opt(100, eps_max=0.5, b_noise=100, momentum=0.9), 6)
    0.025
    """
    eps_max = _positive("eps_max", eps_max)
    if isinstance(b_noise, bool) or not isinstance(b_noise, numbers.Real) or not (
            math.isfinite(b_noise) and b_noise >= 0):
        raise GradientStatisticsError(
            f"Expected `b_noise` to be a finite number >= 0. Received: b_noise={b_noise!r}")
    if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real) or not (
            0.0 <= momentum < 1.0):
        raise GradientStatisticsError(
            f"Expected `momentum` in [0, 1). Received: momentum={momentum!r}")
    batch = np.asarray(batch_size, np.float64)
    if not np.all(np.isfinite(batch)) or not np.all(batch > 0):
        raise GradientStatisticsError(
            f"Expected `batch_size` > 0. Received: batch_size={batch_size!r}")
    rate = (1.0 - momentum) * eps_max / (1.0 + b_noise / batch)
    return float(rate) if rate.ndim == 0 else rate
