"""The study's regimes as data: named rows of `TrainConfig` changes from the small batch.

A study starts from one small-batch configuration, `SB` (the baseline whose
learning rate was chosen on validation), and every other row is `SB` with
only the settings in its `changes` replaced. `B_S`, `B_L` and `B_G` stand for
the small, large and ghost batch sizes (resolved per study), `SB_EPOCHS` and
`SB_BOUNDARIES` for `SB`'s length and rate drops (resolved from the base
config); nothing else is implicit. Hoffer et al.'s Table 1 regimes,
cumulatively:

| regime | batch | learning rate | normalization | epochs |
|---|---|---|---|---|
| `SB` | `B_S` | `lr` | BN over `B_S` | `E` |
| `LB` | `B_L` | `lr` | BN over `B_L` | `E` |
| `LB+LR` | `B_L` | `lr * sqrt(B_L / B_S)` | BN over `B_L` | `E` |
| `LB+LR+GBN` | `B_L` | `lr * sqrt(B_L / B_S)` | ghost BN over `B_G` | `E` |
| `LB+LR+GBN+RA` | `B_L` | `lr * sqrt(B_L / B_S)` | ghost BN over `B_G` | `E * B_L / B_S` |

`+RA` stretches the epochs and every learning-rate breakpoint by
`B_L / B_S`, so `LB+LR+GBN+RA` makes as many weight updates as `SB`. The
trainer does the scaling and the stretching (`tfgap.schedules.
LargeBatchSchedule`, `tfgap.training.plan_steps`); a row is only settings.

Around Table 1, controls and ablations, each named after the one row it is
compared with (`Regime.reference`) and differing from it only in what its
name adds:

- the updates alone: `LB+RA` (regime adaptation without `+LR` and `+GBN`)
  and `SB (LB's updates)`, `SB` cut to as many updates as `LB` makes at equal
  epochs (its epochs and rate drop times `B_S / B_L`);
- Keskar's setting, like with like: `SB (converged)` and `LB (converged)`,
  both trained until the training accuracy reaches 99% or the loss stops
  improving (`Regime.until_converged`; the runner stops them), under the same
  rate policy: the peak rate with the drop and the cap stretched by
  `B_L / B_S`, so neither reaches its drop before it stops;
- ghost noise against moving-statistics updates: `LB+GBN` (the sequential
  rule of the paper's Algorithm 1, one moving-average step per ghost batch)
  against `LB+GBN (averaged)` (one step per batch, same ghosts);
- BN momentum: rows again at Keras' default `momentum=0.99` (tfgap's
  default, and the paper's Torch code, is 0.9), at 72 updates (`LB`,
  `SB (LB's updates)`) and at 1152 (`SB`, `LB+RA`), so that the batch size
  and the number of updates are told apart;
- ghost size at `+LR` (where the paper says GBN helps): `LB+LR+GBN (ghost g)`
  for `g = 2 B_G, 4 B_G, ...` below `B_L`, beside `LB+LR+GBN` (`g = B_G`)
  and `LB+LR` (plain BN, `g = B_L`);
- the alternatives: `LB+LARS` (LARS, You et al. 2017) and `LB+SAM`
  (Sharpness-Aware Minimization, Foret et al. 2021).

Rows whose configs differ only in how BN keeps its moving statistics
(`bn_momentum`, `moving_update`) train bit-identically: `trainings` groups
them, and the runner trains each group once and keeps the other rules' moving
statistics beside the model's own (`tfgap.study.moving`).

Paper: Hoffer, Hubara & Soudry 2017, "Train longer, generalize better:
closing the generalization gap in large batch training of neural networks"
(arXiv 1705.08741), Table 1; Keskar et al. 2017, "On Large-Batch Training for
Deep Learning: Generalization Gap and Sharp Minima" (arXiv 1609.04836).
"""

import dataclasses
import os
import re
import types

from tfgap.training import TrainConfig

# Row groups, in the order of the table.
TABLE1 = "table 1"
UPDATES = "updates alone"
CONVERGENCE = "convergence"
MECHANISM = "ghost noise vs moving updates"
MOMENTUM = "bn momentum"
GHOST = "ghost size at +LR"
ALTERNATIVES = "alternatives"
GROUPS = (TABLE1, UPDATES, CONVERGENCE, MECHANISM, MOMENTUM, GHOST, ALTERNATIVES)
# Groups whose test error is recorded at every epoch of SB's regime (the figures' curves).
CURVE_GROUPS = (TABLE1, UPDATES)
# Groups trained with the study's `ablation_seeds` (the others with all its seeds).
ABLATION_GROUPS = (GHOST, ALTERNATIVES)
# The settings that only change how BN keeps its moving statistics (not the training).
MOVING_STATISTICS_FIELDS = ("bn_momentum", "moving_update")

