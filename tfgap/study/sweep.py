"""The small-batch learning-rate sweep behind a study's default rate, chosen on validation.

A study is only as fair as its baseline: the `SB` learning rate must be
tuned, and tuned without looking at the test split, or the test accuracy of
`SB` (the number every remedy is compared with) is optimistic.
`sweep_learning_rate` trains `SB` at every candidate rate and seed with the
study's own runner (`run_study(regimes=("SB",))`, one output directory per
rate), then `summarize_sweep` reads the runs' `result.json` files and
chooses the rate with the best mean validation accuracy (the validation
split is carved from the training split, `TrainConfig.validation_examples`).
The test accuracies are reported beside it and play no part in the choice.

`sweep_setting` does the same for any one `TrainConfig` field of any row
(e.g. `lars_eta` of `LB+LARS`, `sam_rho` of `LB+SAM`): each value is trained
at every seed through `tfgap.training.train` and the value with the best
mean validation accuracy is chosen.

Use seeds other than the study's, so the chosen value is not also fitted to
the reported runs' initializations and data orders.
"""

import os
import sys

from tfgap.study import report
from tfgap.study.runner import RunProgress, run_study, total_steps
from tfgap.training import finished_result, write_json

SWEEP_JSON = "lr_sweep.json"
CHOSEN_BY = "validation_accuracy_mean"


def lr_dir(output_dir, lr):
    """The study directory of one rate: `<output_dir>/lr_<lr>`.

    Example:

    >>> lr_dir("/tmp/sweep", 0.02)
    '/tmp/sweep/lr_0.02'
    """
    return os.path.join(output_dir, f"lr_{float(lr):g}")


def with_learning_rate(base, lr):
    """`base` with its peak rate set to `lr` (every later value scaled alike).

    Example:

    >>> from tfgap.study import small_batch_config
    >>> sb = small_batch_config(dataset="mnist1d", model="mlp", model_dir="/tmp/s",
    ...                         small_batch_size=50, lr=0.02, epochs=10, lr_boundaries=(7,))
    >>> [round(v, 6) for v in with_learning_rate(sb, 0.04).lr_values]
    [0.04, 0.004]
    """
    lr = float(lr)
    if not lr > 0:
        raise ValueError(f"Expected a learning rate > 0. Received: lr={lr!r}")
    peak = base.lr_values[0]
    return base.replace(lr_values=tuple(v * lr / peak for v in base.lr_values))


def sweep_learning_rate(base, lrs, *, output_dir, seeds=(10, 11), stream=None):
    """Trains `SB` at every rate and seed; returns `summarize_sweep`'s choice.

    Args:
        base: the `SB` `TrainConfig` (see `tfgap.study.small_batch_config`);
            only its learning rates change (`with_learning_rate`). It must
            keep a validation split (`validation_examples` None or > 0).
        lrs: the candidate peak rates.
        output_dir: the sweep's directory (`<output_dir>/lr_<lr>/` holds one
            `SB`-only study per rate; re-running reuses finished runs);
            `lr_sweep.json` is written here.
        seeds: the sweep's seeds (use others than the study's).
        stream: where progress and the table are printed (default stdout).

    Returns:
        The `lr_sweep.json` dict (see `summarize_sweep`).
    """
    stream = stream or sys.stdout
    lrs = [float(lr) for lr in lrs]
    if not lrs:
        raise ValueError("Expected at least one learning rate. Received: lrs=[]")
    if base.validation_examples == 0:
        raise ValueError(
            "Expected a config with a validation split: the sweep chooses on validation "
            "accuracy, never on the test split. Received: validation_examples=0"
        )
    for lr in lrs:
        run_study(with_learning_rate(base, lr), output_dir=lr_dir(output_dir, lr),
                  large_batch_size=base.batch_size, ghost_batch_size=base.batch_size,
                  seeds=seeds, regimes=("SB",), sharpness_examples=0, interpolation_points=0,
                  settings={"sweep_lr": lr}, stream=stream)
    sweep = summarize_sweep(output_dir, lrs, seeds)
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, SWEEP_JSON), sweep)
    stream.write("\n" + format_sweep(sweep) + "\n")
    stream.flush()
    return sweep


def summarize_sweep(output_dir, lrs, seeds):
    """Reads a sweep's runs and chooses the rate on mean validation accuracy.

    Args:
        output_dir: the sweep's directory (see `sweep_learning_rate`).
        lrs: its rates.
        seeds: its seeds.

    Returns:
        A dict: `rows` (per rate: `lr`, `seeds`, per-seed
        `validation_accuracy` and `test_accuracy`, their `_mean` and `_std`),
        `chosen_lr` (the best `validation_accuracy_mean`; the first such rate
        on a tie), `chosen_by` (`"validation_accuracy_mean"`) and
        `chosen_test_accuracy_mean` (reported, not used).

    Raises:
        ValueError: a run without a validation accuracy.
    """
    seeds = [int(s) for s in seeds]
    rows = []
    for lr in lrs:
        records = report.load_runs(lr_dir(output_dir, lr), regimes=["SB"], seeds=seeds)["SB"]
        row = {"lr": float(lr), "seeds": seeds}
        for key in ("validation_accuracy", "test_accuracy"):
            values = [r[key] for r in records]
            row[key] = values
            row[f"{key}_mean"], row[f"{key}_std"] = report.mean_std(values)
        missing = [r["model_dir"] for r in records if r["validation_accuracy"] is None]
        if missing:
            raise ValueError(
                "Expected every run of the sweep to report a validation accuracy (the rate is "
                f"chosen on it, never on test). Received none from {missing}"
            )
        rows.append(row)
    chosen = max(rows, key=lambda row: row[CHOSEN_BY])  # max keeps the first on a tie
    return {"rows": rows, "chosen_lr": chosen["lr"], "chosen_by": CHOSEN_BY,
            "chosen_test_accuracy_mean": chosen["test_accuracy_mean"]}


