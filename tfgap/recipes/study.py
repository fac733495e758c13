"""`python -m tfgap.recipes.study`: the generalization gap, its remedies and why they work.

Trains, through `tfgap.training.train`, Hoffer et al.'s Table 1 regimes (`SB`,
`LB`, `LB+LR`, `LB+LR+GBN`, `LB+LR+GBN+RA`), the controls that separate
updates from remedies (`LB+RA`, `SB (LB's updates)`), Keskar's setting like
with like (`SB (converged)`, `LB (converged)`), and the ablations (`LB+GBN`
with sequential and averaged moving statistics, rows at Keras' default BN
momentum 0.99, a ghost-size sweep at `+LR`, `LB+LARS`, `LB+SAM`), every row
for `--seeds` seeds, the ablations for the first `--ablation_seeds` and the `+RA`
rows for the first `--long_seeds`. Rows that
differ only in BN's moving-statistics settings come from one training; runs
go to `--workers` processes side by side. Then it writes into `--output_dir`
the table (`results.md`, `results.csv`, `results.json`, stdout), the claims
decided from the runs with their paired intervals and tests (printed last),
the figures (`test_error.png`, `weight_distance.png`, `interpolation.png`,
`ghost_size.png`, `ablations.png`), and the `LB+LR+GBN+RA` model of the first
seed as a SavedModel in `--export_dir`.

Default: MNIST-1D (5000 signals generated locally, no download: 3072 train,
928 validation, 1000 test), the 1-D CNN `cnn1d` (Conv1D 32/64/64, kernel 5,
BN, ReLU, max-pool), SB 32 against LB 512, ghost batch 32, SB learning rate
0.05 for 12 epochs, /10 at epoch 8 (chosen on validation: docs/study.md).
`--model=mlp` trains the 3 x 128 BN MLP instead (same regime, not re-tuned).
`--quick`: one seed and a sixth of the epochs, a smoke run (no claim is decided
with one seed).
Any recipe dataset works (`--dataset=cifar10` takes the recipe's network and
small-batch regime unless flags say otherwise).

Example:

    python -m tfgap.recipes.study                       # the default study
    python -m tfgap.recipes.study --quick --output_dir=/tmp/study_quick
"""

import math
import os
import shlex

from absl import flags

from tfgap.recipes import cli

PROG = "python -m tfgap.recipes.study"
# What `run_study` writes into --output_dir, as the artifact lines name it.
_OUTPUTS = (
    ("table", "results.md"),
    ("table (CSV)", "results.csv"),
    ("results and claims (JSON)", "results.json"),
    ("test error figure", "test_error.png"),
    ("weight distance figure", "weight_distance.png"),
    ("interpolation figure", "interpolation.png"),
    ("ghost size figure", "ghost_size.png"),
    ("ablations figure", "ablations.png"),
    ("runs", "runs"),
)
# build_model options of the MNIST-1D study's models when --model_options is not given.
MNIST1D_MODEL_OPTIONS = {"cnn1d": {"cnn_filters": 32, "cnn_depth": 3, "cnn_kernel": 5},
                         "mlp": {"mlp_width": 128, "mlp_depth": 3}}


