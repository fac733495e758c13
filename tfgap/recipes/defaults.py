"""Each recipe's defaults, as data: the paper's small-batch regime for each network.

From the reference code of Hoffer et al. 2017 ("Base regimes"):
SGD, momentum 0.9, the rate dropping at the listed epochs. The run length after
the last drop (`epochs`) is not in the table; tfgap trains 10 epochs past it on
MNIST and ResNet-50, 5 on AlexNet-BN, and to 200 epochs on CIFAR (the usual
CIFAR ResNet length). Flagfiles in the top-level `recipes/<recipe>/` folders
hold only what differs from these.

Both tables hold `TrainConfig` settings by name (tests/recipes check every
entry against the settings' declarations). A recipe whose networks have
different regimes lists them in `NETWORK_DEFAULTS`: choosing such a network
with `--model` switches every setting the user did not give to that network's
value (`tfgap.recipes.flags.apply_network_defaults`); a flag given on the
command line or in a flagfile always wins.
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
    # AlexNet-BN (Hoffer et al.'s SB = 128); weight decay 5e-4.
    "imagenet": dict(
        dataset="imagenet2012",
        model="alexnet_bn",
        epochs=30.0,
        batch_size=128,
        base_batch_size=128,
        lr_boundaries=(10.0, 15.0, 20.0, 25.0),
        lr_values=(1e-2, 5e-3, 1e-3, 5e-4, 1e-4),
        weight_decay=5e-4,
    ),
}

# recipe -> network -> the settings that differ from the recipe's defaults.
# ResNet-50's base batch is 256, the batch its usual lr 0.1 belongs to (He et
# al.; Goyal et al.).
NETWORK_DEFAULTS = {
    "imagenet": {
        "resnet50": dict(
            epochs=100.0,
            batch_size=256,
            base_batch_size=256,
            lr_boundaries=(30.0, 60.0, 90.0),
            lr_values=(0.1, 1e-2, 1e-3, 1e-4),
            weight_decay=1e-4,
        ),
    },
}


def recipe_defaults(name):
    """A copy of recipe `name`'s defaults (`ValueError` for an unknown name)."""
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe. Expected one of {sorted(RECIPES)}. Received: {name!r}")
    return dict(RECIPES[name])


def network_defaults(name, model):
    """A copy of the settings recipe `name` changes for network `model` ({} when none).

    A recipe's default network has its defaults already, so it is empty here
    too: nothing to switch.
    """
    recipe_defaults(name)  # validates the name
    return dict(NETWORK_DEFAULTS.get(name, {}).get(model, {}))