def setting_dir(output_dir, name, value, seed):
    """The `model_dir` of one run of `sweep_setting`: `<output_dir>/<name>_<value>/seed<k>`.

    Example:

    >>> setting_dir("/tmp/sweep", "sam_rho", 0.05, 10)
    '/tmp/sweep/sam_rho_0.05/seed10'
    """
    return os.path.join(output_dir, f"{name}_{value:g}", f"seed{int(seed)}")


def sweep_setting(config, name, values, *, output_dir, seeds=(10, 11), stream=None):
    """Trains `config` with field `name` at each of `values` and every seed; chooses on validation.

    Args:
        config: the row's `TrainConfig` (e.g. `regime_config("LB+SAM", ...)`);
            only `name`, `seed` and `model_dir` change per run. It must keep a
            validation split.
        name: a `TrainConfig` field (e.g. `"sam_rho"`, `"lars_eta"`).
        values: the candidate values (numbers).
        output_dir: the sweep's directory; `<name>_sweep.json` is written
            here, and a finished run is reused.
        seeds: the sweep's seeds (use others than the study's).
        stream: where progress and the table are printed (default stdout).

    Returns:
        A dict: `setting` (`name`), `rows` (per value: `value`, `seeds`,
        per-seed `validation_accuracy` and `test_accuracy` and their `_mean`
        and `_std`), `chosen` (the best mean validation accuracy; the first
        on a tie), `chosen_by` and `chosen_test_accuracy_mean` (reported,
        not used).
    """
    from tfgap.training import train  # noqa: PLC0415

    stream = stream or sys.stdout
    values = [float(v) for v in values]
    if not values:
        raise ValueError(f"Expected at least one value of {name!r}. Received: values=[]")
    if config.validation_examples == 0:
        raise ValueError(
            "Expected a config with a validation split: the sweep chooses on validation "
            "accuracy, never on the test split. Received: validation_examples=0"
        )
    rows = []
    for value in values:
        row = {"value": value, "seeds": [int(s) for s in seeds]}
        results = []
        for seed in seeds:
            run = config.replace(**{name: value, "seed": int(seed), "verbose": 0,
                                    "model_dir": setting_dir(output_dir, name, value, seed),
                                    "export_dir": None})
            result = finished_result(run)
            if result is None:
                title = f"{name}={value:g} seed {seed}"
                result = train(run, callbacks=[RunProgress(title, total_steps(run), stream)],
                               stream=stream)
            results.append(result)
        for key in ("validation", "test"):
            accs = [(r.get(key) or {}).get("accuracy") for r in results]
            row[f"{key}_accuracy"] = accs
            row[f"{key}_accuracy_mean"], row[f"{key}_accuracy_std"] = report.mean_std(accs)
        rows.append(row)
    chosen = max(rows, key=lambda row: row[CHOSEN_BY])
    sweep = {"setting": name, "rows": rows, "chosen": chosen["value"], "chosen_by": CHOSEN_BY,
             "chosen_test_accuracy_mean": chosen["test_accuracy_mean"]}
    os.makedirs(output_dir, exist_ok=True)
    write_json(os.path.join(output_dir, f"{name}_sweep.json"), sweep)
    shown = dict(sweep, chosen_lr=chosen["value"],
                 rows=[dict(r, lr=r["value"]) for r in rows])
    stream.write("\n" + format_sweep(shown).replace("| lr |", f"| {name} |", 1) + "\n")
    stream.flush()
    return sweep


def format_sweep(sweep):
    """The sweep as a Markdown table: rates across, per-seed and mean accuracies in percent.

    Example:

    >>> sweep = {"rows": [dict(lr=0.01, seeds=[10], validation_accuracy=[0.5],
    ...                        validation_accuracy_mean=0.5, test_accuracy=[0.6],
    ...                        test_accuracy_mean=0.6)],
    ...          "chosen_lr": 0.01, "chosen_by": "validation_accuracy_mean"}
    >>> print(format_sweep(sweep))
    | lr | **0.01** |
    |---|---|
    | val, seed 10 | 50.0 |
    | **val, mean** | **50.0** |
    | test, seed 10 | 60.0 |
    | test, mean | 60.0 |
    """
    rows = sweep["rows"]

    def bold(text, row):
        return f"**{text}**" if row["lr"] == sweep["chosen_lr"] else text

    out = ["| lr | " + " | ".join(bold(f"{r['lr']:g}", r) for r in rows) + " |",
           "|---|" + "---|" * len(rows)]
    for key, label in (("validation_accuracy", "val"), ("test_accuracy", "test")):
        for i, seed in enumerate(rows[0]["seeds"]):
            out.append(f"| {label}, seed {seed} | "
                       + " | ".join(_pct(r[key][i]) for r in rows) + " |")
        mean = f"{label}, mean"
        cells = [_pct(r[f"{key}_mean"]) for r in rows]
        if key == "validation_accuracy":  # the row the choice is made on
            mean, cells = f"**{mean}**", [bold(c, r) for c, r in zip(cells, rows)]
        out.append(f"| {mean} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def _pct(value):
    return "n/a" if value is None else f"{100.0 * value:.1f}"