def define(fv, argv):
    """The study's flags: its own (group "study") and the `TrainConfig` settings it passes on."""
    from tfgap.study.regimes import ABLATION_SEEDS, LONG_SEEDS, SEEDS  # noqa: PLC0415
    from tfgap.training.config import settings  # noqa: PLC0415

    s = settings()
    cli.define_setting_flag(fv, s["dataset"], default="mnist1d", help="Dataset of the study.")
    cli.define_setting_flag(fv, s["model"], default=None, optional=True,
                            help="Network (default: cnn1d on mnist1d, else the recipe's "
                            "network; mlp: the 3 x 128 BN MLP).")
    cli.define_setting_flag(fv, s["model_options"], default=None,
                            help="build_model options, key=value (default on mnist1d: "
                            "cnn_filters=32,cnn_depth=3,cnn_kernel=5 for cnn1d, "
                            "mlp_width=128,mlp_depth=3 for mlp).")
    cli.define_setting_flag(fv, s["ghost_batch_size"], default=None, optional=True,
                            help="B_G, the ghost batch of the +GBN rows (default: the small "
                            "batch).")
    cli.define_setting_flag(fv, s["lr_boundaries"], default=None,
                            help="Epochs of SB at which the rate drops (stretched by B_L/B_S "
                            "under +RA).")
    cli.define_setting_flag(fv, s["epochs"], default=None, optional=True,
                            help="Epochs of SB (B_L/B_S times more under +RA).")
    for name in ("momentum", "weight_decay"):
        cli.define_setting_flag(fv, s[name], default=None, optional=True,
                                help=s[name].help + " Default: the dataset's study default.")
    cli.define_setting_flag(fv, s["validation_examples"], default=None,
                            help="Examples held out of the training split for validation "
                            "(default: the study's, 928 on mnist1d; else the dataset's).")
    cli.define_setting_flag(fv, s["export_dir"], help="SavedModel of LB+LR+GBN+RA (default: "
                            "savedmodels/<dataset>_study_lb_lr_gbn_ra).")
    for name in ("data_dir", "mock_data", "mock_examples"):
        cli.define_setting_flag(fv, s[name])
    cli.define_setting_flag(fv, s["strategy"], default="one_device",
                            choices=("auto", "one_device", "mirrored"),
                            help="Distribution strategy of every run.")
    flags.DEFINE_boolean("quick", False, "A smoke run: one seed for every row, a sixth of the "
                         "epochs and the minima measured on 250 examples (unless --seeds, "
                         "--ablation_seeds, --long_seeds, --epochs, --lr_boundaries or "
                         "--sharpness_examples "
                         "are given).", flag_values=fv)
    flags.DEFINE_integer("seeds", None, "Seeds of every row (0, 1, ..., seeds - 1). Default "
                         f"{SEEDS} (1 with --quick).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("ablation_seeds", None, "Seeds of the ablations (the ghost-size "
                         "rows and the alternatives; the first ones of --seeds). Default "
                         f"{ABLATION_SEEDS} (1 with --quick).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("long_seeds", None, "Seeds of the rows trained B_L/B_S times longer "
                         f"(+RA; the first ones of --seeds). Default {LONG_SEEDS} (1 with "
                         "--quick).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("workers", None, "Worker processes training runs side by side "
                         "(default: one per CPU core). The results do not depend on it.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("threads", 1, "TensorFlow threads of each worker. The numbers "
                         "depend on it (sums in another order), not on --workers.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("small_batch_size", None, "B_S, the small batch (SB).", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("large_batch_size", None, "B_L, the large batch (LB...).",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_float("lr", None, "Learning rate of SB (scaled by sqrt(B_L/B_S) under +LR).",
                       lower_bound=0.0, flag_values=fv)
    flags.DEFINE_float("lr_decay", None, "Factor of each drop.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Runs, tables and figures (default: "
                        "runs/study_<dataset>, runs/study_<dataset>_quick with --quick). "
                        "Re-running resumes.", flag_values=fv)
    flags.DEFINE_boolean("export", True, "Export the LB+LR+GBN+RA model.", flag_values=fv)
    flags.DEFINE_integer("sharpness_examples", 1000, "Training examples for Keskar's "
                         "sharpness and the Hessian (0: skip).", lower_bound=0, flag_values=fv)
    flags.DEFINE_float("sharpness_epsilon", 1e-3, "Sharpness box size eps.", lower_bound=0.0,
                       flag_values=fv)
    flags.DEFINE_integer("interpolation_points", 25, "Alphas of the SB <-> LB (converged) "
                         "interpolation in [-1, 2] (0: skip).", lower_bound=0, flag_values=fv)
    cli.set_group(fv, "study", "dataset", "quick", "seeds", "ablation_seeds", "long_seeds",
                  "workers",
                  "threads", "small_batch_size", "large_batch_size", "ghost_batch_size", "lr",
                  "lr_boundaries", "lr_decay", "epochs", "sharpness_examples",
                  "sharpness_epsilon", "interpolation_points", "output_dir")
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
                    weight_decay=recipe.get("weight_decay", 0.0), validation_examples=None)
    return dict(model=None, model_options={}, small_batch_size=128, large_batch_size=4096,
                ghost_batch_size=128, lr=0.1, lr_boundaries=(), lr_decay=0.1, epochs=1.0,
                momentum=0.9, weight_decay=0.0, validation_examples=None)


def _model_options(fv, dataset, model, defaults):
    if fv.model_options is not None:
        return fv.model_options
    if dataset == "mnist1d":
        return dict(MNIST1D_MODEL_OPTIONS.get(model, {}))
    return defaults["model_options"] if model == defaults["model"] else {}