REGIMES = ("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA")

KERAS_BN_MOMENTUM = 0.99  # keras.layers.BatchNormalization's default
# Chosen on the validation split at the large batch (docs/study.md has the sweeps).
LARS_ETA = 0.1
SAM_RHO = 0.02


class Size:
    """A batch size of the study, resolved per study: `B_S`, `B_L`, `B_G` or a multiple of one.

    `B_L / B_S` (a `Ratio`) is the factor between two sizes.

    Example:

    >>> (4 * B_G).resolve(large=512, ghost=32), B_L.resolve(large=512, ghost=32)
    (128, 512)
    >>> (B_L / B_S).resolve(small=32, large=512, ghost=32)
    16.0
    """

    def __init__(self, name, factor=1):
        self.name, self.factor = name, int(factor)

    def __rmul__(self, factor):
        return Size(self.name, self.factor * int(factor))

    def __truediv__(self, other):
        return Ratio(self, other)

    def resolve(self, *, large, ghost, small=None):
        sizes = {"B_L": large, "B_G": ghost, "B_S": small}
        if sizes[self.name] is None:
            raise ValueError(f"Expected the size {self.name} to resolve {self!r}")
        return self.factor * sizes[self.name]

    def __repr__(self):
        return self.name if self.factor == 1 else f"{self.factor} * {self.name}"


class Ratio:
    """`numerator / denominator` of two `Size`s, a float once resolved."""

    def __init__(self, numerator, denominator):
        self.numerator, self.denominator = numerator, denominator

    def resolve(self, **sizes):
        return self.numerator.resolve(**sizes) / self.denominator.resolve(**sizes)

    def __repr__(self):
        return f"{self.numerator!r} / {self.denominator!r}"


class OfSB:
    """`SB`'s value of an epoch setting (`epochs` or `lr_boundaries`) times a factor.

    The factor is a number or a `Ratio`; the value is read from the base
    config when the row's config is built (`regime_config`).

    Example:

    >>> sb = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/s",
    ...                         small_batch_size=32, lr=0.05, epochs=12, lr_boundaries=(8,))
    >>> OfSB("epochs", 0.0625).value(sb), OfSB("lr_boundaries", 0.0625).value(sb)
    (0.75, (0.5,))
    """

    def __init__(self, field, factor):
        if field not in ("epochs", "lr_boundaries"):
            raise ValueError(f"Expected field 'epochs' or 'lr_boundaries'. Received: {field!r}")
        self.field, self.factor = field, factor

    def resolve(self, **sizes):
        factor = self.factor.resolve(**sizes) if isinstance(self.factor, Ratio) else self.factor
        return OfSB(self.field, float(factor))

    def value(self, base):
        if isinstance(self.factor, Ratio):
            raise ValueError(f"Expected a resolved factor. Received: {self!r}")
        value = getattr(base, self.field)
        if isinstance(value, tuple):
            return tuple(float(v) * self.factor for v in value)
        return float(value) * self.factor

    def __repr__(self):
        return f"SB's {self.field} * {self.factor!r}"


B_S = Size("B_S")
B_L = Size("B_L")
B_G = Size("B_G")


