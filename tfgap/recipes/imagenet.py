"""`python -m tfgap.recipes.imagenet`: AlexNet-BN or ResNet-50 on ImageNet, the paper's regimes.

Defaults (Hoffer et al. 2017's reference code, see PAPER.md "Base regimes"):

| `--model` | batch | SGD (momentum 0.9) | weight decay | epochs |
|---|---|---|---|---|
| `alexnet_bn` (default) | 128 | lr 1e-2; 5e-3 @10; 1e-3 @15; 5e-4 @20; 1e-4 @25 | 5e-4 | 30 |
| `resnet50` | 256 | lr 0.1; 1e-2 @30; 1e-3 @60; 1e-4 @90 | 1e-4 | 100 |

`--model=resnet50` switches every regime flag you did not set yourself to the
ResNet-50 column. Every flag: `--helpfull`; the paper's Table 2 rows:
`--flagfile=recipes/imagenet_<model>_b<batch>_<row>.flags`. ImageNet needs a
manual download: put `ILSVRC2012_img_train.tar` and `ILSVRC2012_img_val.tar`
in `<data_dir>/downloads/manual/` and pass `--data_dir=<data_dir> --download`
once (or run `tfds build imagenet2012`); without them the recipe exits with
status 1 and a one-line message naming both archives and that directory.

Example:

    python -m tfgap.recipes.imagenet --mock_data --mock_examples=8 --batch_size=4 \\
        --epochs=1 --noexport
"""

import os
import sys

from absl import app
from absl import flags as absl_flags

from tfgap.recipes import flags as recipe_flags

RECIPE = "imagenet"
PROG = "python -m tfgap.recipes.imagenet"

# The AlexNet-BN regime is the recipe's default; `--model=resnet50` swaps in
# its own regime for every flag the user did not set. tfgap trains 5 (AlexNet)
# and 10 (ResNet) epochs past the last drop, as the MNIST recipe does.
DEFAULTS = dict(
    dataset="imagenet2012",
    model="alexnet_bn",
    epochs=30.0,
    batch_size=128,
    base_batch_size=128,
    lr_boundaries=(10.0, 15.0, 20.0, 25.0),
    lr_values=(1e-2, 5e-3, 1e-3, 5e-4, 1e-4),
    weight_decay=5e-4,
)
MODEL_REGIMES = {
    "alexnet_bn": {k: DEFAULTS[k] for k in ("epochs", "batch_size", "base_batch_size",
                                            "lr_boundaries", "lr_values", "weight_decay")},
    "resnet50": dict(
        epochs=100.0,
        batch_size=256,
        base_batch_size=256,
        lr_boundaries=(30.0, 60.0, 90.0),
        lr_values=(0.1, 1e-2, 1e-3, 1e-4),
        weight_decay=1e-4,
    ),
}


def apply_model_regime(flag_values):
    """Sets the regime flags not given explicitly to the chosen model's regime."""
    regime = MODEL_REGIMES.get(flag_values.model)
    if regime is None:
        return
    for name, value in regime.items():
        flag = flag_values[name]
        if flag.present:
            continue
        if isinstance(value, tuple):
            flag.value = [f"{v:g}" for v in value]
        else:
            flag.value = value


def parse(argv):
    """Parses `argv` (with `argv[0]`) into a `TrainConfig`, in a fresh FlagValues.

    For tests and tools (the tuner reads ImageNet recipe files this way).

    Raises:
        tfgap.recipes.flags.UsageError: unknown flags, bad values or an
            inconsistent combination.
    """
    fv = absl_flags.FlagValues()
    recipe_flags.define_flags(DEFAULTS, fv)
    try:
        rest = fv(list(argv))
    except absl_flags.Error as e:
        raise recipe_flags.UsageError(str(e)) from None
    if len(rest) > 1:
        raise recipe_flags.UsageError(f"Unexpected positional arguments: {rest[1:]}")
    apply_model_regime(fv)
    return recipe_flags.config_from_flags(fv, DEFAULTS)


def train_and_report(config, prog=PROG):
    """Trains `config`; returns the exit status, printing errors as one line on stderr."""
    from tfgap.data import DatasetNotPreparedError  # noqa: PLC0415
    from tfgap.training import ConfigError, NonFiniteLossError, Preempted, train  # noqa: PLC0415

    def fail(message, status):
        sys.stderr.write(f"{prog}: {' '.join(str(message).split())}\n")
        return status

    try:
        result = train(config)
    except ConfigError as e:
        return fail(f"usage error: {e} (see --helpfull)", recipe_flags.EXIT_USAGE)
    except (DatasetNotPreparedError, NonFiniteLossError) as e:
        return fail(e, recipe_flags.EXIT_FAILED)
    except Preempted as e:
        return fail(f"{e}. Re-run the same command to resume.", recipe_flags.EXIT_PREEMPTED)
    test = result["test"]["accuracy"]
    speed = result.get("throughput")
    print(
        f"Done: {result['global_step']} steps, {result['epochs_completed']:.4g} epochs, "
        f"test accuracy {test if test is None else round(test, 4)}"
        + (f", {speed:.1f} images/s" if speed else "")
        + f"; result in {os.path.join(config.model_dir, 'result.json')}"
        + (f"; SavedModel in {result['export_dir']}" if result["export_dir"] else "")
    )
    return 0


def main():
    recipe_flags.define_flags(DEFAULTS, absl_flags.FLAGS)

    def usage_error(message):
        sys.stderr.write(f"{PROG}: usage error: {' '.join(str(message).split())} "
                         "(see --helpfull)\n")
        sys.exit(recipe_flags.EXIT_USAGE)

    def parser(argv):
        try:
            return absl_flags.FLAGS(argv)
        except absl_flags.Error as e:
            usage_error(e)

    def run(argv):
        from absl import logging  # noqa: PLC0415

        logging.set_verbosity(logging.WARNING)
        if len(argv) > 1:
            usage_error(f"unexpected positional arguments {argv[1:]}")
        apply_model_regime(absl_flags.FLAGS)
        try:
            config = recipe_flags.config_from_flags(absl_flags.FLAGS, DEFAULTS)
        except recipe_flags.UsageError as e:
            usage_error(e)
        sys.exit(train_and_report(config))

    app.run(run, flags_parser=parser)


if __name__ == "__main__":
    main()