def run(fv, argv=None):
    """Runs the study; returns the artifacts (tables, figures, runs, SavedModel)."""
    import sys  # noqa: PLC0415

    from tfgap.study import regime_configs, run_study, small_batch_config  # noqa: PLC0415
    from tfgap.study.regimes import ABLATION_SEEDS, LONG_SEEDS, QUICK, SEEDS  # noqa: PLC0415

    dataset = fv.dataset
    d = _study_defaults(dataset)
    pick = lambda name: d[name] if fv[name].value is None else fv[name].value  # noqa: E731
    model = pick("model")
    if model is None:
        raise cli.UsageError(f"--model is required with --dataset={dataset}")
    options = _model_options(fv, dataset, model, d)
    small = pick("small_batch_size")
    large = pick("large_batch_size")
    ghost = fv.ghost_batch_size or (d["ghost_batch_size"] if fv.small_batch_size is None
                                    else small)
    epochs, boundaries = pick("epochs"), [float(b) for b in pick("lr_boundaries")]
    sharpness_examples = fv.sharpness_examples
    if fv.quick:  # a fraction of the epochs, the same shape of schedule
        if fv.epochs is None:
            epochs = max(1.0, math.ceil(epochs * QUICK["epochs_fraction"]))
        if fv.lr_boundaries is None:
            boundaries = [b * epochs / pick("epochs") for b in boundaries]
        if not fv["sharpness_examples"].present:
            sharpness_examples = QUICK["sharpness_examples"]
    seeds = fv.seeds or (QUICK["seeds"] if fv.quick else SEEDS)
    long_seeds = min(fv.long_seeds or (QUICK["long_seeds"] if fv.quick else LONG_SEEDS), seeds)
    ablation_seeds = min(fv.ablation_seeds or (QUICK["ablation_seeds"] if fv.quick
                                               else ABLATION_SEEDS), seeds)
    default_dir = f"study_{dataset}" + ("_quick" if fv.quick else "")
    output_dir = fv.output_dir or os.path.join("runs", default_dir)
    export_dir = None
    if fv.export:
        export_dir = fv.export_dir or os.path.join(
            "savedmodels", f"{dataset}_study_lb_lr_gbn_ra" + ("_quick" if fv.quick else ""))
    validation = (fv.validation_examples if fv["validation_examples"].present
                  else d["validation_examples"])
    if fv.mock_data and not fv["validation_examples"].present:
        validation = None  # the data's default (10% of the mock examples)
    try:
        base = small_batch_config(
            dataset=dataset, model=model, model_dir=os.path.join(output_dir, "runs"),
            small_batch_size=small, lr=pick("lr"), epochs=epochs,
            lr_boundaries=boundaries, lr_decay=pick("lr_decay"),
            momentum=pick("momentum"), weight_decay=pick("weight_decay"),
            model_options=options, data_dir=fv.data_dir, mock_data=fv.mock_data,
            mock_examples=fv.mock_examples, strategy=fv.strategy, preemption=False,
            validation_examples=validation,
        )
        for config in regime_configs(base, large_batch_size=large, ghost_batch_size=ghost,
                                     regimes=None).values():
            config.per_replica_batch_size(1)
    except ValueError as e:
        raise cli.UsageError(str(e)) from None
    args = (sys.argv if argv is None else argv)[1:]
    command = " ".join([PROG] + [shlex.quote(a) for a in args])
    run_study(
        base, started=_process_start(), output_dir=output_dir, large_batch_size=large,
        ghost_batch_size=ghost,
        seeds=range(seeds), long_seeds=range(long_seeds),
        ablation_seeds=range(ablation_seeds), workers=fv.workers,
        threads=fv.threads, export_dir=export_dir,
        sharpness_examples=sharpness_examples, sharpness_epsilon=fv.sharpness_epsilon,
        interpolation_points=fv.interpolation_points,
        settings={"command": command, "quick": fv.quick},
    )
    written = [(what, os.path.join(output_dir, name)) for what, name in _OUTPUTS]
    written = [(what, path) for what, path in written if os.path.exists(path)]
    if export_dir and os.path.exists(export_dir):
        written.append(("SavedModel", export_dir))
    return written


def _process_start():
    """When this process started (`time.time()` scale): from /proc on Linux, else now."""
    import time  # noqa: PLC0415

    try:
        with open("/proc/self/stat") as f:
            ticks = float(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


def main(argv=None):
    import sys  # noqa: PLC0415

    argv = list(sys.argv if argv is None else argv)
    cli.main(PROG, define=define, run=lambda fv: run(fv, argv), doc=__doc__, argv=argv)


if __name__ == "__main__":
    main()