@dataclasses.dataclass(frozen=True)
class Regime:
    """One row of the study: `SB` with `changes` (`TrainConfig` fields) replaced.

    Attributes:
        name: the row's name (`{ghost}` in it is replaced by the ghost size).
        group: one of `GROUPS`.
        changes: `{TrainConfig field: value}`; `B_S`, `B_L`, `B_G` (and
            multiples and ratios) stand for the study's batch sizes, `OfSB`
            for `SB`'s epochs or rate drops times a factor.
        reference: the row this one is compared with (it differs from it only
            in what the name adds); None for `SB`.
        until_converged: trained until the training accuracy reaches 99% or
            the loss stops improving (Keskar's setting), within its epochs.
        measure: its minimum is measured (Keskar's sharpness, a scale-invariant
            sharpness, the Hessian's top eigenvalue; `tfgap.study.keskar`).
    """

    name: str
    group: str
    changes: types.MappingProxyType
    reference: str | None = None
    until_converged: bool = False
    measure: bool = False

    def __post_init__(self):
        if self.group not in GROUPS:
            raise ValueError(f"Expected `group` in {list(GROUPS)}. Received: {self.group!r}")
        object.__setattr__(self, "changes", types.MappingProxyType(dict(self.changes)))

    @property
    def long(self):
        """Whether the row trains `B_L / B_S` times `SB`'s epochs to the end (`+RA`).

        Such rows cost `B_L / B_S` times an equal-epoch row; the study gives
        them its `long_seeds`. `LB (converged)` stops early and is not long.
        """
        return self.changes.get("regime_adaptation") is True and not self.until_converged

    @property
    def ablation(self):
        """Whether the row is an ablation (ghost sizes, alternatives): the `ablation_seeds`."""
        return self.group in ABLATION_GROUPS

    @property
    def curves(self):
        """Whether validation and test are evaluated at every epoch of `SB`'s regime."""
        return self.group in CURVE_GROUPS


_LB = {"batch_size": B_L}
_LR = {"lr_scaling": "sqrt"}
_GBN = {"ghost_batch_size": B_G}
_RA = {"regime_adaptation": True}
_AVG = {"moving_update": "averaged"}
_KERAS = {"bn_momentum": KERAS_BN_MOMENTUM}
_FEW = {"epochs": OfSB("epochs", B_S / B_L), "lr_boundaries": OfSB("lr_boundaries", B_S / B_L)}
_STRETCHED = {"regime_adaptation": B_L / B_S}  # SB under LB (converged)'s rate policy
_GHOST_FACTORS = (2, 4, 8, 16, 32, 64)  # kept while the ghost is below B_L and divides it


def _row(name, group, reference, *parts, **kwargs):
    changes = {}
    for part in parts:
        changes.update(part)
    return Regime(name, group, changes, reference, **kwargs)


DECLARED = (
    _row("SB", TABLE1, None),
    _row("LB", TABLE1, "SB", _LB),
    _row("LB+LR", TABLE1, "LB", _LB, _LR),
    _row("LB+LR+GBN", TABLE1, "LB+LR", _LB, _LR, _GBN),
    _row("LB+LR+GBN+RA", TABLE1, "LB+LR+GBN", _LB, _LR, _GBN, _RA),
    _row("LB+RA", UPDATES, "LB", _LB, _RA),
    _row("SB (LB's updates)", UPDATES, "SB", _FEW),
    _row("SB (converged)", CONVERGENCE, "SB", _STRETCHED, until_converged=True, measure=True),
    _row("LB (converged)", CONVERGENCE, "LB", _LB, _RA, until_converged=True, measure=True),
    _row("LB+GBN", MECHANISM, "LB", _LB, _GBN),
    _row("LB+GBN (averaged)", MECHANISM, "LB+GBN", _LB, _GBN, _AVG),
    _row("SB (bn 0.99)", MOMENTUM, "SB", _KERAS),
    _row("SB (LB's updates, bn 0.99)", MOMENTUM, "SB (LB's updates)", _FEW, _KERAS),
    _row("LB (bn 0.99)", MOMENTUM, "LB", _LB, _KERAS),
    _row("LB+RA (bn 0.99)", MOMENTUM, "LB+RA", _LB, _RA, _KERAS),
    _row("LB+LR (bn 0.99)", MOMENTUM, "LB+LR", _LB, _LR, _KERAS),
    _row("LB+LR+GBN (bn 0.99)", MOMENTUM, "LB+LR+GBN", _LB, _LR, _GBN, _KERAS),
    _row("LB+LR+GBN+RA (bn 0.99)", MOMENTUM, "LB+LR+GBN+RA", _LB, _LR, _GBN, _RA, _KERAS),
    _row("LB+GBN (bn 0.99)", MOMENTUM, "LB+GBN", _LB, _GBN, _KERAS),
    _row("LB+GBN (averaged, bn 0.99)", MOMENTUM, "LB+GBN (averaged)", _LB, _GBN, _AVG, _KERAS),
    *(_row("LB+LR+GBN (ghost {ghost})", GHOST, "LB+LR+GBN", _LB, _LR,
           {"ghost_batch_size": f * B_G}) for f in _GHOST_FACTORS),
    _row("LB+LARS", ALTERNATIVES, "LB", _LB, {"optimizer": "lars", "lars_eta": LARS_ETA}),
    _row("LB+SAM", ALTERNATIVES, "LB", _LB, {"sam_rho": SAM_RHO}),
)


