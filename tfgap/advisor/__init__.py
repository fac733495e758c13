"""The batch-size advisor: gradient noise scale -> critical batch -> candidate batches.

McCandlish et al. 2018 ("An Empirical Model of Large-Batch Training", arXiv
1812.06162) predict the steps `S` and examples `E` that training to a target
takes at batch `B` from one number, the critical batch size `B_crit`, which
the noise scale `B_noise = tr(H Sigma) / (G^T H G)` estimates (and
`B_simple = tr(Sigma) / |G|^2` when the Hessian is a multiple of the
identity):

```
S(B) = S_min (1 + B_crit / B)        E(B) = E_min (1 + B / B_crit)
```

The advisor measures `B_simple` from the training gradients of a short run
at the small batch you trust, `B_noise` and `eps_max` at its end, and turns
them into a table of candidate batch sizes with their cost relative to the
minimum (`B_crit = B_simple`, the estimate that came closer to the measured
critical batch in `benchmarks/advisor_validation.py`; `B_noise` is reported
beside it), the learning rate by AdaScale's gain (Johnson et al. 2020) from
`B_simple` beside `eps_opt(B)`, the square-root (Hoffer et al. 2017) and
linear (Goyal et al. 2017) rules, a warm-up, the ghost batch, the regime
adaptation that trains the predicted steps, and one recommendation (the
candidate closest to `B_crit`).

- `advise(b_simple, ...) -> Advice`: the arithmetic (no TensorFlow);
  `Advice.to_json` / `from_json` / `save` / `load`, `Advice.flags()`,
  `Advice.format_table()`, `Advice.recommendation()`.
- `measure_noise_scale(model, x, y, batch_size=...)`: `B_simple` with a
  standard error in inference mode on fixed examples (wraps
  `tfgap.diagnostics.gradient_noise_scale`); `NoiseScaleTracker`: the same
  at chosen steps of a run (a Keras callback); `pool_estimates`: one value
  from the later points of a run (the estimator of the validation benchmark
  before issue 23).
- `measure_run(config, steps=...)`: the short measurement run of a
  `TrainConfig` through `tfgap.training.train` (`B_simple` from the
  trainer's `noise_statistics`, then `B_noise` and `eps_max` of the trained
  model): what `python -m tfgap.recipes.advise` acts on.
- `predicted_steps`, `predicted_examples`, `min_steps`, `fit_tradeoff`: the
  trade-off and its least-squares fit to measured steps.
- Statistics from the training gradients (`tfgap.advisor.gradient_statistics`,
  NumPy): `two_batch_estimates`, `NoiseStatistics` (moving averages of
  `|G|^2` and `tr(Sigma)` along a run: the trainer's `noise_statistics`),
  `curvature_draw` / `noise_scales` / `estimate_noise_scales` (`B_noise =
  tr(H Sigma) / G^T H G` beside `B_simple`, with standard errors), `eps_opt`;
  `GradientStatisticsModel(model)` (TensorFlow backend): the same statistics
  in `model.fit`.

- `measure_noise_scales(model, x, y, batch_size=...)`: `B_simple`, `B_noise`
  and `eps_max` of a Keras model (`tfgap.advisor.curvature`).
- `advise_model(model, x, y, batch_size=..., max_batch_size=..., epochs=...)`
  (TensorFlow backend): the advice for your own compiled model in one call.

The command: `python -m tfgap.recipes.advise` (docs/advisor.md).
"""

from tfgap.advisor.advice import (
    Advice,
    Candidate,
    advise,
    candidate_batch_sizes,
    ghost_batch_size_for,
)
from tfgap.advisor.curvature import measure_noise_scales
from tfgap.advisor.gradient_statistics import (
    CurvatureDraw,
    GradientStatisticsError,
    NoiseScales,
    NoiseStatistics,
    curvature_draw,
    eps_opt,
    estimate_noise_scales,
    noise_scales,
    two_batch_estimates,
)
from tfgap.advisor.measure import Measurement, measure_run, measure_step_times
from tfgap.advisor.noise import (
    NoiseScaleError,
    NoiseScaleEstimate,
    NoiseScaleTracker,
    PooledNoiseScale,
    combine_chunks,
    measure_noise_scale,
    pool_estimates,
)
from tfgap.advisor.tradeoff import (
    TradeoffFit,
    fit_tradeoff,
    min_steps,
    predicted_examples,
    predicted_steps,
)

__all__ = [
    "Advice",
    "Candidate",
    "CurvatureDraw",
    "GradientStatisticsError",
    "GradientStatisticsModel",
    "Measurement",
    "NoiseScales",
    "NoiseStatistics",
    "NoiseScaleError",
    "NoiseScaleEstimate",
    "NoiseScaleTracker",
    "PooledNoiseScale",
    "TradeoffFit",
    "advise",
    "advise_model",
    "candidate_batch_sizes",
    "combine_chunks",
    "curvature_draw",
    "eps_opt",
    "estimate_noise_scales",
    "fit_tradeoff",
    "ghost_batch_size_for",
    "measure_noise_scale",
    "measure_noise_scales",
    "measure_run",
    "measure_step_times",
    "min_steps",
    "pool_estimates",
    "predicted_examples",
    "predicted_steps",
    "two_batch_estimates",
]

# TensorFlow-backend only (tf.GradientTape, tf.distribute): imported on first use, so that
# importing tfgap.advisor imports no TensorFlow under JAX or PyTorch.
_LAZY = {"GradientStatisticsModel": "tfgap.advisor.fit_statistics",
         "advise_model": "tfgap.advisor.user_model"}


def __getattr__(name):
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfgap.advisor' has no attribute {name!r}")
