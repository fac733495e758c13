"""`python -m tfgap.recipes.study`: the generalization gap and its remedies in one command.

Trains Hoffer et al.'s five regimes (`SB`, `LB`, `LB+LR`, `LB+LR+GBN`,
`LB+LR+GBN+RA`) for `--seeds` seeds through `tfgap.training.train` and writes
into `--output_dir`: `results.json`, `results.csv`, the table on stdout,
`test_error.png`, `weight_distance.png`, `interpolation.png`; the
`LB+LR+GBN+RA` model of the first seed goes to `--export_dir` as a SavedModel.

Default: MNIST-1D (4000 training signals generated locally, no download), a
3 x 128 BN MLP, SB 50 against LB 800, ghost batch 50, SB learning rate 0.02
for 10 epochs (see docs/study.md for how these were chosen and the table).
Any recipe dataset works (`--dataset=cifar10` takes the recipe's network and
small-batch regime unless flags say otherwise).

Example:

    python -m tfgap.recipes.study                       # the default study
    python -m tfgap.recipes.study --seeds=1 --epochs=2 --mock_data --output_dir=/tmp/s
"""

import os
import shlex
import sys

from absl import app, flags

from tfgap.training.config import DATASETS

EXIT_USAGE = 2
EXIT_FAILED = 1

_DATASET = flags.DEFINE_enum("dataset", "mnist1d", list(DATASETS), "Dataset of the study.")
_MODEL = flags.DEFINE_string("model", None, "Network (default: mlp on mnist1d, else the "
                             "recipe's network).")
_MODEL_OPTIONS = flags.DEFINE_list("model_options", None, "build_model options, key=value "
                                   "(default on mnist1d: mlp_width=128,mlp_depth=3).")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per regime (0, 1, ..., seeds - 1).",
                              lower_bound=1)
_SMALL = flags.DEFINE_integer("small_batch_size", None, "B_S, the small batch (SB).",
                              lower_bound=1)
_LARGE = flags.DEFINE_integer("large_batch_size", None, "B_L, the large batch (LB...).",
                              lower_bound=1)
_GHOST = flags.DEFINE_integer("ghost_batch_size", None, "B_G, the ghost batch of the +GBN "
                              "regimes (default: the small batch).", lower_bound=1)
_LR = flags.DEFINE_float("lr", None, "Learning rate of SB (scaled by sqrt(B_L/B_S) under +LR).",
                         lower_bound=0.0)
_BOUNDARIES = flags.DEFINE_list("lr_boundaries", None, "Epochs of SB at which the rate drops "
                                "(stretched by B_L/B_S under +RA).")
_DECAY = flags.DEFINE_float("lr_decay", None, "Factor of each drop.", lower_bound=0.0)
_EPOCHS = flags.DEFINE_float("epochs", None, "Epochs of SB (B_L/B_S times more under +RA).",
                             lower_bound=0.0)
_MOMENTUM = flags.DEFINE_float("momentum", None, "SGD momentum.", lower_bound=0.0)
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", None, "Coupled L2 weight decay.",
                                   lower_bound=0.0)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Runs, table and figures (default: "
                                  "runs/study_<dataset>). Re-running resumes.")
_EXPORT_DIR = flags.DEFINE_string("export_dir", None, "SavedModel of LB+LR+GBN+RA (default: "
                                  "savedmodels/<dataset>_study_lb_lr_gbn_ra).")
_EXPORT = flags.DEFINE_boolean("export", True, "Export the LB+LR+GBN+RA model.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory.")
_MOCK = flags.DEFINE_boolean("mock_data", False, "Mock data (tests, smoke runs).")
_MOCK_EXAMPLES = flags.DEFINE_integer("mock_examples", 256, "Examples per split with "
                                      "--mock_data.", lower_bound=1)
_STRATEGY = flags.DEFINE_enum("strategy", "one_device", ["auto", "one_device", "mirrored"],
                              "Distribution strategy of every run.")
_SHARP_EXAMPLES = flags.DEFINE_integer("sharpness_examples", 1000, "Training examples for "
                                       "Keskar's sharpness (0: skip).", lower_bound=0)
_SHARP_EPS = flags.DEFINE_float("sharpness_epsilon", 1e-3, "Sharpness box size eps.",
                                lower_bound=0.0)
_INTERP = flags.DEFINE_integer("interpolation_points", 25, "Alphas of the SB <-> LB "
                               "interpolation in [-1, 2] (0: skip).", lower_bound=0)