def study_regimes(*, large_batch_size, ghost_batch_size, small_batch_size=None, groups=GROUPS):
    """The study's rows with the sizes resolved, in table order.

    The ghost-size rows are those with a ghost batch `f * B_G` (f = 2, 4, ...)
    below `B_L` that divides it. Every `Size` in `changes` becomes an int,
    every `Ratio` a float and every `OfSB` factor a float; with
    `small_batch_size=None` the rows that need `B_S` keep their placeholders
    (`regime_config` resolves them from the base config).

    Args:
        large_batch_size: `B_L`.
        ghost_batch_size: `B_G`.
        small_batch_size: `B_S` (optional, see above).
        groups: the groups to keep (default: all).

    Returns:
        A tuple of `Regime`s.

    Example:

    >>> rows = study_regimes(large_batch_size=512, ghost_batch_size=32, small_batch_size=32)
    >>> [r.name for r in rows if r.group == GHOST]
    ['LB+LR+GBN (ghost 64)', 'LB+LR+GBN (ghost 128)', 'LB+LR+GBN (ghost 256)']
    >>> dict(rows[1].changes)
    {'batch_size': 512}
    >>> next(r for r in rows if r.name == "SB (converged)").changes["regime_adaptation"]
    16.0
    """
    sizes = dict(large=int(large_batch_size), ghost=int(ghost_batch_size),
                 small=None if small_batch_size is None else int(small_batch_size))
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        raise ValueError(f"Expected groups from {list(GROUPS)}. Received: {unknown}")
    out = []
    for row in DECLARED:
        if row.group not in groups:
            continue
        changes = {k: _resolve(v, sizes) for k, v in row.changes.items()}
        size = changes.get("ghost_batch_size", 0)
        if row.group == GHOST and (size >= sizes["large"] or sizes["large"] % size):
            continue
        name = row.name.format(ghost=size)
        out.append(dataclasses.replace(row, name=name, changes=changes))
    return tuple(out)


def _resolve(value, sizes):
    if isinstance(value, (Size, Ratio, OfSB)):
        try:
            return value.resolve(**sizes)
        except ValueError:  # B_S not given: resolved later, from the base config
            return value
    return value


# The MNIST-1D study defaults (see docs/study.md for how they were chosen).
MNIST1D_DEFAULTS = dict(
    dataset="mnist1d",
    model="cnn1d",
    model_options={"cnn_filters": 32, "cnn_depth": 3, "cnn_kernel": 5},
    small_batch_size=32,
    large_batch_size=512,
    ghost_batch_size=32,
    lr=0.05,
    lr_boundaries=(8.0,),
    lr_decay=0.1,
    epochs=12.0,
    momentum=0.9,
    weight_decay=0.0,
    # 928 of the 4000 training signals are held out for validation: the other
    # 3072 are 96 batches of 32 and 6 of 512, so no example is dropped and
    # `+RA` makes exactly as many updates as `SB`.
    validation_examples=928,
)

# The default command's seeds (see docs/study.md for the budget): every row gets `SEEDS`,
# but the ablations (`Regime.ablation`) the first `ABLATION_SEEDS` and the rows that train
# B_L / B_S times longer (`Regime.long`, half of the compute with two seeds) the first
# `LONG_SEEDS`.
SEEDS = 5
ABLATION_SEEDS = 3
LONG_SEEDS = 2

# `--quick`: one seed, a sixth of the epochs, the minima measured on 250 examples (a smoke
# run that decides no claim).
QUICK = dict(seeds=1, ablation_seeds=1, long_seeds=1, epochs_fraction=1 / 6,
             sharpness_examples=250)


def run_dir(output_dir, regime, seed):
    """The `model_dir` of one study run: `<output_dir>/runs/<slug>/seed<seed>`."""
    return os.path.join(output_dir, "runs", slug(regime), f"seed{int(seed)}")


