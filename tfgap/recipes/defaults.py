"""Each recipe's defaults: the paper's small-batch regime for its default network.

From the reference code of Hoffer et al. 2017 (see PAPER.md, "Base regimes"):
SGD, momentum 0.9, batch 128, weight decay 1e-4, the rate dropping 10x at the
listed epochs. The run length after the last drop (`epochs`) is not in the
table; tfgap trains 10 epochs past it on MNIST and to 200 epochs on CIFAR (the
usual CIFAR ResNet length). Flagfiles in the top-level `recipes/` hold only
what differs from these.
"""

RECIPES = {
    "mnist": dict(
        dataset="mnist",
        model="f1",
        epochs=40.0,
        batch_size=128,
        base_batch_size=128,
        lr_boundaries=(10.0, 20.0, 30.0),
        lr_values=(0.1, 1e-2, 1e-3, 1e-4),
        weight_decay=1e-4,
    ),
    "cifar10": dict(
        dataset="cifar10",
        model="resnet44",
        epochs=200.0,
        batch_size=128,
        base_batch_size=128,
        lr_boundaries=(81.0, 122.0, 164.0),
        lr_values=(0.1, 1e-2, 1e-3, 1e-4),
        weight_decay=1e-4,
    ),
    "cifar100": dict(
        dataset="cifar100",
        model="wrn16_4",
        epochs=200.0,
        batch_size=128,
        base_batch_size=128,
        lr_boundaries=(60.0, 120.0, 140.0),
        lr_values=(0.1, 2e-2, 4e-3, 1e-4),
        weight_decay=1e-4,
    ),
}


def recipe_defaults(name):
    """A copy of recipe `name`'s defaults (`ValueError` for an unknown name)."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe. Expected one of {sorted(RECIPES)}. Received: {name!r}")
    return dict(RECIPES[name])
