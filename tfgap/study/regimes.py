"""The five regimes of Hoffer et al.'s Table 1, as `TrainConfig` transforms.

A study starts from one small-batch configuration (the baseline whose
learning rate was tuned) and derives every regime from it by changing only
the settings its name adds, cumulatively:

| regime | batch | learning rate | normalization | epochs |
|---|---|---|---|---|
| `SB` | `B_S` | `lr` | BN over `B_S` | `E` |
| `LB` | `B_L` | `lr` | BN over `B_L` | `E` |
| `LB+LR` | `B_L` | `lr * sqrt(B_L / B_S)` | BN over `B_L` | `E` |
| `LB+LR+GBN` | `B_L` | `lr * sqrt(B_L / B_S)` | ghost BN over `B_G` | `E` |
| `LB+LR+GBN+RA` | `B_L` | `lr * sqrt(B_L / B_S)` | ghost BN over `B_G` | `E * B_L / B_S` |

Every learning-rate breakpoint (in epochs of `SB`) is stretched by the same
`B_L / B_S` under `+RA`, so that `LB+LR+GBN+RA` makes as many weight updates
as `SB` (up to the incomplete batch each epoch drops). The trainer does the
scaling and the stretching (`tfgap.schedules.LargeBatchSchedule`,
`tfgap.training.plan_steps`); a regime here is only the settings.

Paper: Hoffer, Hubara & Soudry 2017, "Train longer, generalize better:
closing the generalization gap in large batch training of neural networks"
(arXiv 1705.08741), Table 1.
"""

import dataclasses

from tfgap.training import TrainConfig

REGIMES = ("SB", "LB", "LB+LR", "LB+LR+GBN", "LB+LR+GBN+RA")

# The MNIST-1D study defaults (see docs/study.md for how they were chosen).
MNIST1D_DEFAULTS = dict(
    dataset="mnist1d",
    model="mlp",
    model_options={"mlp_width": 128, "mlp_depth": 3},
    small_batch_size=50,
    large_batch_size=800,
    ghost_batch_size=50,
    lr=0.04,
    lr_boundaries=(7.0,),
    lr_decay=0.1,
    epochs=10.0,
    momentum=0.9,
    weight_decay=0.0,
    # 800 of the 4000 training signals are held out for validation: the other
    # 3200 are 64 batches of 50 and 4 of 800, so no example is dropped and
    # `+RA` makes exactly as many updates as `SB`.
    validation_examples=800,
)


def slug(name):
    """A file-system friendly name of a regime: `"LB+LR+GBN"` -> `"lb_lr_gbn"`.

    Example:

    >>> slug("LB+LR+GBN+RA")
    'lb_lr_gbn_ra'
    """
    _check_name(name)
    return name.lower().replace("+", "_")


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
    """The `TrainConfig` of regime `name`, derived from the `SB` baseline `base`.

    Only the batch size, the learning-rate scaling, the ghost batch size and
    regime adaptation change (see the module table); everything else, the
    model directory included, is `base`'s. `base` itself is not modified.

    Args:
        name: one of `REGIMES`.
        base: the `SB` `TrainConfig` (see `small_batch_config`); its
            `base_batch_size` is `B_S`.
        large_batch_size: `B_L`, a multiple of `ghost_batch_size`.
        ghost_batch_size: `B_G`, the ghost batch of the `+GBN` regimes.

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
    """
    _check_name(name)
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
    if name == "SB":
        changes = dict(batch_size=small, ghost_batch_size=0, lr_scaling="none",
                       regime_adaptation=False)
    else:
        changes = dict(
            batch_size=large_batch_size,
            lr_scaling="sqrt" if "+LR" in name else "none",
            ghost_batch_size=ghost_batch_size if "+GBN" in name else 0,
            regime_adaptation="+RA" in name,
        )
    return dataclasses.replace(base, **changes)


def regime_configs(base, *, large_batch_size, ghost_batch_size, regimes=REGIMES):
    """`{name: TrainConfig}` for every regime, in Table 1's order.

    Example:

    >>> sb = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/r",
    ...                         small_batch_size=32, lr=0.03, epochs=20)
    >>> configs = regime_configs(sb, large_batch_size=1024, ghost_batch_size=32)
    >>> [c.batch_size for c in configs.values()]
    [32, 1024, 1024, 1024, 1024]
    """
    return {
        name: regime_config(name, base, large_batch_size=large_batch_size,
                            ghost_batch_size=ghost_batch_size)
        for name in regimes
    }


def _check_name(name):
    if name not in REGIMES:
        raise ValueError(f"Expected a regime name in {list(REGIMES)}. Received: {name!r}")