def slug(name):
    """A file-system friendly name of a row: `"LB+GBN (bn 0.99)"` -> `"lb_gbn_bn_0_99"`.

    Example:

    >>> slug("LB+LR+GBN+RA"), slug("LB+GBN (averaged, bn 0.99)")
    ('lb_lr_gbn_ra', 'lb_gbn_averaged_bn_0_99')
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Expected a regime name (a non-empty string). Received: {name!r}")
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def small_batch_config(
    *,
    dataset,
    model,
    model_dir,
    small_batch_size,
    lr,
    epochs,
    lr_boundaries=(),
    lr_decay=0.1,
    **fields,
):
    """The `SB` baseline: the regime every other one is derived from.

    The learning rate is `lr` until the first boundary and is multiplied by
    `lr_decay` at each boundary (epochs of the small-batch regime):
    `lr_values = (lr, lr * d, lr * d**2, ...)`.

    Args:
        dataset: a `tfgap.data` dataset name.
        model: a `tfgap.models` model name.
        model_dir: the run's directory.
        small_batch_size: `B_S`, also the base batch size of the regime.
        lr: the small-batch learning rate.
        epochs: `E`, the length of the small-batch regime.
        lr_boundaries: epochs at which the rate drops.
        lr_decay: factor of each drop (in (0, 1]).
        **fields: any other `TrainConfig` field (seed, weight_decay, ...).

    Returns:
        A `TrainConfig` with `batch_size == base_batch_size == small_batch_size`,
        plain BN, no scaling and no regime adaptation.

    Example:

    >>> c = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/sb",
    ...                        small_batch_size=32, lr=0.03, epochs=20,
    ...                        lr_boundaries=(14,), lr_decay=0.1)
    >>> c.batch_size, c.lr_values
    (32, (0.03, 0.003))
    """
    lr_decay = float(lr_decay)
    if not 0.0 < lr_decay <= 1.0:
        raise ValueError(f"Expected `lr_decay` in (0, 1]. Received: lr_decay={lr_decay}")
    boundaries = tuple(float(b) for b in lr_boundaries)
    values = tuple(float(lr) * lr_decay**i for i in range(len(boundaries) + 1))
    return TrainConfig(
        dataset=dataset,
        model=model,
        model_dir=model_dir,
        epochs=epochs,
        batch_size=small_batch_size,
        base_batch_size=small_batch_size,
        ghost_batch_size=0,
        lr_boundaries=boundaries,
        lr_values=values,
        lr_scaling="none",
        regime_adaptation=False,
        **fields,
    )


def regime_config(name, base, *, large_batch_size, ghost_batch_size):
    """The `TrainConfig` of row `name`, derived from the `SB` baseline `base`.

    Only the row's `changes` are replaced (after resetting the batch, ghost,
    scaling and regime adaptation to `SB`'s); everything else, the model
    directory included, is `base`'s. `base` itself is not modified.

    Args:
        name: a row name of `study_regimes(...)` (e.g. one of `REGIMES`).
        base: the `SB` `TrainConfig` (see `small_batch_config`); its
            `base_batch_size` is `B_S`.
        large_batch_size: `B_L`, a multiple of `ghost_batch_size`.
        ghost_batch_size: `B_G`, the ghost batch of the `+GBN` rows.

    Returns:
        A new `TrainConfig`.

    Raises:
        ValueError: an unknown name, or sizes that do not fit.

    Example:

    >>> sb = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/r",
    ...                         small_batch_size=32, lr=0.03, epochs=20)
    >>> c = regime_config("LB+LR+GBN+RA", sb, large_batch_size=1024, ghost_batch_size=32)
    >>> c.batch_size, c.lr_scaling, c.ghost_batch_size, c.regime_adaptation
    (1024, 'sqrt', 32, True)
    >>> regime_config("LB+GBN (averaged, bn 0.99)", sb, large_batch_size=1024,
    ...               ghost_batch_size=32).moving_update
    'averaged'
    """
    rows = {r.name: r for r in _checked_regimes(base, large_batch_size, ghost_batch_size)}
    if name not in rows:
        raise ValueError(f"Expected a regime name in {list(rows)}. Received: {name!r}")
    return _config(rows[name], base)


def regime_configs(base, *, large_batch_size, ghost_batch_size, regimes=REGIMES):
    """`{name: TrainConfig}` for the named rows (default: Table 1's five), in table order.

    `regimes` may also be `None` (every row of the study) or a list of
    `Regime`s.

    Example:

    >>> sb = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/r",
    ...                         small_batch_size=32, lr=0.03, epochs=20)
    >>> configs = regime_configs(sb, large_batch_size=1024, ghost_batch_size=32)
    >>> [c.batch_size for c in configs.values()]
    [32, 1024, 1024, 1024, 1024]
    """
    rows = select(regimes, base=base, large_batch_size=large_batch_size,
                  ghost_batch_size=ghost_batch_size)
    return {row.name: _config(row, base) for row in rows}


def select(regimes, *, base, large_batch_size, ghost_batch_size):
    """The `Regime`s to run: `None` = all; names (in table order); or `Regime`s as given."""
    rows = _checked_regimes(base, large_batch_size, ghost_batch_size)
    if regimes is None:
        return rows
    regimes = list(regimes)
    if all(isinstance(r, Regime) for r in regimes):
        sizes = dict(large=int(large_batch_size), ghost=int(ghost_batch_size),
                     small=base.base_batch_size)
        return tuple(dataclasses.replace(r, changes={k: _resolve(v, sizes)
                                                     for k, v in r.changes.items()})
                     for r in regimes)
    known = {r.name: r for r in rows}
    unknown = [n for n in regimes if n not in known]
    if unknown:
        raise ValueError(f"Expected regime names in {list(known)}. Received: {unknown}")
    return tuple(r for r in rows if r.name in set(regimes))


@dataclasses.dataclass(frozen=True)
class Training:
    """One training of the study and the rows it gives.

    `row` is trained; every row of `derived` has the same config but for the
    moving-statistics settings (`MOVING_STATISTICS_FIELDS`), so the same
    training gives it: its moving statistics are kept beside `row`'s.
    """

    row: Regime
    derived: tuple = ()

    @property
    def rows(self):
        return (self.row, *self.derived)


def trainings(rows, configs):
    """Groups `rows` into the `Training`s that give them, in table order.

    Rows whose configs (`configs[name]`) are equal but for `bn_momentum` and
    `moving_update`, and that stop alike (`until_converged`), share one
    training, that of the first of them in table order; no other rows do.

    Example:

    >>> sb = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/r",
    ...                         small_batch_size=32, lr=0.03, epochs=20)
    >>> rows = select(["LB", "LB+GBN", "LB+GBN (averaged)", "LB (bn 0.99)"], base=sb,
    ...               large_batch_size=512, ghost_batch_size=32)
    >>> configs = regime_configs(sb, large_batch_size=512, ghost_batch_size=32, regimes=rows)
    >>> [(t.row.name, [d.name for d in t.derived]) for t in trainings(rows, configs)]
    [('LB', ['LB (bn 0.99)']), ('LB+GBN', ['LB+GBN (averaged)'])]
    """
    groups = {}
    for row in rows:
        key = (training_key(configs[row.name]), row.until_converged)
        groups.setdefault(key, []).append(row)
    return tuple(Training(first, tuple(rest)) for first, *rest in groups.values())


def training_key(config):
    """What shapes a training: the config without its moving-statistics settings."""
    values = config.to_dict()
    for name in MOVING_STATISTICS_FIELDS:
        values.pop(name)
    return repr(sorted(values.items()))


def _checked_regimes(base, large_batch_size, ghost_batch_size):
    if not isinstance(base, TrainConfig):
        raise ValueError(f"Expected `base` to be a TrainConfig. Received: {type(base).__name__}")
    small = base.base_batch_size
    large_batch_size, ghost_batch_size = int(large_batch_size), int(ghost_batch_size)
    if large_batch_size < small:
        raise ValueError(
            f"Expected large_batch_size >= the small batch size {small}. "
            f"Received: large_batch_size={large_batch_size}"
        )
    if ghost_batch_size < 1 or large_batch_size % ghost_batch_size:
        raise ValueError(
            f"Expected ghost_batch_size >= 1 dividing large_batch_size={large_batch_size}. "
            f"Received: ghost_batch_size={ghost_batch_size}"
        )
    return study_regimes(large_batch_size=large_batch_size, ghost_batch_size=ghost_batch_size,
                         small_batch_size=small)


def _config(row, base):
    changes = dict(batch_size=base.base_batch_size, ghost_batch_size=0, lr_scaling="none",
                   regime_adaptation=False)
    for key, value in row.changes.items():
        changes[key] = value.value(base) if isinstance(value, OfSB) else value
    return dataclasses.replace(base, **changes)
