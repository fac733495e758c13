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

from absl import flags

from tfgap.recipes import cli

PROG = "python -m tfgap.recipes.study"
# What `run_study` writes into --output_dir, as the artifact lines name it.
_OUTPUTS = (
    ("results", "results.json"),
    ("results table", "results.csv"),
    ("test error figure", "test_error.png"),
    ("weight distance figure", "weight_distance.png"),
    ("interpolation figure", "interpolation.png"),
    ("runs", "runs"),
)


def define(fv, argv):
    """The study's flags: its own (group "study") and the `TrainConfig` settings it passes on."""
    from tfgap.training.config import settings  # noqa: PLC0415

    s = settings()
    cli.define_setting_flag(fv, s["dataset"], default="mnist1d", help="Dataset of the study.")
    cli.define_setting_flag(fv, s["model"], default=None, optional=True,
                            help="Network (default: mlp on mnist1d, else the recipe's network).")
    cli.define_setting_flag(fv, s["model_options"], default=None,
                            help="build_model options, key=value (default on mnist1d: "
                            "mlp_width=128,mlp_depth=3).")
    cli.define_setting_flag(fv, s["ghost_batch_size"], default=None, optional=True,
                            help="B_G, the ghost batch of the +GBN regimes (default: the small "
                            "batch).")
    cli.define_setting_flag(fv, s["lr_boundaries"], default=None,
                            help="Epochs of SB at which the rate drops (stretched by B_L/B_S "
                            "under +RA).")
    cli.define_setting_flag(fv, s["epochs"], default=None, optional=True,
                            help="Epochs of SB (B_L/B_S times more under +RA).")
    for name in ("momentum", "weight_decay"):
        cli.define_setting_flag(fv, s[name], default=None, optional=True,
                                help=s[name].help + " Default: the dataset's study default.")
    cli.define_setting_flag(fv, s["export_dir"], help="SavedModel of LB+LR+GBN+RA (default: "
                            "savedmodels/<dataset>_study_lb_lr_gbn_ra).")
    for name in ("data_dir", "mock_data", "mock_examples"):
        cli.define_setting_flag(fv, s[name])
    cli.define_setting_flag(fv, s["strategy"], default="one_device",
                            choices=("auto", "one_device", "mirrored"),
                            help="Distribution strategy of every run.")
    flags.DEFINE_integer("seeds", 3, "Seeds per regime (0, 1, ..., seeds - 1).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("small_batch_size", None, "B_S, the small batch (SB).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("large_batch_size", None, "B_L, the large batch (LB...).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("lr", None, "Learning rate of SB (scaled by sqrt(B_L/B_S) under +LR).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("lr_decay", None, "Factor of each drop.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Runs, table and figures (default: "
                        "runs/study_<dataset>). Re-running resumes.", flag_values=fv)
    flags.DEFINE_boolean("export", True, "Export the LB+LR+GBN+RA model.", flag_values=fv)
    flags.DEFINE_integer("sharpness_examples", 1000, "Training examples for Keskar's "
                         "sharpness (0: skip).", lower_bound=0, flag_values=fv)
    flags.DEFINE_float("sharpness_epsilon", 1e-3, "Sharpness box size eps.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_integer("interpolation_points", 25, "Alphas of the SB <-> LB interpolation "
                         "in [-1, 2] (0: skip).", lower_bound=0, flag_values=fv)
    cli.set_group(fv, "study", "dataset", "seeds", "small_batch_size", "large_batch_size",
                  "ghost_batch_size", "lr", "lr_boundaries", "lr_decay", "epochs",
                  "sharpness_examples", "sharpness_epsilon", "interpolation_points",
                  "output_dir")
    cli.set_group(fv, "output", "export")


def _study_defaults(dataset):
    """The study's defaults on `dataset`: MNIST-1D's, or those of the recipe training it."""
    from tfgap.recipes.defaults import RECIPES  # noqa: PLC0415
    from tfgap.study import MNIST1D_DEFAULTS  # noqa: PLC0415

    if dataset == "mnist1d":
        return dict(MNIST1D_DEFAULTS)
    recipe = next((r for r in RECIPES.values() if r["dataset"] == dataset), None)
    if recipe is not None:
        values = recipe["lr_values"]
        return dict(model=recipe["model"], model_options={},
                    small_batch_size=recipe["batch_size"],
                    large_batch_size=32 * recipe["batch_size"],
                    ghost_batch_size=recipe["batch_size"], lr=values[0],
                    lr_boundaries=recipe["lr_boundaries"],
                    lr_decay=values[1] / values[0] if len(values) > 1 else 1.0,
                    epochs=recipe["epochs"], momentum=0.9,
                    weight_decay=recipe.get("weight_decay", 0.0))
    return dict(model=None, model_options={}, small_batch_size=128, large_batch_size=4096,
                ghost_batch_size=128, lr=0.1, lr_boundaries=(), lr_decay=0.1, epochs=1.0,
                momentum=0.9, weight_decay=0.0)


def run(fv, argv=None):
    """Runs the study; returns the artifacts (results, table, figures, runs, SavedModel)."""
    import sys  # noqa: PLC0415

    from tfgap.study import regime_configs, run_study, small_batch_config  # noqa: PLC0415

    dataset = fv.dataset
    d = _study_defaults(dataset)
    pick = lambda name: d[name] if fv[name].value is None else fv[name].value  # noqa: E731
    model = pick("model")
    if model is None:
        raise cli.UsageError(f"--model is required with --dataset={dataset}")
    options = pick("model_options")
    if fv.model is not None and fv.model != d["model"] and fv.model_options is None:
        options = {}
    small = pick("small_batch_size")
    large = pick("large_batch_size")
    ghost = fv.ghost_batch_size or (d["ghost_batch_size"] if fv.small_batch_size is None
                                    else small)
    output_dir = fv.output_dir or os.path.join("runs", f"study_{dataset}")
    export_dir = None
    if fv.export:
        export_dir = fv.export_dir or os.path.join("savedmodels", f"{dataset}_study_lb_lr_gbn_ra")
    try:
        base = small_batch_config(
            dataset=dataset, model=model, model_dir=os.path.join(output_dir, "runs"),
            small_batch_size=small, lr=pick("lr"), epochs=pick("epochs"),
            lr_boundaries=[float(b) for b in pick("lr_boundaries")], lr_decay=pick("lr_decay"),
            momentum=pick("momentum"), weight_decay=pick("weight_decay"),
            model_options=options, data_dir=fv.data_dir, mock_data=fv.mock_data,
            mock_examples=fv.mock_examples, strategy=fv.strategy, preemption=False,
        )
        for config in regime_configs(base, large_batch_size=large,
                                     ghost_batch_size=ghost).values():
            config.per_replica_batch_size(1)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    args = (sys.argv if argv is None else argv)[1:]
    command = " ".join([PROG] + [shlex.quote(a) for a in args])
    run_study(
        base, output_dir=output_dir, large_batch_size=large, ghost_batch_size=ghost,
        seeds=range(fv.seeds), export_dir=export_dir,
        sharpness_examples=fv.sharpness_examples, sharpness_epsilon=fv.sharpness_epsilon,
        interpolation_points=fv.interpolation_points, settings={"command": command},
    )
    written = [(what, os.path.join(output_dir, name)) for what, name in _OUTPUTS]
    written = [(what, path) for what, path in written if os.path.exists(path)]
    if export_dir and os.path.exists(export_dir):
        written.append(("SavedModel", export_dir))
    return written


def main(argv=None):
    import sys  # noqa: PLC0415

    argv = list(sys.argv if argv is None else argv)
    cli.main(PROG, define=define, run=lambda fv: run(fv, argv), doc=__doc__, argv=argv)


if __name__ == "__main__":
    main()
