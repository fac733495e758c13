"""Each recipe's defaults, as data: the small-batch regime trusted for each network.

A recipe is a command, `python -m tfgap.recipes.<name>`, with these defaults.
The paper's recipes (`mnist`, `cifar10`, `cifar100`, `imagenet`) take their
learning-rate regimes from the reference code of Hoffer et al. 2017 ("Base
regimes"): SGD, momentum 0.9, the rate dropping at the listed epochs. The run
length after the last drop (`epochs`) is not in the table; tfgap trains 10
epochs past it on MNIST and ResNet-50, 5 on AlexNet-BN, and to 200 epochs on
CIFAR (the usual CIFAR ResNet length). `mnist1d` is the MLP small-batch regime
of the generalization-gap study on MNIST-1D (docs/study.md), the advisor's
default (`python -m tfgap.recipes.advise`). The flagfiles in the top-level
`recipes/<recipe>/` folders hold only what differs from these.

Both tables hold `TrainConfig` settings by name (tests/recipes check every
entry against the settings' declarations). A recipe whose networks have
different regimes lists them in `NETWORK_DEFAULTS`: choosing such a network
with `--model` switches every setting the user did not give to that network's
value (`tfgap.recipes.recipe_flags.apply_network_defaults`); a flag given on the
command line or in a flagfile always wins. `_regime` spells a learning-rate
regime: its batch is both `batch_size` and `base_batch_size` (the rates are
those of that batch).
"""


def _regime(batch, epochs, drops, rates, weight_decay):
    """A small-batch learning-rate regime as settings: `rates` at `batch`, dropping at `drops`."""
    return dict(batch_size=batch, base_batch_size=batch, epochs=epochs, lr_boundaries=drops,
                lr_values=rates, weight_decay=weight_decay)


RECIPES = {
    "mnist": dict(dataset="mnist", model="f1", **_regime(
        128, epochs=40.0, drops=(10.0, 20.0, 30.0), rates=(0.1, 1e-2, 1e-3, 1e-4),
        weight_decay=1e-4)),
    "cifar10": dict(dataset="cifar10", model="resnet44", **_regime(
        128, epochs=200.0, drops=(81.0, 122.0, 164.0), rates=(0.1, 1e-2, 1e-3, 1e-4),
        weight_decay=1e-4)),
    "cifar100": dict(dataset="cifar100", model="wrn16_4", **_regime(
        128, epochs=200.0, drops=(60.0, 120.0, 140.0), rates=(0.1, 2e-2, 4e-3, 1e-4),
        weight_decay=1e-4)),
    # The study's MNIST-1D MLP (3 x 128, batch normalization): lr 0.04 at batch 50 (the
    # best mean validation accuracy of its learning-rate sweep), / 10 at epoch 7, 10 epochs;
    # 800 of the 4000 training signals held out (3200 = 64 batches of 50, none dropped).
    "mnist1d": dict(dataset="mnist1d", model="mlp", **_regime(
        50, epochs=10.0, drops=(7.0,), rates=(0.04, 0.004), weight_decay=0.0),
        model_options={"mlp_width": 128, "mlp_depth": 3}, validation_examples=800),
    # AlexNet-BN (Hoffer et al.'s SB = 128); weight decay 5e-4.
    "imagenet": dict(dataset="imagenet2012", model="alexnet_bn", **_regime(
        128, epochs=30.0, drops=(10.0, 15.0, 20.0, 25.0), rates=(1e-2, 5e-3, 1e-3, 5e-4, 1e-4),
        weight_decay=5e-4)),
}

# recipe -> network -> the settings that differ from the recipe's defaults.
# ResNet-50's base batch is 256, the batch its usual lr 0.1 belongs to (He et
# al.; Goyal et al.).
NETWORK_DEFAULTS = {
    "imagenet": {
        "resnet50": _regime(256, epochs=100.0, drops=(30.0, 60.0, 90.0),
                            rates=(0.1, 1e-2, 1e-3, 1e-4), weight_decay=1e-4),
    },
}


def available_recipes():
    """The recipe names: `python -m tfgap.recipes.<name>` for each (sorted)."""
    return sorted(RECIPES)


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