def main(argv):
    from absl import logging

    from tfgap.recipes.defaults import RECIPES
    from tfgap.study import MNIST1D_DEFAULTS, run_study, small_batch_config

    logging.set_verbosity(logging.ERROR)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the diagnostics' retracing notices
    prog = "python -m tfgap.recipes.study"

    def usage_error(message):
        sys.stderr.write(f"{prog}: usage error: {message} (see --helpfull)\n")
        sys.exit(EXIT_USAGE)

    if len(argv) > 1:
        usage_error(f"unexpected positional arguments {argv[1:]}")
    dataset = _DATASET.value
    if dataset == "mnist1d":
        d = dict(MNIST1D_DEFAULTS)
    elif dataset in RECIPES:
        r = RECIPES[dataset]
        values = r["lr_values"]
        d = dict(model=r["model"], model_options={}, small_batch_size=r["batch_size"],
                 large_batch_size=32 * r["batch_size"], ghost_batch_size=r["batch_size"],
                 lr=values[0], lr_boundaries=r["lr_boundaries"],
                 lr_decay=values[1] / values[0] if len(values) > 1 else 1.0,
                 epochs=r["epochs"], momentum=0.9, weight_decay=r.get("weight_decay", 0.0))
    else:
        d = dict(model=None, model_options={}, small_batch_size=128, large_batch_size=4096,
                 ghost_batch_size=128, lr=0.1, lr_boundaries=(), lr_decay=0.1, epochs=1.0,
                 momentum=0.9, weight_decay=0.0)
    pick = lambda flag, key: d[key] if flag.value is None else flag.value  # noqa: E731
    model = pick(_MODEL, "model")
    if model is None:
        usage_error(f"--model is required with --dataset={dataset}")
    options = d["model_options"] if _MODEL_OPTIONS.value is None else _options(
        _MODEL_OPTIONS.value, usage_error)
    if _MODEL.value is not None and _MODEL.value != d["model"] and _MODEL_OPTIONS.value is None:
        options = {}
    small = pick(_SMALL, "small_batch_size")
    large = pick(_LARGE, "large_batch_size")
    ghost = _GHOST.value or (d["ghost_batch_size"] if _SMALL.value is None else small)
    try:
        boundaries = [float(b) for b in (_BOUNDARIES.value if _BOUNDARIES.value is not None
                                         else d["lr_boundaries"])]
    except ValueError:
        usage_error(f"--lr_boundaries must be numbers, received {_BOUNDARIES.value}")
    output_dir = _OUTPUT_DIR.value or os.path.join("runs", f"study_{dataset}")
    export_dir = None
    if _EXPORT.value:
        export_dir = _EXPORT_DIR.value or os.path.join(
            "savedmodels", f"{dataset}_study_lb_lr_gbn_ra")
    try:
        base = small_batch_config(
            dataset=dataset, model=model, model_dir=os.path.join(output_dir, "runs"),
            small_batch_size=small, lr=pick(_LR, "lr"), epochs=pick(_EPOCHS, "epochs"),
            lr_boundaries=boundaries, lr_decay=pick(_DECAY, "lr_decay"),
            momentum=pick(_MOMENTUM, "momentum"), weight_decay=pick(_WEIGHT_DECAY, "weight_decay"),
            model_options=options, data_dir=_DATA_DIR.value, mock_data=_MOCK.value,
            mock_examples=_MOCK_EXAMPLES.value, strategy=_STRATEGY.value, preemption=False,
        )
        from tfgap.study import regime_configs

        for config in regime_configs(base, large_batch_size=large,
                                     ghost_batch_size=ghost).values():
            config.per_replica_batch_size(1)
    except ValueError as e:
        usage_error(str(e).replace("\n", " "))
    command = " ".join(["python -m tfgap.recipes.study"] + [shlex.quote(a) for a in argv[1:]])
    from tfgap.data import DatasetNotPreparedError
    from tfgap.training import ConfigError, NonFiniteLossError

    try:
        run_study(
            base, output_dir=output_dir, large_batch_size=large, ghost_batch_size=ghost,
            seeds=range(_SEEDS.value), export_dir=export_dir,
            sharpness_examples=_SHARP_EXAMPLES.value, sharpness_epsilon=_SHARP_EPS.value,
            interpolation_points=_INTERP.value, settings={"command": command},
        )
    except ConfigError as e:
        usage_error(str(e).replace("\n", " "))
    except (DatasetNotPreparedError, NonFiniteLossError) as e:
        sys.stderr.write(f"{prog}: {e}\n")
        sys.exit(EXIT_FAILED)


def _options(items, usage_error):
    from tfgap.recipes.flags import parse_model_options  # noqa: PLC0415

    try:
        return parse_model_options(items)
    except ValueError as e:
        usage_error(str(e))


if __name__ == "__main__":
    app.run(main)
